"""The optimizer step in its measured parts (simulator/generate/optimizer_step.py), replayed
behind the step's last backward (host_sync.step_tail); fitted on
traces/h200/compute/optstep1 (kernel_fit.fit_optimizer_parts)."""
from __future__ import annotations

import csv
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from simulator.generate.compute import Cost
from simulator.generate.gpu import GPUS, GPUSpec
from simulator.generate.host_sync import run, step_tail, sync
from simulator.generate.optimizer_step import launches, step_kernels

ROOT = Path(__file__).resolve().parents[1]
OPTSTEP = ROOT / "traces" / "h200" / "compute" / "optstep1" / "optstep.csv"


def test_launches_follow_multi_tensor_apply_chunks():
    # 125M: 126835200 / 65536 + 148 / 2 = 2009.4 chunks, / 320 a launch -> 7 (above
    # 148 / 110 -> 2 and 148 / 36 -> 5): run10's profiled 125M step has 7 fused Adam kernels
    assert launches(126835200, 148, 1) == 7
    assert launches(126835200, 148, 4) == 7
    # tiny tensors: the tensor limit decides, 200 / 110 -> 2 (one list), 200 / 36 -> 6 (four)
    assert launches(1000, 200, 1) == 2
    assert launches(1000, 200, 4) == 6
    assert launches(0, 0) == 0


def _hand_spec() -> GPUSpec:
    h200 = GPUS["h200"]
    ops = tuple((n, 18.0 if n == "float.fwd" else us) for n, us in h200.host_ops)
    return replace(h200, opt_host=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
                   opt_dev=(10.0, 0.001, 20.0, 0.01), opt_clip_ns=0.002, host_ops=ops)


def test_step_kernels_by_hand():
    # 1e6 parameters in 10 tensors: one launch each op (15.3 + 5 chunks, 10 tensors).
    # norm: host 1 x 10 + 2 x 1 = 12, device 10 + 0.001 x 1e3 = 11; the read 18 (float.fwd);
    # scale: host 3 x 10 + 4 = 34, device 0.002 x 1e3 = 2; Adam's Python 5 + 6 x 10 = 65,
    # its launch 7 and device 20 + 0.01 x 1e3 - 2 = 28. From idle: host 12, GPU 23; the read
    # waits for 23 -> 41; scale issued at 75, done 77; Adam's Python to 140, issued at 147,
    # done at 175.
    k = step_kernels(_hand_spec(), 1e6, 10)
    assert k == ((11.0, 12.0), sync(18.0), (2.0, 34.0), (0.0, 65.0), (28.0, 7.0))
    assert Cost(k).us == pytest.approx(175.0)
    # without clipping's scale: the read ends at 41, Python to 106, issued 113, done 141
    assert Cost(step_kernels(_hand_spec(), 1e6, 10, clip=False)).us == pytest.approx(141.0)
    # Adam 1.5x as long (opt_adam_factor), the copy not: Adam's share of the 28 by bytes is
    # 28 / (28 + 6), so 28 x (1 + 0.5 x 28 / 34) = 39.529 from 113: 152.53
    slow = replace(_hand_spec(), opt_adam_factor=1.5)
    assert step_kernels(slow, 1e6, 10, clip=False)[-1][0] == pytest.approx(39.5294, abs=1e-4)
    assert Cost(step_kernels(slow, 1e6, 10, clip=False)).us == pytest.approx(152.5294, abs=1e-4)
    assert step_kernels(replace(_hand_spec(), opt_host=()), 1e6, 10) == ()


def test_queued_backward_hides_the_norms_enqueue():
    # a GPU-bound backward: host at 2, GPU free at 102 after forward (0, 1) + backward
    # (100, 1). Behind it the step's norm (5 device, 50 host) is issued at 52 and runs at
    # 102-107; the read waits for 107 -> 117; then (20, 30): issued 147, done 167: 65 more.
    # From an idle host and GPU the same step takes 50 + 5 + 10 + 30 + 20 = 115.
    after = ((5.0, 50.0), sync(10.0), (20.0, 30.0))
    assert step_tail(((0.0, 1.0),), ((100.0, 1.0),), 1, after) == pytest.approx(65.0)
    assert run(after)[1] == pytest.approx(115.0)
    # host-bound (backward 1 device, 100 host): host at 101, GPU free at 102; the norm is
    # issued at 151 and done at 156, the read to 166, then 196 / 216: 114, the step alone
    # less the last backward kernel's 1 us that ran under the norm's enqueue
    assert step_tail(((0.0, 1.0),), ((1.0, 100.0),), 1, after) == pytest.approx(114.0)


