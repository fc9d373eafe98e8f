"""The kernel-level compute model: its fit to the H200 kernel sweep, its launch floor, the
derived GPUs, and the measured training steps it predicts (traces/h200/compute/)."""
from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from simulator.generate import generate, get_preset, resolve, with_overrides
from simulator.generate.compute import ComputeModel, host_scales
from simulator.generate.gpu import GPUS, get_gpu
from simulator.generate.sizes import megatron_params

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "traces" / "h200" / "compute"


def _kernel_rows():
    rows = []
    for p in sorted(RUNS.glob("run*/kernels.csv")):
        with open(p, newline="") as fh:
            rows += [dict(r, source=p.parent.name) for r in csv.DictReader(fh)]
    return rows


def _assert_same_fit(key, refit, shipped):
    """The refit equals the shipped value to the rounding the fit writes (4 significant
    places: rel 1e-3), except where the sweep does not pin a parameter down: a memory-bound
    kernel's launch intercept t0 (every such kernel was timed at >= 5 us, so an intercept
    under 1 us moves the fit's residual by well under 0.1%: numpy/scipy releases land
    anywhere in [0, 1] us) and the row-width knee c0 it trades against (rel 1%)."""
    if key == "mem_ops":
        assert [m[0] for m in refit] == [m[0] for m in shipped]
        for (op, t0, bw, c0), (_, t0_s, bw_s, c0_s) in zip(refit, shipped):
            assert t0 == pytest.approx(t0_s, abs=1.0), op
            assert bw == pytest.approx(bw_s, rel=1e-3), op
            assert c0 == pytest.approx(c0_s, rel=1e-2, abs=0.5), op
        return
    if isinstance(shipped, tuple):
        assert len(refit) == len(shipped), key
        for a, b in zip(refit, shipped):
            _assert_same_fit(key, a, b)
    elif isinstance(shipped, str):
        assert refit == shipped, key
    else:
        assert refit == pytest.approx(shipped, rel=1e-3, abs=1e-9), key


def test_shipped_h200_parameters_are_the_fit_of_the_sweep():
    pytest.importorskip("scipy")
    from simulator.generate.h200_fit import H200_KERNEL_FIT
    from simulator.generate.kernel_fit import default_paths, fit_kernels, spec_kwargs
    params, resid = fit_kernels(default_paths(ROOT))
    refit = spec_kwargs(params)
    assert refit.keys() == H200_KERNEL_FIT.keys()
    for key, shipped in H200_KERNEL_FIT.items():
        _assert_same_fit(key, refit[key], shipped)
    # GEMMs: 1314 timings (657 shapes x fwd/dgrad/wgrad over two runs), median error under 6%
    assert resid["gemm"]["shapes"] >= 1000 and resid["gemm"]["median_abs_err"] < 0.06
    # memory-bound kernels that carry the layers: each within 10% at the median
    for op in ("gelu.fwd", "gelu.bwd", "dropout.fwd", "dropout.bwd", "zero_fp32.fwd",
               "cross_entropy_fp32.fwd", "cross_entropy_fp32.bwd"):
        assert resid[op]["median_abs"] < 0.10, op
    assert resid["opt_step"]["median_abs"] < 0.05


def test_memory_bound_kernel_against_its_measurement():
    """layer_norm forward over 2^26 bf16 elements in rows of 4096: measured 103.4 us (run1)
    and the fit's t0 + 4 n / bw must land within 10% of it."""
    rows = [r for r in _kernel_rows() if r["group"] == "eltwise" and r["op"] == "layer_norm"
            and r["phase"] == "fwd" and r["cols"] == "4096" and r["numel"] == str(2 ** 26)]
    if not rows:
        pytest.skip("no kernel sweep")
    g = get_gpu("h200")
    for r in rows:
        pred = g.mem_us("layer_norm.fwd", 4 * 2 ** 26)
        assert pred == pytest.approx(float(r["dev_us"]), rel=0.10)


