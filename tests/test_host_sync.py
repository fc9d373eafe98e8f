"""Host synchronisation inside a step (simulator/generate/host_sync.py): a sync point drains
the host's lead. Expected values are replayed by hand in the comments (times in us)."""
from __future__ import annotations

import pytest

from simulator.errors import InputError
from simulator.generate import generate, get_preset, resolve, with_overrides
from simulator.generate.compute import ComputeModel, Cost
from simulator.generate.features import Features
from simulator.generate.gpu import GPUS
from simulator.generate.host_sync import replay_step, sync
from simulator.generate.sizes import megatron_params
from simulator.workload import Group, Op

# G: one GPU-bound kernel (10 us on the GPU, 1 us to dispatch); H: ten host-bound kernels
# (0.1 us each on the GPU, 1 us each to dispatch)
G = ((10.0, 1.0),)
H = ((0.1, 1.0),) * 10


def step_us(forward, backward, micro_batches, before_backward=()):
    f, b = replay_step(forward, backward, micro_batches, before_backward=before_backward)
    return micro_batches * (f + b)


def test_alternating_rows_pay_the_drained_queue():
    # forward = backward = G then H, two micro-batches (four halves).
    # No sync: half 1: G issued at 1, runs 1-11; H issued at 2..11, all queued behind G,
    # run 11-12: the half ends at 12 with the host at 11. Every later half: G issued 1 after
    # the host's last dispatch, when the GPU is just done, so it runs at once: the half
    # takes 11 (host-bound overall). Step 12 + 3 x 11 = 45.
    assert step_us(G + H, G + H, 2) == pytest.approx(45.0)
    # A sync before each backward (the loss's NaN check): at the end of a forward the host
    # (at 11) waits for the queue (H's ten kernels, 1.0 us of GPU work) to drain (12), then
    # issues G at 13: the backward ends at 24; forward 2 runs 24-35 (no sync), backward 2
    # waits for 35 and ends at 47. 47 = 45 + 2 x 1.0: each sync costs exactly the GPU work
    # queued when the host reached it.
    assert step_us(G + H, G + H, 2, (sync(),)) == pytest.approx(47.0)


def test_gpu_bound_step_pays_only_the_relaunch():
    # forward = backward = G: no sync, the host issues at 1, 2, 3, 4 and the GPU runs
    # back to back: 1-11, 11-21, 21-31, 31-41.
    assert step_us(G, G, 2) == pytest.approx(41.0)
    # sync before each backward: no queued work is lost (the GPU is busy until the sync
    # either way), only the relaunch: the GPU waits 1 us for the next dispatch each time:
    # 1-11, 12-22, 22-32 (issued at 13), 33-43.
    assert step_us(G, G, 2, (sync(),)) == pytest.approx(43.0)


def test_host_bound_step_pays_only_the_running_kernel():
    # forward = backward = H: the GPU never holds a queue: kernels issued at 1..40, each run
    # at once, the step ends at 40.1.
    assert step_us(H, H, 2) == pytest.approx(40.1)
    # sync before each backward: the host waits for the one kernel still running (0.1 us)
    # at each of the two syncs: 40.3.
    assert step_us(H, H, 2, (sync(),)) == pytest.approx(40.3)


def test_sync_host_time_and_cost_replay():
    # a sync with 5 us of host work between G and G: G runs 1-11; the host waits for 11,
    # spends 5 (16), dispatches 1 (17): the second G runs 17-27
    assert Cost(G + (sync(5.0),) + G).us == pytest.approx(27.0)
    # scaling the host times keeps the sync point (and scales its host time too)
    assert Cost(G + (sync(5.0),) + G).scaled_host(2.0).us == pytest.approx(2 + 10 + 10 + 2 + 10)


def test_many_micro_batches_repeat_the_settled_one():
    # 1000 micro-batches of the alternating chain without sync: the first half takes 12,
    # every later one 11 (first test): mean micro-batch = (12 + 11 + 1998 x 11) / 1000 ...
    f, b = replay_step(G + H, G + H, 1000)
    assert 1000 * (f + b) == pytest.approx(12 + 1999 * 11.0)


