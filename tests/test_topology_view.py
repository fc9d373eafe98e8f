"""TopologyView (links made on first lookup, what the nccl model prices on) against the full
Topology: the same links, routes, link index and prices on every bundled preset.

The full Topology is the reference (its links and prices are derived by hand in
tests/test_topology.py and tests/test_nccl_costmodel.py); the view must agree with it
exactly, float for float, for every operation, algorithm, protocol and several group shapes.
"""
from dataclasses import replace

import pytest

from simulator.costmodel.nccl import ALGORITHMS, NcclCostModel, _plan_ring
from simulator.parallel import GroupPlacement
from simulator.topology import Topology, load_spec, presets
from simulator.topology.overrides import apply_fabric_overrides, apply_overrides
from simulator.topology.view import TopologyView
from simulator.workload import Op


def _variants():
    """Every preset, and on dgx-h100 the fabric and NIC layouts the options can make."""
    for name in presets():
        yield name, load_spec(name)
    h100 = load_spec("dgx-h100")
    yield "fat-tree", apply_fabric_overrides(h100, fabric_type="fat-tree")
    yield "hash", apply_fabric_overrides(h100, ecmp="hash:7", oversubscription=2)
    yield "4 nics", apply_overrides(h100, nics_per_server=4)
    yield "16 nics", apply_overrides(h100, nics_per_server=16)
    yield "small leaves", apply_fabric_overrides(h100, servers_per_leaf=2)
    # NVLink with a wire latency, GPUs sharing NICs (routes hop over NVLink to the NIC's GPU)
    slow = replace(h100, scale_up=replace(h100.scale_up, latency_ns=70))
    yield "nvlink latency", apply_fabric_overrides(apply_overrides(slow, nics_per_server=2),
                                                   servers_per_leaf=2)


VARIANTS = list(_variants())


def _servers(spec) -> list[int]:
    if spec.fabric is None:
        return [1]
    if spec.servers is not None:
        return [min(spec.servers, 40)]
    return [1, 2, 5, 40]     # 40 servers: two pods of 32 (or 20 of 2) under the spine


def _groups(topo: Topology) -> list[tuple[int, ...]]:
    """Group shapes a job makes: TP inside a server, pairs, strided, DP across servers,
    a few GPUs per server, across pods, the whole world."""
    n, gps = topo.num_gpus, topo.gpus_per_server
    shapes = [tuple(range(min(gps, n))), (0, 1), tuple(range(0, gps, 2)),
              tuple(range(0, n, gps)), tuple(g for g in range(n) if g % gps < 2),
              (gps - 1, n - 1), tuple(range(n - 1, -1, -gps))]
    shapes.append(tuple(range(n)) if n <= 64 else tuple(range(3, n, 64)))
    return sorted({s for s in shapes if len(s) >= 2})


