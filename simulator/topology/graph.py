"""A topology instance: the networkx graph of GPUs, switches, NICs and links, and routes.

Nodes are named ``gpu<g>`` (global GPU id g = server * gpus_per_server + local index),
``s<s>.nvsw`` (a server's NVSwitch), ``s<s>.nic<k>``, ``pod<p>.leaf<r>`` (rail-optimized:
the leaf of rail r in pod p) or ``pod<p>.leaf`` (fat tree), and ``spine`` (the spine layer,
one node: it never limits bandwidth itself, the leaves' uplinks do). Every physical link is
two directed edges (one per direction), each with ``bandwidth`` (GB/s == bytes/ns, line
rate), ``efficiency`` (share of the line rate large transfers reach), ``latency`` (ns) and
``kind`` (nvlink, pcie, nic, fabric). A link's id is the edge ``(u, v)``.

Routes follow what NCCL does on such machines: inside a server over NVLink (through the
NVSwitch, or the direct link); across servers out of the sending GPU's own NIC (one NIC per
GPU), through the rail's leaf (and the spine when the servers sit under different leaves),
into the NIC of the same rail on the receiving server, and over NVLink to the receiving GPU
when that NIC is another GPU's.
"""
from __future__ import annotations

from functools import lru_cache

from ..errors import InputError
from ..records import record
from .spec import Fabric, TopologySpec

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:  # networkx loads only where a caller asks for the graph (tens of ms)
    import networkx as nx

LinkId = tuple[str, str]


@record(frozen=True, slots=True)
class Link:
    """One directed link between two nodes."""

    bandwidth: float     # GB/s per direction (line rate); GB/s == bytes per ns
    efficiency: float
    latency_ns: int
    kind: str            # nvlink | pcie | nic | fabric

    @property
    def capacity(self) -> float:
        """Achievable bytes per nanosecond."""
        return self.bandwidth * self.efficiency


def gpu_node(g: int) -> str:
    return f"gpu{g}"


def _check_servers(spec: TopologySpec, servers: int) -> None:
    if servers > 1 and spec.fabric is None:
        raise InputError(
            f"GPUs on different servers are not reachable: the topology has no fabric, so "
            f"it holds at most one server of {spec.gpus_per_server} GPUs "
            f"({servers * spec.gpus_per_server} needed)", path=spec.source, field="fabric")


def _components(n: int, pairs) -> list[set[int]]:
    """Connected parts of GPUs 0..n-1 joined by ``pairs`` (a, b, ...), each part listed when
    its lowest GPU is reached in order 0, 1, ... (as networkx's connected_components)."""
    peers: list[list[int]] = [[] for _ in range(n)]
    for a, b, *_ in pairs:
        peers[a].append(b)
        peers[b].append(a)
    seen: set[int] = set()
    parts = []
    for start in range(n):
        if start in seen:
            continue
        part = {start}
        todo = [start]
        while todo:
            for q in peers[todo.pop()]:
                if q not in part:
                    part.add(q)
                    todo.append(q)
        seen |= part
        parts.append(part)
    return parts