def _cfg(**features):
    m = with_overrides(get_preset("gpt-7b"), layers=2, hidden=512, ffn=2048, heads=8)
    return resolve(m, 2, tp=2, micro_batch=1, global_batch=2, seq_length=512, gpu="h200",
                   features=Features(**features))


def test_fp16_found_inf_rows_and_unscale_kernels():
    cfg = _cfg(params_dtype="fp16", accumulate_allreduce_grads_in_fp32=True)
    gen = generate(cfg, check_memory=False)
    rows = {r.name: r for r in gen.workload.rows}
    r = rows["loss_scale_found_inf"]
    assert (r.fwd.op, r.fwd.group, r.fwd.size_bytes) == (Op.ALLREDUCE, Group.TP, 4)
    # its kernels on the H200 fit (h200_fit.py): found_inf zeroed (zero_fp32: 1.588 us,
    # dispatched in 12.53 us, an add's), then the unscale over the main gradients (measured:
    # 0.002326 ns a parameter, traces/h200/compute/gpubound1 fp16_opt), dispatched at
    # 25.06 us, when the GPU is long idle: 25.06 + 0.002326e-3 P us
    p = megatron_params(cfg).per_gpu
    assert r.fwd_ns == pytest.approx(1e3 * (2 * 12.53 + 0.002326e-3 * p), abs=1)
    # the optimizer starts with found_inf's read: one copy dispatch (18.86 us) more than bf16,
    # and it starts drained, so it pays the norm's enqueue (optimizer_step.py: 28 tensors,
    # one launch) that bf16's step issues while its backward's last kernels still run: more
    # than the read, at most the read + the norm's host (the 7 ns the fp16 backward's slower
    # kernels hide of the accumulation aside)
    bf = {r.name: r for r in generate(_cfg(), check_memory=False).workload.rows}
    nt, nl = GPUS["h200"].opt_host[:2]
    diff = rows["optimizer1"].fwd_ns - bf["optimizer1"].fwd_ns
    assert 18853 < diff <= 18860 + 1e3 * (28 * nt + nl)
    assert "loss_scale_found_inf" not in bf


def test_legacy_get_batch_rows():
    cfg = _cfg(get_batch="legacy")
    rows = [r for r in generate(cfg, check_memory=False).workload.rows
            if r.name.startswith("get_batch")]
    # one pair per micro-batch (global batch 2, DP 1: two micro-batches): the sizes (5 int64
    # of one key) and the tokens (int64, 1 x 513) broadcast over TP
    assert [(r.name, r.fwd.op, r.fwd.group, r.fwd.size_bytes) for r in rows] == [
        ("get_batch_sizes", Op.BROADCAST, Group.TP, 40),
        ("get_batch_data", Op.BROADCAST, Group.TP, 8 * 513)] * 2


def test_loss_check_drains_before_the_backward():
    # one micro-batch: with the check the backward waits for the forward's end (as without
    # it, the host is then ahead only by the forward's own lead) and pays the isnan
    # dispatch (12.53) and the read (18.86) where the GPU sits idle, at least 31.39 us
    on = ComputeModel(_cfg(), megatron_params(_cfg()))
    off_cfg = _cfg(check_for_nan_in_loss=False)
    off = ComputeModel(off_cfg, megatron_params(off_cfg))
    kinds = ("embedding_layer", "attention_layer", "mlp_layer", "final_column")

    def backward(cm):
        return sum(sum(cm.row(k)[1:]) for k in kinds[:1] + kinds[1:3] * 2 + kinds[3:])
    assert backward(on) - backward(off) >= 31.39 - 1e-6


def test_bad_sync_options():
    with pytest.raises(InputError, match="needs --fp16"):
        _cfg(loss_scale=1024.0)
    with pytest.raises(InputError) as e:
        _cfg(get_batch="old")
    assert e.value.field == "get_batch"
    with pytest.raises(InputError):
        _cfg(params_dtype="fp16", loss_scale=-1.0)


