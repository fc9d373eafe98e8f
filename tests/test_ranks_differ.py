"""Ranks that differ: rank classes, the row-level engine, and stragglers derived by hand.

Same cluster as test_engine: 1 byte/ns everywhere, no latency.
"""
import glob
import warnings

import pytest

from repo_paths import WORKLOADS
from simulator.cluster import Cluster
from simulator.engine import SimulationOptions, simulate
from simulator.engine.classes import rank_classes
from simulator.errors import InputError, SimulationWarning
from simulator.parallel import make_parallel
from simulator.readers.workload import read_workload, read_workload_text
from simulator.scenario import parse_straggler, resolve_all
from simulator.workload import Group

UNIT = Cluster(name="unit", gpus_per_server=8, nvlink_gbps=1.0, nic_gbps=1.0, nics_per_server=8,
               nvlink_efficiency=1.0, nic_efficiency=1.0, base_latency_ns=0, nvlink_hop_ns=0,
               nic_hop_ns=0)


def run(header: str, rows: list[str], **opts):
    wl = read_workload_text(header + "\n" + str(len(rows)) + "\n" + "\n".join(rows) + "\n", "t.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        return simulate(wl, UNIT, options=SimulationOptions(**opts))


def by_example_rank(result, rank):
    return next(s for s in result.stages if f"e.g. rank {rank}" in s.label)


@pytest.mark.parametrize("path", sorted(glob.glob(str(WORKLOADS / "*.txt"))))
@pytest.mark.parametrize("schedule", ["1f1b", "gpipe", "interleaved"])
def test_detailed_engine_equals_fast_engine(path, schedule):
    # the row-level rendezvous engine and the memoized pass engine are independent
    # implementations of the same semantics: identical numbers on symmetric clusters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        wl = read_workload(path)
        try:
            fast = simulate(wl, options=SimulationOptions(pp_schedule=schedule))
        except InputError:
            pytest.skip("schedule not applicable (ga not a multiple of PP)")
        slow = simulate(wl, options=SimulationOptions(pp_schedule=schedule, engine="detailed"))
    assert slow.iteration_ns == fast.iteration_ns
    for a, b in zip(fast.stages, slow.stages):
        assert (a.end_ns, a.compute_ns, a.bubble_ns, a.exposed_ns) == \
               (b.end_ns, b.compute_ns, b.bubble_ns, b.exposed_ns)


def test_classes_of_one_straggler_seed004_layout():
    # TP 8, EP 4 = DP 4, PP 4: a straggler at rank 17 (TP position 1 of DP replica 2) splits
    # stage 0 into itself, its 7 TP mates, its 3 EP/DP mates (same TP position, other
    # replicas) and the 21 others; each later stage splits the same way through its
    # pipeline column: 4 x 4 = 16 classes, and every rank is in exactly one.
    par = make_parallel(128, tp=8, pp=4, ep=4)
    classes, colour = rank_classes(par, {17: (("compute", 1.3),)})
    assert len(classes) == 16
    stage0 = sorted(c.ranks for c in classes if c.stage == 0)
    assert stage0 == [1, 3, 7, 21]
    assert sum(c.ranks for c in classes) == 128
    strag = next(c for c in classes if c.example_rank == 17)
    assert strag.ranks == 1 and len(strag.group_members[Group.TP]) == 2


def test_symmetric_ranks_are_one_class_per_stage_at_any_scale():
    par = make_parallel(131072, tp=8, pp=8, ep=8)
    classes, _ = rank_classes(par, {})
    assert [c.ranks for c in classes] == [16384] * 8


def test_straggler_in_a_tp_group():
    # TP 4, rank 2 computes twice as slowly. Forward: the others reach the all-reduce at 1000,
    # the straggler at 2000; it runs 2000-8100 (6000 + 100 update) for everyone. Backward:
    # the others compute 500 + 200 and end at 8800, the straggler 1000 + 400 and ends at 9500.
    r = run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 all_gpus: 4",
            ["l -1 1000 ALLREDUCE 4000 500 NONE 0 200 NONE 0 100"], stragglers=((2, 2.0),))
    assert r.iteration_ns == 9500
    others, slow = by_example_rank(r, 0), by_example_rank(r, 2)
    assert (others.ranks, slow.ranks) == (3, 1)
    assert others.end_ns == 8800 and others.exposed_ns["TP"] == 7100  # waits 1000 for rank 2
    assert slow.exposed_ns["TP"] == 6100


