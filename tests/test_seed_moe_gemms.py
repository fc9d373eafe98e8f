"""The seeds' A100-class machine's GEMMs, from seed 002's weight-gradient kernel times
(simulator/validation/moe_layer.py): the fit recovers hand-made terms, and the shipped seed
gives what its lines say when read by hand."""
from __future__ import annotations

import pytest

from simulator.validation import moe_layer

HEADER = ("[Benchmark] world_size = 4, dtype = float16, model_dim = 1024, hidden_size = 4096, "
          "samples = 8192, num_local_experts = {e}, topK = 2, a2a_ffn_overlap_degree = 1, "
          "device = `cuda:0`")
STEP = ("STEP-{i}: step_time = 20.0 ms, foward_time = 10.0, backward_time = 10.0, "
        "perf = 40.0 tflops.")


def _run(experts, blocks, wgrad_ms, steps=3):
    lines = [HEADER.format(e=experts)]
    for i in range(steps):
        lines += [f"block_info {x} 10" for x in blocks]
        lines += [f"perpare first backward gemm: 0.03,  fisrt gemm backward duration: 2.5,  "
                  f"weight grad: {w},  other: 0.4" for w in wgrad_ms]
        lines.append(STEP.format(i=i))
    lines.append("[Summary] Average synchronized step_time = 20.0 ms, forward = 10.0, "
                 "backward = 10.0.")
    return lines


def test_fit_recovers_a_fixed_cost_and_a_rate(tmp_path):
    """Made with 3 us a GEMM and 100 TFLOP/s. 8 local experts, ranks of 200, 240, 272 and 312
    blocks of 64 tokens (mean 256): 2 x 256 x 64 x 1024 x 4096 = 1.37439e11 FLOP = 1374.39
    us + 8 x 3 = 1398.39 us, the ranks' times 1.3, 1.4, 1.45 and 1.44356 ms (mean 1.39839).
    16 local experts, 200 blocks each: 1.07374e11 FLOP = 1073.74 us + 48 = 1121.74 us.
    STEP-0 (warm-up) is left out: it is written with the others but its rows are the same."""
    log = tmp_path / "seed.txt"
    log.write_text("\n".join(_run(8, (200, 240, 272, 312), (1.3, 1.4, 1.45, 1.44356))
                             + _run(16, (200,) * 4, (1.12174,) * 4)) + "\n")
    fit = moe_layer.seed002_gemm_fit(log)
    assert fit["steps"] == 4          # 2 runs x STEP-1, STEP-2
    assert fit["t0_us"] == pytest.approx(3.0, abs=0.01)
    assert fit["tflops"] == pytest.approx(100.0, rel=1e-4)
    assert fit["max_abs_resid"] < 1e-5


def test_the_shipped_seed_gives_its_lines_rate():
    """Read by hand: in the 8-expert run of seed 002 the last 10 steps' ranks hold 64-token
    blocks of mean ~261 and their weight gradients take ~1.62 ms: 2 x 261 x 64 x 1024 x 4096
    / 1.62 ms = 86.7 TFLOP/s with the fixed costs inside; in the 64-expert run 78.2 (eight
    times the GEMMs, each with its fixed cost). One line through all 396 steps of the four
    runs: 2-3 us a GEMM and 84-87 TFLOP/s, 27% of the A100 datasheet's 312; the 8-expert
    rate follows within 3%."""
    fit = moe_layer.seed002_gemm_fit()
    assert fit["steps"] == 396
    assert 2.0 < fit["t0_us"] < 3.0 and 84.0 < fit["tflops"] < 87.0
    assert fit["median_abs_resid"] < 0.03
    flops = 2 * 261 * 64 * 1024 * 4096
    t_us = 8 * fit["t0_us"] + flops / (fit["tflops"] * 1e6)
    assert flops / t_us / 1e6 == pytest.approx(86.7, rel=0.03)


