"""Hand-derived timings of the replay engine.

The cluster below makes arithmetic easy: 1 byte/ns on NVLink and per GPU on the NICs, no
latency at all. Ring all-reduce on n ranks then takes 2(n-1)/n * S ns, all-gather and
reduce-scatter (n-1)/n * S, broadcast S, all-to-all inside a server (n-1)/n * S.
"""
import warnings

import pytest

from simulator.engine import simulate
from simulator.errors import InputError, SimulationWarning
from simulator.readers.workload import read_workload_text

from engine_helpers import UNIT, run


def tp4(rows, **opts):
    return run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 all_gpus: 4", rows, **opts)


@pytest.mark.parametrize("op, comm_ns", [
    ("ALLREDUCE", 6000),          # 2*3/4*4000
    ("ALLGATHER", 3000),          # 3/4*4000
    ("REDUCESCATTER", 3000),
    ("ALLTOALL", 3000),           # 3 of 4 shares leave the GPU over NVLink
    ("BROADCAST", 4000),          # pipelined: the whole buffer once
    ("ALLREDUCEALLTOALL", 9000),  # 6000 + 3000
])
def test_one_row_per_collective_kind(op, comm_ns):
    # forward 1000, blocking TP collective + update 100, backward 500 + 200
    r = tp4([f"l -1 1000 {op} 4000 500 NONE 0 200 NONE 0 100"])
    assert r.iteration_ns == 1000 + comm_ns + 100 + 500 + 200
    assert r.critical.exposed_ns["TP"] == comm_ns + 100
    assert r.compute_ns == 1700
    assert r.rows[0].fwd_comm_ns == comm_ns


def test_blocking_input_gradient_collective():
    r = tp4(["l -1 1000 NONE 0 500 ALLGATHER 8000 200 NONE 0 0"])
    assert r.iteration_ns == 1000 + 500 + 6000 + 200  # 3/4 * 8000 = 6000


DP8 = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 all_gpus: 8"


def test_weight_gradient_collective_overlaps_later_backward():
    # Row b's weight-gradient all-reduce on DP 8 (2*7/8*8000 = 14000 ns, + 100 update) is issued
    # at t=4000 (fwd 1000+1000, b's ig 1000 + wg 1000) and runs while row a's backward computes
    # 5000 + 5000 (until 14000); the iteration waits for it: 4000 + 14000 + 100 = 18100.
    rows = ["a -1 1000 NONE 0 5000 NONE 0 5000 NONE 0 100",
            "b -1 1000 NONE 0 1000 NONE 0 1000 ALLREDUCE 8000 100"]
    r = run(DP8, rows)
    assert r.iteration_ns == 18100
    assert r.compute_ns == 14000
    assert r.critical.exposed_ns["DP"] == 4100   # only the tail after compute ends is exposed


def test_same_collective_blocking_costs_its_full_time():
    # the same 14000 ns all-reduce in the input-gradient column of a DP-less (TP 8) job blocks
    rows = ["a -1 1000 NONE 0 5000 NONE 0 5000 NONE 0 100",
            "b -1 1000 NONE 0 1000 ALLREDUCE 8000 1000 NONE 0 100"]
    r = run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 all_gpus: 8", rows)
    assert r.iteration_ns == 2000 + 1000 + 14000 + 100 + 1000 + 10000


def test_forward_waits_for_the_rows_previous_weight_gradient_collective():
    # ga 2 (the rows unrolled twice), PP 1 so 1F1B runs F0 B0 F1 B1.
    # F0: 0-2000. B0: b ig/wg to 4000, its all-reduce 4000-18100; a's backward to 14000.
    # F1: a fwd 14000-15000; b must wait for its all-reduce until 18100 (3100 exposed), fwd to 19100.
    # B1: b to 21100, all-reduce 21100-35200; a to 31100. Iteration 35200.
    rows = ["a -1 1000 NONE 0 5000 NONE 0 5000 NONE 0 100",
            "b -1 1000 NONE 0 1000 NONE 0 1000 ALLREDUCE 8000 100"] * 2
    r = run(DP8 + " ga: 2", rows)
    assert r.ga == 2
    assert r.iteration_ns == 35200
    assert r.critical.exposed_ns["DP"] == 3100 + 4100
    assert r.compute_ns == 28000


