"""The kernel-level prices (traces/h200/compute/kernelprice1): the attention fitted on its own
kernels, the QKV split's kernels and the bias gradient as their own ops, the element-wise
kernels under the power cap; the candidate fit (h200_kernelprice_fit, not shipped) against
its traces, hand-derived cases of each new term."""
import csv
import math
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.generate.gpu import GPUS, GPUSpec, attention_fit_us
from simulator.generate.power import COMPUTE, MEMORY, PowerCap, mem_excess, step_mem_scales

ROOT = Path(__file__).resolve().parent.parent
KP = ROOT / "traces" / "h200" / "compute" / "kernelprice1"


def test_padded_attention_by_hand():
    # fit (t0 10 us, e 0.5, s0 1000, d0 64, b0 8, pad 64) at batch 4 x 16 heads, seq 2048,
    # head 80: forward FLOPs 2 x 64 x 2048^2 x 80 = 4.295e10; the head padded to 128, so the
    # kernel runs 4.295e10 x 128/80 = 6.872e10 FLOPs at 0.5 x 2048/3048 x 128/192 x 64/72 =
    # 0.19909 of 989.4 TFLOP/s: 10 + 6.872e10 / (989.4e6 x 0.19909) = 10 + 348.87 us
    fit = (10.0, 0.5, 1000.0, 64.0, 8.0, 64)
    f = 2.0 * 64 * 2048 ** 2 * 80
    eff = 0.5 * 2048 / 3048 * 128 / 192 * 64 / 72
    assert eff == pytest.approx(0.19909, rel=1e-4)
    assert attention_fit_us(fit, f, 2048, 80, 989.4) == pytest.approx(
        10.0 + f * 128 / 80 / (989.4e6 * eff), rel=1e-12)
    assert attention_fit_us(fit, f, 2048, 80, 989.4) == pytest.approx(358.87, abs=0.01)
    # head 128 pads to itself: the same kernel time for 128/80 of the FLOPs
    f128 = f * 128 / 80
    assert attention_fit_us(fit, f128, 2048, 128, 989.4) == pytest.approx(
        attention_fit_us(fit, f, 2048, 80, 989.4), rel=1e-12)
    # the backward: 2.5 x the FLOPs at the same efficiency, t0 once
    assert attention_fit_us(fit, f, 2048, 80, 989.4, 2.5) - 10.0 == pytest.approx(
        2.5 * 348.87, abs=0.03)


def test_four_term_fit_is_the_sweeps_formula():
    # (t0 9.78, e 0.9745, s0 220, d0 95.68): t0 + F / (peak e s/(s+s0) d/(d+d0)); at 4 x 16
    # heads of 128, seq 2048: F = 6.872e10, eff 0.9745 x 2048/2268 x 128/223.68 = 0.50356,
    # 9.78 + 6.872e10 / (989.4e6 x 0.50356) = 9.78 + 137.93 us
    f = 2.0 * 64 * 2048 ** 2 * 128
    fit = (9.78, 0.9745, 220.0, 95.68)
    assert attention_fit_us(fit, f, 2048, 128, 989.4) == pytest.approx(147.70, abs=0.02)
    spec = replace(GPUS["h200"], attn_fwd=fit, compute_scale=1.0)
    assert spec.attention_us(f, seq=2048, head_dim=128) == pytest.approx(147.70, abs=0.02)


def test_rested_attention_fit_recovers_its_parameters():
    pytest.importorskip("scipy")
    from simulator.generate.kernel_fit import fit_attention_rested
    true_f, true_b = (5.0, 1.2, 700.0, 80.0, 7.0), (8.0, 1.1, 1200.0, 64.0, 6.0)
    rows = []
    for b, nh in ((1, 16), (4, 16), (2, 32), (8, 12)):
        for s in (1024, 2048, 4096):
            for hd in (64, 80, 96, 128):
                fl = 2.0 * b * nh * s * s * hd
                base = {"group": "attention_rest", "op": "sdpa_causal", "batch": b, "seq": s,
                        "heads": nh, "head_dim": hd, "flops": str(fl)}
                rows.append({**base, "phase": "fwd", "dev_us": str(
                    attention_fit_us(true_f + (64,), fl, s, hd, 989.4))})
                rows.append({**base, "phase": "bwd", "dev_us": str(
                    attention_fit_us(true_b + (64,), fl, s, hd, 989.4, 2.5))})
    params, resid = fit_attention_rested(rows, 989.4)
    assert params["attn"][-1] == 64 and params["attn_bwd"][-1] == 64
    assert resid["attn"]["max_abs"] < 1e-3 and resid["attn_bwd"]["max_abs"] < 1e-3
    # the time, not each parameter, is what the data pins down: within 0.1% everywhere
    fl = 2.0 * 64 * 2048 ** 2 * 80
    assert attention_fit_us(params["attn_bwd"], fl, 2048, 80, 989.4, 2.5) == pytest.approx(
        attention_fit_us(true_b + (64,), fl, 2048, 80, 989.4, 2.5), rel=1e-3)


