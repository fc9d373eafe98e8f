"""The shared fabric: collectives and sends as flows over every link of the topology graph.

Topologies here have no latencies and no per-call floor, so a collective costs exactly its
bytes on its busiest link over that link's bandwidth, and every expected time below is
derived by hand from the layout of NCCL's algorithm (stated in each test).
"""
from __future__ import annotations

import pytest

from simulator.costmodel.nccl import NcclCostModel
from simulator.engine import SimulationOptions, simulate
from simulator.engine.simulate import simulate_jobs
from simulator.readers.workload import read_workload
from simulator.topology import read_spec
from simulator.topology.overrides import cluster_for
from fabric_helpers import ZERO_NCCL

S = 100_000_000   # bytes per collective: 1e8 B at 10 GB/s (10 B/ns) is 1e7 ns



def topo_file(tmp_path, gps=2, nics="per: gpu, count: 1", fabric="rail-optimized",
              per_leaf=2, oversub=1, extra="", name="t"):
    text = f"""name: {name}
gpus_per_server: {gps}
servers: auto
scale_up: {{type: nvswitch, bandwidth: 100GB/s, latency: 0us, efficiency: 1.0}}
nics: {{{nics}, bandwidth: 10GB/s, latency: 0us, efficiency: 1.0, pcie_bandwidth: 100GB/s}}
fabric: {{type: {fabric}, servers_per_leaf: {per_leaf}, oversubscription: {oversub},
          leaf_latency: 0us, spine_latency: 0us{extra}}}
""" + ZERO_NCCL
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return read_spec(path)


def workload(tmp_path, tp, world, wg="ALLREDUCE", fwd="NONE", fwd_bytes=0, name="w"):
    path = tmp_path / f"{name}.txt"
    path.write_text(
        f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: {tp} ep: 1 pp: 1 vpp: 1 "
        f"ga: 1 all_gpus: {world} checkpoints: 0 checkpoint_initiates: 0\n1\n"
        f"layer -1 1 {fwd} {fwd_bytes} 1 NONE 0 1 {wg} {S if wg != 'NONE' else 0} 1\n")
    return read_workload(str(path))


def run(spec, wl, contention=None, gpus=None):
    return simulate(wl, cluster_for(spec), NcclCostModel(spec),
                    SimulationOptions(gpus=gpus, contention=contention))


def comm_ns(result):
    """Iteration time less the 3 ns of compute of the one row."""
    return result.iteration_ns - 3


def test_two_groups_on_one_nic_take_twice_as_long_as_one(tmp_path):
    # 2 servers x 2 GPUs, TP 2: the DP groups {0, 2} and {1, 3} each run a 2-rank ring
    # all-reduce across the servers: 2(n-1)/n = 1 byte per byte of buffer each way, S/10 ns
    # on a 10 GB/s NIC. With a NIC per GPU each group has its own; with one NIC per server
    # both groups cross it: 2S on 10 GB/s = 2e7 ns.
    wl = workload(tmp_path, tp=2, world=4)
    own = run(topo_file(tmp_path, nics="per: gpu, count: 1", name="own"), wl)
    shared = run(topo_file(tmp_path, nics="per: server, count: 1", name="shared"), wl)
    assert comm_ns(own) == pytest.approx(S / 10, rel=1e-6)
    assert comm_ns(shared) == pytest.approx(2 * S / 10, rel=1e-6)
    # priced alone (the old view) sharing the NIC is invisible
    alone = run(topo_file(tmp_path, nics="per: server, count: 1", name="alone"), wl,
                contention=False)
    assert comm_ns(alone) == pytest.approx(S / 10, rel=1e-6)


def test_eight_dp_groups_on_one_nic_of_dgx_h100_take_about_8x():
    from simulator.topology import load_spec
    from simulator.topology.overrides import apply_overrides
    import pathlib
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = pathlib.Path(d)
        wl = workload(p, tp=8, world=16)
        eight = run(load_spec("dgx-h100"), wl)
        one = run(apply_overrides(load_spec("dgx-h100"), nics_per_server=1), wl)
    # 8 groups on one NIC: the bandwidth part 8x, the NCCL latencies and floor once
    assert 7.5 < one.iteration_ns / eight.iteration_ns < 8.0