def _optstep_rows():
    if not OPTSTEP.exists():
        pytest.skip("no optstep1 measurement")
    with open(OPTSTEP, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("model,layers,params,tensors", [
    ("gpt-125m", 12, 126835200, 148), ("gpt-350m", 24, 358017024, 292)])
def test_step_after_a_backward_against_its_measurement(model, layers, params, tensors):
    """optstep1, after a host-bound backward (nothing queued): measured 2.63 ms (125M) and
    6.16 ms (350M), the median over 10 rounds. The shipped parts, their host carried to that
    machine by its floor GPT (`floor` rows) over the fitted floor line, within 10%; the
    kernel sweep's back-to-back step (the model before) is no closer on 125M."""
    rows = [r for r in _optstep_rows() if r["model"] == model]
    measured = statistics.median(float(r["total_us"]) for r in rows
                                 if r["mode"] == "after_backward")
    floor = statistics.median(float(r["total_us"]) for r in rows if r["mode"] == "floor")
    g = GPUS["h200"]
    fitted = g.host_fixed_fwd_us + g.host_fixed_bwd_us + layers * (
        g.host_layer_fwd_us + g.host_layer_bwd_us)
    spec = replace(g, opt_host=tuple(x * floor / fitted for x in g.opt_host))
    assert Cost(step_kernels(spec, params, tensors)).us == pytest.approx(measured, rel=0.10)


def test_device_halves_against_their_measurement():
    """optstep1 `device` rows (behind a spin, no host gaps), 1.3B (1320013824 parameters):
    the norm 1590 us, the rest 15486 us (medians); the fit within 2%."""
    rows = [r for r in _optstep_rows() if r["model"] == "gpt-1.3b" and r["mode"] == "device"]
    d0, dns, p0, pns = GPUS["h200"].opt_dev
    norm = statistics.median(float(r["dev_norm_us"]) for r in rows)
    post = statistics.median(float(r["dev_post_us"]) for r in rows)
    assert d0 + dns * 1320013824 / 1e3 == pytest.approx(norm, rel=0.02)
    assert p0 + pns * 1320013824 / 1e3 == pytest.approx(post, rel=0.02)


def test_fit_recovers_hand_made_parts():
    """Rows made from known parts (norm 3 us a tensor + 6 a launch, scale 0.5 + 7, Adam 100 +
    5 a tensor + 9 a launch; device norm 30 us + 0.001 ns a parameter, rest 60 + 0.012) on a
    machine whose floor equals the fitted line (no scaling): the fit returns them."""
    from simulator.generate.kernel_fit import fit_optimizer_parts
    floor = {"host_layer_fwd_us": 500.0, "host_layer_bwd_us": 1000.0,
             "host_fixed_fwd_us": 300.0, "host_fixed_bwd_us": 1200.0}
    rows = []
    for name, layers, P, T in (("a", 12, 1.27e8, 148), ("b", 24, 3.58e8, 292),
                               ("c", 24, 1.32e9, 292), ("d", 32, 2.66e9, 388)):
        n1, n4 = launches(P, T, 1), launches(P, T, 4)
        base = {"source": "x", "model": name, "round": "1", "layers": str(layers),
                "params": str(P), "tensors": str(T)}
        rows.append({**base, "mode": "after_backward", "clipped": "1",
                     "norm_us": str(3 * T + 6 * n1), "mul_us": str(0.5 * T + 7 * n1),
                     "adam_us": str(100 + 5 * T + 9 * n4 - 20), "copy_us": "20"})
        rows.append({**base, "mode": "floor",
                     "total_us": str(1500.0 + layers * 1500.0)})
        rows.append({**base, "mode": "device", "host_ok": "1",
                     "dev_norm_us": str(30 + 0.001 * P / 1e3),
                     "dev_post_us": str(60 + 0.012 * P / 1e3)})
    params, _ = fit_optimizer_parts(rows, floor)
    assert params["opt_host"] == pytest.approx((3.0, 6.0, 0.5, 7.0, 100.0, 5.0, 9.0),
                                               abs=2e-3)
    assert params["opt_dev"] == pytest.approx((30.0, 0.001, 60.0, 0.012), abs=1e-5)
