"""Readers of the real-run seeds: numbers from docs/real-runs.md and the logs themselves."""
from __future__ import annotations

from pathlib import Path

import pytest

from simulator.errors import InputError
from simulator.readers.echo_trace import (
    EchoRecord, parse_echo_line, parse_echo_trace, read_echo_trace, summarize_echo_trace,
)
from simulator.readers.moe_logs import (
    impl_summary_table, kernel_means, mean_last_steps, mean_steps, parse_moe_log, read_moe_log,
    summary_step_times,
)

SEEDS = Path(__file__).resolve().parent.parent / "traces" / "seeds"
SEED000 = SEEDS / "000_29816c293d78207d.txt"
SEED001 = SEEDS / "001_26bf590b3074c9de.txt"
SEED002 = SEEDS / "002_ca1fcef3d5de366d.txt"
SEED003 = SEEDS / "003_cac42666c59f300b.txt"


# ---------------------------------------------------------------------------- seed 003 (Echo)

@pytest.fixture(scope="module")
def echo_records() -> list[EchoRecord]:
    return read_echo_trace(SEED003)


@pytest.fixture(scope="module")
def echo_summary(echo_records):
    return summarize_echo_trace(echo_records)


def test_echo_records_parsed(echo_records):
    assert len(echo_records) == 83
    first = echo_records[0]
    assert (first.rank, first.op, first.stage_id, first.batch_id, first.mg_state) == \
        (0, "get_batch", 0, 0, "warmup")
    fwd0 = echo_records[1]
    assert fwd0.op == "forward_step" and fwd0.duration_ms == 12.59
    assert len(fwd0.sub_operations) == 6
    ag = fwd0.sub_operations[0]
    assert (ag.comm_func, ag.group, ag.shape, ag.dtype, ag.size_bytes) == \
        ("allgather", "exp", (8,), "torch.int64", 64)
    a2a = fwd0.sub_operations[1]
    assert a2a.comm_func == "all_to_all" and a2a.shape == (2048, 4096)
    assert a2a.size_bytes == 2048 * 4096 * 2 and a2a.duration_ms == 0.23
    send = echo_records[2]
    assert send.op == "send_forward" and send.group_kind == "pp"
    assert send.input_shapes == ((1024, 1, 4096),) and send.size_bytes == 1024 * 4096 * 2
    dp = next(r for r in echo_records if r.op == "dp_allreduce")
    assert dp.description == "Regular DP gradient synchronization (non-expert parameters)"
    assert dp.group_kind == "dp" and dp.mg_state == "finalize"
    states = {r.mg_state for r in echo_records}
    assert states == {"warmup", "steady", "cooldown", "finalize"}
    # timestamps are end times: every record starts after the previous one ended (1F1B
    # send_forward/recv_backward pairs are one call written twice and share their start)
    for prev, cur in zip(echo_records, echo_records[1:]):
        assert cur.start_ms >= prev.start_ms - 1e-6


def test_echo_summary_matches_documentation(echo_summary):
    s = echo_summary
    assert s.num_microbatches == 16
    assert s.num_warmup_forwards == 3
    assert s.forward_step_median_ms == pytest.approx(12.15)
    assert s.backward_step_median_ms == pytest.approx(18.80, abs=0.005)
    assert s.comm_median_ms("all_to_all", (2924, 4096)) == pytest.approx(0.09)
    assert s.comm_median_ms("all_to_all", (2048, 4096), "forward") == pytest.approx(0.21)
    assert s.comm_median_ms("all_to_all", (2048, 4096), "backward") == pytest.approx(0.15)
    assert s.comm_median_ms("allgather", (8,)) == pytest.approx(0.135)
    assert s.send_forward_warmup_median_ms == pytest.approx(0.31)
    assert s.first_steady_send_forward_ms == pytest.approx(56.04)
    assert s.dp_allreduce_ms == pytest.approx(11.88)
    assert s.dp_allreduce_bytes == 290_013_184 * 4
    assert s.ep_dp_allreduce_ms == pytest.approx(40.05)
    assert s.ep_dp_allreduce_bytes == 1_409_286_144 * 4
    assert s.optimizer_step_ms == pytest.approx(31.79)
    assert s.iteration_span_ms == pytest.approx(718.9, abs=0.05)
    assert s.forward_backward_span_ms == pytest.approx(634.9, abs=0.05)
    assert s.steady_forward_period_ms == pytest.approx(34, abs=1.0)