def test_oversubscribed_leaf_halves_cross_pod_all_to_all_not_rail_local_ring(tmp_path):
    # 4 servers x 1 GPU, 2 servers per leaf: servers 0, 1 under leaf 0 and 2, 3 under leaf
    # 1. TP 2 groups {0, 1} and {2, 3} stay under their leaf; DP groups {0, 2} and {1, 3}
    # cross the spine.
    # DP all-to-all of S: each rank sends S/2 to its peer in the other pod. Leaf 0's uplink
    # carries S/2 from GPU 0 and S/2 from GPU 1: 1:1 it is 2 NICs = 20 GB/s -> S/20 (as the
    # NIC, S/2 on 10); 2:1 it is 10 GB/s -> S/10, twice as long.
    a2a = workload(tmp_path, tp=2, world=4, wg="ALLTOALL", name="a2a")
    t1 = comm_ns(run(topo_file(tmp_path, gps=1, oversub=1, name="o1"), a2a))
    t2 = comm_ns(run(topo_file(tmp_path, gps=1, oversub=2, name="o2"), a2a))
    assert t1 == pytest.approx(S / 20, rel=1e-6)
    assert t2 == pytest.approx(S / 10, rel=1e-6)
    # TP ring all-reduce of S on {0, 1} under one leaf: 1 byte per byte each way on the NIC,
    # S/10 whatever the uplinks
    ring = workload(tmp_path, tp=2, world=4, wg="NONE", fwd="ALLREDUCE", fwd_bytes=S,
                    name="ring")
    r1 = comm_ns(run(topo_file(tmp_path, gps=1, oversub=1, name="r1"), ring))
    r2 = comm_ns(run(topo_file(tmp_path, gps=1, oversub=2, name="r2"), ring))
    assert r1 == pytest.approx(S / 10, rel=1e-6) and r2 == pytest.approx(S / 10, rel=1e-6)


def test_jobs_packed_on_separate_leaves_do_not_interfere_and_spread_ones_do(tmp_path):
    # 4 servers x 2 GPUs, fat tree, 2 servers per leaf, 4:1: a leaf's uplink is 4 NICs x 10
    # / 4 = 10 GB/s. Two jobs of 4 ranks (TP 1: one DP ring all-reduce of S each).
    spec = topo_file(tmp_path, gps=2, fabric="fat-tree", oversub=4, name="ft")
    a, b = (workload(tmp_path, tp=1, world=4, name=n) for n in ("a", "b"))
    model = NcclCostModel(spec)
    cluster = cluster_for(spec)
    # packed: job 1 on servers 0-1 (leaf 0), job 2 on servers 2-3 (leaf 1): no shared link,
    # each takes what it takes alone
    alone = run(spec, a)
    packed = simulate_jobs([a, b], cluster, model, SimulationOptions(), placement="packed")
    assert [r.iteration_ns for r in packed] == [alone.iteration_ns] * 2
    # spread: job 1 on GPUs 0, 2, 4, 6 (local GPU 0 of every server), job 2 on 1, 3, 5, 7.
    # One GPU per server: one ring 0 -> 2 -> 4 -> 6 -> 0, 2(n-1)/n = 1.5 bytes per byte on
    # every edge. 2 -> 4 leaves leaf 0 and 6 -> 0 leaves leaf 1: each uplink carries 1.5 S of
    # each job = 3 S at 10 GB/s = 0.3 S ns (alone a job would need 1.5 S on 10 = 0.15 S).
    spread = simulate_jobs([a, b], cluster, NcclCostModel(spec), SimulationOptions(),
                           placement="spread")
    for r in spread:
        assert comm_ns(r) == pytest.approx(0.3 * S, rel=1e-6)
    # the same placement with a non-blocking fabric: 1.5 S on a NIC, 3 S on 40 GB/s uplinks
    wide = topo_file(tmp_path, gps=2, fabric="fat-tree", oversub=1, name="ft1")
    spread1 = simulate_jobs([a, b], cluster_for(wide), NcclCostModel(wide),
                            SimulationOptions(), placement="spread")
    for r in spread1:
        assert comm_ns(r) == pytest.approx(0.15 * S, rel=1e-6)