def test_optimizer_step_against_its_measurement():
    """The optimizer step (norm, fused Adam, bf16 copy) over the 1.3B model's 1.32e9
    parameters in 292 tensors: measured 15.3 ms (run1) and 15.6 ms (run2); the sweep's
    repeated steps ran at norm 1 after the first, so without clipping's scale. With the scale
    (the step after a real backward, norm above 1: gpubound1 opt_context, 17.36 ms) the
    model adds the scale's 2.87 ms (1.32e9 x 0.002177 ns) and lands within 7%: the scale's
    kernels hide part of the host's dispatch gap after the norm's read, which the sweep's
    step includes."""
    from dataclasses import replace
    rows = [r for r in _kernel_rows() if r["group"] == "optimizer" and r["op"] == "step"
            and r["numel"] == "1320013824"]
    if not rows:
        pytest.skip("no kernel sweep")
    g = get_gpu("h200")
    plain = replace(g, opt_clip_ns=0.0)
    for r in rows:
        assert plain.optimizer_us(1320013824, 292) == pytest.approx(float(r["dev_us"]),
                                                                    rel=0.05)
    assert g.optimizer_us(1320013824, 292) == pytest.approx(17361.9, rel=0.07)


def test_a100_and_h100_are_derived_from_the_h200_fit_and_published_peaks():
    h200, a100, h100 = get_gpu("h200"), get_gpu("a100"), get_gpu("h100")
    # memory-bound: the measured share of bandwidth, so bandwidth x 2039/4800
    ln200 = dict((n, bw) for n, _, bw, _ in h200.mem_ops)["layer_norm.fwd"]
    ln100 = dict((n, bw) for n, _, bw, _ in a100.mem_ops)["layer_norm.fwd"]
    assert ln100 == pytest.approx(ln200 * 2039 / 4800)
    ln_h100 = dict((n, bw) for n, _, bw, _ in h100.mem_ops)["layer_norm.fwd"]
    assert ln_h100 == pytest.approx(ln200 * 3350 / 4800)
    # a compute-bound GEMM (8192^3, 1.1e12 FLOP): on the H100 the same share of peak; on the
    # A100 the share of the published best-shape matmuls (ml-engineering's MAMF table:
    # 85.9% of 312 on A100 SXM, 80.1% of 989 on H100 SXM), so once the 3.4 us fixed cost is
    # taken out the time scales with 989.4 / 312 x 0.801 / 0.859 = 2.9570
    t200 = h200.gemm_us(8192, 8192, 8192) - h200.gemm_t0_us
    t100 = a100.gemm_us(8192, 8192, 8192) - a100.gemm_t0_us
    assert t100 / t200 == pytest.approx(2.9570, rel=1e-4)
    th = h100.gemm_us(8192, 8192, 8192) - h100.gemm_t0_us
    assert th / t200 == pytest.approx(1.0, rel=1e-9)
    # e_max 0.7686 x 0.859 / 0.801 = 0.8243: 4096^3 (1.374e11 FLOP) at 0.8243 x 312 x
    # (4096/4109.11)^3 = 254.8 TFLOP/s: 539.4 us + 3.4 us (the MAMF table's best A100 shape
    # reaches 267.9)
    assert a100.gemm_emax == pytest.approx(0.8481, abs=1e-4)   # 0.7908 (H200 refit) x 1.0725
    # shape-aware H200 refit: 3.492 + 1.374e11 / (312e6 x 0.8481 x 4096/4191) = 535.0 us
    assert a100.gemm_us(4096, 4096, 4096) == pytest.approx(535.0, rel=1e-3)
    # the unfused attention's score passes are memory-bound: ns per score x 4800 / 2039
    assert a100.unfused_fwd[1] == pytest.approx(h200.unfused_fwd[1] * 4800 / 2039)
    assert a100.unfused_bwd == pytest.approx((h200.unfused_bwd[0],
                                              h200.unfused_bwd[1] * 4800 / 2039))
    # the 40 GB A100: 1555 GB/s HBM2 (the datasheet), 40 GiB; the same tensor cores
    a40 = get_gpu("a100-40gb")
    ln40 = dict((n, bw) for n, _, bw, _ in a40.mem_ops)["layer_norm.fwd"]
    assert ln40 == pytest.approx(ln200 * 1555 / 4800) and a40.hbm_gib == 40
    assert a40.gemm_us(8192, 8192, 8192) == pytest.approx(a100.gemm_us(8192, 8192, 8192))
    # host (dispatch) times do not depend on the GPU
    assert a100.host_ops == h200.host_ops and h100.host_ops == h200.host_ops
    assert "derived" in a100.derivation and "fitted" in h200.derivation