def test_activation_recompute_from_checkpoints():
    # checkpoint at row 0, recompute initiated at row 2: before row 2's backward the forward of
    # rows 0..1 is replayed (ASTRA-sim 1.0's Forward_In_BackPass runs rows c .. j-1; row 2's own
    # forward is not repeated), with its blocking TP all-reduce (2*3/4*800 = 1200) + update 10.
    rows = ["r0 -1 100 NONE 0 1000 NONE 0 0 NONE 0 10",
            "r1 -1 200 ALLREDUCE 800 1000 NONE 0 0 NONE 0 10",
            "r2 -1 300 NONE 0 1000 NONE 0 0 NONE 0 10"]
    hdr = ("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 all_gpus: 4 "
           "checkpoints: 1 0 checkpoint_initiates: 1 2")
    r = run(hdr, rows)
    forward = 600 + 1210
    recompute = 100 + 200 + 1210
    assert r.critical.recompute_ns == 300
    assert r.iteration_ns == forward + recompute + 3000
    assert r.compute_ns == 600 + 300 + 3000


def test_group_of_size_one_is_free_and_reported():
    rows = ["l -1 1000 ALLREDUCE 4000 500 NONE 0 200 ALLREDUCE 99999 100"]
    wl = read_workload_text(DP8.replace("all_gpus: 8", "all_gpus: 1") + "\n1\n" + rows[0] + "\n", "t.txt")
    with pytest.warns(SimulationWarning, match="size 1: TP, DP"):
        r = simulate(wl, UNIT)
    assert r.iteration_ns == 1700
    assert r.free_groups == ["TP", "DP"]


def _pipeline_rows(n_rows: int, ga: int) -> list[str]:
    return ["l -1 1000 NONE 0 1000 NONE 0 1000 NONE 0 0"] * (n_rows * ga)


@pytest.mark.parametrize("schedule", ["1f1b", "gpipe"])
@pytest.mark.parametrize("pp, ga", [(4, 8), (2, 3), (8, 8), (3, 1)])
def test_bubble_matches_closed_form(schedule, pp, ga):
    # uniform stages, free sends: tf = 1000, tb = 2000 per micro-batch; the first stage idles
    # (pp-1)(tf+tb), i.e. (pp-1)/ga of the ideal ga(tf+tb)
    r = run(f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: {pp} ga: {ga} "
            f"all_gpus: {pp}", _pipeline_rows(1, ga), pp_schedule=schedule)
    ideal = ga * 3000
    assert r.bubble_ns == (pp - 1) * 3000
    assert r.bubble_ns * ga == ideal * (pp - 1)
    assert r.iteration_ns == ideal + (pp - 1) * 3000


@pytest.mark.parametrize("pp, ga, chunks", [(4, 8, 2), (4, 4, 4), (2, 6, 3), (8, 16, 2)])
def test_interleaved_bubble_matches_closed_form(pp, ga, chunks):
    # 4*chunks uniform rows per micro-batch split into `chunks` equal chunks:
    # bubble = (pp-1)/(ga*chunks) of the ideal ga*(tf+tb)
    rows_per_mb = 2 * chunks
    r = run(f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: {pp} ga: {ga} "
            f"vpp: {chunks} all_gpus: {pp}", _pipeline_rows(rows_per_mb, ga),
            pp_schedule="interleaved")
    ideal = ga * rows_per_mb * 3000
    assert r.chunks == chunks
    assert r.bubble_ns * ga * chunks == ideal * (pp - 1)
    assert r.iteration_ns == ideal + r.bubble_ns


