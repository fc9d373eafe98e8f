"""A topology that makes its links only when asked: the same answers as :class:`Topology`,
in constant time however many servers it has.

Pricing a collective routes a group's transfers and looks up the links on those routes; it
never needs the other links. A 9,216-GPU preset has some 30,000 directed links, and building
them (the graph's ``_build``) was most of a default ``collsim simulate`` run after Python's
start. :class:`TopologyView` routes exactly as :class:`Topology` (it is one, with the same
route code) but makes a link from its id (``("s3.nic2", "pod0.leaf2")``) on first lookup,
by the rules ``Topology._build`` lays the links out with. Whatever needs every link (the
networkx graph, :meth:`link_index`, :meth:`capacities`, iterating ``links``) builds them all
first, in the full topology's order, so flow-level contention and the fabric model see the
same ids and capacities. ``tests/test_topology_view.py`` checks every link and price
against the full topology on the bundled presets.
"""
from __future__ import annotations

from functools import lru_cache

from .graph import Link, LinkId, Topology
from .spec import TopologySpec
from ..records import replace


class _Links(dict):
    """Links made on first lookup; asking for all of them builds the full table."""

    def __init__(self, view: TopologyView):
        super().__init__()
        self._view = view

    def __missing__(self, lid: LinkId) -> Link:
        link = self._view._make_link(lid)
        if link is None:
            raise KeyError(lid)
        self[lid] = link
        return link

    def get(self, lid, default=None):
        try:
            return self[lid]
        except KeyError:
            return default

    def __contains__(self, lid) -> bool:
        return self.get(lid) is not None

    # everything that walks the table: the full build, in its order
    def __iter__(self):
        return iter(self._view._full_links())

    def __len__(self) -> int:
        return len(self._view._full_links())

    def keys(self):
        return self._view._full_links().keys()

    def values(self):
        return self._view._full_links().values()

    def items(self):
        return self._view._full_links().items()

    def copy(self):
        return dict(self._view._full_links())