def test_echo_summary_compute_parts(echo_records, echo_summary):
    s = echo_summary
    assert len(s.forward_compute_ms) == 16 and len(s.backward_compute_ms) == 16
    fwd0 = next(r for r in echo_records if r.op == "forward_step" and r.batch_id == 0)
    # 12.59 minus 0.17 + 0.23 + 0.09 + 0.16 + 0.23 + 0.09 of communication
    assert s.forward_compute_ms[0] == pytest.approx(11.62)
    assert fwd0.compute_ms + fwd0.comm_ms == pytest.approx(fwd0.duration_ms)
    assert all(0 < c < 12.15 + 0.6 for c in s.forward_compute_ms)
    assert all(18 < c < 19.5 for c in s.backward_compute_ms)
    # the replay list covers every record, in time order, from 0 to the iteration span
    assert len(s.ops) == 83 and s.ops[0].start_ms == 0
    assert s.ops[-1].op == "optimizer_step"
    assert s.ops[-1].start_ms + s.ops[-1].duration_ms == pytest.approx(s.iteration_span_ms)
    send = next(o for o in s.ops if o.op == "send_forward")
    assert send.compute_ms == 0 and send.comm_ms == send.duration_ms


ECHO_OK = ("rank:0:forward_step(stage_id=0,batch_id=1,mg_state=steady,duration=12.5,"
           "description=None,group_kind=None,input__shape=None,input__dtype=None,"
           "timestamp=100.0,sub_operations=['trace_src_func=f,duration=0.2,timestamp=90.0,"
           "input__shape=[2048, 4096],input__dtype=torch.bfloat16,group=exp,"
           "comm_func=all_to_all'])")


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_echo_tokenizer_handles_nesting():
    r = parse_echo_line(ECHO_OK)
    assert r is not None and r.sub_operations[0].size_bytes == 2048 * 4096 * 2
    assert r.compute_ms == pytest.approx(12.3) and r.start_ms == pytest.approx(87.5)
    r = parse_echo_line("rank:1:dp_allreduce(stage_id=2,batch_id=0,mg_state=finalize,"
                        "duration=1.5,description=Sync (a, b) [x], more,group_kind=dp,"
                        "input__shape=[[4, 2], [3]],input__dtype=torch.float32,"
                        "timestamp=10.0,sub_operations=[])")
    assert r.description == "Sync (a, b) [x], more"
    assert r.input_shapes == ((4, 2), (3,)) and r.size_bytes == 44
    assert parse_echo_trace("noise\n\n" + ECHO_OK + "\n")[0].line == 3


@pytest.mark.parametrize("bad, field", [
    (ECHO_OK[:-3], None),                                    # truncated: unbalanced
    (ECHO_OK.replace("duration=12.5", "duration=abc"), "duration"),
    (ECHO_OK.replace("mg_state=steady", "mg_state=busy"), "mg_state"),
    (ECHO_OK.replace("batch_id=1", "batch_id=-1"), "batch_id"),
    (ECHO_OK.replace("[2048, 4096]", "[2048, x]"), "sub_operations.input__shape"),
    (ECHO_OK.replace("torch.bfloat16", "torch.bogus16"), "sub_operations.input__dtype"),
    (ECHO_OK.replace("duration=0.2,", ""), "sub_operations"),
    (ECHO_OK.replace("timestamp=100.0,", ""), "timestamp"),
    (ECHO_OK + ")", None),
    (ECHO_OK.replace("'])", "])"), None),                    # unterminated quote
])
def test_echo_malformed_line_is_an_error(tmp_path, bad, field):
    path = _write(tmp_path, "trace.txt", [ECHO_OK, "some unrelated noise", bad])
    with pytest.raises(InputError) as info:
        read_echo_trace(path)
    err = info.value
    assert err.line == 3 and err.path == str(path) and err.field == field
    assert str(err).startswith(f"{path}:3: ")