def test_pipeline_sends_between_servers():
    # TP 8 fills a server, so stage 0 (ranks 0-7) and stage 1 (8-15) talk over the NICs:
    # 500 bytes at 1 byte/ns = p = 500 ns. tf = 1000, tb = 2000, ga 1.
    # Stage 0: F [0,1000], waits until stage 1's gradient arrives at 1000+500+1000+2000+500 = 5000,
    # then B until 7000. Of its 4000 ns wait, the last 500 (gradient in flight) is PP, the rest bubble.
    r = run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 pp: 2 all_gpus: 16 "
            "pp_comm: 500", ["l -1 1000 NONE 0 1000 NONE 0 1000 NONE 0 0"])
    s0, s1 = r.stages
    assert r.iteration_ns == 7000 and r.critical_stage == 0
    assert (s0.exposed_ns["PP"], s0.bubble_ns) == (500, 3500)
    # stage 1 waits 1500 for the activation: 1000 before it is sent (bubble), 500 in flight (PP)
    assert (s1.exposed_ns["PP"], s1.bubble_ns, s1.end_ns, s1.idle_after_ns) == (500, 1000, 4500, 2500)


def test_breakdown_adds_up_on_every_stage_of_real_workloads():
    from repo_paths import WORKLOADS
    from simulator.readers.workload import read_workload
    for name in ["seed004_moe_tp8_ep4_pp4_128gpus.txt",
                 "aicb_gpt_13B-world_size64-tp8-pp2-ep1-gbs128-mbs1-seq4096.txt"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulationWarning)
            r = simulate(read_workload(WORKLOADS / name))
        for s in r.stages:
            assert s.parts_sum_ns() == s.end_ns
            assert s.end_ns + s.idle_after_ns == r.iteration_ns
            assert min(s.exposed_ns.values()) >= 0 and s.bubble_ns >= 0


def test_time_is_not_limited_to_32_bits():
    r = tp4([f"l -1 {2**40} ALLREDUCE {2**50} 0 NONE 0 0 NONE 0 0"])
    # 2^40 ns compute + 2*3/4*2^50 ns all-reduce at 1 byte/ns
    assert r.iteration_ns == 2**40 + 3 * 2**49
    assert isinstance(r.iteration_ns, int)


def test_cost_does_not_grow_with_gpu_count():
    # same per-rank work on 1,024 and 131,072 GPUs: the same number of simulated passes
    hdr = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 ep: 8 pp: 8 ga: 16 all_gpus: {}"
    rows = ["l -1 1000 ALLTOALL_EP 4096 1000 ALLTOALL_EP 4096 1000 NONE 0 0"] * 16
    small = run(hdr.format(1024), rows)
    large = run(hdr.format(131072), rows)
    assert small.events_processed == large.events_processed == 8 * 16 * 2
    assert large.dp == 2048


def test_sizes_that_do_not_divide():
    with pytest.raises(InputError, match="not divisible by TP\\*PP = 8\\*4 = 32"):
        run("HYBRID_TRANSFORMER model_parallel_NPU_group: 8 pp: 4 all_gpus: 100",
            ["l -1 1 NONE 0 1 NONE 0 1 NONE 0 0"])
    with pytest.raises(InputError, match="DP = 64/\\(8\\*1\\) = 8 is not divisible by EP = 3"):
        run("HYBRID_TRANSFORMER model_parallel_NPU_group: 8 ep: 3 all_gpus: 64",
            ["l -1 1 NONE 0 1 NONE 0 1 NONE 0 0"])


def test_interleaved_needs_ga_multiple_of_pp():
    with pytest.raises(InputError, match="multiple of PP"):
        run("HYBRID_TRANSFORMER model_parallel_NPU_group: 1 pp: 4 ga: 6 vpp: 2 all_gpus: 4",
            _pipeline_rows(2, 6), pp_schedule="interleaved")
