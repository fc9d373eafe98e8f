"""The ring and PAT planners' symmetric shortcuts (costmodel/nccl_symmetric.py) against the full
planner, which lays out every transfer: the same prices float for float, the same busiest
link (the full plan's first laid-out one of equal load), the same latency terms and, when
asked for, the same per-link bytes, on many group shapes, placements and presets; groups that
are not symmetric (servers holding different positions or counts) and topologies without
laid-out routes must fall back to the full planner.

The reference is the full planner (its prices are derived by hand in
tests/test_nccl_costmodel.py and checked against the full Topology in
tests/test_topology_view.py); the shortcut must agree with it exactly.
"""
from dataclasses import replace

import pytest

from simulator.costmodel.nccl import (NcclCostModel, _plan_pat_by_symmetry, _plan_ring,
                                      _plan_ring_by_symmetry)
from simulator.costmodel.nccl_algorithms import plan_pat
from simulator.costmodel.nccl_symmetric import SymmetricPhase
from simulator.topology import Topology, load_spec
from simulator.topology.overrides import apply_fabric_overrides, apply_overrides
from simulator.topology.spec import PROTOCOLS
from simulator.workload import Op

from fabric_helpers import fabric_variants

OPS = (Op.ALLREDUCE, Op.ALLGATHER, Op.REDUCESCATTER)
SIZES = (4096, 1 << 20, 1 << 28)


def _variants():
    yield from fabric_variants()
    h100 = load_spec("dgx-h100")
    yield "16 nics", apply_overrides(h100, nics_per_server=16)
    slow = replace(h100, scale_up=replace(h100.scale_up, latency_ns=70))
    yield "nvlink latency, 2 nics", apply_fabric_overrides(
        apply_overrides(slow, nics_per_server=2), servers_per_leaf=2)


VARIANTS = list(_variants())


