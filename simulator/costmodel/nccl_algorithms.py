"""NCCL's multi-node algorithms beyond ring and tree, laid out as NCCL moves their data.

Each planner returns the phases (bytes per directed link per byte of buffer, latency) of one
algorithm on a group's GPUs, or None where NCCL would not run it on that group:

- **PAT** (all-gather, reduce-scatter; NCCL 2.23+): only with one GPU per server. A
  Bruck-style exchange: in the step of distance d (1, 2, 4, ...) every rank sends what it has
  gathered so far, min(d, n - d) blocks of S/n, to the rank d ahead (reduce-scatter: the
  mirror). Every rank still moves (n-1)/n S through its NIC, as the ring does, but in
  log2(n) network steps instead of n-1.
- **NVLS-tree** (all-reduce; NVSwitch multicast, 2+ servers with 2+ GPUs each): the switch
  reduces every GPU's buffer (each GPU's port carries S up and S down, at the preset's NVLS
  pace); the GPU of local index j owns 1/m of the buffer and joins a double binary tree over
  the servers with the j-th GPUs of the others, through its own NIC (rail-local). A tree
  edge carries S/(2m) each way per tree, so a server's NICs move S per direction in all
  with 2 servers and 2S with more (a node is inner in one tree: 2 children).
- **CollNet** (SHARP in-network reduction, where the fabric declares ``sharp: true``):
  all-reduce as CollNet-Direct (needs the NVSwitch): a reduce-scatter over NVLink inside
  each server, every GPU sends its reduced S/m through its own NIC to the switches, which
  reduce across servers and return S/m, then an all-gather over NVLink; on Hopper and later
  its kernels run at 0.85 of that pace (NCCL's tuner factor). All-gather and
  reduce-scatter need one NIC per GPU: the j-th GPUs' shards are multicast (reduced) by the
  rail-j switches (S/m per NIC down, S/n up) and spread (gathered) over NVLink.
- **CollNet-Chain** (all-reduce, ``sharp: true``): per channel a chain through the server's
  GPUs headed by the channel's GPU, whose NIC meets the switch; the same bytes per NVLink
  port (2(m-1)/m S) and per NIC (S/m each way) as CollNet-Direct, but the GPUs run a
  one-server tree's kernels: at most channels x NCCL's one-node tree ceiling per channel.
  NCCL's tuner has no 0.85 for it, so with CollNet enabled NCCL itself picks it over Direct
  at large sizes; the automatic choice ranks the two as NCCL's tuner does
  (``collnet_tuner_pick``), then the survivor competes with the others by its estimate.

Latencies are NCCL's own tuner formulas (Simple protocol, which these algorithms alone use)
plus the preset's kernel launch (its ring base latency less NCCL's). Sources: NCCL's
``src/graph/tuning.cc`` (constants of NCCL 2.23-2.27), read for semantics; nothing copied.
"""
from __future__ import annotations

import math

from ..topology import Topology, gpu_node
from ..workload import Op
from .nccl_phase import Phase

#: NCCL's ring base latency for Simple (us): a preset's own value less this is its launch
NCCL_RING_BASE_SIMPLE_US = 8.4
#: NCCL's tuner latencies (us, Simple protocol) of the algorithms the presets have no table for
PAT_BASE_US, PAT_NET_US, PAT_PER_RANK_US = 8.0, 14.0, 2.8
NVLS_TREE_NVLINK_US, NVLS_TREE_NET_US = 25.0, 20.9
COLLNET_NVLINK_US, COLLNET_ARITY_US, COLLNET_NET_US = 3.7, 0.4, 31.0
COLLNET_CHAIN_NVLINK_US, COLLNET_CHAIN_NET_US = 2.8, 30.0
#: PAT's kernels reach this share of the ring's bandwidth (NCCL's tuner factor)
PAT_KERNEL_SHARE = 0.75
#: CollNet-Direct all-reduce kernels on Hopper and later reach this share (NCCL's tuner)
COLLNET_ALLREDUCE_SHARE_HOPPER_ON = 0.85
#: NCCL's measured ceiling of one tree channel's bus bandwidth (GB/s) by GPU architecture,
#: for 1, 2 and more than 2 servers (perChMaxTreeBws in NCCL's tuner): its tree kernels,
#: not the links, limit a multi-server tree at large sizes
TREE_CHANNEL_MAX_GBPS = {
    "volta": (26.5, 18.5, 10.0),
    "ampere": (24.0, 23.6, 17.8),
    "hopper": (38.7, 41.4, 36.0),
    "blackwell": (70.0, 42.8, 24.0),
}
_ARCH_BY_GPU = (("GB3", "blackwell"), ("B3", "blackwell"), ("GB2", "blackwell"),
                ("B2", "blackwell"), ("B1", "blackwell"), ("GH2", "hopper"),
                ("H1", "hopper"), ("H2", "hopper"), ("H8", "hopper"), ("A1", "ampere"),
                ("A8", "ampere"), ("V1", "volta"))