def test_straggler_in_a_dp_group():
    # DP 8, rank 3 twice as slow. Row b's weight-gradient all-reduce (14000 + 100) can start
    # only when rank 3 issues it, at 2*(1000+1000+1000+1000) = 8000, and ends at 22100.
    # The others finish computing at 14000 and wait for it (8100 exposed); rank 3 computes
    # a's backward until 8000 + 20000 = 28000, by which time the all-reduce is long done.
    rows = ["a -1 1000 NONE 0 5000 NONE 0 5000 NONE 0 100",
            "b -1 1000 NONE 0 1000 NONE 0 1000 ALLREDUCE 8000 100"]
    r = run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 all_gpus: 8", rows,
            stragglers=((3, 2.0),))
    assert r.iteration_ns == 28000
    others, slow = by_example_rank(r, 0), by_example_rank(r, 3)
    assert (others.end_ns, others.exposed_ns["DP"], others.idle_after_ns) == (22100, 8100, 5900)
    assert (slow.end_ns, slow.exposed_ns["DP"], slow.compute_ns) == (28000, 0, 28000)


@pytest.mark.parametrize("pp, ga", [(4, 8), (2, 4), (3, 5)])
def test_straggler_on_the_last_pipeline_stage(pp, ga):
    # tf = 1000, tb = 2000 per micro-batch; the last stage computes twice as slowly (6000 per
    # micro-batch). It is the bottleneck and, once the first activation has crossed the
    # (pp-1) earlier stages, never waits: (pp-1)*tf + ga*6000, then the last gradient
    # crosses back through (pp-1) backward passes.
    r = run(f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: {pp} ga: {ga} "
            f"all_gpus: {pp}", ["l -1 1000 NONE 0 1000 NONE 0 1000 NONE 0 0"] * ga,
            stragglers=((pp - 1, 2.0),))
    assert r.iteration_ns == (pp - 1) * 1000 + ga * 6000 + (pp - 1) * 2000


def test_straggler_on_the_first_pipeline_stage():
    # PP 2, GA 4, stage 0 twice as slow (F 2000, B 4000), stage 1 normal (F 1000, B 2000).
    # Stage 0 runs F0 [0,2000] F1 [2000,4000], waits for stage 1's B0 (F0 2000-3000, B0
    # 3000-5000), B0 [5000,9000] F2 [9000,11000] B1 [11000,15000] F3 [15000,17000]
    # B2 [17000,21000] B3 [21000,25000]: busy except 4000-5000.
    r = run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: 2 ga: 4 "
            "all_gpus: 2", ["l -1 1000 NONE 0 1000 NONE 0 1000 NONE 0 0"] * 4,
            stragglers=((0, 2.0),))
    assert r.iteration_ns == 25000
    stage0 = by_example_rank(r, 0)
    assert stage0.bubble_ns == 1000 and stage0.compute_ns == 24000


