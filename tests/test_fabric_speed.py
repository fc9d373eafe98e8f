"""The fabric model's shortcuts against the plain ways they replace, which stay the reference:
a symmetric ring's per-link bytes made from its first two servers' route counts
(FabricFlows._ring_by_symmetry) against the full plan's bytes (NcclCostModel.group_loads, a
route per GPU and channel), on every preset with a fabric and fabric/NIC variants, groups
that span leaves and pods; non-ring algorithms, broadcast and asymmetric groups must decline.
"""
from dataclasses import replace

import numpy as np
import pytest

from simulator.costmodel.nccl import NcclCostModel
from simulator.network.fabric import FabricFlows
from simulator.topology import load_spec
from simulator.workload import Op

from fabric_helpers import fabric_variants


def _groups(servers: int, gps: int):
    picks = [range(servers), range(0, servers, 2), range(1, servers, 5), [0, servers - 1],
             [s for s in range(servers) if s % 7 != 3]]
    for pick in picks:
        for loc in [(0,), (0, 1), (1, 3, 6), tuple(range(gps)), (gps - 1,)]:
            loc = tuple(x for x in loc if x < gps)
            gpus = tuple(s * gps + x for s in pick for x in loc)
            if len({g // gps for g in gpus}) >= 2:
                yield gpus


def _full(fabric: FabricFlows, op: Op, gpus) -> dict:
    """The full plan's bytes per byte by link id (the reference)."""
    table = fabric.topology.link_index()[0]
    return {table[link]: b for link, b in fabric.model.group_loads(op, "ring", gpus).items()}


@pytest.mark.parametrize("label,spec", fabric_variants(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_symmetric_ring_loads_by_id_equal_the_full_plans(label, spec):
    checked = 0
    for servers in (2, 5, 13):
        model = NcclCostModel(replace(spec, servers=servers))
        fabric = FabricFlows(model)
        for gpus in _groups(servers, model.topology.gpus_per_server):
            for op in (Op.ALLREDUCE, Op.ALLGATHER, Op.REDUCESCATTER):
                got = fabric._ring_by_symmetry(op, "ring", gpus)
                assert got is not None, (label, servers, gpus, op)
                ids, vals = got
                assert len(set(ids.tolist())) == len(ids)          # each link once
                # exactly the full plan's floats, link for link
                assert dict(zip(ids.tolist(), vals.tolist())) == _full(fabric, op, gpus), (
                    label, servers, gpus, op)
                checked += 1
    assert checked > 50


def test_other_plans_decline_the_shortcut():
    model = NcclCostModel(replace(load_spec("dgx-h100"), servers=6))
    fabric = FabricFlows(model)
    gps = model.topology.gpus_per_server
    sym = tuple(s * gps + x for s in range(6) for x in (0, 1))
    assert fabric._ring_by_symmetry(Op.ALLREDUCE, "tree", sym) is None
    assert fabric._ring_by_symmetry(Op.BROADCAST, "ring", sym) is None
    # servers holding different positions: the full planner, and so no shortcut
    uneven = tuple(s * gps + (s % 2) for s in range(6))
    assert fabric._ring_by_symmetry(Op.ALLREDUCE, "ring", uneven) is None
    inside = tuple(range(gps))                                  # one server: no servers to move
    assert fabric._ring_by_symmetry(Op.ALLREDUCE, "ring", inside) is None


def test_a_big_ring_by_id_sums_what_each_server_carries():
    # 1,536 servers x 4 GPUs (the 147,456-GPU example's data-parallel group), one NIC per
    # GPU: channel c passes the buffer along the server's members rotated by c and its last
    # one sends to the next server, so each of GPUs 0, 2, 4, 6 leaves the server in exactly
    # one of the 4 channels: its NIC's uplink carries one channel's share, (n-1)/n / 4 for an
    # all-gather (n = 6144), and NIC 1 (no member) nothing; alike on every server
    model = NcclCostModel(replace(load_spec("dgx-h100"), servers=1536))
    fabric = FabricFlows(model)
    gpus = tuple(s * 8 + x for s in range(1536) for x in (0, 2, 4, 6))
    ids, vals = fabric._ring_by_symmetry(Op.ALLGATHER, "ring", gpus)
    n = len(gpus)
    table = fabric.topology.link_index()[0]
    by_id = dict(zip(ids.tolist(), vals.tolist()))
    for s in (0, 700, 1535):
        up = [by_id.get(table[(f"s{s}.nic{k}", f"pod{s // 32}.leaf{k}")], 0.0) for k in range(8)]
        assert up == [(n - 1) / n / 4, 0.0] * 4, s
    assert np.all(vals > 0)


W = "workloads/"
CASES = [
    # several rank classes on a shared fabric (a straggler), with its trace
    [W + "seed004_moe_tp8_ep4_pp4_128gpus.txt", "--topology", "dgx-h100",
     "--straggler", "rank=17,compute=1.3"],
    # a degraded NIC on a fat tree; a slower leaf's uplinks under small leaves
    [W + "mixtral8x7b_256gpu_tp4_pp4_ep8.txt", "--topology", "fat-tree-h100",
     "--degrade", "server=3,nic=0.5"],
    [W + "mixtral8x7b_256gpu_tp4_pp4_ep8.txt", "--topology", "dgx-h100",
     "--servers-per-leaf", "2", "--degrade", "leaf=0,uplink=0.5"],
    # two jobs sharing the fabric
    [W + "aicb_gpt_13B-world_size64-tp8-pp2-ep1-gbs128-mbs1-seq4096.txt", "--gpus", "128",
     "--topology", "dgx-h100", "--co-job",
     W + "aicb_Mixtral_8x7B-world_size32-tp4-pp1-ep4-gbs64-mbs1-seq4096.txt"],
    # per-class links without a topology, with jitter; hashed ECMP, interleaved, blocking sends
    [W + "seed004_moe_tp8_ep4_pp4_128gpus.txt", "--contention", "--jitter", "cv=0.05,seed=3"],
    [W + "mixtral8x7b_256gpu_tp4_pp4_ep8.txt", "--topology", "dgx-h100", "--pp-schedule",
     "interleaved", "--vpp", "2", "--blocking-sends", "on", "--ecmp", "hash"],
]


def _run(args, out, environment, monkeypatch) -> tuple[bytes, list]:
    import json

    from simulator.cli import main
    from simulator.engine.detailed import DetailedSim

    monkeypatch.setattr(DetailedSim, "environment", environment)
    traced = "--straggler" in args or "--co-job" in args     # two traces (the rest is slow)
    assert main(["simulate", *args, "--quiet", "--json", str(out / "r.json"),
                 *(["--trace", str(out / "t.json")] if traced else [])]) == 0
    if not traced:
        return (out / "r.json").read_bytes(), []
    trace = json.loads((out / "t.json").read_text())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    # counters of one time may come in another order (a set of links per step): as a multiset
    return (out / "r.json").read_bytes(), sorted(json.dumps(e, sort_keys=True) for e in events)


@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a[1:3]))
def test_the_detailed_engine_gives_simpys_results_on_its_own_loop(args, tmp_path,
                                                                  monkeypatch):
    from simulator._simpy import simpy
    from simulator.engine.loop import Environment

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mine = _run(args, tmp_path / "a", Environment, monkeypatch)
    theirs = _run(args, tmp_path / "b", simpy.Environment, monkeypatch)
    assert mine[0] == theirs[0]
    assert mine[1] == theirs[1]


@pytest.mark.parametrize("dims", [dict(tp=2, pp=12, ep=16), dict(tp=8, pp=4, ep=4),
                                  dict(tp=4, pp=1, ep=8), dict(tp=1, pp=3, ep=1),
                                  dict(tp=2, pp=2, ep=2)])
def test_alike_ranks_skip_the_refinement_and_get_the_stages(dims):
    # with no rank different, each stage is one class: what refining the stages gives
    from simulator.engine.classes import KINDS, _stable_partition, class_colours, group_ids
    from simulator.parallel import ParallelConfig

    par = ParallelConfig(world=dims["tp"] * dims["pp"] * 48, **dims)
    colour, firsts, stages, attrs, _ = class_colours(par, {})
    stage = np.arange(par.world) // par.stage_ranks
    assert colour.tolist() == stage.tolist()
    assert firsts.tolist() == [s * par.stage_ranks for s in range(par.pp)]
    assert stages.tolist() == list(range(par.pp)) and attrs == [()] * par.pp
    refined = _stable_partition(stage, {k: group_ids(par, k) for k in KINDS})
    # the same partition (refinement numbers classes arbitrarily)
    pairs = set(zip(refined.tolist(), stage.tolist()))
    assert len(pairs) == len(set(refined.tolist())) == par.pp


def test_distinct_hash_pairs_first_places_and_members():
    # by hand: the distinct h1 in order are 3, 5, 7; 3 first sits at 1, 5 at 0, 7 at 3
    from simulator.network.fabric import _unique_pairs

    h1 = np.array([5, 3, 5, 7, 3], dtype=np.uint64)
    first, member = _unique_pairs(h1, h1 * np.uint64(2))
    assert first.tolist() == [1, 0, 3] and member.tolist() == [1, 0, 1, 2, 0]
    # two pairs with one h1 but another h2: told apart by the pair, in (h1, h2) order
    first, member = _unique_pairs(h1, np.array([1, 4, 2, 0, 4], dtype=np.uint64))
    assert first.tolist() == [1, 0, 2, 3] and member.tolist() == [1, 0, 2, 3, 0]


def test_capacities_repeat_server_by_server_until_a_nic_is_degraded():
    model = NcclCostModel(replace(load_spec("dgx-h100"), servers=4))
    fabric = FabricFlows(model)
    assert fabric._tiled(fabric.caps)
    fabric.degrade_nic(9, 0.5)                  # server 1's NIC: its links differ
    assert not fabric._tiled(fabric.caps)


def _stages_fabric(monkeypatch, memo: bool):
    """The fabric of SimAI's example shrunk to 2 stages of 2 servers (groups moved stage to
    stage), its link classes found with or without the moved shapes' values reused."""
    from simulator.network import fabric as nf

    if not memo:
        monkeypatch.setattr(nf.FabricFlows, "_tiled", lambda self, caps: False)
    model = NcclCostModel(replace(load_spec("dgx-h100"), servers=4))
    fabric = FabricFlows(model)
    for stage in (0, 1):
        base = stage * 16
        key = (0, "DP", stage)
        fabric.add_groups(key, [[base + x, base + 8 + x] for x in range(8)])
        fabric.add_collective(key, Op.ALLREDUCE, 1 << 20, (base, base + 8))
        fabric.add_collective(key, Op.ALLGATHER, 1 << 22, (base, base + 8))
    fabric.add_send((0, "next", 0), [[x, 16 + x] for x in range(16)], 1 << 20, (0, 16))
    fabric.finish()
    return fabric


def test_moved_shapes_reuse_their_values_and_get_the_same_link_classes(monkeypatch):
    plain = _stages_fabric(monkeypatch, memo=False)
    monkeypatch.undo()
    fast = _stages_fabric(monkeypatch, memo=True)
    assert fast._moved_shapes                   # stage 1's shapes are stage 0's moved
    assert fast.link_classes == plain.link_classes and len(plain.link_classes) > 2
    assert fast._class_loads == plain._class_loads
    assert fast.physical_links == plain.physical_links