@pytest.mark.parametrize("label,spec", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_view_has_the_full_topologys_links_and_routes(label, spec):
    for servers in _servers(spec):
        full, view = Topology(spec, servers), TopologyView(spec, servers)
        n = full.num_gpus
        # routes first: the view records their links as it routes
        for a in range(0, n, max(1, n // 16)):
            for b in (0, 1, n - 1, (a + 9) % n):
                assert view.route(a, b) == full.route(a, b)
                for hop in view.route(a, b):
                    assert dict.get(view.links, hop, full.links[hop]) == full.links[hop], hop
        for lid, link in full.links.items():
            assert view.links[lid] == link, (servers, lid)
        for bogus in [("gpu0", "gpu0"), ("gpu0", f"s{servers}.nvsw"), ("spine", "gpu1"),
                      (f"s{servers}.nic0", "pod0.leaf0"), ("s0.nic0", "pod9.leaf0"),
                      ("pod0.leaf0", "spine99"), ("gpu0", "s0.nic9")]:
            assert (bogus in view.links) == (bogus in full.links), bogus
        n = full.num_gpus
        for a in range(0, n, max(1, n // 16)):
            for b in (0, 1, n - 1, (a + 9) % n):
                assert view.route(a, b) == full.route(a, b)
                assert view.route_latency_ns(a, b) == full.route_latency_ns(a, b)
        assert [view.gpu_of_rank(r) for r in range(n)] == full.rank_gpu == view.rank_gpu
        assert view.describe() == full.describe()
        # what needs every link builds the full table, in the full topology's order
        assert list(view.links) == list(full.links)
        assert view.capacities() == full.capacities()


def test_view_link_index_matches_the_full_topologys():
    spec = apply_fabric_overrides(load_spec("dgx-h100"), servers_per_leaf=2)
    full, view = Topology(spec, 5), TopologyView(spec, 5)
    view.links[("s4.nic3", "pod2.leaf3")]            # a lazy link first: order must not move
    a, b = full.link_index(), view.link_index()
    assert a[0] == b[0] and a[2:6] == b[2:6]
    assert a[1].tolist() == b[1].tolist() and a[6].tolist() == b[6].tolist()


def test_view_links_from_the_preset_by_hand():
    # dgx-h100.yaml: NVLink 450 GB/s x 0.82, latency 0; NIC 400 Gbit/s = 50 GB/s x 0.97,
    # cable 0.05 us; leaf and spine 0.3 us; PCIe 64 GB/s; 32 servers a leaf, uplinks 32 x 50
    view = TopologyView(load_spec("dgx-h100"), 40)
    nvl = view.links[("gpu17", "s2.nvsw")]
    assert (nvl.bandwidth, nvl.efficiency, nvl.latency_ns, nvl.kind) == (450, 0.82, 0, "nvlink")
    up = view.links[("s33.nic5", "pod1.leaf5")]
    assert (up.bandwidth, up.latency_ns, up.kind) == (50, 350, "nic")
    assert view.links[("pod1.leaf5", "s33.nic5")].latency_ns == 50
    assert view.links[("gpu5", "s0.nic5")].bandwidth == 64
    spine = view.links[("pod0.leaf2", "spine")]
    assert (spine.bandwidth, spine.latency_ns) == (1600, 300)


def _estimates(model, op, size, gpus):
    return [model.candidates(op, size, gpus, algo) for algo in ALGORITHMS[op]
            if model._plan(op, algo, gpus) is not None]


@pytest.mark.parametrize("label,spec", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_view_prices_equal_the_full_topologys(label, spec):
    for servers in _servers(spec):
        full_topo = Topology(spec, servers)
        full = NcclCostModel(full_topo)
        view = NcclCostModel(replace(spec, servers=servers))
        assert isinstance(view.topology, TopologyView)
        assert type(full.topology) is Topology
        for gpus in _groups(full_topo):
            for op in ALGORITHMS:
                for size in (4096, 1 << 20, 256 << 20):
                    assert _estimates(view, op, size, gpus) == _estimates(full, op, size, gpus)
            a = view.group_loads(Op.ALLREDUCE, "ring", gpus)
            b = full.group_loads(Op.ALLREDUCE, "ring", gpus)
            assert list(a.items()) == list(b.items())


def test_auto_servers_grow_the_view_like_the_full_topology():
    spec = load_spec("dgx-h100")
    model = NcclCostModel(spec)                       # servers: auto
    ranks = tuple(range(0, 9216, 8))
    est = model.estimate(Op.ALLREDUCE, 1 << 28, ranks)
    assert isinstance(model.topology, TopologyView) and model.topology.num_gpus >= 9216
    full = NcclCostModel(Topology(spec, model.topology.servers))
    assert est == full.estimate(Op.ALLREDUCE, 1 << 28, ranks)


def test_view_follows_a_placement_permutation():
    # placement.ranks: rank i runs on GPU ranks[i]; the rest of the GPUs follow in order
    spec = replace(load_spec("dgx-h100"), servers=3, ranks=(8, 0, 9, 1, 17))
    full, view = Topology(spec), TopologyView(spec)
    assert view.rank_gpu == full.rank_gpu
    assert [view.gpu_of_rank(r) for r in range(5)] == [8, 0, 9, 1, 17]
    assert view.gpu_of_rank(5) == 2                  # the first GPU not placed
    a, b = NcclCostModel(full), NcclCostModel(spec)
    for op in (Op.ALLREDUCE, Op.ALLTOALL):
        for gpus in ((8, 0, 9, 1), (0, 8, 16, 17)):
            assert a.candidates(op, 1 << 20, gpus) == b.candidates(op, 1 << 20, gpus)
    # through the engine's entry point: ranks 0-3 are GPUs 8, 0, 9, 1 (two servers)
    place = GroupPlacement(4, 2, 2, False, (0, 1, 2, 3))
    assert b.group_gpus(place) == (8, 0, 9, 1) == a.group_gpus(place)
    assert b.collective_ns(Op.ALLREDUCE, 1 << 20, place) == a.collective_ns(
        Op.ALLREDUCE, 1 << 20, place)


def test_all_gather_and_reduce_scatter_share_one_ring_plan_in_either_order():
    # the model plans a ring all-gather and reduce-scatter once (the same transfers); a
    # model asked for reduce-scatter alone must price it as one that planned all-gather first
    spec = replace(load_spec("dgx-h100"), servers=6)
    gpus = tuple(g for g in range(48) if g % 8 < 3)
    for size in (4096, 1 << 24):
        alone, shared = NcclCostModel(spec), NcclCostModel(spec)
        shared.candidates(Op.ALLGATHER, size, gpus, "ring")
        assert (alone.candidates(Op.REDUCESCATTER, size, gpus, "ring")
                == shared.candidates(Op.REDUCESCATTER, size, gpus, "ring"))
    # and the ring planner itself lays out the same phases for both
    topo = Topology(spec)
    (ag,), (rs,) = (_plan_ring(topo, op, gpus) for op in (Op.ALLGATHER, Op.REDUCESCATTER))
    assert list(ag.loads.items()) == list(rs.loads.items())
    assert vars(ag) == vars(rs)
