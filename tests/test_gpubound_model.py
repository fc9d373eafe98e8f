"""The compute model's terms for GPU-bound steps: the shape-aware GEMM curve (the reduction's
own half-efficiency point, the dgrad and wgrad layouts), gradient clipping's scale in the
optimizer, fp16's kernels and its loss-scaler pass (traces/h200/compute/gpubound1)."""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.generate import get_preset, resolve, with_overrides
from simulator.generate.features import Features
from simulator.generate.gpu import GPUSpec, fp16_spec, get_gpu

ROOT = Path(__file__).resolve().parent.parent
GB1 = ROOT / "traces" / "h200" / "compute" / "gpubound1"

# 1 TFLOP/s = 1e6 FLOP a microsecond; an HBM so fast that no GEMM here is memory-bound
TOY = GPUSpec("toy", peak_tflops=1.0, hbm_gbps=1e12, hbm_gib=1, gemm_emax=0.5, gemm_x0=0.0,
              gemm_t0_us=1.0, gemm_xk=100.0, gemm_layouts=(("wgrad", 0.8),))


def test_gemm_curve_prices_the_reduction_and_the_layout():
    # 1000 x 1000 x 100: 2e8 FLOP; efficiency 0.5 x 1 x 1 x 100/(100+100) = 0.25 forward,
    # x 0.8 = 0.2 as wgrad: 1 + 2e8 / (1e6 x 0.25) = 801 us, 1 + 2e8 / (1e6 x 0.2) = 1001 us
    assert TOY.gemm_us(1000, 1000, 100) == pytest.approx(801.0)
    assert TOY.gemm_us(1000, 1000, 100, layout="dgrad") == pytest.approx(801.0)
    assert TOY.gemm_us(1000, 1000, 100, layout="wgrad") == pytest.approx(1001.0)
    # the same GEMM with the long dimension as the reduction: 100 x 1000 x 1000,
    # 0.5 x 1000/1100 = 0.4545: 1 + 2e8 / 0.4545e6 = 441 us (the symmetric curve: 801 both)
    assert TOY.gemm_us(100, 1000, 1000) == pytest.approx(1 + 2e8 / (1e6 * 0.5 * 1000 / 1100))
    # without gemm_xk the curve is the symmetric one of x0: x0 = 100 on every axis,
    # 0.5 x (1000/1100)^2 x 0.5 = 0.2066 -> 1 + 2e8 / 0.2066e6 = 969.0 us
    sym = replace(TOY, gemm_x0=100.0, gemm_xk=None, gemm_layouts=())
    assert sym.gemm_us(1000, 1000, 100) == pytest.approx(1 + 2e8 / (1e6 * 0.5 * (1000 / 1100)
                                                                   ** 2 * 0.5))


def test_shape_aware_fit_recovers_known_terms():
    pytest.importorskip("scipy")
    from simulator.generate.gpu import fit_gemm_curve
    from simulator.measurements import Measurement
    # synthetic timings written out by hand: e_max 0.75, m/n half point 0, reduction half
    # point 120, t0 4 us, wgrad x0.9, dgrad x1.0, at the H200's 989.4 TFLOP/s (large shapes
    # only, so no GEMM is memory-bound)
    ms = []
    for m, n, k in [(4096, 4096, 256), (8192, 4096, 512), (4096, 16384, 1024), (2048, 8192, 4096),
                    (16384, 4096, 128), (8192, 8192, 2048), (4096, 4096, 8192)]:
        for layout, f in (("fwd", 1.0), ("dgrad", 1.0), ("wgrad", 0.9)):
            eff = 0.75 * k / (k + 120.0) * f
            t = 4.0 + 2.0 * m * n * k / (989.4e6 * eff)
            ms.append(Measurement(op="gemm", ranks=1, size_bytes=0, time_us=t,
                                  extra={"m": m, "n": n, "k": k, "layout": layout}))
    g, stats = fit_gemm_curve(ms, get_gpu("h200"), shape_aware=True)
    assert g.gemm_emax == pytest.approx(0.75, rel=1e-3)
    assert g.gemm_xk == pytest.approx(120.0, rel=1e-2)
    assert dict(g.gemm_layouts)["wgrad"] == pytest.approx(0.9, rel=1e-3)
    assert dict(g.gemm_layouts)["dgrad"] == pytest.approx(1.0, rel=1e-3)
    assert stats["max_abs_err"] < 1e-3 and stats["wgrad_n"] == 7


def test_clipping_scale_is_in_the_optimizer_step():
    g = get_gpu("h200")
    # the profiled 6.7B step's _foreach_mul_ over 6,666,985,472 fp32 main gradients: 14505.3 us
    # (gpubound1 ops.csv); the fit's 0.002177 ns a parameter gives 14514 us
    assert g.opt_clip_ns == pytest.approx(0.002177, rel=0.01)
    assert 6666985472 * g.opt_clip_ns / 1e3 == pytest.approx(14505.3, rel=0.01)
    plain = replace(g, opt_clip_ns=0.0)
    assert g.optimizer_us(1e9, 100) - plain.optimizer_us(1e9, 100) == pytest.approx(
        1e9 * g.opt_clip_ns / 1e3)
    # with it the 6.7B step's optimizer matches the step after a real backward, timed alone
    # from a spun GPU (opt_context, clipping: 86.51 ms); the sweep's steps without the scale
    # took 72.6 and 74.0 ms (run1, run2)
    assert g.optimizer_us(6666985472, 388) == pytest.approx(86512.7, rel=0.03)