def test_straggler_specs():
    assert resolve_all([parse_straggler("rank=17,compute=1.3")], 128) == ((17, 1.3),)
    assert resolve_all([parse_straggler("ranks=0-2;9,compute=2")], 16) == \
        ((0, 2.0), (1, 2.0), (2, 2.0), (9, 2.0))
    a = resolve_all([parse_straggler("fraction=0.05,compute=1.2,seed=7")], 1000)
    b = resolve_all([parse_straggler("fraction=0.05,compute=1.2,seed=7")], 1000)
    c = resolve_all([parse_straggler("fraction=0.05,compute=1.2,seed=7")], 1000, draw=1)
    assert a == b and len(a) == 50 and a != c
    from simulator.scenario import parse_jitter
    assert parse_jitter("cv=0.05,seed=3") == ((("fwd", 0.05), ("ig", 0.05), ("wg", 0.05)), 3)
    assert parse_jitter("fwd=0.1")[0] == (("fwd", 0.1), ("ig", 0.0), ("wg", 0.0))
    for bad in ["cv=0", "cv=x", "noise=1", "cv=-1", "cv"]:
        with pytest.raises(InputError):
            parse_jitter(bad)
    # each bad spec fails for its own reason, named in the message
    for bad, why in [("rank=x,compute=2", "rank: expected a whole number, got 'x'"),
                     ("compute=2", "give either rank/ranks or fraction"),
                     ("rank=1,fraction=0.1,compute=2", "give either rank/ranks or fraction"),
                     ("rank=1,compute=-1", r"compute factor must be in \(0, 1000\], got -1"),
                     ("rank=1,speed=2", "unknown key.*'speed'")]:
        with pytest.raises(InputError, match=why):
            parse_straggler(bad)
    # without compute= the factor is 1: a warning that it changes nothing, and no straggler
    with pytest.warns(SimulationWarning, match="changes nothing"):
        idle = parse_straggler("rank=3")
    assert resolve_all([idle], 16) == ()
    # a rank past the job is caught when the job's size is known (16 ranks: 0-15)
    with pytest.warns(SimulationWarning, match="changes nothing"):
        far = parse_straggler("rank=17")
    with pytest.raises(InputError, match="rank 17 is outside the job's 16 ranks"):
        resolve_all([far], 16)
    with pytest.raises(InputError, match="outside the job's 16 ranks"):
        resolve_all([parse_straggler("rank=16,compute=2")], 16)


def test_random_stragglers_give_a_distribution():
    import json
    import subprocess
    import sys

    from repo_paths import ROOT
    p = subprocess.run([sys.executable, "-m", "simulator", "simulate",
                        str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt"), "--straggler",
                        "fraction=0.02,compute=1.2,seed=7", "--draws", "5", "--json", "-",
                        "--cost-model", "simai"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)["step_time_distribution_us"]
    assert d["draws"] == 5
    # 2-3 ranks 20% slower on a 40.98 ms-per-stage job: between +0 and +3 x 8.2 ms
    assert 209346 <= d["min"] <= d["p50"] <= d["max"] <= 209347 + 3 * 8196


def test_halved_nic_on_one_server():
    # TP 8 fills a server, DP 2 pairs rank r with r+8 on the next server. The weight-gradient
    # all-reduce of 4000 bytes on 2 ranks across servers moves 2*(1/2)*4000 = 4000 bytes
    # through each GPU's NIC share (8 NICs x 1 GB/s / 8 GPUs = 1 byte/ns): 4000 ns after
    # the 1000 ns forward. The TP all-reduce (2*7/8*800 = 1400 ns on NVLink) is unaffected.
    # Halving server 1's NICs halves the share of every DP pair (each has a rank there): 8000.
    rows = ["l -1 1000 ALLREDUCE 800 0 NONE 0 0 ALLREDUCE 4000 0"]
    hdr = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 all_gpus: 16"
    assert run(hdr, rows).iteration_ns == 1000 + 1400 + 4000
    r = run(hdr, rows, degraded=tuple((rank, 0.5, 0) for rank in range(8, 16)))
    assert r.iteration_ns == 1000 + 1400 + 8000
    # extra latency on one GPU's NIC: only its DP pair waits, but everyone waits for the
    # slowest pair at the end of the iteration; the analytical all-reduce crosses 2(n-1) = 2
    # network steps, so 3 us more per step adds 6000 ns
    r = run(hdr, rows, degraded=((9, 1.0, 3000),))
    assert r.iteration_ns == 1000 + 1400 + 4000 + 6000


def test_degrade_specs_and_failure_accounting():
    from simulator.scenario import (failure_report, parse_degrade, parse_failure,
                                    resolve_degrades)
    assert resolve_degrades([parse_degrade("server=1,nic=0.5")], 32, 8) == \
        tuple((r, 0.5, 0) for r in range(8, 16))
    assert resolve_degrades([parse_degrade("rank=3,nic=0.5,latency=2us"),
                             parse_degrade("rank=3,nic=0.5")], 32, 8) == ((3, 0.25, 2000),)
    for bad in ["server=1", "server=1,rank=2,nic=0.5", "server=1,nic=2", "nic=0.5",
                "server=1,nic=0.5,colour=red"]:
        with pytest.raises(InputError):
            parse_degrade(bad)
    with pytest.raises(InputError, match="outside the job's 4 servers"):
        resolve_degrades([parse_degrade("server=4,nic=0.5")], 32, 8)
    # a failure 120 ms into a 200 ms iteration, 2 iterations since the checkpoint, 300 s
    # restart: lost 120 ms + 2 x 200 ms + 300 s; the iteration completes 200 ms after that
    rep = failure_report(parse_failure("at=120ms,restart=300s,lost-iterations=2"), 200_000_000)
    assert rep["lost_us"] == 120_000 + 400_000 + 300_000_000
    assert rep["iteration_with_failure_us"] == rep["lost_us"] + 200_000
    assert failure_report(parse_failure("at=120ms"), 200_000_000)["stalls"] is True
    assert failure_report(parse_failure("at=250ms,restart=1s"), 200_000_000)["lost_us"] == 0


def test_sensitivity_of_each_group():
    # TP all-reduce 6000 ns blocking; 10% faster communication is 6000/1.1 = 5455 ns
    r = run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 all_gpus: 4",
            ["l -1 1000 ALLREDUCE 4000 500 NONE 0 200 NONE 0 100"],
            comm_scale=(("TP", 1 / 1.1),))
    assert r.iteration_ns == 1000 + round(6000 / 1.1) + 100 + 500 + 200