def test_a_tiny_model_runs_at_the_host_floor():
    """Hidden 64, 64 tokens: every kernel takes a few microseconds on the GPU, far less than
    its dispatch, so a layer's forward is the measured host floor of a layer (scaled per op:
    host_scales) and never less than its kernels' launch time."""
    g = get_gpu("h200")
    model = with_overrides(get_preset("gpt-7b"), layers=2, hidden=64, ffn=256, heads=2)
    cfg = resolve(model, 1, tp=1, seq_length=64, micro_batch=1, gpu="h200", distributed_optimizer=True)
    cm = ComputeModel(cfg, megatron_params(cfg))
    att = cm.row_costs("attention_layer")
    mlp = cm.row_costs("mlp_layer")
    fwd_host = att[0].host + mlp[0].host
    assert att[0].dev + mlp[0].dev < 0.5 * fwd_host
    sf, _ = host_scales(g)
    if g.host_layer_fwd_us:
        assert fwd_host == pytest.approx(g.host_layer_fwd_us, rel=1e-6)
    else:
        assert sf == 1.0
    # the micro-batch's forward is never faster than its launches, and here little more (the
    # output layer and the cross entropy over 50304 logits add some 60 us of device time that
    # the host does not hide: 1029 us of launches, 1090 us in all)
    kinds = ["embedding_layer"] + ["attention_layer", "mlp_layer"] * 2 + ["final_column"]
    total = sum(cm.row(k)[0] for k in kinds)
    launches = sum(cm.row_costs(k)[0].host for k in kinds)
    assert launches <= total * (1 + 1e-9) and total < 1.10 * launches


def test_large_gemm_bound_layer_is_device_time():
    """GPT-6.7B shapes, 8192 tokens: the GEMMs take milliseconds, the host a fraction of it."""
    model = with_overrides(get_preset("gpt-7b"), layers=1)
    cfg = resolve(model, 1, tp=1, seq_length=2048, micro_batch=4, gpu="h200", distributed_optimizer=True)
    cm = ComputeModel(cfg, megatron_params(cfg))
    f = cm.row_costs("mlp_layer")[0]
    assert f.dev > 3 * f.host
    # 2 GEMMs of 2 x 8192 x 16384 x 4096 FLOPs = 2.2 TFLOP at 0.77 x 989 TFLOP/s ~ 2.9 ms
    assert 2.5e3 < f.dev < 3.6e3


def test_generated_step_reports_gpu_derivation():
    cfg = resolve(get_preset("gpt-7b"), 1, tp=1, seq_length=1024, micro_batch=1, gpu="a100", distributed_optimizer=True)
    gen = generate(cfg, check_memory=False)
    assert sum(r.fwd_ns for r in gen.workload.rows) > 0
    assert GPUS["a100"].derivation.startswith("derived")