class _LinkIds(dict):
    """Link id -> its number in :meth:`TopologyView.link_index`, made on first lookup from
    the first server's or pod's link it corresponds to; comparing or walking it builds the
    full table (in the full topology's order)."""

    def __init__(self, view: TopologyView, small: dict, per_server: int, per_pod: int,
                 spl: int, first_pod: int):
        super().__init__()
        self._view, self._small = view, small
        self._per_server, self._per_pod, self._spl, self._first_pod = (
            per_server, per_pod, spl, first_pod)
        self._all: dict | None = None
        self._nodes: dict = {}

    def __missing__(self, lid: LinkId) -> int:
        # a link of server s (pod p) exists iff its move to server 0 (pod 0) does: every
        # server and pod is laid out alike; the small topology refuses the rest
        nodes = self._nodes
        a = nodes.get(lid[0]) or self._node(lid[0])
        b = nodes.get(lid[1]) or self._node(lid[1])
        try:
            server = a[1] if a[1] is not None else b[1]
            if server is not None:                            # a server's link
                # both ends on that server (a leaf: in its pod), the server in the topology
                other = b if a[1] is not None else a
                if (not 0 <= server < self._view.servers
                        or (other[1] is not None and other[1] != server)
                        or (other[2] is not None and other[2] != server // self._spl)):
                    raise KeyError(lid)
                number = server * self._per_server + self._small[(a[3], b[3])]
            else:                                             # a pod's (leaf and spine)
                pod = a[2] if a[2] is not None else b[2]
                if pod is None or not 0 <= pod < getattr(self._view, "pods", 1):
                    raise KeyError(lid)
                number = (self._view.servers * self._per_server + pod * self._per_pod
                          + self._small[(a[3], b[3])] - self._first_pod)
        except KeyError:
            raise KeyError(lid) from None
        self[lid] = number
        return number

    def _node(self, name: str) -> tuple:
        """(name, its server or None, its pod (leaves) or None, its name moved to server 0 and
        pod 0), once per node."""
        hit = self._nodes.get(name)
        if hit is None:
            p = _parse_node(name)
            gps = self._view.gpus_per_server
            if p[0] in ("gpu", "nvsw", "nic"):
                server = p[1] // gps if p[0] == "gpu" else p[1]
                hit = (name, server, None, _moved(name, p, server, 0, gps))
            elif p[0] == "leaf":
                hit = (name, None, p[1], _moved(name, p, 0, p[1], gps))
            else:
                hit = (name, None, None, name)
            self._nodes[name] = hit
        return hit

    def _full(self) -> dict:
        if self._all is None:
            ids = self._view._full_links()
            self._all = {lid: self[lid] for lid in ids}
        return self._all

    def __eq__(self, other):
        return self._full() == other

    __hash__ = None  # a dict

    def __iter__(self):
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())

    def __contains__(self, lid) -> bool:
        try:
            self[lid]
        except KeyError:
            return False
        return True

    def get(self, lid, default=None):
        try:
            return self[lid]
        except KeyError:
            return default

    def keys(self):
        return self._full().keys()

    def values(self):
        return self._full().values()

    def items(self):
        return self._full().items()


def _moved(name: str, parsed: tuple, server: int, pod: int, gps: int) -> str:
    """A node's name moved back by ``server`` servers and ``pod`` pods."""
    kind = parsed[0]
    if kind == "gpu":
        return f"gpu{parsed[1] - server * gps}"
    if kind == "nvsw":
        return f"s{parsed[1] - server}.nvsw"
    if kind == "nic":
        return f"s{parsed[1] - server}.nic{parsed[2]}"
    if kind == "leaf":
        return f"pod{parsed[1] - pod}.leaf" + ("" if parsed[2] is None else str(parsed[2]))
    return name


def _num(text: str) -> int | None:
    """A node name's number as the full topology writes it (``12``, not ``012``), or None."""
    if text.isdigit() and text.isascii() and (text[0] != "0" or text == "0"):
        return int(text)
    return None


def _parse_node(name: str) -> tuple:
    """``gpu12`` -> ("gpu", 12); ``s3.nvsw`` -> ("nvsw", 3); ``s3.nic2`` -> ("nic", 3, 2);
    ``pod1.leaf2`` -> ("leaf", 1, 2), ``pod1.leaf`` -> ("leaf", 1, None); ``spine`` ->
    ("spine", None), ``spine4`` -> ("spine", 4); anything else ("?",)."""
    head, dot, rest = name.partition(".")
    if not dot:
        if head.startswith("gpu"):
            g = _num(head[3:])
            return ("?",) if g is None else ("gpu", g)
        if head == "spine":
            return ("spine", None)
        if head.startswith("spine"):
            j = _num(head[5:])
            return ("?",) if j is None else ("spine", j)
        return ("?",)
    if head.startswith("s"):
        srv = _num(head[1:])
        if srv is None:
            return ("?",)
        if rest == "nvsw":
            return ("nvsw", srv)
        k = _num(rest[3:]) if rest.startswith("nic") else None
        return ("?",) if k is None else ("nic", srv, k)
    if head.startswith("pod"):
        pod = _num(head[3:])
        if pod is None or not rest.startswith("leaf"):
            return ("?",)
        if rest == "leaf":
            return ("leaf", pod, None)
        r = _num(rest[4:])
        return ("?",) if r is None else ("leaf", pod, r)
    return ("?",)


class TopologyView(Topology):
    """``servers`` servers of ``spec``, links made on demand (see the module docstring)."""

    def __init__(self, spec: TopologySpec, servers: int | None = None):
        self._start(spec, servers)
        self._full: dict[LinkId, Link] | None = None
        self._layout()
        su = spec.scale_up
        self._pairs = {(a, b): bw for a, b, bw in su.links}
        self._pairs.update({(b, a): bw for a, b, bw in su.links})
        self._parsed: dict[str, tuple] = {}
        self._role_links = self._roles()
        fab = spec.fabric
        # routes laid out directly (_fast_route): NVSwitch, NICs and a fabric
        self._fast = su.type == "nvswitch" and spec.nics is not None and fab is not None
        if fab is not None:
            self._rail = fab.type == "rail-optimized"
            self._servers_per_leaf = fab.servers_per_leaf
            self._ideal = fab.ecmp == "ideal"
        self._nic_first = [nics[0] for nics in self._nics_of_gpu]
        self._heads: dict[int, tuple] = {}              # _fast_route's route ends
        if "spine_up" in self._role_links:
            self._spine_ns = (self._role_links["spine_up"].latency_ns
                              + self._role_links["spine_down"].latency_ns)
        self._tails: dict[tuple[int, int], tuple] = {}
        self.links = _Links(self)
        self._check_reachable()
        self._ranks = None
        if spec.ranks:
            self._ranks = self._rank_map()
        self.route = lru_cache(maxsize=1 << 16)(self._route)
        self._route_ns: dict[tuple[int, int], int] = {}   # latencies _fast_route summed
        self.route_latency_ns = lru_cache(maxsize=1 << 16)(self._route_latency_ns)

    def _route_latency_ns(self, src: int, dst: int) -> int:
        path = self.route(src, dst)
        ns = self._route_ns.get((src, dst))
        return self.path_latency_ns(path) if ns is None else ns

    def _route(self, src: int, dst: int, nic: int | None = None) -> tuple[LinkId, ...]:
        """The full topology's route, its links recorded on the way by their place in the
        route (a route only crosses links the full topology has), which spares parsing
        their names when they are looked up. On an NVSwitch server with NICs and a fabric
        (every preset but h200x2) the route is laid out here directly: the same hops as
        ``Topology._route`` (tests/test_topology_view.py compares them), at half the cost."""
        if self._fast and nic is None and type(self.links) is _Links:
            return self._fast_route(src, dst)
        path = super()._route(src, dst, nic)
        links = self.links
        if type(links) is not _Links:       # during the full build
            return path
        roles = self._role_links
        have = dict.__contains__
        for hop in path:
            if have(links, hop):
                continue
            u, v = hop
            if u[0] == "g":
                if v[0] == "g":
                    continue                # direct NVLink: made on lookup (its own bandwidth)
                role = "nvlink" if v.endswith(".nvsw") else "pcie"
            elif v[0] == "g":
                role = "nvlink" if u.endswith(".nvsw") else "pcie"
            elif u[0] == "p":               # a leaf: down to a NIC or up to the spine
                role = "spine_up" if v.startswith("spine") else "down"
            elif u.startswith("spine"):
                role = "spine_down"
            else:                           # a NIC up to its leaf
                role = "up"
            dict.__setitem__(links, hop, roles[role])
        return path

    def _fast_route(self, src: int, dst: int) -> tuple[LinkId, ...]:
        if src == dst:
            return ()
        gps = self.gpus_per_server
        s_src = src // gps
        if s_src == dst // gps:
            nvl = self._role_links["nvlink"]
            sw = f"s{s_src}.nvsw"
            a, b = (f"gpu{src}", sw), (sw, f"gpu{dst}")
            put = dict.setdefault
            put(self.links, a, nvl)
            put(self.links, b, nvl)
            self._route_ns[(src, dst)] = 2 * nvl.latency_ns
            return (a, b)
        # a route across servers is the sender's way up to its leaf (fixed per GPU), the
        # spine when the leaves differ, and the way down to the receiver (fixed per GPU and
        # NIC); each end is made once, with its links and latency
        k = self._nic_first[src % gps]
        head = self._heads.get(src)
        if head is None:
            head = self._heads[src] = self._server_end(src, k, True)
        k_dst = k if self._rail else self._nic_first[dst % gps]
        tail = self._tails.get((dst, k_dst))
        if tail is None:
            tail = self._tails[(dst, k_dst)] = self._server_end(dst, k_dst, False)
        up, leaf_a, ns_up = head
        down, leaf_b, ns_down = tail
        if leaf_a == leaf_b:
            self._route_ns[(src, dst)] = ns_up + ns_down
            return up + down
        roles = self._role_links
        spine = "spine" if self._ideal else f"spine{self.ecmp_uplink(src, dst, k)}"
        a, b = (leaf_a, spine), (spine, leaf_b)
        put = dict.setdefault
        put(self.links, a, roles["spine_up"])
        put(self.links, b, roles["spine_down"])
        self._route_ns[(src, dst)] = ns_up + ns_down + self._spine_ns
        return up + (a, b) + down

    def _server_end(self, gpu: int, k: int, up: bool) -> tuple:
        """(hops between GPU ``gpu`` and its NIC ``k``'s leaf in the order travelled, up to
        the leaf or down from it, that leaf, their latency), the links made. One function for
        both ways so that a route's two ends cannot disagree: PCIe to the NIC from the GPU
        next to it, NVLink to that GPU first (PXN) when it is another."""
        gps, roles, put, links = self.gpus_per_server, self._role_links, dict.setdefault, self.links
        s = gpu // gps
        nic_gpu = s * gps + self._gpu_of_nic[k]
        nic = f"s{s}.nic{k}"
        leaf = f"pod{s // self._servers_per_leaf}.leaf" + (str(k) if self._rail else "")
        g_nic = f"gpu{nic_gpu}"
        if up:
            a, b, role_a, role_b = (g_nic, nic), (nic, leaf), roles["pcie"], roles["up"]
        else:
            a, b, role_a, role_b = (leaf, nic), (nic, g_nic), roles["down"], roles["pcie"]
        put(links, a, role_a)
        put(links, b, role_b)
        ns = role_a.latency_ns + role_b.latency_ns
        if nic_gpu == gpu:
            return ((a, b), leaf, ns)
        nvl = roles["nvlink"]
        sw = f"s{s}.nvsw"
        g = f"gpu{gpu}"
        c, d = ((g, sw), (sw, g_nic)) if up else ((g_nic, sw), (sw, g))
        put(links, c, nvl)
        put(links, d, nvl)
        return ((c, d, a, b) if up else (a, b, c, d), leaf, ns + 2 * nvl.latency_ns)

    # -- ranks: GPU i unless the spec places them --------------------------------------------
    @property
    def rank_gpu(self) -> list[int]:  # type: ignore[override]  # made on first use
        if self._ranks is None:
            self._ranks = self._rank_map()
        return self._ranks

    def gpu_of_rank(self, rank: int) -> int:
        if self._ranks is None and 0 <= rank < self.num_gpus:
            return rank
        return super().gpu_of_rank(rank)

    # -- links ------------------------------------------------------------------------------
    def _roles(self) -> dict:
        """The few distinct links of the topology, by role (made once)."""
        spec = self.spec
        su, nics, fab = spec.scale_up, spec.nics, spec.fabric
        roles: dict = {"nvlink": Link(su.bandwidth_gbps, su.efficiency, su.latency_ns, "nvlink")}
        roles["pair"] = {pair: Link(bw, su.efficiency, su.latency_ns, "nvlink")
                         for pair, bw in self._pairs.items()}
        if nics is not None:
            roles["pcie"] = Link(nics.pcie_gbps, nics.efficiency, 0, "pcie")
        if nics is not None and fab is not None:
            # into the leaf: cable + the leaf's latency; out of it: the cable
            roles["up"] = Link(nics.bandwidth_gbps, nics.efficiency,
                               nics.latency_ns + fab.leaf_latency_ns, "nic")
            roles["down"] = Link(nics.bandwidth_gbps, nics.efficiency, nics.latency_ns, "nic")
            bw = self.uplink_gbps if fab.ecmp == "ideal" else self.uplink_gbps / self.uplinks
            roles["spine_up"] = Link(bw, nics.efficiency, fab.spine_latency_ns, "fabric")
            roles["spine_down"] = Link(bw, nics.efficiency, fab.leaf_latency_ns, "fabric")
        return roles

    def _make_link(self, lid: LinkId) -> Link | None:
        """The link ``lid`` of the full topology, or None where it has none."""
        parsed = self._parsed
        a = parsed.get(lid[0]) or parsed.setdefault(lid[0], _parse_node(lid[0]))
        b = parsed.get(lid[1]) or parsed.setdefault(lid[1], _parse_node(lid[1]))
        roles = self._role_links
        gps = self.gpus_per_server
        kinds = (a[0], b[0])
        if kinds == ("gpu", "gpu"):
            ga, gb = a[1], b[1]
            if ga >= self.num_gpus or gb >= self.num_gpus or ga // gps != gb // gps:
                return None
            return roles["pair"].get((ga % gps, gb % gps))
        if kinds in (("gpu", "nvsw"), ("nvsw", "gpu")):
            g, srv = (a[1], b[1]) if a[0] == "gpu" else (b[1], a[1])
            ok = self.spec.scale_up.type == "nvswitch" and g < self.num_gpus and g // gps == srv
            return roles["nvlink"] if ok else None
        if kinds in (("gpu", "nic"), ("nic", "gpu")):
            g, nic = (a[1], b) if a[0] == "gpu" else (b[1], a)
            ok = ("pcie" in roles and g < self.num_gpus and g // gps == nic[1]
                  and nic[2] in self._nics_of_gpu[g % gps])
            return roles["pcie"] if ok else None
        if kinds in (("nic", "leaf"), ("leaf", "nic")):
            nic, leaf = (a, b) if a[0] == "nic" else (b, a)
            if "up" not in roles or nic[1] >= self.servers or nic[2] >= len(self._gpu_of_nic):
                return None
            fab = self.spec.fabric
            assert fab is not None
            rail = nic[2] if fab.type == "rail-optimized" else None
            if leaf[1] != nic[1] // fab.servers_per_leaf or leaf[2] != rail:
                return None
            return roles["up" if a[0] == "nic" else "down"]
        if kinds in (("leaf", "spine"), ("spine", "leaf")):
            leaf, spine = (a, b) if a[0] == "leaf" else (b, a)
            if "up" not in roles or self.pods <= 1 or leaf[1] >= self.pods:
                return None
            fab = self.spec.fabric
            assert fab is not None
            if fab.type == "rail-optimized":
                if leaf[2] is None or leaf[2] >= self.rails:
                    return None
            elif leaf[2] is not None:
                return None
            j = spine[1]
            if (j is not None) if fab.ecmp == "ideal" else (j is None or j >= self.uplinks):
                return None
            return roles["spine_up" if a[0] == "leaf" else "spine_down"]
        return None

    def _full_links(self) -> dict[LinkId, Link]:
        """Every link, in the full topology's order (built once)."""
        if self._full is None:
            lazy = self.links
            self.links, self._owner, self._nodes = {}, [], {}
            try:
                self._build()
                self._full = self.links
            finally:
                self.links = lazy
        return self._full

    # -- what needs every link (or the nodes and owners the full build records) --------
    @property
    def graph(self):
        self._full_links()
        return super().graph

    def link_index(self):
        """As :meth:`Topology.link_index`, without building every link: the ids follow from
        a server's and a pod's links in build order (every server lays its links out alike,
        every pod its uplinks), taken from a small full topology of the same spec; the
        table of ids makes an entry on first lookup, and walking it builds them all."""
        if self._index is None:
            import numpy as np

            fab = self.spec.fabric
            spl = fab.servers_per_leaf if fab is not None else max(1, self.servers)
            pods = getattr(self, "pods", 1)
            small = Topology(replace(self.spec, ranks=None), 1 if pods <= 1 else spl + 1)
            s_table, s_caps, per_server, per_pod, _, exact, s_nvl = small.link_index()
            first_pod = small.servers * per_server
            caps = np.concatenate([np.tile(s_caps[:per_server], self.servers),
                                   np.tile(s_caps[first_pod:first_pod + per_pod],
                                           pods if pods > 1 else 0)])
            nvlink = np.concatenate([np.tile(s_nvl[:per_server], self.servers),
                                     np.tile(s_nvl[first_pod:first_pod + per_pod],
                                             pods if pods > 1 else 0)])
            table = _LinkIds(self, s_table, per_server, per_pod, spl, first_pod)
            self._index = (table, caps, per_server, per_pod, spl, exact, nvlink)
        return self._index