def test_echo_empty_file_is_an_error(tmp_path):
    with pytest.raises(InputError):
        read_echo_trace(_write(tmp_path, "empty.txt", ["nothing here"]))


# ------------------------------------------------------------------------- seeds 000-002 (MoE)

def test_seed000_mean_steps():
    log = read_moe_log(SEED000)
    assert len(log.sections) == 1
    sec = log.sections[0]
    cfg = sec.config
    assert (cfg.world_size, cfg.dtype, cfg.model_dim, cfg.hidden_size, cfg.samples,
            cfg.num_local_experts, cfg.top_k) == (4, "float16", 1024, 4096, 8192, 8, 2)
    assert len(sec.steps) == 100 and sec.steps[0].step_ms == pytest.approx(7488.428223)
    m = mean_steps(sec, 40, 99)
    assert m.count == 60
    assert m.step_ms == pytest.approx(22.853, abs=5e-4)
    assert m.forward_ms == pytest.approx(20.66, abs=5e-3)
    assert m.backward_ms == pytest.approx(2.13, abs=5e-3)
    assert m.step_ms == pytest.approx(sec.summary.step_ms, abs=1e-6)
    assert m.forward_ms == pytest.approx(sec.summary.forward_ms, abs=1e-6)
    assert mean_steps(sec).count == 99  # STEP-0 (warm-up) dropped by default


def test_seed001_summary_table():
    log = read_moe_log(SEED001)
    assert len(log.sections) == 9
    table = impl_summary_table(log)
    expected = {
        ("naive", "gpt2", 16): 263.90, ("fastermoe", "gpt2", 16): 263.32,
        ("mix_moe", "gpt2", 16): 263.70, ("naive", "bert", 16): 198.07,
        ("fastermoe", "bert", 16): 442.02, ("mix_moe", "bert", 16): 248.92,
        ("naive", "transformer-xl", 64): 91.71, ("fastermoe", "transformer-xl", 64): 379.11,
        ("mix_moe", "transformer-xl", 64): 161.12,
    }
    assert table.keys() == expected.keys()
    for key, value in expected.items():
        assert table[key] == pytest.approx(value, abs=0.005), key
    for sec in log.sections:
        assert len(sec.steps) == 100
        assert mean_steps(sec, 40, 99).step_ms == pytest.approx(sec.summary.step_ms, abs=1e-6)
    with pytest.raises(InputError):
        summary_step_times(log)  # two runs with 16 local experts: ambiguous


@pytest.fixture(scope="module")
def seed002():
    return read_moe_log(SEED002)


def test_seed002_summaries(seed002):
    assert [s.num_local_experts for s in seed002.sections] == [8, 16, 32, 64]
    times = summary_step_times(seed002)
    expected = {8: 21.337, 16: 22.478, 32: 23.614, 64: 29.281}
    for experts, value in expected.items():
        assert times[experts] == pytest.approx(value, abs=5e-4)
    for sec in seed002.sections:
        assert mean_last_steps(sec, 10).step_ms == pytest.approx(sec.summary.step_ms, abs=1e-6)


def test_seed002_kernel_lines(seed002):
    means = kernel_means(seed002)
    assert sorted(means) == [8, 16, 32, 64]
    for m in means.values():
        assert m.ag_count == m.ga_count == 800  # 100 steps x 4 ranks x (forward + backward)
        assert 1.67 - 0.005 <= m.ag_ms <= 2.06 + 0.005
        assert 1.58 - 0.006 <= m.ga_ms <= 2.03 + 0.005
    assert min(m.ag_ms for m in means.values()) == pytest.approx(1.67, abs=0.005)
    assert max(m.ag_ms for m in means.values()) == pytest.approx(2.06, abs=0.005)
    assert min(m.ga_ms for m in means.values()) == pytest.approx(1.58, abs=0.006)
    assert max(m.ga_ms for m in means.values()) == pytest.approx(2.03, abs=0.005)
    sec = seed002.sections[0]
    assert len(sec.block_infos) == 400 and len(sec.process_times) == 400
    first = sec.block_infos[0]
    assert (first.blocks, first.remote_blocks, first.rank, first.line) == (312, 83, 2, 34)
    # every kernel line is attributed to a rank, a block count and a phase
    for call in sec.kernel_calls:
        assert call.rank is not None and call.phase in ("forward", "backward")
        assert call.remote_fraction == pytest.approx(call.remote_blocks / call.blocks,
                                                     abs=1e-6)
    assert sec.process_times[0].rank == 2
    assert sec.process_times[0].parts_ms["b"] == pytest.approx(113.34800720214844)