def test_overlapping_collectives_share_a_link():
    # DP 8 = EP 8 inside one server: both groups use the ranks' NVLink. Row b's weight-gradient
    # all-reduce (14000 ns alone, 2*7/8*8000) is issued at 4000; row a's input-gradient
    # all-to-all (7000 ns alone, 7/8*8000) at 5000. Without contention: the all-to-all ends at
    # 12000 (+100), the all-reduce at 18000 (+100); the iteration ends at 18100.
    # With contention both run at half rate from 5000: the all-to-all needs 14000 ns and ends
    # at 19000 (the all-reduce has 13000 - 7000 = 6000 left), the all-reduce then runs alone
    # and ends at 25000. Each takes longer than alone and together they never exceed the link.
    rows = ["a -1 1000 NONE 0 1000 ALLTOALL_EP 8000 1000 NONE 0 100",
            "b -1 1000 NONE 0 1000 NONE 0 1000 ALLREDUCE 8000 100"]
    hdr = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 ep: 8 all_gpus: 8"
    alone = run(hdr, rows)
    assert alone.iteration_ns == 18100
    shared = run(hdr, rows, contention=True, trace=True)
    assert shared.iteration_ns == 25100
    slices = {(s.lane, s.name): (s.start_ns, s.dur_ns) for s in shared.trace if s.lane != "compute"}
    assert slices[("EP", "a ig")] == (5000, 14000 + 100)
    assert slices[("DP", "b wg")] == (4000, 21000 + 100)
    # the link's utilisation over time (the timeline's counters): full from 4000 (the
    # all-reduce alone, then both at half rate each) until 25000, never above its rate
    samples = [(t, v) for name, t, v in shared.link_samples if name.startswith("NVLink")]
    assert samples == [(4000, 1.0), (25000, 0.0)]
    assert all(v <= 1.0 for _, _, v in shared.link_samples)


def test_contention_changes_nothing_when_nothing_overlaps():
    rows = ["l -1 1000 ALLREDUCE 4000 500 NONE 0 200 NONE 0 100"]
    hdr = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 all_gpus: 4"
    assert run(hdr, rows, contention=True).iteration_ns == run(hdr, rows).iteration_ns == 7800