def test_split_and_bias_fits_on_hand_made_rows():
    pytest.importorskip("scipy")
    from simulator.generate.kernel_fit import fit_split_and_bias
    rows = []
    for n in (2 ** 20, 2 ** 22, 2 ** 24, 2 ** 26):
        # fill 2 us + bytes at 3000 GB/s (3e6 bytes a us): 6 n bytes; copy 1 us + 4 n at
        # 1500 GB/s; add 6 n x 3 at 4500 GB/s
        for op, t0, bw, nb in (("fill", 2.0, 3000.0, 6 * n), ("copy", 1.0, 1500.0, 4 * n),
                               ("add", 0.5, 4500.0, 18 * n)):
            rows.append({"group": "qkv_split", "op": op, "status": "ok", "bytes": str(nb),
                         "dev_us": str(t0 + nb / (bw * 1e3))})
    for T in (1024, 4096, 16384):
        for width in (1024, 4096):
            # 5 us + 2 T n bytes at 4000 GB/s x n/(n+1000)
            nb = 2 * T * width
            rows.append({"group": "bias_grad", "op": "bias_grad", "status": "ok",
                         "bytes": str(nb), "cols": str(width),
                         "dev_us": str(5.0 + nb / (4000e3 * width / (width + 1000.0)))})
    p, _ = fit_split_and_bias(rows)
    assert p["qkv_fill.fwd"][:2] == pytest.approx((2.0, 3000.0), rel=1e-3)
    assert p["qkv_copy.fwd"][:2] == pytest.approx((1.0, 1500.0), rel=1e-3)
    assert p["qkv_add.fwd"][:2] == pytest.approx((0.5, 4500.0), rel=1e-2)
    assert p["bias_grad.fwd"] == pytest.approx((5.0, 4000.0, 1000.0), rel=1e-2)