def test_measured_training_steps_against_generate_and_simulate():
    """`collsim validate`'s H200 cases (docs/validation.md). Host-bound cases run by run with
    their machine's host floor (runs 5-7: the run's floor; runs 8-10, simulator.measure.
    interleaved: the floor GPTs measured beside each case in its 10-12 rounds) and the
    GPU-bound ones over runs 1-2: 124 counted, median |error| 3.2%, maximum 13.3%; default
    GPTs (76) median 3.3%, maximum 12.2%; FP8 and unfused-attention GPTs (48) median 3.0%,
    maximum 13.3% (gpt-350m-s1024-b4-fp8 on run10, whose rounds spread 68%). The FP8 / unfused
    steps of runs 5 and 6, whose machines measured no floor of those models, are shown and
    not counted (median 4.6%, maximum 26.5%: another machine's FP8/default ratio does not
    carry over)."""
    from simulator.calibration import load_calibration
    from simulator.cluster import Cluster
    from simulator.validation import h200_train
    from simulator.validation.common import DEFAULT_CALIBRATION
    cases = h200_train.measured_cases()
    if not cases:
        pytest.skip("no measured steps")
    cluster = Cluster()
    cost = load_calibration(DEFAULT_CALIBRATION, cluster=cluster)
    res = h200_train.run(cost, cluster)
    counted = [r for r in res if r.primary]
    # 16 cases measured on runs 1-3 only; 10 host-bound default cases on each of runs 5-10
    # (60); 6 FP8 and 6 unfused ones on each of runs 5-10 (72), counted on runs 7-10 (48);
    # the 10 host-bound ones on runs 1-3 shown apart: 16 + 60 + 72 + 10 = 158
    assert len(res) == len(cases) == 158 and len(counted) == 16 + 60 + 48
    plain = sorted(abs(r.error) for r in counted if r.extra["variant"] == "default")
    assert len(plain) == 76
    assert statistics.median(plain) <= MEDIAN_TARGET and plain[-1] <= MAX_TARGET
    feat = sorted(abs(r.error) for r in counted if r.extra["variant"] != "default")
    assert len(feat) == 48
    assert statistics.median(feat) <= FEATURE_MEDIAN_TARGET and feat[-1] <= FEATURE_MAX_TARGET
    # a host-bound case is predicted with its own machine's floor: the 125M model at
    # micro-batch 1 took 20.1 ms on run5's machine and 31.5 ms on run6's; the predictions
    # follow (each within 8% of its own machine's step; run6's -7.5% since the host's lead is
    # carried across the backward's start and the zeroing opens the step, -6.0% before)
    # (within 10% since the fp32 accumulation is priced once: its 0.57 ms of device time on
    # this model ran under its dispatch, which the floor carries, and was priced again after
    # the backward; traces/h200/compute/hostcause2 times the step with and without it:
    # run6 -7.5% -> -9.2%)
    b1 = {r.extra["run"]: r for r in counted
          if r.case.startswith("H200 GPT step gpt-125m-s1024-b1 (")}
    assert b1["run6"].predicted > 1.3 * b1["run5"].predicted
    assert abs(b1["run5"].error) < 0.10 and abs(b1["run6"].error) < 0.10
    # runs 8-10 price each case with the floor measured beside it
    assert all(r.inputs.count("beside the case") == 1 for r in counted
               if r.extra["run"] in ("run8", "run9", "run10")
               and "gpt-2.7b" not in r.case)


# what the validation gives today (docs/validation.md); a model change that worsens it fails
MEDIAN_TARGET = 0.05
# (2026-12-02 07:00: the host's lead is carried across micro-batches, as the measuring loop
# reads nothing back between them: default GPTs' maximum 17.1% -> 12.0%, the FP8/unfused
# ones' 11.7% -> 13.1%, both on gpt-*-s1024-b4 cases of run10 that the missing host enqueue
# above the floor GPT's makes too fast, docs/compute-model.md)
MAX_TARGET = 0.13   # today 12.2% (gpt-125m-s1024-b4, run10)
FEATURE_MEDIAN_TARGET = 0.05   # today 3.0% (7.2% before the backend swap kept the dispatch)
FEATURE_MAX_TARGET = 0.14      # today 13.3% (gpt-350m-s1024-b4-fp8, run10: spread 68%)


def _floor_row(op, layers, host_us, width=768, note="round 1", source="runX"):
    return {"group": "hostfloor", "op": op, "rows": str(layers), "cols": str(width),
            "host_us": str(host_us), "tensors": str(12 * layers + 4), "note": note,
            "source": source}