class Topology:
    """``servers`` servers built from ``spec``; see the module docstring for names."""

    def __init__(self, spec: TopologySpec, servers: int | None = None):
        self._start(spec, servers)
        self.links: dict[LinkId, Link] = {}
        self._build()
        self._check_reachable()
        self.rank_gpu = self._rank_map()
        self.route = lru_cache(maxsize=1 << 16)(self._route)
        self.route_latency_ns = lru_cache(maxsize=1 << 16)(
            lambda a, b: self.path_latency_ns(self.route(a, b)))

    def _start(self, spec: TopologySpec, servers: int | None) -> None:
        """The sizes and the empty tables the full Topology and the view (which makes its
        links on demand) both begin with."""
        self.spec = spec
        self.servers = servers if servers is not None else (spec.servers or 1)
        self.gpus_per_server = spec.gpus_per_server
        self.num_gpus = self.servers * self.gpus_per_server
        self.name = spec.name
        _check_servers(spec, self.servers)
        self._graph: nx.DiGraph | None = None
        self._nodes: dict[str, dict] = {}          # node -> attributes
        self._nics_of_gpu: list[list[int]] = []   # local index -> NIC indices on its server
        self._gpu_of_nic: list[int] = []          # NIC index -> the local GPU it hangs off
        self._owner: list[int] = []               # per link: its server s, or -1 - its pod
        self._link_cache: dict = {}
        self._index: tuple | None = None            # link_index(), built on first use

    @property
    def graph(self) -> nx.DiGraph:
        """The networkx graph (built on first use: routes do not need it)."""
        if self._graph is None:
            import networkx as nx

            g = nx.DiGraph(name=self.spec.name)
            g.add_nodes_from(self._nodes.items())
            g.add_edges_from((u, v, {"bandwidth": link.bandwidth, "efficiency": link.efficiency,
                                     "latency": link.latency_ns, "kind": link.kind})
                             for (u, v), link in self.links.items())
            self._graph = g
        return self._graph

    # -- building -----------------------------------------------------------------------
    def _node(self, name: str, **attrs) -> None:
        self._nodes[name] = attrs

    def _add(self, u: str, v: str, bw: float, eff: float, lat: int, kind: str,
             lat_back: int | None = None, owner: int = 0) -> None:
        # links are immutable: equal ones share one object (a million links at 147k GPUs)
        fwd = self._link_cache.get((bw, eff, lat, kind))
        if fwd is None:
            fwd = self._link_cache[(bw, eff, lat, kind)] = Link(bw, eff, lat, kind)
        back_lat = lat if lat_back is None else lat_back
        back = self._link_cache.get((bw, eff, back_lat, kind))
        if back is None:
            back = self._link_cache[(bw, eff, back_lat, kind)] = Link(bw, eff, back_lat, kind)
        self.links[(u, v)] = fwd
        self.links[(v, u)] = back
        self._owner += (owner, owner)

    def _layout(self) -> None:
        """Which NICs each GPU has, and the fabric's leaf uplinks: what routes need, without
        the links themselves."""
        spec, gps = self.spec, self.gpus_per_server
        nics = spec.nics
        k_per_server = nics.per_server(gps) if nics else 0
        self._nics_of_gpu, self._gpu_of_nic = [], []
        if nics:
            for local in range(gps):
                if k_per_server >= gps:
                    per = k_per_server // gps
                    self._nics_of_gpu.append(list(range(local * per, (local + 1) * per)))
                else:
                    self._nics_of_gpu.append([local * k_per_server // gps])
            self._gpu_of_nic = [min(gpu for gpu in range(gps) if k in self._nics_of_gpu[gpu])
                                for k in range(k_per_server)]
        fab = spec.fabric
        if fab is None or nics is None:
            return
        self.pods = -(-self.servers // fab.servers_per_leaf)
        self.rails = k_per_server if fab.type == "rail-optimized" else 1
        nics_per_leaf = fab.servers_per_leaf * (1 if fab.type == "rail-optimized" else k_per_server)
        #: bandwidth of a leaf's uplinks together (GB/s)
        self.uplink_gbps = nics_per_leaf * nics.bandwidth_gbps / fab.oversubscription
        self.uplinks = fab.uplinks or max(1, round(nics_per_leaf / fab.oversubscription))

    def _build(self) -> None:
        self._layout()
        spec, gps = self.spec, self.gpus_per_server
        su = spec.scale_up
        nics = spec.nics
        k_per_server = nics.per_server(gps) if nics else 0
        for s in range(self.servers):
            for local in range(gps):
                g = s * gps + local
                self._node(gpu_node(g), kind="gpu", server=s, local=local)
            if su.type == "nvswitch":
                sw = f"s{s}.nvsw"
                self._node(sw, kind="nvswitch", server=s)
                for local in range(gps):
                    self._add(gpu_node(s * gps + local), sw, su.bandwidth_gbps, su.efficiency,
                              su.latency_ns, "nvlink", owner=s)
            else:
                for a, b, bw in su.links:
                    self._add(gpu_node(s * gps + a), gpu_node(s * gps + b), bw, su.efficiency,
                              su.latency_ns, "nvlink", owner=s)
            if nics:
                for k in range(k_per_server):
                    nic = f"s{s}.nic{k}"
                    self._node(nic, kind="nic", server=s, rail=k)
                for local in range(gps):
                    for k in self._nics_of_gpu[local]:
                        self._add(gpu_node(s * gps + local), f"s{s}.nic{k}", nics.pcie_gbps,
                                  nics.efficiency, 0, "pcie", owner=s)
        fab = spec.fabric
        if fab is None or nics is None:
            return
        pods, rails, uplink = self.pods, self.rails, self.uplink_gbps
        for s in range(self.servers):
            pod = s // fab.servers_per_leaf
            for k in range(k_per_server):
                leaf = self.leaf_name(pod, k)
                self._node(leaf, kind="leaf", pod=pod)
                # into the leaf: cable + the leaf's latency; out of it: the cable
                self._add(f"s{s}.nic{k}", leaf, nics.bandwidth_gbps, nics.efficiency,
                          nics.latency_ns + fab.leaf_latency_ns, "nic", lat_back=nics.latency_ns,
                          owner=s)
        if pods > 1 and fab.ecmp == "ideal":
            # an even spread over the uplinks is one link of their summed bandwidth
            self._node("spine", kind="spine")
            for pod in range(pods):
                for r in range(rails):
                    self._add(self.leaf_name(pod, r), "spine", uplink, nics.efficiency,
                              fab.spine_latency_ns, "fabric", lat_back=fab.leaf_latency_ns,
                              owner=-1 - pod)
        elif pods > 1:
            # one spine switch per uplink of a leaf; a connection takes one of them (hash)
            per_spine = uplink / self.uplinks
            for j in range(self.uplinks):
                self._node(f"spine{j}", kind="spine")
            for pod in range(pods):
                for r in range(rails):
                    for j in range(self.uplinks):
                        self._add(self.leaf_name(pod, r), f"spine{j}", per_spine, nics.efficiency,
                                  fab.spine_latency_ns, "fabric", lat_back=fab.leaf_latency_ns,
                                  owner=-1 - pod)

    def _fabric(self) -> Fabric:
        """The scale-out fabric: only routes between servers ask, and a topology spanning
        servers has one (checked in __init__)."""
        fab = self.spec.fabric
        if fab is None:
            raise InputError("the topology has no fabric: GPUs on different servers are not "
                             "reachable", path=self.spec.source, field="fabric")
        return fab

    def leaf_name(self, pod: int, nic: int) -> str:
        if self._fabric().type == "rail-optimized":
            return f"pod{pod}.leaf{nic}"
        return f"pod{pod}.leaf"

    def _check_reachable(self) -> None:
        if self.spec.scale_up.type != "direct":
            return
        parts = _components(self.gpus_per_server, self.spec.scale_up.links)
        if len(parts) > 1:
            main = max(parts, key=len)
            lost = sorted(g for part in parts if part is not main for g in part)
            raise InputError(f"GPUs not reachable over NVLink: local GPU(s) {lost} have no "
                             f"path to GPU {min(main)}; add them to scale_up.links",
                             path=self.spec.source, field="scale_up.links")

    def _rank_map(self) -> list[int]:
        given = self.spec.ranks or ()
        for i, g in enumerate(given):
            if g >= self.num_gpus:
                raise InputError(f"rank {i} is placed on GPU {g}, but the topology has "
                                 f"{self.num_gpus} GPUs", path=self.spec.source,
                                 field=f"placement.ranks[{i}]")
        used = set(given)
        rest = [g for g in range(self.num_gpus) if g not in used]
        return list(given) + rest

    # -- queries ------------------------------------------------------------------------
    def gpu_of_rank(self, rank: int) -> int:
        if not 0 <= rank < self.num_gpus:
            raise InputError(f"rank {rank} does not exist: topology {self.name} has "
                             f"{self.num_gpus} GPUs", path=self.spec.source)
        return self.rank_gpu[rank]

    def server_of(self, gpu: int) -> int:
        return gpu // self.gpus_per_server

    def local_of(self, gpu: int) -> int:
        return gpu % self.gpus_per_server

    def nic_of(self, gpu: int) -> int:
        """The NIC (index on its server) a GPU sends through: its own, the closest one."""
        if not self._nics_of_gpu:
            raise InputError(f"topology {self.name} has no NICs", path=self.spec.source)
        return self._nics_of_gpu[self.local_of(gpu)][0]

    def _nvlink_path(self, src: int, dst: int) -> tuple[LinkId, ...]:
        if src == dst:
            return ()
        a, b = gpu_node(src), gpu_node(dst)
        if self.spec.scale_up.type == "nvswitch":
            sw = f"s{self.server_of(src)}.nvsw"
            return ((a, sw), (sw, b))
        if (a, b) in self.links:
            return ((a, b),)
        import networkx as nx

        server = self.server_of(src)
        nodes = nx.shortest_path(self.graph.subgraph(
            [gpu_node(server * self.gpus_per_server + i) for i in range(self.gpus_per_server)]),
            a, b)
        return tuple(zip(nodes, nodes[1:]))

    def _route(self, src: int, dst: int, nic: int | None = None) -> tuple[LinkId, ...]:
        """Directed links from GPU ``src`` to GPU ``dst`` (``nic``: the sending NIC index)."""
        if src == dst:
            return ()
        s_src, s_dst = self.server_of(src), self.server_of(dst)
        if s_src == s_dst:
            return self._nvlink_path(src, dst)
        k = self.nic_of(src) if nic is None else nic
        gps = self.gpus_per_server
        fab = self._fabric()
        out: list[LinkId] = []
        exit_gpu = s_src * gps + self._gpu_of_nic[k]
        out += self._nvlink_path(src, exit_gpu)            # PXN: to the GPU next to NIC k
        nic_a = f"s{s_src}.nic{k}"
        out.append((gpu_node(exit_gpu), nic_a))
        if fab.type == "rail-optimized":
            k_dst = k                                        # stay on the rail
        else:
            k_dst = self.nic_of(dst)                         # any leaf port: the receiver's NIC
        pod_a, pod_b = s_src // fab.servers_per_leaf, s_dst // fab.servers_per_leaf
        leaf_a, leaf_b = self.leaf_name(pod_a, k), self.leaf_name(pod_b, k_dst)
        nic_b = f"s{s_dst}.nic{k_dst}"
        out.append((nic_a, leaf_a))
        if leaf_a != leaf_b:
            spine = "spine" if fab.ecmp == "ideal" else f"spine{self.ecmp_uplink(src, dst, k)}"
            out += [(leaf_a, spine), (spine, leaf_b)]
        out.append((leaf_b, nic_b))
        entry_gpu = s_dst * gps + self._gpu_of_nic[k_dst]
        out.append((nic_b, gpu_node(entry_gpu)))
        out += self._nvlink_path(entry_gpu, dst)
        return tuple(out)

    def link_index(self):
        """``(id of every link, capacity by id, links per server, links per pod, servers
        per pod, translation exact, NVLink or not by id)``: ids laid out so that moving a group
        by whole pods (any number of servers when there is one pod) adds ``servers x links per
        server`` to a server's link ids and ``pods x links per pod`` to a pod's: the routes of
        the moved group are the moved routes (not so under ECMP hashing: ``exact`` is False)."""
        if self._index is None:
            import numpy as np

            owner = np.asarray(self._owner, dtype=np.int64)
            per_server = int(np.count_nonzero(owner == 0))
            per_pod = int(np.count_nonzero(owner == -1))
            ids = np.empty(len(owner), dtype=np.int64)
            is_server = owner >= 0
            # position of each link among its owner's links, in insertion order
            order = np.lexsort((np.arange(len(owner)), owner))
            sorted_owner = owner[order]
            starts = np.r_[0, np.flatnonzero(np.diff(sorted_owner)) + 1]
            run = np.arange(len(owner)) - np.repeat(starts, np.diff(np.r_[starts, len(owner)]))
            local = np.empty(len(owner), dtype=np.int64)
            local[order] = run
            ids[is_server] = owner[is_server] * per_server + local[is_server]
            pod = -1 - owner[~is_server]
            ids[~is_server] = self.servers * per_server + pod * per_pod + local[~is_server]
            table = dict(zip(self.links, ids.tolist()))
            caps = np.empty(len(owner), dtype=np.float64)
            caps[ids] = [link.capacity for link in self.links.values()]
            nvlink = np.zeros(len(owner), dtype=bool)
            nvlink[ids] = [link.kind == "nvlink" for link in self.links.values()]
            fab = self.spec.fabric
            spl = fab.servers_per_leaf if fab is not None else max(1, self.servers)
            exact = fab is None or fab.ecmp == "ideal"
            self._index = (table, caps, per_server, per_pod, spl, exact, nvlink)
        return self._index

    def ecmp_uplink(self, src: int, dst: int, nic: int) -> int:
        """The uplink a connection (sending GPU, receiving GPU, sending NIC) hashes onto:
        deterministic for a seed, like a switch hashing a flow's header fields."""
        x = (src * 0x9E3779B1 + dst * 0x85EBCA77 + nic * 0xC2B2AE3D
             + self._fabric().ecmp_seed * 0x27D4EB2F + 0x165667B1) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 33
        x = (x * 0xFF51AFD7ED558CCD) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 33
        x = (x * 0xC4CEB9FE1A85EC53) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 33
        return x % self.uplinks

    def path_latency_ns(self, path) -> int:
        return sum(self.links[hop].latency_ns for hop in path)

    def capacities(self) -> dict[LinkId, float]:
        """Achievable bytes per nanosecond of every directed link (for FlowNetwork)."""
        return {lid: link.capacity for lid, link in self.links.items()}

    def describe(self) -> dict:
        s = self.spec
        d = {"topology": s.name, "servers": self.servers, "gpus_per_server": s.gpus_per_server,
             "scale_up": s.scale_up.type, "scale_up_GB_per_s": s.scale_up.bandwidth_gbps}
        if s.nics:
            d.update(nics_per_server=s.nics.per_server(s.gpus_per_server),
                     nic_GB_per_s=s.nics.bandwidth_gbps)
        if s.fabric:
            d.update(fabric=s.fabric.type, oversubscription=s.fabric.oversubscription,
                     ecmp=s.fabric.ecmp)
        d["call_overhead_us"] = s.nccl.call_overhead_ns / 1000
        d["method"] = s.nccl.method
        return d