def _kp_rows():
    with open(KP / "kernels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _att(rows, phase, b, s, nh, hd, op="sdpa_causal"):
    return next(float(r["dev_us"]) for r in rows if r["group"] == "attention_rest"
                and r["op"] == op and r["phase"] == phase
                and (r["batch"], r["seq"], r["heads"], r["head_dim"]) == tuple(
                    map(str, (b, s, nh, hd))))


def test_kernelprice1_backward_alone_and_the_split():
    """The measured facts the candidate rests on (kernelprice1, rested, profiler): at 1.3B
    micro-batch 4 the backward's kernels take 446.9 us (contiguous q, k, v), 445.5 over the
    fused QKV's views and 442.9 inside the sweep's backward into the fused QKV, whose split
    kernels add 91.7 (3 fills) + 126.7 (3 copies) + 136.6 (2 adds) = 355.0 us: the sweep's
    backward is the attention's and the split's; head 80 (2.7B) runs at the time of head 128
    (padded): 412.7 against 446.2 us at 4 x 16 heads, seq 2048, head 64 at 294.6."""
    rows = _kp_rows()
    assert _att(rows, "bwd", 4, 2048, 16, 128) == pytest.approx(446.862)
    assert _att(rows, "bwd_views", 4, 2048, 16, 128) == pytest.approx(445.475)
    assert _att(rows, "bwd_fused", 4, 2048, 16, 128) == pytest.approx(442.86)
    split = sum(_att(rows, "bwd_fused", 4, 2048, 16, 128, f"split_{k}")
                for k in ("fill", "copy", "add"))
    assert split == pytest.approx(91.743 + 126.719 + 136.575)
    t = {hd: _att(rows, "bwd", 4, 2048, 16, hd) for hd in (64, 80, 96, 112, 128)}
    assert t[80] / t[128] == pytest.approx(412.7 / 446.2, abs=0.01)
    assert t[64] / t[128] < 0.7 < t[80] / t[128]
    # the views and the contiguous tensors time alike (median ratio over the 75 cases)
    cases = {(r["batch"], r["seq"], r["heads"], r["head_dim"]) for r in rows
             if r["group"] == "attention_rest"}
    ratios = sorted(_att(rows, "bwd_views", *map(int, c)) / _att(rows, "bwd", *map(int, c))
                    for c in cases)
    assert len(ratios) == 75 and ratios[len(ratios) // 2] == pytest.approx(1.0, abs=0.01)


def test_candidate_is_the_fit_of_its_traces():
    pytest.importorskip("scipy")
    from simulator.generate.h200_kernelprice_fit import (H200_KERNELPRICE_FIT,
                                                         H200_KERNELPRICE_POWER)
    from simulator.generate.h200_power_fit import H200_POWER_CAP
    from simulator.generate.kernel_fit import default_paths, fit_kernels, spec_kwargs
    from simulator.generate.power_fit import fit_mem_cap
    params, resid = fit_kernels(default_paths(ROOT), kernel_prices=True)
    refit = spec_kwargs(params)
    assert refit.keys() == H200_KERNELPRICE_FIT.keys()
    for key in ("attn_fwd", "attn_bwd"):
        assert refit[key] == pytest.approx(H200_KERNELPRICE_FIT[key], rel=1e-3), key
    mem = dict((m[0], m[1:]) for m in refit["mem_ops"])
    shipped = dict((m[0], m[1:]) for m in H200_KERNELPRICE_FIT["mem_ops"])
    for op in ("qkv_fill.fwd", "qkv_copy.fwd", "qkv_add.fwd", "bias_grad.fwd"):
        assert mem[op] == pytest.approx(shipped[op], rel=1e-3), op
    # the attention on its own kernels: 75 shapes each way, median 2.4%
    assert resid["attn_bwd"]["n"] == 75 and resid["attn_bwd"]["median_abs"] < 0.03
    assert resid["attn"]["median_abs"] < 0.03
    cap, stats = fit_mem_cap(str(KP), H200_POWER_CAP)
    assert cap.mem_threshold_w == H200_KERNELPRICE_POWER["mem_threshold_w"]
    assert cap.mem_sens == H200_KERNELPRICE_POWER["mem_sens"]
    assert stats["eltcap_points"] == 36 and stats["eltcap_median_abs"] < 0.02


def test_candidate_prices_the_measured_kernels():
    """The candidate's backward at 1.3B b4 (measured 446.9 us) and 2.7B b1 (32 heads of 80,
    235.7 us) within 5%; the shipped fit's 836 us holds the split's kernels (+87%); the
    split's copy at 1.3B b4 within 12% of its own measurement (41.5 us)."""
    from simulator.generate.gpu import h200_kernel_prices
    cand, shipped = h200_kernel_prices(), GPUS["h200"]
    f = 2.0 * 64 * 2048 ** 2 * 128
    assert cand.attention_us(2.5 * f, True, 2048, 128) == pytest.approx(446.9, rel=0.05)
    f80 = 2.0 * 32 * 2048 ** 2 * 80
    assert cand.attention_us(2.5 * f80, True, 2048, 80) == pytest.approx(235.7, rel=0.05)
    assert shipped.attention_us(2.5 * f, True, 2048, 128) == pytest.approx(836.3, abs=0.5)
    assert cand.mem_us("qkv_copy.fwd", 4 * 8192 * 2048) == pytest.approx(41.5, rel=0.12)
    # the shipped default keeps the sweep's fit (docs/compute-model.md: validate got worse)
    assert not shipped.has_mem_op("qkv_copy.fwd") and shipped.power_cap.mem_sens == ()


def test_split_kernels_sit_in_the_backward():
    """With the split measured as its own ops, the layer's QKV split is 3 fills, 3 copies and
    2 adds in the backward and nothing in the forward: raising each of their fixed costs by
    1 us adds 8 us to the attention body's input gradient and nothing elsewhere."""
    from simulator.generate import get_preset, resolve, with_overrides
    from simulator.generate.compute import ComputeModel
    from simulator.generate.sizes import megatron_params
    model = with_overrides(get_preset("gpt-7b"), layers=2, hidden=1024, ffn=4096, heads=16,
                           vocab=50257)
    cfg = resolve(model, 1, tp=1, micro_batch=2, global_batch=2, seq_length=1024, gpu="h200")
    ops = (("qkv_fill.fwd", 1.0, 3000.0, 0.0), ("qkv_copy.fwd", 1.0, 1800.0, 0.0),
           ("qkv_add.fwd", 1.0, 4400.0, 0.0))
    base = replace(GPUS["h200"], power_cap=None, mem_ops=GPUS["h200"].mem_ops + ops)
    more = replace(base, mem_ops=GPUS["h200"].mem_ops + tuple(
        (n, t0 + 1.0, bw, c0) for n, t0, bw, c0 in ops))
    a = ComputeModel(cfg, megatron_params(cfg), base).costs["attn_body"]
    b = ComputeModel(cfg, megatron_params(cfg), more).costs["attn_body"]
    assert b[1].dev - a[1].dev == pytest.approx(8.0, abs=1e-9)
    assert b[0].dev == pytest.approx(a[0].dev, abs=1e-12)
    assert b[2].dev == pytest.approx(a[2].dev, abs=1e-12)


# cap 700 W, idle 100, memory-bound 400, a GEMM 900; the element-wise law from 500 W
CAP = PowerCap(cap_w=700.0, idle_w=100.0, mem_w=400.0, compute_w=900.0, gain=0.5, tau_ms=30.0,
               mem_threshold_w=500.0, mem_sens=(("gelu.fwd", 0.2), ("add.fwd", 0.0)))


def test_memory_bound_slowdown_follows_the_mean_demand():
    # 1 ms periods, half GEMM half memory-bound: the filter holds 0.5 x 900 + 0.5 x 400 =
    # 650 W; excess (650 - 500) / 700 = 0.2143; GELU x (1 + 0.2 x 0.2143) = 1.04286; the
    # add (sensitivity 0) is not named
    pattern = [(500.0, COMPUTE), (500.0, MEMORY)] * 4000
    scales = dict(step_mem_scales(CAP, pattern))
    assert scales.keys() == {"gelu.fwd"}
    assert scales["gelu.fwd"] == pytest.approx(1 + 0.2 * 150 / 700, rel=2e-3)
    # memory-bound alone: 400 W never passes 500 W
    assert step_mem_scales(CAP, [(1e6, MEMORY)]) == ()
    # no law: nothing slows
    assert step_mem_scales(replace(CAP, mem_sens=()), pattern) == ()


def test_mem_excess_of_one_segment_from_a_held_filter():
    # the filter held at 800 W, 3 ms memory-bound (400 W, tau 30 ms): p(t) = 400 + 400
    # exp(-t/30 ms), above 500 W throughout (761.9 W at 3 ms); the excess integrates to
    # ((400 - 500) x 3000 + 400 x 30000 (1 - exp(-0.1))) / 700 = 1202.8 us
    busy, excess, p = mem_excess(CAP, [(3000.0, MEMORY)], 800.0)
    assert busy == pytest.approx(3000.0)
    assert excess == pytest.approx((-100.0 * 3000 + 400.0 * 30000 * (1 - math.exp(-0.1)))
                                   / 700, rel=1e-9)
    assert excess == pytest.approx(1202.79, abs=0.01)
    assert p == pytest.approx(400 + 400 * math.exp(-0.1), rel=1e-12)


def test_mem_scales_multiply_the_named_ops_only():
    g = GPUSpec("x", 1000.0, 4000.0, 80, mem_ops=(("gelu.fwd", 2.0, 4000.0, 0.0),
                                                  ("add.fwd", 1.0, 5000.0, 0.0)),
                mem_scales=(("gelu.fwd", 1.1),))
    # gelu: (2 + 4e6 / 4e6) x 1.1 = 3.3 us; add: 1 + 5e6 / 5e6 = 2 us
    assert g.mem_us("gelu.fwd", 4e6) == pytest.approx(3.3)
    assert g.mem_us("add.fwd", 5e6) == pytest.approx(2.0)


def test_turnaround_on_the_cupti_timed_prices():
    """``h200_kernel_prices(turnaround=True)`` adds the device's turnaround between kernels
    (1.22 us, turnaround1: the median over its element-wise, layer-norm and 2048^3 GEMM chains
    of period minus CUPTI duration: 1.079, 0.883, 1.684, 1.735, 1.357, 1.051 -> (1.079 +
    1.357) / 2 = 1.218) once per device activity of the CUPTI-timed ops: the flash forward's
    memset + kernel (2), the backward's memset, dot(dO, O), kernel and dQ conversion (4), the
    QKV split's fill, copy, add and the bias gradient (1 each); the event-timed sweep prices
    (a GEMM, the layer norm) already hold it and do not move."""
    from simulator.generate.gpu import h200_kernel_prices
    plain, turned = h200_kernel_prices(), h200_kernel_prices(turnaround=True)
    f = 2.0 * 64 * 2048 ** 2 * 128
    assert turned.attention_us(f, False, 2048, 128) - plain.attention_us(f, False, 2048, 128) \
        == pytest.approx(2 * 1.22, abs=1e-9)
    assert turned.attention_us(2.5 * f, True, 2048, 128) \
        - plain.attention_us(2.5 * f, True, 2048, 128) == pytest.approx(4 * 1.22, abs=1e-9)
    for op in ("qkv_fill.fwd", "qkv_copy.fwd", "qkv_add.fwd", "bias_grad.fwd"):
        assert turned.mem_us(op, 1 << 24, 4096) - plain.mem_us(op, 1 << 24, 4096) \
            == pytest.approx(1.22, abs=1e-9)
    assert turned.mem_us("layer_norm.fwd", 1 << 24) == plain.mem_us("layer_norm.fwd", 1 << 24)
    assert turned.gemm_us(8192, 2048, 2048) == plain.gemm_us(8192, 2048, 2048)