BENCH = ("[Benchmark] world_size = 4, dtype = float16, model_dim = 1024, hidden_size = 4096, "
         "samples = 8192, num_local_experts = 8, topK = 2, device = `cuda:0`")
STEP = "STEP-1: step_time = 22.5 ms, foward_time = 20.5, backward_time = 2.0, perf = 36.5 tflops."
SUMMARY = "[Summary] Average synchronized step_time = 22.5 ms, forward = 20.5, backward = 2.0."


def test_moe_log_minimal_and_noise(tmp_path):
    path = _write(tmp_path, "log.txt", [
        "forward", "True", BENCH, "block_info 10 3", "AG, 0.300000, 1.5, 0 ",
        "GA, 0.300000, 1.25, 0", "AG, 0.300000, 1.75, 0", "GA, 0.300000, 1.0, 0",
        "0 wait time: 2.5", "10", STEP, "", SUMMARY,
        " mix_moe bert 16 [Summary] Average synchronized step_time = 248.9 ms,"])
    log = read_moe_log(path)
    assert len(log.sections) == 2
    sec = log.sections[0]
    assert sec.steps[0].perf_tflops == 36.5
    assert [k.phase for k in sec.kernel_calls] == ["forward", "forward", "backward", "backward"]
    assert {k.rank for k in sec.kernel_calls} == {0}
    assert kernel_means(log)[8].ag_ms == pytest.approx(1.625)
    assert log.sections[1].summary.impl == "mix_moe"
    assert log.sections[1].summary.local_experts == 16


@pytest.mark.parametrize("bad, field", [
    ("STEP-2: step_time = abc ms, foward_time = 20.5, backward_time = 2.0", "step_time"),
    ("STEP-2: step_time = 22.5 ms, foward_time = 20.5", "backward_time"),
    ("STEP-x: step_time = 22.5 ms, foward_time = 20.5, backward_time = 2.0", "step"),
    ("STEP-1: step_time = 22.5 ms, foward_time = 20.5, backward_time = 2.0", "step"),
    ("STEP-2: step_time = nan ms, foward_time = 20.5, backward_time = 2.0", "step_time"),
    ("block_info 312", None),
    ("block_info 10 30", "Y"),
    ("AG, 0.07, fast, 0", "t_ms"),
    ("GA, 0.07, 1.2", None),
    ("cuda:1 process time:abc, a: 1.0", "process time"),
    ("[Summary] Average synchronized step_time = ms", "step_time"),
    (BENCH.replace("topK = 2", "topK = two"), "topK"),
    (BENCH.replace("hidden_size = 4096, ", ""), "hidden_size"),
])
def test_moe_malformed_line_is_an_error(tmp_path, bad, field):
    path = _write(tmp_path, "log.txt", [BENCH, "noise", STEP, bad, SUMMARY])
    with pytest.raises(InputError) as info:
        read_moe_log(path)
    err = info.value
    assert err.line == 4 and err.path == str(path) and err.field == field
    assert str(err).startswith(f"{path}:4: ")


def test_moe_benchmark_inside_section_is_an_error():
    with pytest.raises(InputError) as info:
        parse_moe_log("\n".join([BENCH, STEP, BENCH]), path="x.log")
    assert info.value.line == 3


def test_moe_empty_file_is_an_error(tmp_path):
    with pytest.raises(InputError):
        read_moe_log(_write(tmp_path, "empty.txt", ["nothing", "here"]))
