"""Groups laid out once and moved (the fabric's symmetry) against each group laid out by
itself, bit for bit, under ECMP hashing as under an ideal spread; and what hashing does to
pipeline sends that cross the spine, derived by hand."""
from __future__ import annotations

import numpy as np
import pytest

from simulator.costmodel.nccl import NcclCostModel
from simulator.engine import SimulationOptions, simulate
from simulator.network.fabric import FabricFlows, ecmp_uplinks
from simulator.readers.workload import read_workload
from simulator.topology import Topology, read_spec
from simulator.topology.overrides import cluster_for
from simulator.workload import Op
from fabric_helpers import ZERO_NCCL

S = 100_000_000   # bytes: 1e8 B at 10 GB/s (10 B/ns) is 1e7 ns



def topo(tmp_path, name, gps=2, fabric="rail-optimized", per_leaf=2, extra="",
         nics="per: gpu, count: 1"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""name: {name}
gpus_per_server: {gps}
servers: auto
scale_up: {{type: nvswitch, bandwidth: 100GB/s, latency: 0us, efficiency: 1.0}}
nics: {{{nics}, bandwidth: 10GB/s, latency: 0us, efficiency: 1.0, pcie_bandwidth: 100GB/s}}
fabric: {{type: {fabric}, servers_per_leaf: {per_leaf}, oversubscription: 1,
          leaf_latency: 0us, spine_latency: 0us{extra}}}
""" + ZERO_NCCL)
    return read_spec(path)


class OneByOne(FabricFlows):
    """The fabric without its symmetry: every group laid out by itself (the old path)."""

    def _patterns(self, groups, hashed_moves=False):
        none = np.zeros(1, dtype=np.int64)
        return [(tuple(int(g) for g in row), none, none, None, np.array([i]))
                for i, row in enumerate(groups)]

    def _respine(self, pairs, ids, spread):
        return spread


SPECS = [
    ("hash-rail", dict(extra=", ecmp: hash, ecmp_seed: 3")),
    ("hash-fat", dict(fabric="fat-tree", per_leaf=3, extra=", ecmp: hash, ecmp_seed: 1")),
    ("hash-wide", dict(gps=4, per_leaf=2, extra=", ecmp: hash, ecmp_seed: 7",
                       nics="per: server, count: 2")),
    ("ideal", dict(per_leaf=3)),
]


def _register(fabric, gpus):
    # groups of 4 GPUs at every offset of a server (some inside one pod, some across a pod
    # boundary), all-to-all and ring all-reduce on them; sends of every GPU to the GPU 5
    # servers on (across pods) and to its server neighbour (inside a pod mostly)
    gps = fabric.topology.gpus_per_server
    groups = [tuple(range(gps * s, gps * s + 4)) for s in range(gpus // gps - 2)]
    fabric.add_groups("g", groups)
    fabric.add_collective("g", Op.ALLTOALL, 1 << 20, groups[0])
    fabric.add_collective("g", Op.ALLREDUCE, 1 << 26, groups[0])
    far = [(g, (g + 5 * gps) % gpus) for g in range(gpus)]
    near = [(g, (g + gps) % gpus) for g in range(gpus)]
    fabric.add_send("far", far, 1 << 24, far[0])
    fabric.add_send("near", near, 1 << 24, near[0])
    fabric.finish()


@pytest.mark.parametrize("name,kw", SPECS)
def test_moved_groups_and_sends_load_exactly_what_each_does_laid_out_alone(tmp_path, name,
                                                                         kw):
    spec = topo(tmp_path, name, **kw)
    gpus = 12 * spec.gpus_per_server
    got, ref = [], []
    for cls, out in ((FabricFlows, got), (OneByOne, ref)):
        model = NcclCostModel(spec)
        model.topology_for(gpus)
        fabric = cls(model)
        _register(fabric, gpus)
        out.append(fabric)
    fast, slow = got[0], ref[0]
    assert fast.shapes.keys() == slow.shapes.keys()
    for key, shape in fast.shapes.items():
        other = slow.shapes[key]
        assert np.array_equal(shape.ids, other.ids), key
        assert np.array_equal(shape.loads, other.loads), key       # bit for bit
        assert shape.solo_ns_per_byte == other.solo_ns_per_byte
    assert fast.link_classes == slow.link_classes
    assert fast._class_loads == slow._class_loads
    # the symmetry laid out fewer groups (that is the point)
    assert fast.layouts < slow.layouts


@pytest.mark.parametrize("name,kw", SPECS)
def test_groups_moved_by_a_pod_get_the_patterns_worked_out_afresh(tmp_path, name, kw):
    # the patterns of groups that are an earlier call's moved by whole pods are taken from
    # that call (FabricFlows._patterns): they must be what a fabric that never saw the
    # earlier groups works out for them, field for field (GPUs, shifts, key, rows)
    spec = topo(tmp_path, name, **kw)
    gps, per_leaf = spec.gpus_per_server, spec.fabric.servers_per_leaf
    gpus = 12 * gps
    pod = gps * per_leaf
    # 4-GPU groups at every server offset of the first two pods (some across the boundary)
    first = np.array([range(gps * s, gps * s + 4) for s in range(2 * per_leaf - 1)])
    for hashed in (False, True):
        model = NcclCostModel(spec)
        model.topology_for(gpus)
        seen = FabricFlows(model)
        seen._patterns(first, hashed_moves=hashed)
        moved = seen._patterns(first + pod, hashed_moves=hashed)
        assert seen._pattern_memo[(first.shape, hashed)][0][0] is first   # from the memo
        fresh = FabricFlows(model)._patterns(first + pod, hashed_moves=hashed)
        assert len(moved) == len(fresh)
        for a, b in zip(moved, fresh):
            assert a[0] == b[0] and a[3] == b[3]
            for x, y in ((a[1], b[1]), (a[2], b[2]), (a[4], b[4])):
                assert (x is None and y is None) or np.array_equal(x, y)
        # moved by one server (not a whole pod): worked out, not taken
        assert len(seen._patterns(first + gps, hashed_moves=hashed)) > 0
        assert len(seen._pattern_memo[(first.shape, hashed)]) == 2


def _pp_workload(tmp_path, world, tp):
    path = tmp_path / "pp.txt"
    path.write_text(
        f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: {tp} ep: 1 pp: 4 vpp: 1 "
        f"ga: 1 all_gpus: {world} checkpoints: 0 checkpoint_initiates: 0 pp_comm 4000000\n"
        "2\n"
        "attention -1 1000 ALLREDUCE 2000000 1000 ALLREDUCE 2000000 1000 ALLREDUCE 8000000 1\n"
        "mlp -1 1000 ALLGATHER 2000000 1000 REDUCESCATTER 2000000 1000 ALLREDUCE 8000000 1\n")
    return read_workload(str(path))


@pytest.mark.parametrize("name,kw", SPECS[:3])
def test_whole_runs_under_hashing_match_the_one_by_one_layout(tmp_path, monkeypatch, name, kw):
    spec = topo(tmp_path, name, **kw)
    world = 16 * spec.gpus_per_server
    wl = _pp_workload(tmp_path, world, tp=2)

    def once():
        r = simulate(wl, cluster_for(spec), NcclCostModel(spec), SimulationOptions())
        return r.iteration_ns, [(s.end_ns, s.bubble_ns, dict(s.exposed_ns)) for s in r.stages]
    fast = once()
    monkeypatch.setattr(FabricFlows, "_patterns", OneByOne._patterns)
    monkeypatch.setattr(FabricFlows, "_respine", OneByOne._respine)
    import simulator.engine.fabric as engine_fabric
    canonical = engine_fabric._canonical

    def old_canonical(topo, gpus):
        # the old path: under hashing every representative priced where it sits
        return gpus if not topo.link_index()[5] else canonical(topo, gpus)
    monkeypatch.setattr(engine_fabric, "_canonical", old_canonical)
    assert once() == fast


def test_ecmp_uplinks_of_many_connections_are_the_topologys_one_by_one(tmp_path):
    spec = topo(tmp_path, "h", per_leaf=2, extra=", ecmp: hash, ecmp_seed: 11")
    t = Topology(spec, 8)
    rng = np.random.default_rng(5)
    src = rng.integers(0, 1 << 40, size=500)
    dst = rng.integers(0, 1 << 40, size=500)
    for nic in (0, 1, 7):
        want = [t.ecmp_uplink(int(s), int(d), nic) for s, d in zip(src, dst)]
        assert ecmp_uplinks(src, dst, nic, 11, t.uplinks).tolist() == want


def test_two_sends_hashed_onto_one_uplink_share_it(tmp_path):
    # 4 servers x 1 GPU, 2 per leaf, non-blocking: each leaf has 2 uplinks of 10 GB/s (hashed;
    # 2 x 10 = the 2 NICs below it). Two pipeline sends leave leaf 0 at once, 0 -> 2 and
    # 1 -> 3, S bytes each: on different uplinks each moves at the NIC's 10 GB/s, S/10 ns;
    # hashed onto one uplink they split its 10 GB/s, 2 S / 10 ns for both. The fabric's flow
    # shape of the two sends (both copies of one pattern, moved) must load the uplinks the
    # hash picks for each: one uplink twice, or two once.
    for seed in range(8):
        spec = topo(tmp_path, f"s{seed}", gps=1, extra=f", ecmp: hash, ecmp_seed: {seed}")
        model = NcclCostModel(spec)
        model.topology_for(4)
        fabric = FabricFlows(model)
        fabric.add_send("k", [(0, 2), (1, 3)], S, (0, 2))
        fabric.finish()
        shape = next(iter(fabric.shapes.values()))
        t = model.topology
        table = t.link_index()[0]
        planes = {t.ecmp_uplink(0, 2, 0), t.ecmp_uplink(1, 3, 0)}
        uplinks = {table[("pod0.leaf0", f"spine{j}")]: j for j in range(t.uplinks)}
        loads = dict(zip(shape.ids.tolist(), shape.loads.tolist()))
        on_uplinks = sorted(loads[i] for i in uplinks if i in loads)
        # one byte per byte sent on each uplink a send takes (Simple protocol: share 1)
        assert on_uplinks == ([2.0] if len(planes) == 1 else [1.0, 1.0])
        # a flow of both: the busiest link carries 2 S (shared uplink) or S (apart), at 10 B/ns
        assert shape.solo_ns_per_byte == pytest.approx(1 / 10)
        demand, _ = fabric.send("k", S, round(S / 10))
        assert max(demand.loads.values()) == pytest.approx(
            (2 if len(planes) == 1 else 1) * S / 10, rel=1e-9)