def test_two_jobs_sharing_one_nic():
    # Servers of 2 GPUs with ONE NIC of 1 byte/ns: each GPU's share is 0.5 byte/ns, so an
    # all-reduce of 1000 bytes on 2 ranks in different servers is priced 2*(1/2)*1000/0.5 =
    # 2000 ns for a fully loaded server.
    from simulator.costmodel.analytical import AnalyticalCostModel
    from simulator.engine.simulate import simulate_jobs
    cluster = Cluster(name="one-nic", gpus_per_server=2, nvlink_gbps=1.0, nic_gbps=1.0,
                      nics_per_server=1, nvlink_efficiency=1.0, nic_efficiency=1.0,
                      base_latency_ns=0, nvlink_hop_ns=0, nic_hop_ns=0)
    model = AnalyticalCostModel(cluster)
    wl = read_workload_text("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 "
                            "all_gpus: 2\n1\nl -1 1000 NONE 0 0 NONE 0 0 ALLREDUCE 1000 0\n", "j.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        # packed: a job's 2 ranks share one server and its NVLink (1000 ns): 2000 each
        assert [r.iteration_ns for r in simulate_jobs([wl, wl], cluster, model, placement="packed")] \
            == [2000, 2000]
        # spread alone: ranks on GPU 0 of two servers; the other GPU is idle, so the job has
        # the whole NIC and its all-reduce takes 1000 ns: 2000
        assert simulate_jobs([wl], cluster, model, placement="spread")[0].iteration_ns == 2000
        # spread, two jobs: both all-reduces start at 1000 on the same NICs and share them:
        # each gets half a NIC and takes 2000 ns, so each job takes 3000 (longer than alone,
        # and together they move 2 x 1000 link-ns of work in 2000 ns: never above the rate)
        both = simulate_jobs([wl, wl], cluster, model, placement="spread")
        assert [r.iteration_ns for r in both] == [3000, 3000]
        # rail: job 1 on GPU 0 of each server, job 2 on GPU 1: the same NICs again
        assert [r.iteration_ns for r in simulate_jobs([wl, wl], cluster, model,
                                                      placement="rail")] == [3000, 3000]
    with pytest.raises(InputError, match="equal size"):
        big = read_workload_text(wl and "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 "
                                 "all_gpus: 4\n1\nl -1 1000 NONE 0 0 NONE 0 0 ALLREDUCE 1000 0\n", "b.txt")
        simulate_jobs([wl, big], cluster, model, placement="spread")


def test_per_row_detail_is_the_same_in_both_engines():
    from simulator.report.csv_report import render_csv
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        wl = read_workload(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")
        fast = simulate(wl)
        slow = simulate(wl, options=SimulationOptions(engine="detailed"))
    assert sum(r.exposed_ns for r in fast.rows) > 0
    assert render_csv(fast) == render_csv(slow)


def test_jitter():
    import math
    rows = ["l -1 1000 NONE 0 0 NONE 0 0 NONE 0 0"] * 400
    one = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 all_gpus: 1"
    eight = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 all_gpus: 8"
    jit = (("fwd", 0.1), ("ig", 0.1), ("wg", 0.1))
    a = run(one, rows, jitter=jit, jitter_seed=3)
    assert a.iteration_ns == run(one, rows, jitter=jit, jitter_seed=3).iteration_ns  # seeded
    assert a.iteration_ns != run(one, rows, jitter=jit, jitter_seed=4).iteration_ns
    # one rank: mean-1 factors, so 400 phases of 1000 ns sum to 400,000 within a few standard
    # deviations (0.1 * 1000 * sqrt(400) = 2000 ns)
    assert abs(a.iteration_ns - 400_000) < 4 * 2000
    # a class of 8 ranks waits for the slowest of 8 draws at every phase: E[max of 8 standard
    # normals] = 1.4236, so the mean factor is about exp(0.0998 * 1.4236 - 0.0998**2 / 2) =
    # 1.147 (sigma = sqrt(ln(1 + 0.1^2)) = 0.0998)
    b = run(eight, rows, jitter=jit, jitter_seed=3)
    sigma = math.sqrt(math.log(1.01))
    expected = 400_000 * math.exp(sigma * 1.4236 - sigma ** 2 / 2)
    assert abs(b.iteration_ns - expected) < 0.02 * expected