def test_seed_machine_prices_a_gemm_as_its_fit():
    """An expert GEMM of seed 000 (2048 tokens x 4096 x 1024, 1.718e10 FLOP) is compute-
    bound: t0 + FLOP / rate. The gate's 8192 x 32 x 1024 (5.4e8 FLOP, 16.8 MB) is memory-
    bound at the datasheet A100's 2039 GB/s x 0.8: 16.8e6 / 1631.2 = 10.3 us + t0."""
    gpu = moe_layer._seeds_machine()
    if gpu is None:
        pytest.skip("no generate package")
    fit = moe_layer.seed002_gemm_fit()
    assert gpu.gemm_us(2048, 4096, 1024) == pytest.approx(
        fit["t0_us"] + 2 * 2048 * 4096 * 1024 / (fit["tflops"] * 1e6), rel=1e-9)
    nbytes = 2 * (8192 * 1024 + 1024 * 32 + 8192 * 32)
    assert gpu.gemm_us(8192, 32, 1024) == pytest.approx(
        fit["t0_us"] + nbytes / (2039 * 0.8 * 1e3), rel=1e-9)


def test_seed000_backward_floor_by_hand():
    """Seed 000's layer (8 local experts, 8192 tokens top-2: 2048 rows an expert): the
    backward's four GEMMs per expert (dgrad and wgrad of both linears, 2048 x 4096 x 1024,
    1.718e10 FLOP each) at the fit: 32 x (2.47 us + 1.718e10 / 85.19e12 s = 201.7 us) =
    6.53 ms. At the datasheet's 312 TFLOP/s: 32 x 1.718e10 = 5.498e11 FLOP -> 1.762 ms, plus
    two all-to-alls of the remote 3/4 of 8192 x 2 x 1024 x 2 B = 25.17 MB at 16.384 GB/s
    (128 KiB per 8 us): 2 x 1.536 ms -> 4.834 ms. Both exceed the 2.13 ms the seed times."""
    fit = moe_layer.seed002_gemm_fit()
    if moe_layer._seeds_machine() is not None:
        per_gemm_us = fit["t0_us"] + 2 * 2048 * 4096 * 1024 / (fit["tflops"] * 1e6)
        assert moe_layer.seed000_backward_floor_ms() == pytest.approx(32 * per_gemm_us / 1e3,
                                                                     rel=1e-9)
        assert moe_layer.seed000_backward_floor_ms() == pytest.approx(6.53, abs=0.02)
    assert moe_layer.seed000_backward_floor_ms(peak=True) == pytest.approx(4.834, abs=0.002)


def test_seed000_times_are_gpu_timer_ticks(tmp_path):
    """Read by hand: STEP-10 of seed 000 is 22.769665 = 22236 x 1.024 us, forward 20.690945 =
    20206 ticks, backward 2.017280 = 1970 ticks; a host clock would not land on whole ticks.
    A made-up line of 1.0005 ms (977.05 ticks) is not one: 3 of 6 values."""
    log = tmp_path / "s.txt"
    log.write_text("STEP-1: step_time = 22.769665 ms, foward_time = 20.690945, "
                   "backward_time = 2.017280, perf = 1.0 tflops.\n"
                   "STEP-2: step_time = 1.0005 ms, foward_time = 0.5003, "
                   "backward_time = 0.5002, perf = 1.0 tflops.\n")
    assert moe_layer.seed000_tick_share(log) == pytest.approx(0.5)
    # the shipped seed: 298 of its 300 STEP values (100 steps x 3)
    assert moe_layer.seed000_tick_share() == pytest.approx(298 / 300)


def test_seed000_is_shown_not_counted():
    """Its timed backward cannot hold the modelled one (above), so none of its three rows
    is counted; the roofline puts most of the step in the backward (its expert GEMMs twice
    the forward's), the seed the reverse (20.66 ms forward, 2.13 backward)."""
    rows = [c for c in moe_layer.run() if c.case.startswith("seed 000")]
    assert {c.quantity for c in rows} == {"step (summary)", "forward (summary)",
                                          "backward (summary)"}
    assert not any(c.primary for c in rows)
    q = {c.quantity: c for c in rows}
    assert q["forward (summary)"].measured == pytest.approx(20.66, abs=0.01)
    assert q["backward (summary)"].measured == pytest.approx(2.13, abs=0.01)
    assert q["backward (summary)"].predicted > q["forward (summary)"].predicted