def test_host_floor_fit_is_the_line_through_its_points():
    """Forward 500 + 300 L us, forward + backward + accumulation 1500 + 1300 L, with
    recompute 2000 + 2500 L, at two widths: per layer forward 300, backward 1300 - 300 =
    1000, recompute extra 2500 - 1300 = 1200; fixed 500 forward, 1500 - 500 = 1000 backward.
    An FP8 GPT beside it (forward 900 L, backward+forward 2900 L, recompute 4100 L) has the
    ratios 900/300 = 3, (2900 - 900)/1000 = 2 and (4100 - 2900)/1200 = 1."""
    pytest.importorskip("scipy")
    from simulator.generate.kernel_fit import fit_host_floor, fit_host_variants
    rows = []
    for w in (64, 768):
        for L in (1, 4, 12):
            rows += [_floor_row("forward", L, 500 + 300 * L, w),
                     _floor_row("fwdbwd_accumulate", L, 1500 + 1300 * L, w),
                     _floor_row("fwdbwd_accumulate_recompute", L, 2000 + 2500 * L, w),
                     _floor_row("forward", L, 500 + 900 * L, w, "round 1; variant fp8"),
                     _floor_row("fwdbwd_accumulate", L, 1500 + 2900 * L, w,
                                "round 1; variant fp8"),
                     _floor_row("fwdbwd_accumulate_recompute", L, 2000 + 4100 * L, w,
                                "round 1; variant fp8")]
    p, resid = fit_host_floor(rows)
    assert p["host_layer_fwd_us"] == pytest.approx(300, abs=0.01)
    assert p["host_layer_bwd_us"] == pytest.approx(1000, abs=0.01)
    assert p["host_layer_recompute_us"] == pytest.approx(1200, abs=0.01)
    assert p["host_fixed_fwd_us"] == pytest.approx(500, abs=0.01)
    assert p["host_fixed_bwd_us"] == pytest.approx(1000, abs=0.01)
    assert resid["hostfloor forward"]["max_abs"] < 1e-9
    v, _ = fit_host_variants(rows)
    assert v["host_variant.fp8"] == pytest.approx((3.0, 2.0, 1.0), abs=1e-4)


def test_layer_host_time_adds_up_to_the_measured_floor():
    """A GPT layer's forward and backward dispatch add up to the floor's per-layer values
    (the residual adds and the layout copy have no backward dispatch: their share went
    missing before, 14% of the backward), and with FP8 GEMMs to the floor times the FP8
    ratios of the fit."""
    from simulator.generate.builder import fp8_gpu
    g = get_gpu("h200")
    if not g.host_layer_bwd_us:
        pytest.skip("no host floor in the fit")
    model = with_overrides(get_preset("gpt-7b"), layers=2, hidden=64, ffn=256, heads=2)
    cfg = resolve(model, 1, tp=1, seq_length=64, micro_batch=1, gpu="h200", distributed_optimizer=True)
    for gpu, (rf, rb) in ((None, (1.0, 1.0)), (fp8_gpu(g), g.host_variant("fp8")[:2])):
        cm = ComputeModel(cfg, megatron_params(cfg), gpu=gpu)
        att, mlp = cm.row_costs("attention_layer"), cm.row_costs("mlp_layer")
        assert att[0].host + mlp[0].host == pytest.approx(g.host_layer_fwd_us * rf, rel=1e-9)
        bwd = att[1].host + att[2].host + mlp[1].host + mlp[2].host
        # the floor's backward carries the fp32 accumulation of the layer's 12 tensors
        # (fwdbwd_accumulate); the model dispatches it after the backward, at host_accum_us
        # a tensor, the same with FP8 GEMMs (the accumulation is bf16 into fp32 either way)
        assert bwd + 12 * g.host_accum_us == pytest.approx(g.host_layer_bwd_us * rb, rel=1e-9)
        assert all(k[1] == g.host_accum_us for k in cm.accumulation.kernels)