@pytest.mark.parametrize("flags, backend", [
    ([], "flash"),                                             # today's default, unchanged
    (["--use-flash-attn"], "flash"),
    (["--transformer-impl", "transformer_engine"], "flash"),
    (["--transformer-impl", "local"], "unfused"),              # Megatron's own attention
    (["--transformer-impl", "local", "--use-flash-attn"], "flash"),
    (["--transformer-impl", "local", "--attention-backend", "fused"], "fused"),
])
def test_legacy_attention_flags(flags, backend):
    import argparse

    from simulator.commands.generate import add_arguments, generate_options
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--model", "gpt-7b", "-o", "x", "--gpus", "1"] + flags)
    assert generate_options(args).attention_backend == backend


def test_sync_flags_reach_the_options():
    import argparse

    from simulator.commands.generate import add_arguments, generate_options
    p = argparse.ArgumentParser()
    add_arguments(p)
    o = generate_options(p.parse_args(["--model", "gpt-7b", "-o", "x", "--gpus", "1"]))
    assert (o.check_for_nan_in_loss_and_grad, o.get_batch, o.loss_scale) == (True, "core", None)
    o = generate_options(p.parse_args(
        ["--model", "gpt-7b", "-o", "x", "--gpus", "1", "--no-check-for-nan-in-loss-and-grad",
         "--get-batch", "legacy", "--fp16", "--loss-scale", "4096"]))
    assert (o.check_for_nan_in_loss_and_grad, o.get_batch, o.loss_scale) == (False, "legacy",
                                                                             4096.0)
    f = o.features()
    assert (f.check_for_nan_in_loss, f.get_batch, f.loss_scale) == (False, "legacy", 4096.0)


def test_zeroing_opens_the_step_and_a_sync_after_it_waits_for_it():
    # before_step Z = one kernel of 5 us on the GPU, 1 us to dispatch (the main gradients'
    # zeroing); forward = backward = H (ten host-bound kernels), one micro-batch.
    Z0 = ((5.0, 1.0),)
    # no sync: Z runs 1-6, H's kernels are issued at 2..11, the first five queue behind Z
    # (6-6.5), the others run as issued (7-7.1, ..., 11-11.1): the forward ends at 11.1, the backward's ten at 12..21,
    # ending at 21.1: the zeroing is hidden behind the host
    f, b = replay_step(H, H, 1, before_step=Z0)
    assert f + b == pytest.approx(21.1)
    # a sync opening the forward (legacy get_batch): the host waits for Z (6), then issues
    # at 7..16 and 17..26: 26.1, the 5 us of zeroing exposed
    f, b = replay_step(H, H, 1, before_forward=(sync(),), before_step=Z0)
    assert f + b == pytest.approx(26.1)



def test_measured_host_sync_steps():
    """traces/h200/compute/hostsync*: steps with a host read per micro-batch and fp16 loss
    scaling beside plain ones (simulator/validation/h200_hostsync.py), shown, not counted.
    What must hold whatever the data: every case has its three modes, and a host read or the
    loss scaler's work never makes a predicted step faster than its plain one (a sync only
    removes the host's lead; fp16 only adds kernels)."""
    from simulator.calibration import load_calibration
    from simulator.cluster import Cluster
    from simulator.validation import h200_hostsync
    from simulator.validation.common import DEFAULT_CALIBRATION
    if not h200_hostsync.runs():
        pytest.skip("no measured host-sync run")
    cluster = Cluster()
    res = h200_hostsync.run(load_calibration(DEFAULT_CALIBRATION, cluster=cluster), cluster)
    assert res and not any(r.primary for r in res)
    modes = [r.extra["mode"] for r in res]
    assert modes.count("plain") == modes.count("hostsync") == modes.count("fp16")
    assert all(r.extra["ratio_predicted"] >= 1.0 for r in res if r.extra["mode"] != "plain")