def gpu_architecture(gpu_label: str) -> str | None:
    """The GPU architecture a preset's ``gpu`` label names (B200 -> blackwell), or None."""
    label = gpu_label.strip().upper()
    for prefix, arch in _ARCH_BY_GPU:
        if label.startswith(prefix):
            return arch
    return None


def by_server(topo: Topology, gpus) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for g in sorted(gpus):
        groups.setdefault(topo.server_of(g), []).append(g)
    return [groups[s] for s in sorted(groups)]


def _btree_parent(r: int, k: int) -> int:
    """Parent of node r > 0 in NCCL's binary tree over k nodes (root 0, then the highest
    power of two below k; a node's parent clears its lowest set bit and sets the next)."""
    low = r & -r
    up = (r ^ low) | (low << 1)
    return up if up < k else r ^ low


def binary_tree(k: int, flip: bool) -> list[tuple[int, int]]:
    """(parent, child) edges of one of NCCL's double binary trees over k nodes: the first
    has inner nodes at even positions and leaves at odd ones; the second is its mirror (k
    even) or its shift by one node (k odd), so a node inner in one tree is a leaf in the
    other."""
    edges = [(_btree_parent(r, k), r) for r in range(1, k)]
    if not flip:
        return edges
    if k % 2 == 0:
        return [(k - 1 - a, k - 1 - b) for a, b in edges]
    return [((a + 1) % k, (b + 1) % k) for a, b in edges]


def launch_ns(topo: Topology) -> float:
    """The preset's kernel launch on top of NCCL's latencies (its ring base less NCCL's)."""
    ring = topo.spec.nccl.base_latency_us.get("ring")
    return 1000.0 * max(0.0, ring[2] - NCCL_RING_BASE_SIMPLE_US) if ring else 0.0


def tree_channel_cap(topo: Topology, channels: int, servers: int) -> float | None:
    """The tree's algorithm-bandwidth ceiling in bytes/ns: channels x NCCL's per-channel
    bus-bandwidth ceiling / 2 (a tree's bus bandwidth counts the reduce and the broadcast).
    Only across servers (one server keeps the preset's NVLink efficiencies), and only where
    the preset's GPU is known."""
    arch = gpu_architecture(topo.spec.gpu)
    if servers < 2 or arch is None:
        return None
    per_channel = TREE_CHANNEL_MAX_GBPS[arch][1 if servers == 2 else 2]
    return channels * per_channel / 2


# -- PAT ---------------------------------------------------------------------------------
def plan_pat(topo: Topology, op: Op, gpus) -> list[Phase] | None:
    servers = by_server(topo, gpus)
    n = len(gpus)
    if n < 2 or len(servers) != n:
        return None                     # NCCL runs PAT only with one GPU per server
    order = list(gpus)
    ph = Phase("pat", kernel_share=PAT_KERNEL_SHARE)
    d, steps, wire = 1, 0, 0.0
    while d < n:
        blocks = min(d, n - d) / n
        step_wire = 0.0
        for i, src in enumerate(order):
            dst = order[(i + d) % n] if op is Op.ALLGATHER else order[(i - d) % n]
            path = topo.route(src, dst)
            ph.add(path, blocks)
            step_wire = max(step_wire, topo.path_latency_ns(path))
        wire += step_wire
        d *= 2
        steps += 1
    ph.wire_ns = wire
    ph.fixed_latency_ns = pat_latency_ns(topo, n)
    return [ph]


def pat_latency_ns(topo: Topology, n: int) -> float:
    """NCCL's PAT latency on n ranks: base + log2(nodes) x net latency / 3.5 + 2.8 us per
    rank (its linear part), with the preset's launch."""
    return launch_ns(topo) + 1000.0 * (
        PAT_BASE_US + math.floor(math.log2(n)) * PAT_NET_US / 3.5 + PAT_PER_RANK_US * n)


