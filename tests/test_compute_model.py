"""The kernel-level compute model: its fit to the H200 kernel sweep, its launch floor, the
derived GPUs, and the measured training steps it predicts (traces/h200/compute/)."""
from __future__ import annotations

import csv
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


def test_shipped_h200_parameters_are_the_fit_of_the_sweep():
    pytest.importorskip("scipy")
    from simulator.generate.h200_fit import H200_KERNEL_FIT
    from simulator.generate.kernel_fit import default_paths, fit_kernels, spec_kwargs
    params, resid = fit_kernels(default_paths(ROOT))
    assert spec_kwargs(params) == H200_KERNEL_FIT
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
    """The optimizer step (norm, clip, fused Adam, bf16 copy) over the 1.3B model's 1.32e9
    parameters in 292 tensors: measured 15.3 ms (run1) and 15.6 ms (run2)."""
    rows = [r for r in _kernel_rows() if r["group"] == "optimizer" and r["op"] == "step"
            and r["numel"] == "1320013824"]
    if not rows:
        pytest.skip("no kernel sweep")
    g = get_gpu("h200")
    for r in rows:
        assert g.optimizer_us(1320013824, 292) == pytest.approx(float(r["dev_us"]), rel=0.05)


def test_a100_and_h100_are_derived_from_the_h200_fit_and_published_peaks():
    h200, a100, h100 = get_gpu("h200"), get_gpu("a100"), get_gpu("h100")
    # memory-bound: the measured share of bandwidth, so bandwidth x 2039/4800
    ln200 = dict((n, bw) for n, _, bw, _ in h200.mem_ops)["layer_norm.fwd"]
    ln100 = dict((n, bw) for n, _, bw, _ in a100.mem_ops)["layer_norm.fwd"]
    assert ln100 == pytest.approx(ln200 * 2039 / 4800)
    ln_h100 = dict((n, bw) for n, _, bw, _ in h100.mem_ops)["layer_norm.fwd"]
    assert ln_h100 == pytest.approx(ln200 * 3350 / 4800)
    # a compute-bound GEMM (8192^3, 1.1 PFLOP... 1.1e12 FLOP): the same share of peak, so the
    # time scales with 989.4 / 312 once the 3.4 us fixed cost is taken out
    t200 = h200.gemm_us(8192, 8192, 8192) - h200.gemm_t0_us
    t100 = a100.gemm_us(8192, 8192, 8192) - a100.gemm_t0_us
    assert t100 / t200 == pytest.approx(989.4 / 312.0, rel=1e-6)
    # host (dispatch) times do not depend on the GPU
    assert a100.host_ops == h200.host_ops and h100.host_ops == h200.host_ops
    assert "derived" in a100.derivation and "fitted" in h200.derivation


def test_a_tiny_model_runs_at_the_host_floor():
    """Hidden 64, 64 tokens: every kernel takes a few microseconds on the GPU, far less than
    its dispatch, so a layer's forward is the measured host floor of a layer (scaled per op:
    host_scales) and never less than its kernels' launch time."""
    g = get_gpu("h200")
    model = with_overrides(get_preset("gpt-7b"), layers=2, hidden=64, ffn=256, heads=2)
    cfg = resolve(model, 1, tp=1, seq_length=64, micro_batch=1, gpu="h200")
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
    cfg = resolve(model, 1, tp=1, seq_length=2048, micro_batch=4, gpu="h200")
    cm = ComputeModel(cfg, megatron_params(cfg))
    f = cm.row_costs("mlp_layer")[0]
    assert f.dev > 3 * f.host
    # 2 GEMMs of 2 x 8192 x 16384 x 4096 FLOPs = 2.2 TFLOP at 0.77 x 989 TFLOP/s ~ 2.9 ms
    assert 2.5e3 < f.dev < 3.6e3


def test_generated_step_reports_gpu_derivation():
    cfg = resolve(get_preset("gpt-7b"), 1, tp=1, seq_length=1024, micro_batch=1, gpu="a100")
    gen = generate(cfg, check_memory=False)
    assert sum(r.fwd_ns for r in gen.workload.rows) > 0
    assert GPUS["a100"].derivation.startswith("derived")


def test_measured_training_steps_against_generate_and_simulate():
    """`collsim validate`'s H200 cases (docs/validation.md). Without recompute (18 cases):
    median |error| 3.0%, maximum 24.0% (gpt-125m-s1024-b1, host-bound: docs/compute-model.md).
    With full recompute (8), every layer's forward replayed whole: median 4.0%, 760M and up
    within -5.4% .. -1.8%; the two host-bound small ones (125M and 350M, runs spread 25-34%)
    +10.8% and +13.4%."""
    from simulator.calibration import load_calibration
    from simulator.cluster import Cluster
    from simulator.validation import h200_train
    from simulator.validation.common import DEFAULT_CALIBRATION
    cases = h200_train.measured_cases()
    if not cases:
        pytest.skip("no measured steps")
    cluster = Cluster()
    cost = load_calibration(DEFAULT_CALIBRATION, cluster=cluster)
    res = [r for r in h200_train.run(cost, cluster) if r.primary]
    assert len(res) == len(cases) == 26
    plain = sorted(abs(r.error) for r in res if not r.extra["recompute"])
    assert len(plain) == 18
    median = (plain[8] + plain[9]) / 2
    assert median <= MEDIAN_TARGET and plain[-1] <= MAX_TARGET
    rc = sorted(abs(r.error) for r in res if r.extra["recompute"])
    assert len(rc) == 8
    assert (rc[3] + rc[4]) / 2 <= MEDIAN_TARGET and rc[-1] <= MAX_TARGET


# what the validation gives today (docs/validation.md); a model change that worsens it fails
MEDIAN_TARGET = 0.05
MAX_TARGET = 0.25   # today 24.0% (gpt-125m-s1024-b1, host-bound; its runs spread 20%)
