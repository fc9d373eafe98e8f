"""Collectives priced as NCCL runs them on a topology (docs/topologies.md).

For every collective the model lays out the transfers NCCL's algorithm makes on the group's
GPUs, routes them over the topology's links and sums the bytes each directed link carries.
Then, for every (algorithm, protocol) pair that NCCL could use::

    time = call overhead                       # framework dispatch (the preset's method)
         + base latency[algorithm][protocol]   # NCCL's launch and set-up
         + hops x hop latency[link class][algorithm][protocol] + wire latency
         + max over links (bytes on the link / achievable bandwidth) / protocol share
         + pipeline fill (the first buffer's worth of the busiest link is not overlapped)

and, like NCCL's tuner, keeps the fastest unless ``algorithm=`` / ``protocol=`` force one.

Algorithms: ring, tree (a chain in each server, NCCL's double binary tree across servers,
its kernels' per-channel ceiling across servers), NVLS (one NVSwitch server), NVLS-tree and
CollNet/SHARP all-reduce; ring, PAT (one GPU per server) and CollNet all-gather and
reduce-scatter; ring broadcast (a pipelined chain from the root); the multi-node ones in
``nccl_algorithms.py``, each offered only where NCCL would run it; direct (pairwise)
all-to-all with one NIC per GPU across servers, and hierarchical all-to-all (an exchange
inside each server, then one between the servers; NCCL itself never picks it, ask with
``algorithm="hierarchical"``); send/recv as
every rank sending its buffer to the next (nccl-tests' sendrecv_perf). Across servers NCCL
runs one ring (channel) per NIC: channel c enters each server at the group's c-th GPU there
and leaves through the NIC of the GPU before it.

Sizes follow nccl-tests: the buffer per rank; the gathered output for all-gather, the full
input for reduce-scatter.
"""
from __future__ import annotations

import math
from collections import defaultdict
from functools import partial

from ..collectives import OP_NAMES
from ..errors import InputError
from ..parallel import GroupPlacement
from ..records import record
from ..topology import Topology, TopologySpec, gpu_node
from ..topology.spec import PROTOCOLS
from ..topology.view import TopologyView  # links made on first use: prices in O(group)
from ..workload import Op
from .base import CostModel
from .nccl_algorithms import PAT_KERNEL_SHARE, pat_latency_ns, tree_channel_cap
from .nccl_algorithms import collnet_tuner_pick, gpu_architecture
from .nccl_algorithms import PLANNERS as _MULTINODE_PLANNERS
from .nccl_algorithms import binary_tree as _binary_tree
from .nccl_algorithms import by_server as _by_server
from .nccl_algorithms import plan_pat as _plan_pat
from .nccl_phase import Phase
from .nccl_symmetric import SymmetricPat, SymmetricPhase, SymmetricRing, symmetric_layout

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any

#: algorithms per operation, NCCL's own first; "hierarchical" only when asked for. Each
#: planner returns None where NCCL would not run the algorithm on the group (PAT: one GPU
#: per server; NVLS: one NVSwitch server; NVLS-tree: 2+ servers of 2+ GPUs with multicast;
#: CollNet: a fabric with SHARP), so the automatic choice is among those NCCL would weigh
ALGORITHMS = {
    Op.ALLREDUCE: ("ring", "tree", "nvls", "nvls_tree", "collnet", "collnet_chain"),
    Op.ALLGATHER: ("ring", "pat", "collnet"),
    Op.REDUCESCATTER: ("ring", "pat", "collnet"),
    Op.BROADCAST: ("ring",),
    Op.ALLTOALL: ("direct", "hierarchical"),
    Op.SENDRECV: ("direct",),
}
AUTO_ALGORITHMS = {op: tuple(a for a in algos if a != "hierarchical")
                   for op, algos in ALGORITHMS.items()}
#: protocols NCCL uses per algorithm family (grouped send/recv: LL for small, Simple else)
FAMILY = {"ring": "ring", "tree": "tree", "direct": "p2p", "hierarchical": "p2p",
          "nvls": "tree",   # NVLS: NCCL's tree latencies (no NVLS entry of its own here)
          # NCCL's own latency formulas (costmodel/nccl_algorithms.py)
          "pat": "pat", "nvls_tree": "nvls_tree", "collnet": "collnet",
          "collnet_chain": "collnet"}
FAMILY_PROTOCOLS = {"ring": PROTOCOLS, "tree": PROTOCOLS, "p2p": ("LL", "Simple"),
                    "pat": ("Simple",), "nvls_tree": ("Simple",), "collnet": ("Simple",)}


@record(frozen=True)
class Estimate:
    """One collective priced by the NCCL model: the algorithm and protocol chosen and the time."""

    op: Op
    size_bytes: int
    algorithm: str
    protocol: str
    time_ns: float           # max(gpu_ns, overhead_ns)
    gpu_ns: float            # the collective on the GPUs (what nccl-tests measures)
    overhead_ns: float       # the framework's floor per call
    latency_ns: float        # base and hop latencies of the GPU time
    bandwidth_ns: float      # bytes on the busiest link / its bandwidth, with protocol share
    fill_ns: float
    bottleneck: tuple | None  # the busiest link (of the last phase)