# -- NVLS-tree ---------------------------------------------------------------------------
def plan_nvls_tree(topo: Topology, op: Op, gpus) -> list[Phase] | None:
    su = topo.spec.scale_up
    servers = by_server(topo, gpus)
    k = len(servers)
    m = len(servers[0])
    if (su.type != "nvswitch" or su.nvls_efficiency is None or k < 2 or m < 2
            or any(len(s) != m for s in servers)):
        return None
    ph = Phase("nvls_tree", nvlink_efficiency=su.nvls_efficiency)
    for members in servers:
        switch = f"s{topo.server_of(members[0])}.nvsw"
        for g in members:
            ph.add(((gpu_node(g), switch), (switch, gpu_node(g))), 1.0)
    share = 1.0 / (2 * m)                      # one tree of the pair, one GPU's shard
    for j in range(m):
        for tree in (binary_tree(k, False), binary_tree(k, True)):
            for parent, child in tree:
                a, b = servers[parent][j], servers[child][j]
                ph.add(topo.route(a, b), share)
                ph.add(topo.route(b, a), share)
    depth = math.floor(math.log2(k))
    net = topo.path_latency_ns(topo.route(servers[0][0], servers[1][0]))
    ph.wire_ns = 2 * depth * net
    # NCCL: NVLS latency inside + 2 log2(nodes) network steps
    ph.fixed_latency_ns = launch_ns(topo) + 1000.0 * (
        NVLS_TREE_NVLINK_US + 2 * depth * NVLS_TREE_NET_US)
    return [ph]


# -- CollNet (SHARP) ---------------------------------------------------------------------
def _uplink(topo: Topology, g: int, peer: int):
    """The links from GPU ``g`` up to its rail's leaf switch (where SHARP reduces)."""
    path = topo.route(g, peer)
    cut = next(i for i, (u, v) in enumerate(path) if v.startswith("pod"))
    return path[:cut + 1]


def _spine_links(topo: Topology, a: int, b: int):
    return tuple(link for link in topo.route(a, b)
                 if link[0].startswith("spine") or link[1].startswith("spine"))