def _symmetric_groups(servers: int, gps: int):
    """Servers (all, strided, with gaps, across leaves) x local positions (one GPU, a
    pair, scattered, a whole server, the last GPU)."""
    picks = [range(servers), range(0, servers, 2), range(1, servers, 5),
             [s for s in range(servers) if s % 7 != 3], [0, servers - 1]]
    locals_ = [(0,), (0, 1), (1, 3, 6), tuple(range(gps)), (gps - 1,), (2, 0)]
    for pick in picks:
        for loc in locals_:
            loc = tuple(x for x in loc if x < gps)
            gpus = tuple(s * gps + x for s in pick for x in loc)
            if len({g // gps for g in gpus}) >= 2:
                yield gpus


def _asymmetric_groups(servers: int, gps: int):
    yield tuple(range(gps + 1))                                  # a full server and one GPU
    yield tuple(s * gps + (s % 2) for s in range(servers))       # alternating positions
    yield (0, 1, gps, 2 * gps + 1)                               # two, one, one (other spot)
    yield tuple(s * gps + x for s in range(servers) for x in range(1 + s % 2))
    yield tuple(s * gps for s in range(servers) for _ in range(2))         # a GPU twice


def _same(model, op, fast, full, ranks, algo="ring"):
    for size in SIZES:
        for proto in (PROTOCOLS if algo == "ring" else ("Simple",)):
            assert (model._time(op, size, algo, proto, fast, ranks)
                    == model._time(op, size, algo, proto, full, ranks)), (op, size, proto)
    a, b = fast[0], full[0]
    assert (a.nvlink_hops, a.net_hops, a.wire_ns, a.family, a.algbw_cap, a.kernel_share,
            a.fixed_latency_ns) == (b.nvlink_hops, b.net_hops, b.wire_ns, b.family,
                                    b.algbw_cap, b.kernel_share, b.fixed_latency_ns)


@pytest.mark.parametrize("label,spec", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_symmetric_ring_prices_equal_the_full_planners(label, spec):
    for servers in (2, 3, 40, 70):
        model = NcclCostModel(replace(spec, servers=servers))
        topo, gps = model.topology, spec.gpus_per_server
        for gpus in _symmetric_groups(servers, gps):
            for op in OPS:
                fast = _plan_ring_by_symmetry(topo, op, gpus)
                assert isinstance(fast[0], SymmetricPhase), (label, gpus)
                full = _plan_ring(topo, op, gpus)
                _same(model, op, fast, full, len(gpus))
        for gpus in _asymmetric_groups(servers, gps):
            for op in OPS:
                fast = _plan_ring_by_symmetry(topo, op, gpus)
                assert not isinstance(fast[0], SymmetricPhase), (label, gpus)


def test_symmetric_ring_bytes_per_link_are_the_full_plans():
    # the flow model and the fabric ask for every link's bytes: the full plan's, in its order
    spec = apply_fabric_overrides(load_spec("dgx-h100"), servers_per_leaf=2)
    model = NcclCostModel(replace(spec, servers=9))
    gpus = tuple(s * 8 + x for s in range(0, 9, 2) for x in (1, 4, 5))
    fast = _plan_ring_by_symmetry(model.topology, Op.ALLREDUCE, gpus)[0]
    assert isinstance(fast, SymmetricPhase)
    model._busiest(Op.ALLREDUCE, fast, len(gpus))
    full = _plan_ring(model.topology, Op.ALLREDUCE, gpus)[0]
    assert list(fast.loads.items()) == list(full.loads.items())
    # through the model: the loads the fabric reads, and a flow alone takes the estimate
    assert list(model.group_loads(Op.ALLREDUCE, "ring", gpus).items()) == list(
        full.loads.items())


def test_full_topology_and_broadcast_keep_the_full_planner():
    # no laid-out routes on a full Topology; broadcast's chain starts at its root
    spec = load_spec("dgx-h100")
    topo = Topology(spec, 4)
    gpus = tuple(range(0, 32, 8))
    assert not isinstance(_plan_ring_by_symmetry(topo, Op.ALLREDUCE, gpus)[0],
                          SymmetricPhase)
    view = NcclCostModel(replace(spec, servers=4)).topology
    assert not isinstance(_plan_ring_by_symmetry(view, Op.BROADCAST, gpus)[0],
                          SymmetricPhase)


def test_big_symmetric_groups_price_as_on_the_full_topology():
    # the data-parallel group of SimAI's example at 147,456 GPUs: 6,144 GPUs, four on each
    # of 1,536 servers (48 leaves); the shortcut on the view, the full planner on the full
    # topology of the same size must give the same estimates
    spec = load_spec("dgx-h100")
    gpus = tuple(g for g in range(1536 * 8) if g % 2 == 0)
    view = NcclCostModel(replace(spec, servers=1536))
    full = NcclCostModel(Topology(spec, 1536))
    for op in OPS:
        for size in SIZES:
            assert (view.candidates(op, size, gpus, "ring")
                    == full.candidates(op, size, gpus, "ring")), (op, size)
    # and its 384 servers of one GPU each (every fourth server: PAT)
    one = tuple(range(0, 1536 * 8, 32))
    for op in (Op.ALLGATHER, Op.REDUCESCATTER):
        for size in SIZES:
            assert view.candidates(op, size, one) == full.candidates(op, size, one), (op, size)


@pytest.mark.parametrize("label,spec", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_symmetric_pat_prices_equal_the_full_planners(label, spec):
    gps = spec.gpus_per_server
    for servers in (2, 3, 5, 40, 70):
        model = NcclCostModel(replace(spec, servers=servers))
        topo = model.topology
        # in order, strided, reversed (PAT follows the group's order), with gaps
        picks = [list(range(servers)), list(range(0, servers, 3)), list(range(servers))[::-1],
                 [s for s in range(servers) if s % 7 != 3][::2], [servers - 1, 0]]
        for pick in picks:
            for x in (0, 3, gps - 1):
                gpus = tuple(s * gps + x for s in pick)
                if len(gpus) < 2:
                    continue
                for op in (Op.ALLGATHER, Op.REDUCESCATTER):
                    fast = _plan_pat_by_symmetry(topo, op, gpus)
                    assert isinstance(fast[0], SymmetricPhase) == (
                        spec.fabric.ecmp == "ideal"), (label, gpus)
                    _same(model, op, fast, plan_pat(topo, op, gpus), len(gpus), "pat")
        # not one GPU per server at one position: the full planner (or no PAT at all)
        mixed = tuple(s * gps + s % 2 for s in range(servers))
        fast = _plan_pat_by_symmetry(topo, Op.ALLGATHER, mixed)
        assert not isinstance(fast[0], SymmetricPhase)
        _same(model, Op.ALLGATHER, fast, plan_pat(topo, Op.ALLGATHER, mixed), servers, "pat")
        assert _plan_pat_by_symmetry(topo, Op.ALLGATHER, (0, 1, gps)) is None


def test_symmetric_pat_bytes_per_link_are_the_full_plans():
    spec = apply_fabric_overrides(load_spec("dgx-h100"), servers_per_leaf=2)
    model = NcclCostModel(replace(spec, servers=9))
    gpus = tuple(s * 8 + 5 for s in (8, 0, 3, 4, 7, 1))
    fast = _plan_pat_by_symmetry(model.topology, Op.REDUCESCATTER, gpus)[0]
    assert isinstance(fast, SymmetricPhase)
    model._busiest(Op.REDUCESCATTER, fast, len(gpus))
    full = plan_pat(model.topology, Op.REDUCESCATTER, gpus)[0]
    assert list(fast.loads.items()) == list(full.loads.items())