def test_ecmp_collisions_slow_the_hashed_case_not_the_ideal_one(tmp_path):
    # 4 servers x 1 GPU, 2 per leaf, non-blocking: 2 uplinks of 10 GB/s per leaf (hashed) or
    # one spread of 20 GB/s (ideal). DP groups {0, 2} and {1, 3}: 2-rank ring all-reduces, S
    # each way per group. Ideal: 2 S over 20 GB/s = S/10 (as the NIC). Hashed onto the same
    # uplink, 0 -> 2 and 1 -> 3 share 10 GB/s: 2 S / 10; onto different ones: S/10.
    wl = workload(tmp_path, tp=2, world=4)
    ideal = comm_ns(run(topo_file(tmp_path, gps=1, name="ideal"), wl))
    assert ideal == pytest.approx(S / 10, rel=1e-6)
    from simulator.topology import Topology
    outcomes = {}
    for seed in range(16):
        spec = topo_file(tmp_path, gps=1, extra=f", ecmp: hash, ecmp_seed: {seed}",
                         name=f"h{seed}")
        topo = Topology(spec, 4)
        up = {topo.ecmp_uplink(s, d, 0) for s, d in ((0, 2), (1, 3))}
        down = {topo.ecmp_uplink(s, d, 0) for s, d in ((2, 0), (3, 1))}
        collide = len(up) == 1 or len(down) == 1
        outcomes.setdefault(collide, comm_ns(run(spec, wl)))
    assert set(outcomes) == {True, False}         # 16 seeds give both cases
    assert outcomes[False] == pytest.approx(S / 10, rel=1e-6)
    assert outcomes[True] == pytest.approx(2 * S / 10, rel=1e-6)


# -- the answer follows the fabric ---------------------------------------------------------
def _cli_iteration_ms(args) -> float:
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "simulator", "simulate", *args, "--json", "-"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["iteration_time_us"] / 1000