class NcclCostModel(CostModel):
    name = "nccl"
    routes_over_topology = True
    shares_nics = True     # through the topology's fabric links
    shares_links_by_default = True   # a topology as given; the registry's implied preset: off

    def __init__(self, topology: Topology | TopologySpec, algorithm: str | dict | None = None,
                 protocol: str | None = None, call_overhead_ns: int | None = None) -> None:
        super().__init__()
        self._topo: Topology | None   # built on first use when the servers are 'auto'
        if isinstance(topology, Topology):
            self.spec = topology.spec
            self._topo = topology
            self._fixed = True
        else:
            self.spec = topology
            self._topo = TopologyView(topology) if topology.servers is not None else None
            self._fixed = topology.servers is not None
        self.params = self.spec.nccl
        self.call_overhead_ns = call_overhead_ns    # None: the preset's, per operation
        if protocol is not None and protocol not in PROTOCOLS:
            raise InputError(f"unknown protocol {protocol!r} (choose from "
                             f"{', '.join(PROTOCOLS)})", field="protocol")
        known = {a for algos in ALGORITHMS.values() for a in algos}
        for algo in (algorithm.values() if isinstance(algorithm, dict) else [algorithm]):
            if algo is not None and algo not in known:
                raise InputError(f"unknown algorithm {algo!r} (choose from "
                                 f"{', '.join(sorted(known))})", field="algorithm")
        self.algorithm = algorithm
        self.protocol = protocol
        self._plans: dict = {}
        self._estimates: dict = {}      # (op, size, GPUs, algorithm, protocol, servers)
        # slower leaf uplinks priced alone (with_degraded_uplinks): link -> bandwidth factor,
        # and the healthy model whose choice of algorithm and protocol is kept
        self._uplinks: tuple = ()
        self._link_factor: dict = {}
        self._healthy: NcclCostModel | None = None

    # -- topology -------------------------------------------------------------------------
    def fixed_gpus(self) -> int | None:
        servers, gps = self.spec.servers, self.spec.gpus_per_server
        if isinstance(servers, int) and isinstance(gps, int):
            return servers * gps
        return None

    @property
    def topology(self) -> Topology:
        if self._topo is None:
            self._topo = TopologyView(self.spec, 1)
        return self._topo

    def topology_for(self, gpus: int) -> Topology:
        """The topology, grown to ``gpus`` GPUs when its servers are 'auto'."""
        topo = self.topology
        if gpus <= topo.num_gpus:
            return topo
        if self._fixed:
            hint = (f"; ask for the job's size with {self.spec.name}:GPUS" if self.spec.fabric
                    else "; it has no fabric to add servers to")
            raise InputError(f"topology {self.spec.name} has {topo.num_gpus} GPUs "
                             f"({topo.servers} server(s) of {topo.gpus_per_server}) but the "
                             f"job uses at least {gpus}{hint}", path=self.spec.source)
        # grow at least twofold: the engine asks for ever higher ranks, stage by stage
        servers = max(-(-gpus // self.spec.gpus_per_server), 2 * topo.servers)
        self._topo = TopologyView(self.spec, servers)
        self._plans.clear()
        return self._topo

    def describe(self) -> dict:
        d: dict[str, Any] = {"name": self.name}
        d.update(self.topology.describe())
        if not self._fixed:
            d["servers"] = "auto"
        d["call_overhead_us"] = self.overhead_ns(Op.ALLREDUCE) / 1000
        if self.algorithm:
            d["algorithm"] = self.algorithm
        if self.protocol:
            d["protocol"] = self.protocol
        return d

    def degraded(self, nic_factor: float, extra_nic_latency_ns: int) -> NcclCostModel:
        """The same model with slower NICs (bandwidth x ``nic_factor``, latency + the extra):
        prices the groups that hold a degraded NIC (a ring runs at its slowest member's
        pace). Under the fabric (:mod:`simulator.network.fabric`) only the degraded NICs'
        links lose bandwidth."""
        from dataclasses import replace

        nics = self.spec.nics
        if nics is None or (nic_factor == 1 and not extra_nic_latency_ns):
            return self
        spec = replace(self.spec, name=f"{self.spec.name} (NIC x{nic_factor:g})",
                       servers=self.topology.servers if self._fixed else self.spec.servers,
                       # a route between servers crosses two NIC cables (out, in): half
                       # the extra on each makes it once per network hop, as on the one
                       # degraded NIC every step of a ring crosses
                       nics=replace(nics, bandwidth_gbps=nics.bandwidth_gbps * nic_factor,
                                    latency_ns=nics.latency_ns + round(extra_nic_latency_ns / 2)))
        model = NcclCostModel(spec, self.algorithm, self.protocol, self.call_overhead_ns)
        model.shares_links_by_default = self.shares_links_by_default
        return model.with_degraded_uplinks(self._uplinks)

    def with_degraded_uplinks(self, uplinks) -> NcclCostModel:
        """The same model pricing every collective with the leaf uplinks ``uplinks`` ((pod,
        rail or None, bandwidth factor), as ``--degrade leaf=``) at that share of their
        bandwidth, both ways: a collective whose routes cross one runs at its pace there.
        The algorithm and protocol stay those chosen on healthy links (NCCL's tuner does not
        see a slow cable). For collectives priced alone; under the fabric model the slow
        links themselves are shared instead (the flows keep the healthy price's latency)."""
        from ..topology.uplinks import uplink_links

        if not uplinks:
            return self
        model = NcclCostModel(self.spec, self.algorithm, self.protocol, self.call_overhead_ns)
        model.shares_links_by_default = self.shares_links_by_default
        model._topo, model._fixed = self._topo, self._fixed
        model._healthy = self._healthy or self
        model._uplinks = self._uplinks + tuple(uplinks)
        for pod, rail, factor in uplinks:
            for link in uplink_links(model.topology, pod, rail):
                model._link_factor[link] = model._link_factor.get(link, 1.0) * factor
        return model

    def group_gpus(self, placement: GroupPlacement) -> tuple[int, ...]:
        """GPUs of a placement's representative group (one is made up if it has no ranks)."""
        ranks = placement.ranks
        if not ranks:
            ranks = _synthetic_ranks(placement, self.spec.gpus_per_server)
        topo = self.topology_for(max(ranks) + 1)
        if isinstance(topo, TopologyView) and topo._ranks is None and min(ranks) >= 0:
            return tuple(ranks)                 # no placement map: rank i on GPU i
        return tuple(topo.gpu_of_rank(r) for r in ranks)

    # -- the engine's entry points --------------------------------------------------------
    def collective_ns(self, op: Op, size_bytes: int, placement: GroupPlacement) -> int:
        # the memo key carries the ranks: on a topology two groups with equal placement
        # summaries can still cross different links (pods, a rank permutation)
        if placement.size <= 1 or size_bytes <= 0:
            return 0
        key = (op, size_bytes, placement, placement.ranks)
        hit = self._memo.get(key)
        if hit is None:
            if op is Op.ALLREDUCEALLTOALL:
                hit = (self.collective_ns(Op.ALLREDUCE, size_bytes, placement)
                       + self.collective_ns(Op.ALLTOALL, size_bytes, placement))
            else:
                hit = max(0, round(self.price_ns(op, size_bytes, placement)))
            self._memo[key] = hit
        return hit

    def price_ns(self, op: Op, size_bytes: int, placement: GroupPlacement) -> float:
        return self.estimate(op, size_bytes, placement).time_ns

    # -- estimates ------------------------------------------------------------------------
    def estimate(self, op: Op, size_bytes: int, placement: GroupPlacement | tuple,
                 algorithm: str | None = None, protocol: str | None = None) -> Estimate:
        """The chosen (fastest, or forced) algorithm and protocol with the time parts."""
        gpus = placement if isinstance(placement, tuple) else None
        key = None
        if gpus is not None:
            key = (op, size_bytes, gpus, algorithm, protocol, self.topology.servers)
            hit = self._estimates.get(key)
            if hit is not None:
                return hit
        if self._healthy is not None:
            # NCCL picks as on healthy links: only the price sees the slow uplinks
            chosen = self._healthy.estimate(op, size_bytes, placement, algorithm, protocol)
            algorithm, protocol = chosen.algorithm, chosen.protocol
        cands = self.candidates(op, size_bytes, placement, algorithm, protocol)
        if algorithm is None and self._forced_algorithm(op) is None:
            cands = self._one_collnet(cands, size_bytes, placement)
        best = min(cands, key=lambda e: e.gpu_ns)      # NCCL's tuner knows nothing of the host
        if key is not None:
            if len(self._estimates) > 1 << 14:
                self._estimates.clear()
            self._estimates[key] = best
        return best

    def candidates(self, op: Op, size_bytes: int, placement: GroupPlacement | tuple,
                   algorithm: str | None = None, protocol: str | None = None) -> list[Estimate]:
        if op not in ALGORITHMS:
            raise InputError(f"the NCCL model has no algorithm for {op}")
        gpus = placement if isinstance(placement, tuple) else self.group_gpus(placement)
        if isinstance(placement, tuple):
            self.topology_for(max(gpus) + 1)
        asked = algorithm
        algorithm = algorithm or self._forced_algorithm(op)
        protocol = protocol or self.protocol
        if algorithm is not None and algorithm not in ALGORITHMS[op]:
            raise InputError(f"{OP_NAMES[op]} cannot run algorithm {algorithm!r} (choose from "
                             f"{', '.join(ALGORITHMS[op])})", field="algorithm")
        if asked is None and algorithm is not None and self._plan(op, algorithm, gpus) is None:
            # the model's setting (NCCL_ALGO for the whole job) on a group it cannot run on:
            # NCCL falls back to its ring there (the automatic choice where there is none)
            algorithm = "ring" if self._plan_or_none(op, "ring", gpus) else None
        algos = [algorithm] if algorithm else list(AUTO_ALGORITHMS[op])
        out = []
        for algo in algos:
            phases = self._plan(op, algo, gpus)
            if phases is None:
                if algorithm:
                    raise InputError(f"algorithm {algo!r} does not apply to this group "
                                     f"({len(gpus)} ranks)", field="algorithm")
                continue
            protos = (("Simple",) if algo == "nvls" else FAMILY_PROTOCOLS[FAMILY[algo]])
            if protocol is not None:
                if protocol not in protos:
                    raise InputError(f"{algo} ({FAMILY[algo]}) does not run protocol "
                                     f"{protocol} (choose from {', '.join(protos)})",
                                     field="protocol")
                protos = (protocol,)
            for proto in protos:
                out.append(self._time(op, size_bytes, algo, proto, phases, len(gpus)))
        return out

    def _one_collnet(self, cands: list[Estimate], size_bytes: int,
                     placement: GroupPlacement | tuple) -> list[Estimate]:
        """Of CollNet-Direct and CollNet-Chain all-reduce, keep the one NCCL's tuner ranks
        first (``collnet_tuner_pick``): NCCL weighs the two by its own table, where Direct
        carries factors the chain does not, so the model's routed estimate alone would keep
        Direct where NCCL runs the chain."""
        direct = [e for e in cands if e.algorithm == "collnet" and e.op is Op.ALLREDUCE]
        chain = [e for e in cands if e.algorithm == "collnet_chain"]
        if not direct or not chain:
            return cands
        gpus = placement if isinstance(placement, tuple) else self.group_gpus(placement)
        m = len(_by_server(self.topology, gpus)[0])
        nics = self.spec.nics
        heads = m if nics is None else (m * nics.count if nics.attach == "gpu"
                                        else nics.per_server(self.spec.gpus_per_server))
        keep = collnet_tuner_pick(direct[0], chain[0], size_bytes, m, heads,
                                  gpu_architecture(self.spec.gpu))
        drop = "collnet_chain" if keep == "collnet" else "collnet"
        return [e for e in cands if e.algorithm != drop]

    def _forced_algorithm(self, op: Op) -> str | None:
        a = self.algorithm
        if isinstance(a, dict):
            return a.get(op) or a.get(str(op)) or a.get(op.value.lower())
        if a is not None and a in ALGORITHMS[op]:
            return a
        return None

    def overhead_ns(self, op: Op) -> int:
        """Floor of one call issued through a framework (the preset's method)."""
        if self.call_overhead_ns is not None:
            return self.call_overhead_ns
        return self.params.overhead_ns(OP_NAMES[op])

    def nvlink_efficiency(self, op: Op, algo: str, ranks: int) -> float:
        """The share of NVLink's line rate ``algo`` reaches for ``op`` on ``ranks``."""
        su = self.spec.scale_up
        if algo == "nvls" and su.nvls_efficiency is not None:
            return su.nvls_efficiency
        return su.efficiency_for(OP_NAMES[op], ranks)

    def capacity(self, op: Op, link, ranks: int = 2) -> float:
        """Achievable bytes/ns of a link for ``op`` on a group of ``ranks``: NVLink transfers
        are paced by NCCL's kernels, whose speed differs per operation and group size
        (measured where the preset says so)."""
        lk = self.topology.links[link]
        if lk.kind == "nvlink":
            return lk.bandwidth * self.spec.scale_up.efficiency_for(OP_NAMES[op], ranks)
        return lk.capacity

    def _net_share(self, ph: Phase) -> float:
        """The share of a NIC's rate the phase's transfers reach: NCCL's network transport
        (``nccl.net_efficiency``) for all but CollNet, whose data SHARP's transport moves."""
        return 1.0 if ph.family == "collnet" else self.params.net_efficiency

    def _busiest(self, op: Op, ph: Phase, ranks: int) -> tuple:
        """(link, bytes per byte, its capacity for op) of the phase's slowest link (cached:
        a plan's loads do not change)."""
        key = (op, ranks)
        cached = ph.busiest.get(key)
        if cached is None:
            links = self.topology.links
            nvl = ph.nvlink_efficiency or self.spec.scale_up.efficiency_for(OP_NAMES[op], ranks)
            net = self._net_share(ph)

            slow = self._link_factor

            def capacity(link):
                lk = links[link]
                if lk.kind == "nvlink":
                    return lk.bandwidth * nvl
                cap = lk.capacity * net if lk.kind == "nic" else lk.capacity
                return cap * slow[link] if link in slow else cap
            if isinstance(ph, SymmetricPhase):
                cached = ph.busiest[key] = ph.shortcut.busiest(capacity)
                return cached
            best, best_t = None, -1.0
            for link, b in ph.loads.items():
                cap = capacity(link)
                t = b / cap
                if t > best_t:
                    best, best_t, best_cap = link, t, cap
            cached = ph.busiest[key] = (best, ph.loads[best], best_cap)
        return cached

    def _time(self, op, size, algo, proto, phases, ranks) -> Estimate:
        p = self.params
        pbw = p.protocol_bandwidth[proto]
        i = PROTOCOLS.index(proto)
        latency = bw_ns = fill_ns = 0.0
        bottleneck = None
        for ph in phases:
            fam = ph.family
            if ph.fixed_latency_ns is not None:
                latency += ph.fixed_latency_ns + ph.wire_ns
            else:
                latency += 1000.0 * (p.base_latency_us[fam][i]
                                     + ph.nvlink_hops * p.hop_latency_us["nvlink"][fam][i]
                                     + ph.net_hops * p.hop_latency_us["net"][fam][i]) + ph.wire_ns
            if isinstance(ph, SymmetricPhase) or ph.loads:
                # loads are per byte of buffer: scale by the size
                link, per_byte, cap = self._busiest(op, ph, ranks)
                t = size * per_byte / cap / pbw / ph.kernel_share
                if ph.algbw_cap is not None:
                    # the kernels' own ceiling (NCCL's per-channel figure), whatever the links
                    t = max(t, size / ph.algbw_cap)
                bw_ns += t
                if fam == "p2p":
                    # grouped send/recv goes through NCCL's channel buffers: sending the
                    # first buffer's worth and receiving it do not overlap
                    fill_ns += min(size * per_byte, p.buffer_bytes) / cap
                bottleneck = link
        gpu = latency + bw_ns + fill_ns
        overhead = self.overhead_ns(op)
        return Estimate(op, size, algo, proto, max(gpu, overhead), gpu, overhead, latency,
                        bw_ns, fill_ns, bottleneck)

    # -- plans: transfers per byte of buffer, independent of the size ---------------------
    def _plan(self, op: Op, algo: str, gpus: tuple[int, ...]) -> list[Phase] | None:
        # ring all-gather and reduce-scatter lay out the same transfers (_plan_ring): one
        # plan for both (tests/test_topology_view.py checks either order gives the same)
        same = Op.ALLGATHER if op is Op.REDUCESCATTER and algo == "ring" else op
        key = (same, algo, gpus)
        if key not in self._plans:
            planner = _PLANNERS[(op, algo) if (op, algo) in _PLANNERS else algo]
            if self._link_factor:
                # the symmetric shortcuts price one pod's links for all: a slow uplink
                # breaks that, so every transfer is laid out
                planner = _PLAIN_PLANNERS.get(algo, planner)
            self._plans[key] = planner(self.topology, op, gpus)
        return self._plans[key]

    def _plan_or_none(self, op: Op, algo: str, gpus: tuple[int, ...]) -> list[Phase] | None:
        return self._plan(op, algo, gpus) if algo in ALGORITHMS[op] else None

    def _phases(self, op: Op, algo: str, gpus: tuple[int, ...]) -> list[Phase]:
        phases = self._plan(op, algo, gpus)
        if phases is None:
            raise InputError(f"algorithm {algo!r} does not apply to {len(gpus)} ranks",
                             field="algorithm")
        return phases

    def group_loads(self, op: Op, algo: str, gpus: tuple[int, ...]) -> dict:
        """Bytes per byte of buffer on every directed link when the group on ``gpus`` runs
        ``op`` with ``algo`` (all phases together), before protocol share and NVLink pace."""
        self.topology_for(max(gpus) + 1)
        phases = self._phases(op, algo, gpus)
        if len(phases) == 1:
            return phases[0].loads
        loads: dict = defaultdict(float)
        for ph in phases:
            for link, b in ph.loads.items():
                loads[link] += b
        return loads

    def flow(self, op: Op, size_bytes: int, placement: GroupPlacement,
             algorithm: str | None = None, protocol: str | None = None):
        """``(bytes per directed link, latency ns)`` of the chosen algorithm, the input of
        :meth:`simulator.network.flows.FlowNetwork.transfer` over the links of
        ``self.topology.capacities()``. Alone on the network the flow takes exactly
        :meth:`estimate`'s time; bytes are scaled so that a link's plain capacity gives the
        operation's own pace (protocol share, per-operation NVLink efficiency)."""
        est = self.estimate(op, size_bytes, placement, algorithm, protocol)
        gpus = self.group_gpus(placement)
        share = self.params.protocol_bandwidth[est.protocol]
        links = self.topology.links
        loads: dict = defaultdict(float)
        for ph in self._phases(op, est.algorithm, gpus):
            nvl = ph.nvlink_efficiency or self.nvlink_efficiency(op, est.algorithm, len(gpus))
            net = self._net_share(ph)
            for link, per_byte in ph.loads.items():
                lk = links[link]
                pace = (lk.bandwidth * nvl if lk.kind == "nvlink"
                        else lk.capacity * net if lk.kind == "nic" else lk.capacity)
                pace *= ph.kernel_share
                loads[link] += per_byte * size_bytes / share * lk.capacity / pace
        alone = max((b / links[link].capacity for link, b in loads.items()), default=0.0)
        return dict(loads), max(0.0, est.time_ns - alone)


# -- layouts ---------------------------------------------------------------------------------
def _synthetic_ranks(p: GroupPlacement, gps: int) -> tuple[int, ...]:
    """A group of rank ids matching a placement summary (for placements without ranks)."""
    ranks: list[int] = []
    left = p.size
    for s in range(p.servers):
        take = min(p.max_per_server, left - (p.servers - 1 - s))
        take = max(take, 1)
        ranks += [s * gps + i for i in range(take)]
        left -= take
    return tuple(ranks[:p.size])


def _ring_channels(topo: Topology, gpus) -> list[list[int]]:
    """NCCL's rings over the group: one per GPU of the fullest server (one per NIC)."""
    servers = _by_server(topo, gpus)
    if len(servers) == 1:
        return [servers[0]]
    m = max(len(s) for s in servers)
    rings = []
    for c in range(m):
        ring = []
        for members in servers:
            k = c % len(members)
            ring += members[k:] + members[:k]
        rings.append(ring)
    return rings


def _chain_latency(topo: Topology, ph: Phase, edges, hops: float) -> None:
    """Hop counts and wire latency of ``hops`` sequential steps over a ring's edges."""
    cross = [e for e in edges if topo.server_of(e[0]) != topo.server_of(e[1])]
    local = [e for e in edges if topo.server_of(e[0]) == topo.server_of(e[1])]
    share = len(cross) / len(edges)
    ph.net_hops += hops * share
    ph.nvlink_hops += hops * (1 - share)
    for group, n in ((cross, hops * share), (local, hops * (1 - share))):
        if group:
            ph.wire_ns += n * max(topo.route_latency_ns(a, b) for a, b in group)


def _ring_volume(op: Op, n: int) -> tuple[float, int]:
    """(bytes per byte of buffer over every ring edge, sequential steps) of ``op``."""
    if op is Op.ALLREDUCE:
        return 2 * (n - 1) / n, 2 * (n - 1)
    if op in (Op.ALLGATHER, Op.REDUCESCATTER):
        return (n - 1) / n, n - 1
    return 1.0, n - 1   # broadcast: a pipelined chain from the root, the whole buffer


def _plan_ring(topo: Topology, op: Op, gpus) -> list[Phase]:
    n = len(gpus)
    rings = _ring_channels(topo, gpus)
    ph = Phase("ring")
    volume, hops = _ring_volume(op, n)
    root = gpus[0]
    edges_all = []
    for ring in rings:
        if op is Op.BROADCAST:
            k = ring.index(root)
            ring = ring[k:] + ring[:k]
            edges = list(zip(ring, ring[1:]))
        else:
            edges = list(zip(ring, ring[1:] + ring[:1]))
        edges_all += edges
        for a, b in edges:
            ph.add(topo.route(a, b), volume / len(rings))
    _chain_latency(topo, ph, edges_all, hops)
    return [ph]


def _plan_ring_by_symmetry(topo: Topology, op: Op, gpus) -> list[Phase]:
    """The ring plan; a symmetric group's (its servers hold the same local positions) from
    two servers' transfers (costmodel/nccl_symmetric.py), with the same prices."""
    layout = symmetric_layout(topo, gpus) if op is not Op.BROADCAST else None
    if layout is None:
        return _plan_ring(topo, op, gpus)
    servers, local = layout
    n, m = len(gpus), len(local)
    volume, hops = _ring_volume(op, n)
    ring = SymmetricRing(topo, servers, local, volume / m)
    ph = SymmetricPhase("ring", ring, partial(_first_phase, _plan_ring, topo, op, gpus))
    # latency: one server's transfers of each channel, the way out through the spine where
    # the group crosses it (the slowest); the same share of steps crossing servers
    out = ring.crossing[0] * m + m - 1 if ring.crossing else m - 1
    edges = []
    for c in range(m):
        edges += [ring.edge(c, e)[:2] for e in range(m - 1)]
        edges.append(ring.edge(c, out)[:2])
    _chain_latency(topo, ph, edges, hops)
    return [ph]


def _first_phase(planner, topo: Topology, op: Op, gpus) -> Phase:
    return planner(topo, op, gpus)[0]


def _plan_pat_by_symmetry(topo: Topology, op: Op, gpus) -> list[Phase] | None:
    """PAT's plan; one GPU per server at the same local position under ideal ECMP from two
    servers' sends and the pods' counts (costmodel/nccl_symmetric.py), the same prices."""
    layout = symmetric_layout(topo, gpus)
    if layout is not None and len(layout[1]) > 1:
        return None                     # NCCL runs PAT only with one GPU per server
    fab = topo.spec.fabric
    if (layout is None or len(layout[1]) != 1 or fab is None or fab.ecmp != "ideal"
            or op not in (Op.ALLGATHER, Op.REDUCESCATTER)):
        return _plan_pat(topo, op, gpus)
    pat = SymmetricPat(topo, op, tuple(gpus))
    ph = SymmetricPhase("pat", pat, partial(_first_phase, _plan_pat, topo, op, gpus),
                        kernel_share=PAT_KERNEL_SHARE)
    ph.wire_ns = pat.wire_ns()
    ph.fixed_latency_ns = pat_latency_ns(topo, len(gpus))
    return [ph]


def _plan_tree(topo: Topology, op: Op, gpus) -> list[Phase]:
    """NCCL's tree all-reduce: a chain inside each server and a double binary tree across
    servers, one tree pair per channel (per GPU of the fullest server); reduce goes up and
    the broadcast comes down, so every tree edge carries the channel's share both ways."""
    servers = _by_server(topo, gpus)
    k = len(servers)
    m = max(len(s) for s in servers)
    channels = m if k > 1 else 1
    ph = Phase("tree")
    for c in range(channels):
        chains = []
        for members in servers:
            j = c % len(members)
            chains.append(members[j:] + members[:j])     # chain head = the server's leader
        trees = (_binary_tree(k, False), _binary_tree(k, True)) if k > 1 else ([],)
        share = 1.0 / channels / len(trees)
        for tree in trees:
            for chain in chains:
                for a, b in zip(chain, chain[1:]):
                    ph.add(topo.route(a, b), share)
                    ph.add(topo.route(b, a), share)
            for parent, child in tree:
                a, b = chains[parent][0], chains[child][0]
                ph.add(topo.route(a, b), share)
                ph.add(topo.route(b, a), share)
    # NCCL's tree kernels cap each channel's pace across servers (at large sizes the
    # tree runs below the links' share: costmodel/nccl_algorithms.py)
    ph.algbw_cap = tree_channel_cap(topo, channels, k)
    depth = math.floor(math.log2(k)) if k > 1 else 0
    ph.nvlink_hops = 2 * (m - 1)
    ph.net_hops = 2 * depth
    chain = servers[0]
    if len(chain) > 1:
        ph.wire_ns += 2 * (m - 1) * topo.path_latency_ns(topo.route(chain[0], chain[1]))
    if k > 1:
        ph.wire_ns += 2 * depth * topo.path_latency_ns(topo.route(servers[0][0], servers[1][0]))
    return [ph]


def _p2p_latency(topo: Topology, ph: Phase, src: int, peers, conc: int) -> None:
    local = [d for d in peers if topo.server_of(d) == topo.server_of(src)]
    remote = [d for d in peers if topo.server_of(d) != topo.server_of(src)]
    ph.nvlink_hops = max(ph.nvlink_hops, math.ceil(len(local) / conc))
    ph.net_hops = max(ph.net_hops, math.ceil(len(remote) / conc))
    for group in (local, remote):
        if group:
            ph.wire_ns = max(ph.wire_ns, topo.path_latency_ns(topo.route(src, group[-1])))


def _add_exchange(topo: Topology, ph: Phase, src: int, dsts, share: float) -> None:
    """``src`` sends ``share`` of the buffer to each of ``dsts``; transfers to one remote
    server are routed once to the GPU on the sending NIC's rail there, then spread."""
    per_server: dict[int, list[int]] = {}
    for d in dsts:
        if topo.server_of(d) == topo.server_of(src):
            ph.add(topo.route(src, d), share)
        else:
            per_server.setdefault(topo.server_of(d), []).append(d)
    for s, members in per_server.items():
        path = topo.route(src, members[0])
        # the part up to and including the link into the receiving server's GPU
        cut = max(i for i, (u, v) in enumerate(path) if v.startswith("gpu")
                  and int(v[3:]) // topo.gpus_per_server == s and u.startswith("s"))
        ph.add(path[:cut + 1], share * len(members))
        entry = int(path[cut][1][3:])
        for d in members:
            ph.add(topo.route(entry, d), share)


def _plan_direct_a2a(topo: Topology, op: Op, gpus) -> list[Phase]:
    n = len(gpus)
    ph = Phase("p2p")
    conc = topo.spec.nccl.p2p_concurrency
    for src in gpus:
        peers = [d for d in gpus if d != src]
        _add_exchange(topo, ph, src, peers, 1.0 / n)
        _p2p_latency(topo, ph, src, peers, conc)
    return [ph]


def _plan_hier_a2a(topo: Topology, op: Op, gpus) -> list[Phase] | None:
    servers = _by_server(topo, gpus)
    k, m = len(servers), len(servers[0])
    if k < 2 or m < 2 or any(len(s) != m for s in servers):
        return None
    n = len(gpus)
    conc = topo.spec.nccl.p2p_concurrency
    intra, inter = Phase("p2p"), Phase("p2p")
    for members in servers:
        for i, src in enumerate(members):
            # 1: to the local GPU j, everything bound for the j-th GPU of any server
            local_peers = [d for d in members if d != src]
            _add_exchange(topo, intra, src, local_peers, k / n)
            _p2p_latency(topo, intra, src, local_peers, conc)
            # 2: to the i-th GPU of every other server, what its server's GPUs sent for it
            remote = [s[i] for s in servers if s is not members]
            _add_exchange(topo, inter, src, remote, m / n)
            _p2p_latency(topo, inter, src, remote, conc)
    return [intra, inter]


#: NCCL's assumed pace of one p2p channel over the network (GB/s; NCCL_P2P_PER_CHANNEL_NET_BW
#: since its per-bandwidth rule): it opens enough channels to a network peer to fill the NIC
NCCL_P2P_CHANNEL_NET_GBS = 14.0
#: p2p operations one work batch of NCCL's kernels carries (NCCL_MAX_DEV_WORK_P2P_PER_BATCH)
NCCL_P2P_PER_BATCH = 8
#: the first NCCL release of the per-bandwidth rule: the published send/recv figures place
#: it (2.28.9 steps once, at 64 ranks; 2.29.7 twice, at 64 and 128), the release notes were
#: not read
NCCL_P2P_RULE_BY_BANDWIDTH = (2, 29)


def p2p_net_channels_per_peer(ranks: int, nics_per_server: int, nic_gbs: float,
                              version: tuple[int, ...] | None = None) -> int:
    """Channels NCCL gives each peer on another server in a send/recv (its topology code,
    NCCL_NCHANNELS_PER_NET_PEER unset), on servers of one NIC per GPU. Its p2p channels are
    its collective channels, 2 per NIC on a rail-optimized server (a power of two).
    Before 2.29: 2, halved while 2 x ranks > 4 x p2p channels. Since: enough channels of
    14 GB/s to fill the NIC (400 Gbit/s: 4), a power of two, halved while channels x the
    batches of 8 peers the ranks make > p2p channels."""
    p2p_channels = 1 << max(0, math.ceil(math.log2(max(1, 2 * nics_per_server))))
    if version is not None and version < NCCL_P2P_RULE_BY_BANDWIDTH:
        channels = 2
        while channels * ranks > 4 * p2p_channels and channels > 1:
            channels //= 2
        return channels
    need = max(1, math.ceil(nic_gbs / NCCL_P2P_CHANNEL_NET_GBS))
    channels = 1 << math.ceil(math.log2(need))
    batches = -(-ranks // NCCL_P2P_PER_BATCH)
    while channels * batches > p2p_channels and channels > 1:
        channels //= 2
    return channels


def _plan_sendrecv(topo: Topology, op: Op, gpus) -> list[Phase]:
    """Rank i sends its whole buffer to rank i+1 (and receives from i-1), as sendrecv_perf;
    for a pipeline pair that is one send each way. Where the preset gives the pace of one
    p2p channel across servers (``nccl.p2p_net_channel_bandwidth``), a pair across servers
    runs at most its channels x that pace."""
    ph = Phase("p2p")
    n = len(gpus)
    crosses = False
    for i, src in enumerate(gpus):
        dst = gpus[(i + 1) % n]
        ph.add(topo.route(src, dst), 1.0)
        _p2p_latency(topo, ph, src, [dst], 1)
        crosses = crosses or topo.server_of(src) != topo.server_of(dst)
    per_channel = topo.spec.nccl.p2p_net_channel_bw
    nics = topo.spec.nics
    if crosses and per_channel is not None and nics is not None:
        ph.algbw_cap = per_channel * p2p_net_channels_per_peer(
            n, nics.per_server(topo.gpus_per_server), nics.bandwidth_gbps,
            topo.spec.nccl.version)
    return [ph]


def _plan_nvls(topo: Topology, op: Op, gpus) -> list[Phase] | None:
    """NVLS all-reduce inside one NVSwitch server (NVLink SHARP): every GPU pushes each
    shard it does not own into the switch, which reduces them, and pulls its own reduced
    shard; then it multicasts its shard through the switch to all. Per GPU and direction:
    (n-1)/n + 1/n = the whole buffer once. Needs the preset's nvls_efficiency."""
    su = topo.spec.scale_up
    if (su.type != "nvswitch" or su.nvls_efficiency is None
            or len({topo.server_of(g) for g in gpus}) != 1 or len(gpus) < 2):
        return None
    ph = Phase("tree", nvlink_efficiency=su.nvls_efficiency)
    switch = f"s{topo.server_of(gpus[0])}.nvsw"
    for g in gpus:
        ph.add(((gpu_node(g), switch), (switch, gpu_node(g))), 1.0)   # once up, once down
    ph.nvlink_hops = 2
    return [ph]


_PLANNERS: dict[Any, Any] = {
    **_MULTINODE_PLANNERS,
    "nvls": _plan_nvls,
    "pat": _plan_pat_by_symmetry,
    "ring": _plan_ring_by_symmetry,
    "tree": _plan_tree,
    (Op.ALLTOALL, "direct"): _plan_direct_a2a,
    (Op.ALLTOALL, "hierarchical"): _plan_hier_a2a,
    (Op.SENDRECV, "direct"): _plan_sendrecv,
}
#: the planners laid out transfer by transfer, for the ones with a symmetric shortcut
_PLAIN_PLANNERS: dict[Any, Any] = {"ring": _plan_ring, "pat": _plan_pat}