def test_fp16_spec_slows_each_kernel_class_by_its_factor():
    g = replace(get_gpu("h200"), fp16_kernels=(1.1, 1.2, 1.05))
    h = fp16_spec(g)
    # GEMM: the share of peak / 1.1, so the FLOP time x 1.1 (t0 stays)
    t, t16 = (x.gemm_us(8192, 8192, 8192) - x.gemm_t0_us for x in (g, h))
    assert t16 == pytest.approx(1.1 * t)
    # attention (shape-aware fit): beyond its t0, x 1.2
    a, a16 = (x.attention_us(1e12, seq=2048, head_dim=128) for x in (g, h))
    t0 = g.attn_fwd[0]
    assert a16 - t0 == pytest.approx(1.2 * (a - t0))
    # a memory-bound kernel: beyond its t0, x 1.05; the optimizer as bf16's
    gelu = dict((n, t0) for n, t0, _, _ in g.mem_ops)["gelu.fwd"]
    m, m16 = (x.mem_us("gelu.fwd", 1e9) for x in (g, h))
    assert m16 - gelu == pytest.approx(1.05 * (m - gelu))
    assert h.optimizer_us(1e9, 100) == g.optimizer_us(1e9, 100)
    # --fp16 gets the fp16 spec from its config; bf16 the plain one
    model = with_overrides(get_preset("gpt-7b"), layers=2, hidden=512, ffn=2048, heads=8)
    cfg16 = resolve(model, 1, tp=1, gpu="h200", features=Features(params_dtype="fp16"))
    cfg = resolve(model, 1, tp=1, gpu="h200")
    assert cfg16.gpu_spec.gemm_dtype == "fp16" and cfg.gpu_spec.gemm_dtype == "bf16"
    f_gemm = get_gpu("h200").fp16_kernels[0]
    assert cfg16.gpu_spec.gemm_emax == pytest.approx(cfg.gpu_spec.gemm_emax / f_gemm)


def test_fp16_factors_are_the_profiled_kernels_ratios(tmp_path):
    from simulator.generate.kernel_fit import fit_step_profiles
    d = tmp_path / "gpubound9"
    d.mkdir()
    with open(d / "steps.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "dtype", "params", "status"])
        for dt in ("bf16", "fp16"):
            w.writerow([f"a-{dt}", dt, 1000, "ok"])
            w.writerow([f"b-{dt}", dt, 3000, "ok"])
        w.writerow(["c-bf16", "bf16", 5000, "ok"])
    # GEMMs 100 + 50 us bf16, 110 + 52 fp16: 162 / 150 = 1.08; attention 10 -> 12: 1.2;
    # a layer norm 20 + 20 -> 21 + 21: 1.05; clipping's scale 2, 6 and 10 us over 1000, 3000
    # and 5000 parameters: 2 ns a parameter (the bf16 steps; c has no fp16 pair)
    ops = [("a", "bf16", "aten::addmm", 100), ("b", "bf16", "aten::mm", 50),
           ("a", "fp16", "aten::addmm", 110), ("b", "fp16", "aten::mm", 52),
           ("a", "bf16", "aten::_cudnn_attention_backward", 10),
           ("a", "fp16", "aten::_cudnn_attention_backward", 12),
           ("a", "bf16", "aten::native_layer_norm", 20), ("b", "bf16", "aten::native_layer_norm", 20),
           ("a", "fp16", "aten::native_layer_norm", 21), ("b", "fp16", "aten::native_layer_norm", 21),
           ("a", "bf16", "aten::_foreach_mul_", 2), ("b", "bf16", "aten::_foreach_mul_", 6),
           ("c", "bf16", "aten::_foreach_mul_", 10), ("c", "bf16", "aten::mm", 999),
           ("a", "fp16", "aten::_amp_foreach_non_finite_check_and_unscale_", 9)]
    with open(d / "ops.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "op", "input_shapes", "count", "device_us"])
        for case, dt, op, us in ops:
            w.writerow([f"{case}-{dt}", op, "[]", 1, us])
    p, _ = fit_step_profiles([d])
    assert p["fp16_kernels"] == (1.08, 1.2, 1.05)
    assert p["opt_clip_ns"] == pytest.approx(2.0)


def test_unscale_against_its_measurement():
    """fp16's unscale-and-check over the 1.3B model's fp32 main gradients: 3065.3 us measured
    (gpubound1 fp16_opt), the fit's 0.002326 ns a parameter within 2%."""
    rows = []
    if (GB1 / "kernels.csv").exists():
        with open(GB1 / "kernels.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["op"] == "unscale_fp32"
                    and r["numel"] == "1320013824"]
    if not rows:
        pytest.skip("no gpubound1 measurements")
    g = get_gpu("h200")
    assert 1320013824 * g.opt_unscale_ns / 1e3 == pytest.approx(float(rows[0]["dev_us"]),
                                                                rel=0.02)