def test_simulate_topology_follows_nics_oversubscription_fabric_and_placement(tmp_path):
    # 64 GPUs, TP 8: 8 DP groups of 8 ranks crossing 8 servers (2 per leaf), one all-reduce
    # and one all-to-all on them
    path = tmp_path / "dp.txt"
    path.write_text(
        "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 ep: 1 pp: 1 vpp: 1 ga: 1 "
        "all_gpus: 64 checkpoints: 0 checkpoint_initiates: 0\n2\n"
        "a -1 1000 NONE 0 1 NONE 0 1 ALLREDUCE 268435456 1\n"
        "b -1 1000 NONE 0 1 NONE 0 1 ALLTOALL 268435456 1\n")
    base = [str(path), "--topology", "dgx-h100", "--servers-per-leaf", "2"]
    t = _cli_iteration_ms(base)
    # one NIC per server instead of eight: the 8 groups share it (several times slower)
    assert _cli_iteration_ms(base + ["--nics-per-server", "1"]) > 4 * t
    # 4:1 leaves: the cross-leaf part of the rings and the all-to-all slows down
    assert _cli_iteration_ms(base + ["--oversubscription", "4"]) > 1.3 * t
    # a fat tree of one leaf per 2 servers at 4:1 against the rail-optimized 4:1
    rail4 = _cli_iteration_ms(base + ["--oversubscription", "4"])
    fat4 = _cli_iteration_ms(base + ["--oversubscription", "4", "--fabric", "fat-tree"])
    assert fat4 != rail4
    # placement: ranks permuted so each DP group sits inside one server (TP across servers)
    perm = [(r % 8) * 8 + r // 8 for r in range(64)]
    spec = Path(__file__).resolve().parent.parent / "topologies" / "dgx-h100.yaml"
    text = spec.read_text().replace("servers: auto", "servers: 8")
    text += f"placement: {{ranks: {perm}}}\n"
    placed = tmp_path / "placed.yaml"
    placed.write_text(text)
    moved = _cli_iteration_ms([str(path), "--topology", str(placed), "--servers-per-leaf", "2"])
    assert moved < t / 2      # the DP traffic now stays on NVLink
    # and pricing every collective alone hides the shared NIC
    one_alone = _cli_iteration_ms(base + ["--nics-per-server", "1", "--no-contention"])
    assert one_alone < 2 * t


from pathlib import Path  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.mark.filterwarnings("ignore::simulator.errors.SimulationWarning")
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(gps=st.sampled_from([1, 2, 4]), servers_per_leaf=st.sampled_from([1, 2]),
       fabric=st.sampled_from(["rail-optimized", "fat-tree"]),
       nic_attach=st.sampled_from(["gpu", "server"]),
       oversub=st.sampled_from([1, 2, 3]), tp=st.sampled_from([1, 2]),
       ops=st.lists(st.sampled_from(["ALLREDUCE", "ALLGATHER", "REDUCESCATTER", "ALLTOALL"]),
                    min_size=1, max_size=3),
       link=st.sampled_from(["nvlink", "nic", "pcie", "uplink"]),
       factor=st.sampled_from([1.5, 2.0, 4.0]))
def test_more_bandwidth_on_any_link_never_slows_the_iteration(tmp_path_factory, gps,
                                                               servers_per_leaf, fabric,
                                                               nic_attach, oversub, tp, ops,
                                                               link, factor):
    # an iteration is a max-plus expression of flow completions; raising one link class's
    # capacity leaves every max-min rate of these synchronous collectives the same or higher
    tmp = tmp_path_factory.mktemp("mono")
    world = 8 if gps < 4 else 16
    if tp > gps:
        tp = 1
    rows = "".join(f"r{i} -1 100 {op} 4000000 1 NONE 0 1 {ops[-1 - i]} 8000000 1\n"
                   for i, op in enumerate(ops))
    path = tmp / "w.txt"
    path.write_text(
        f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: {tp} ep: 1 pp: 1 vpp: 1 "
        f"ga: 1 all_gpus: {world} checkpoints: 0 checkpoint_initiates: 0\n{len(ops)}\n{rows}")
    wl = read_workload(str(path))

    def spec(scale_link):
        nvl, nic, pcie, up = 100, 10, 30, oversub
        if scale_link == "nvlink":
            nvl *= factor
        elif scale_link == "nic":
            nic *= factor
        elif scale_link == "pcie":
            pcie *= factor
        elif scale_link == "uplink":
            up /= factor
        up = max(up, 1)
        text = f"""name: m
gpus_per_server: {gps}
servers: auto
scale_up: {{type: nvswitch, bandwidth: {nvl}GB/s, latency: 0us, efficiency: 1.0}}
nics: {{per: {nic_attach}, count: 1, bandwidth: {nic}GB/s, latency: 1us, efficiency: 1.0,
        pcie_bandwidth: {pcie}GB/s}}
fabric: {{type: {fabric}, servers_per_leaf: {servers_per_leaf}, oversubscription: {up}}}
"""
        p = tmp / f"{scale_link}.yaml"
        p.write_text(text)
        return read_spec(p)

    before = run(spec(None), wl).iteration_ns
    after = run(spec(link), wl).iteration_ns
    assert after <= before + 2          # whole-ns rounding of flow completions


def test_groups_moved_by_symmetry_load_the_links_they_would_alone(tmp_path):
    # groups laid out once per pattern and moved must load exactly the links each group
    # loads when laid out by itself: 6 servers x 2 GPUs, 4 servers per leaf (a pod boundary
    # inside the run), groups of 4 GPUs over 2 servers at every offset
    import numpy as np
    from simulator.network.fabric import FabricFlows
    from simulator.workload import Op

    spec = topo_file(tmp_path, gps=2, per_leaf=4, name="sym")
    model = NcclCostModel(spec)
    model.topology_for(16)
    groups = [tuple(range(2 * s, 2 * s + 4)) for s in range(7)]
    fabric = FabricFlows(model)
    fabric.add_groups("k", groups)
    fabric.add_collective("k", Op.ALLTOALL, 1 << 20, groups[0])
    shape = next(iter(fabric.shapes.values()))
    table, *_ = model.topology.link_index()
    expected = {}
    for g in groups:
        for link, b in model.group_loads(Op.ALLTOALL, "direct", g).items():
            expected[table[link]] = expected.get(table[link], 0.0) + b
    got = dict(zip(shape.ids.tolist(), shape.loads.tolist()))
    assert got.keys() == expected.keys()
    assert np.allclose([got[k] for k in expected], list(expected.values()))


def test_nvls_all_reduce_inside_an_nvswitch_server_only():
    from simulator.topology import load_spec
    from simulator.workload import Op

    model = NcclCostModel(load_spec("dgx-h100:16"))
    one = model.estimate(Op.ALLREDUCE, 1 << 30, tuple(range(8)))
    # NVLS: each GPU's 1 GiB goes up the switch once and comes down once, at 0.61 of 450
    # GB/s: 2^30 / 274.5 B/ns = 3.91 ms plus tens of us of latency; busbw = 2(n-1)/n algbw
    assert one.algorithm == "nvls"
    assert (1 << 30) / one.gpu_ns * 2 * 7 / 8 == pytest.approx(2 * 7 / 8 * 450 * 0.61, rel=0.02)
    # across two servers plain NVLS does not run (NCCL needs CollNet for that); NVLS-tree
    # does: the switch part as above (3.91 ms) against the NICs' S/8 each way per NIC with
    # two servers (2^30 / 8 / 48.5 B/ns = 2.77 ms): NVLink-bound, 3.91 ms + latency, which
    # beats the ring: 2(n-1)/n S = 1.875 S over every GPU's NVLink port at 0.82 of 450 GB/s
    # = 5.46 ms (its NICs would need 1.875 x 2.77 = 5.19 ms); NCCL picks NVLS-tree there too
    two = model.estimate(Op.ALLREDUCE, 1 << 30, tuple(range(16)))
    assert two.algorithm == "nvls_tree"
    assert two.bandwidth_ns == pytest.approx((1 << 30) / (450 * 0.61), rel=1e-6)
    assert model.estimate(Op.ALLREDUCE, 1 << 30, tuple(range(16)), "ring").bandwidth_ns == (
        pytest.approx(1.875 * (1 << 30) / (450 * 0.82), rel=1e-6))
    # a preset without nvls_efficiency never picks it
    plain = NcclCostModel(load_spec("hgx-h200:8")).estimate(Op.ALLREDUCE, 1 << 30,
                                                            tuple(range(8)))
    assert plain.algorithm != "nvls"


def test_sorted_inverse_ranks_values_and_falls_back_when_low_bits_collide():
    import numpy as np

    from simulator.network.fabric import _sorted_inverse

    # the sorted distinct values and each value's place in them, by hand; in the second
    # case 7 and 7 + 2**20 share their low 16 bits, so the table cannot tell them apart
    # and the sorting way answers
    for values, distinct, inverse in (
            ([7, 3, 7, 5], [3, 5, 7], [2, 0, 2, 1]),
            ([7, 3, 7 + 2**20, 7], [3, 7, 7 + 2**20], [1, 0, 2, 1])):
        got, where = _sorted_inverse(np.array(values, dtype=np.uint64))
        assert got.tolist() == distinct
        assert where.tolist() == inverse