def _add_switch_loads(topo: Topology, ph: Phase, op: Op, servers, up: float, down: float,
                      servers_per_leaf: int) -> None:
    """The j-th GPU of every server sends ``up`` of the buffer through its NIC to its rail's
    switch and receives ``down``; between pods the reduction (multicast) tree crosses the
    spine once per pod and rail."""
    k, m = len(servers), len(servers[0])
    n = k * m
    for si, members in enumerate(servers):
        other = servers[(si + 1) % k]
        for j, g in enumerate(members):
            path = _uplink(topo, g, other[j])
            ph.add(path, up)
            ph.add(tuple((v, u) for u, v in reversed(path)), down)
    spl = servers_per_leaf
    pods: dict[int, list[int]] = {}
    for si, members in enumerate(servers):
        pods.setdefault(topo.server_of(members[0]) // spl, []).append(si)
    if len(pods) > 1:
        root = min(pods)
        for pod, idx in pods.items():
            if pod == root:
                continue
            # (to the root pod, back): a reduction sends the rail's whole S/m partial up and
            # gets its servers' results back; a multicast sends its own shards up and gets
            # the others'
            here = len(idx) / n
            to_root, back = {Op.ALLREDUCE: (1.0 / m, 1.0 / m),
                             Op.ALLGATHER: (here, 1.0 / m - here),
                             Op.REDUCESCATTER: (1.0 / m, here)}[op]
            for j in range(m):
                a, b = servers[pods[root][0]][j], servers[idx[0]][j]
                ph.add(_spine_links(topo, b, a), to_root)
                ph.add(_spine_links(topo, a, b), back)


def plan_collnet(topo: Topology, op: Op, gpus) -> list[Phase] | None:
    fab = topo.spec.fabric
    if fab is None or not fab.sharp:
        return None                     # no SHARP switches
    servers = by_server(topo, gpus)
    k, m, n = len(servers), len(servers[0]), len(gpus)
    if (k < 2 or any(len(s) != m for s in servers)
            or op not in (Op.ALLREDUCE, Op.ALLGATHER, Op.REDUCESCATTER)):
        return None
    if op is Op.ALLREDUCE and topo.spec.scale_up.type != "nvswitch":
        return None                     # CollNet-Direct needs the NVSwitch
    if op is not Op.ALLREDUCE:
        nics = topo.spec.nics
        if nics is None or nics.per_server(topo.gpus_per_server) < m or nics.attach != "gpu":
            return None                 # all-gather / reduce-scatter: one NIC per GPU
    arch = gpu_architecture(topo.spec.gpu)
    share = (COLLNET_ALLREDUCE_SHARE_HOPPER_ON
             if op is Op.ALLREDUCE and arch in ("hopper", "blackwell") else 1.0)
    ph = Phase("collnet", kernel_share=share)
    # inside each server: reduce-scatter and all-gather (all-reduce), or one of them
    local = 2.0 / m if op is Op.ALLREDUCE else 1.0 / m
    for members in servers:
        for g in members:
            for h in members:
                if h != g:
                    ph.add(topo.route(g, h), local)
    # to and from the switches: S/m per GPU for all-reduce; all-gather sends its S/n shard
    # and receives the rail's S/m (reduce-scatter the mirror)
    up, down = {Op.ALLREDUCE: (1.0 / m, 1.0 / m), Op.ALLGATHER: (1.0 / n, 1.0 / m),
                Op.REDUCESCATTER: (1.0 / m, 1.0 / n)}[op]
    _add_switch_loads(topo, ph, op, servers, up, down, fab.servers_per_leaf)
    ph.wire_ns = 2 * topo.path_latency_ns(_uplink(topo, servers[0][0], servers[1][0]))
    # NCCL (CollNet-Direct): 2 (NVLink step + 0.4 us per local peer) + the network's
    ph.fixed_latency_ns = launch_ns(topo) + 1000.0 * (
        2 * (min(1, m - 1) * COLLNET_NVLINK_US + (m - 1) * COLLNET_ARITY_US) + COLLNET_NET_US)
    return [ph]


def plan_collnet_chain(topo: Topology, op: Op, gpus) -> list[Phase] | None:
    """CollNet-Chain all-reduce: per channel (one per GPU of a server) a chain through the
    server's GPUs whose head, the channel's GPU, talks to its rail's SHARP switch; the
    reduction goes up the chain to the head, the switches reduce across servers, the result
    comes back down. Every chain edge carries the channel's S/m each way, every NIC S/m.
    The GPUs' kernels are a one-server tree's (the switches do the rest): at most channels x
    NCCL's one-node tree ceiling per channel / 2 where the GPU is known."""
    fab = topo.spec.fabric
    if fab is None or not fab.sharp or op is not Op.ALLREDUCE:
        return None
    servers = by_server(topo, gpus)
    k, m = len(servers), len(servers[0])
    if k < 2 or any(len(s) != m for s in servers):
        return None
    ph = Phase("collnet")
    for c in range(m):
        for members in servers:
            chain = members[c:] + members[:c]              # the head first
            for a, b in zip(chain, chain[1:]):
                ph.add(topo.route(a, b), 1.0 / m)
                ph.add(topo.route(b, a), 1.0 / m)
    _add_switch_loads(topo, ph, op, servers, 1.0 / m, 1.0 / m, fab.servers_per_leaf)
    ph.algbw_cap = chain_channel_cap(topo, m)
    chain = servers[0]
    nvlink = topo.path_latency_ns(topo.route(chain[0], chain[1])) if m > 1 else 0.0
    ph.wire_ns = 2 * (m - 1) * nvlink + 2 * topo.path_latency_ns(
        _uplink(topo, servers[0][0], servers[1][0]))
    # NCCL (CollNet-Chain): 2 (m-1) NVLink steps + the network's
    ph.fixed_latency_ns = launch_ns(topo) + 1000.0 * (
        2 * (m - 1) * COLLNET_CHAIN_NVLINK_US + COLLNET_CHAIN_NET_US)
    return [ph]


def chain_channel_cap(topo: Topology, channels: int) -> float | None:
    """CollNet-Chain's algorithm-bandwidth ceiling in bytes/ns: channels x NCCL's one-node
    tree ceiling per channel / 2 (the chain is a one-server tree's kernel; the reduce and
    the broadcast both count in its bus bandwidth), None for an unknown GPU."""
    arch = gpu_architecture(topo.spec.gpu)
    if arch is None:
        return None
    return channels * TREE_CHANNEL_MAX_GBPS[arch][0] / 2


def collnet_tuner_pick(direct, chain, size_bytes: int, gpus_per_server: int, heads: int,
                       arch: str | None) -> str:
    """Which CollNet all-reduce NCCL's tuner ranks first, ``"collnet"`` (Direct) or
    ``"collnet_chain"``, given the model's estimates of both on the group.

    NCCL's tuner (src/graph/tuning.cc) gives both the same graph bandwidth (its intra-node
    graph's, both converted to algorithm bandwidth by 0.5), divides Direct's by its GPU/NIC
    factor f = ppn / heads, less (f - 1) / 2, and by 0.85 more on Hopper and later; their
    latencies are its CollNet formulas (the estimates' own). The common bandwidth is taken as
    the chain's estimated one (size / its bandwidth time), so the sizes where the chain's
    slower start is paid back follow the model's view of the links. Ties go to Direct (first
    in NCCL's algorithm order)."""
    chain_bw = size_bytes / chain.bandwidth_ns if chain.bandwidth_ns > 0 else math.inf
    factor = gpus_per_server / max(1, min(heads, gpus_per_server))
    factor -= (factor - 1) / 2
    direct_bw = chain_bw / factor
    if arch in ("hopper", "blackwell"):
        direct_bw *= COLLNET_ALLREDUCE_SHARE_HOPPER_ON
    t_direct = direct.latency_ns + size_bytes / direct_bw
    t_chain = chain.latency_ns + size_bytes / chain_bw
    return "collnet_chain" if t_chain < t_direct else "collnet"


PLANNERS = {
    "pat": plan_pat,
    "nvls_tree": plan_nvls_tree,
    "collnet": plan_collnet,
    "collnet_chain": plan_collnet_chain,
}