def test_fp8_gpu_takes_the_fp8_gemm_fit():
    """--fp8 prices GEMMs on the FP8 curve fitted on torch._scaled_mm (run5) at twice the
    bf16 peak (1978.8 TFLOP/s) and adds the casts: a 4096^3 forward GEMM then takes the
    curve's time plus Transformer Engine's cast-transpose of x and W (4 bytes an element,
    2 x 4 x 4096^2 bytes, at the fitted cast's bandwidth); the measured plain-PyTorch layer
    (fp8_transpose "copy") casts at 3 bytes an element and pays strided transposes in the
    backward instead."""
    from simulator.generate.builder import fp8_gpu
    g = get_gpu("h200")
    if not g.fp8_gemm:
        pytest.skip("no FP8 GEMM fit")
    f = fp8_gpu(g)
    assert f.peak_tflops == pytest.approx(1978.8) and f.gemm_dtype == "fp8"
    assert (f.gemm_emax, f.gemm_x0, f.gemm_t0_us) == g.fp8_gemm
    # the measured forward GEMM 4096 x 4096 x 4096 (run5): within 15% of the curve
    rows = [r for r in _kernel_rows() if r["group"] == "gemm_fp8" and r["phase"] == "fwd"
            and (r["m"], r["n"], r["k"]) == ("4096", "4096", "4096")]
    for r in rows:
        assert f.gemm_us(4096, 4096, 4096) == pytest.approx(float(r["dev_us"]), rel=0.15)
    from simulator.generate.compute import _Kernels
    fwd = _Kernels(f).linear(4096, 4096, 4096, False)[0]
    cast = 2 * f.mem_us("cast_fp8.fwd", 4.0 * 4096 * 4096, 4096)
    assert fwd.dev == pytest.approx(f.gemm_us(4096, 4096, 4096) + cast, rel=1e-9)
    from dataclasses import replace
    k = _Kernels(replace(f, fp8_transpose="copy")).linear(4096, 4096, 4096, False)
    assert k[0].dev == pytest.approx(f.gemm_us(4096, 4096, 4096)
                                     + 2 * f.mem_us("cast_fp8.fwd", 3.0 * 4096 ** 2, 4096))
    # backward: the cast of dy and the strided transpose of W (2 bytes an element)
    assert k[1].dev == pytest.approx(f.gemm_us(4096, 4096, 4096)
                                     + f.mem_us("cast_fp8.fwd", 3.0 * 4096 ** 2, 4096)
                                     + f.mem_us("transpose_fp8.fwd", 2.0 * 4096 ** 2, 4096))


def test_unfused_attention_fit_recovers_its_terms():
    """Unfused attention rows built as the batched GEMMs plus 5 us + 0.007 ns per score
    element forward and 20 us + 0.011 ns backward: the fit returns those two lines."""
    pytest.importorskip("scipy")
    from simulator.generate.compute import batched_gemm_us, unfused_gemms_us
    from simulator.generate.kernel_fit import fit_unfused_attention
    g = get_gpu("h200")
    # one batched kernel of 4 GEMMs pays the fixed cost once
    assert batched_gemm_us(g, 1024, 1024, 64, 4) == pytest.approx(
        4 * g.gemm_us(1024, 1024, 64) - 3 * g.gemm_t0_us)
    rows = []
    for b, s, nh in ((1, 1024, 12), (4, 1024, 16), (1, 2048, 16), (4, 2048, 12)):
        scores = b * nh * s * s
        gf, gb = unfused_gemms_us(g, b, s, nh, 64)
        f = gf + 5.0 + 0.007e-3 * scores
        base = {"group": "attention_prof", "op": "unfused_mask", "batch": str(b),
                "seq": str(s), "heads": str(nh), "head_dim": "64", "status": "profiler",
                "source": "x", "rows": "", "cols": "", "numel": "", "m": ""}
        rows.append(dict(base, phase="fwd", dev_us=str(f)))
        rows.append(dict(base, phase="fwdbwd", dev_us=str(f + gb + 20.0 + 0.011e-3 * scores)))
    p, resid = fit_unfused_attention(rows, g)
    assert p["unfused_fwd"] == pytest.approx((5.0, 0.007), abs=1e-3)
    assert p["unfused_bwd"] == pytest.approx((20.0, 0.011), abs=1e-3)
    assert resid["unfused_fwd"]["max_abs"] < 1e-4
