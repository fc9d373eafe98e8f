"""The fp32 gradient accumulation after the backward, and the host work a step's real token
counts add to the 64-token floor GPT's (traces/h200/compute/hostcause1, hostcause2)."""
from __future__ import annotations

import pytest

from simulator.generate import get_preset, resolve, with_overrides
from simulator.generate.compute import (DRIVER_CALL_US, ComputeModel, _extra_driver_calls,
                                        host_scales)
from simulator.generate.features import Features
from simulator.generate.gpu import GPUS
from simulator.generate.sizes import megatron_params


def _gpt(layers=2, hidden=64, heads=2, seq=64, mbs=1, **kw):
    """A small GPT as our measured PyTorch steps run it: each tensor's gradient added to
    its fp32 main gradient after the backward (no gradient accumulation fusion)."""
    model = with_overrides(get_preset("gpt-7b"), layers=layers, hidden=hidden, ffn=4 * hidden,
                           heads=heads, vocab=50257)
    kw.setdefault("features", Features(gradient_accumulation_fusion=False))
    return resolve(model, 1, tp=1, micro_batch=mbs, global_batch=mbs, seq_length=seq,
                   gpu="h200", distributed_optimizer=True, **kw)


def test_extra_driver_calls_follow_the_profiled_counts():
    """hostcause1 profile.csv, per layer (memsets + split-K launches): the floor GPT at 64
    tokens 5 (default), 2 (FP8), 3 (unfused); every variant 6 at 1024 tokens and 9.4 at
    4096; log-linear between. So default: 1024 -> 6 - 5 = 1, 4096 -> 9.4 - 5 = 4.4, 2048 ->
    6 + 3.4 x log(2)/log(4) - 5 = 2.7; FP8 at 1024: 6 - 2 = 4; unfused at 1024: 6 - 3 = 3."""
    g = GPUS["h200"]
    cfg = _gpt()
    assert _extra_driver_calls(g, cfg, 64) == 0.0
    assert _extra_driver_calls(g, cfg, 1024) == pytest.approx(1.0)
    assert _extra_driver_calls(g, cfg, 2048) == pytest.approx(2.7)
    assert _extra_driver_calls(g, cfg, 4096) == pytest.approx(4.4)
    assert _extra_driver_calls(g, cfg, 16384) == pytest.approx(4.4)   # held past 4096
    unf = _gpt(features=Features(attention_backend="unfused",
                                 gradient_accumulation_fusion=False))
    assert _extra_driver_calls(g, unf, 1024) == pytest.approx(3.0)
    from simulator.generate.builder import fp8_gpu
    assert _extra_driver_calls(fp8_gpu(g), cfg, 1024) == pytest.approx(4.0)
    # no measured floor, no correction to it
    from dataclasses import replace
    assert _extra_driver_calls(replace(g, host_layer_fwd_us=0.0), cfg, 4096) == 0.0


def test_driver_calls_go_into_the_layer_rows_host_only():
    """At 1024 tokens (1 x 1024) a default layer gets 1 call of 8.85 us beyond the 64-token
    floor's: half in each body, a third of it in the forward: 8.85 / 2 / 3 = 1.475 us in the
    attention row's forward host, with no device time; 2 x 1.475 in its backward."""
    a = ComputeModel(_gpt(seq=64), megatron_params(_gpt(seq=64))).row_costs("attention_layer")
    cfg = _gpt(seq=1024)
    b = ComputeModel(cfg, megatron_params(cfg)).row_costs("attention_layer")
    # the same ops (host weights do not depend on size): only the calls differ
    assert b[0].host - a[0].host == pytest.approx(DRIVER_CALL_US / 6, abs=1e-9)
    assert b[1].host - a[1].host == pytest.approx(DRIVER_CALL_US / 3, abs=1e-9)


def test_embedding_backward_sorts_beyond_3072_tokens():
    """PyTorch's embedding backward sorts its indices beyond 3072 (hostcause1: 19 more
    launches at 4096 tokens than at 1024): the embedding row's weight gradient gains
    19 x 8.85 = 168.15 us of host at 4096 tokens against 2048."""
    c2, c4 = _gpt(seq=2048), _gpt(seq=2048, mbs=2)
    e2 = ComputeModel(c2, megatron_params(c2)).row_costs("embedding_layer")
    e4 = ComputeModel(c4, megatron_params(c4)).row_costs("embedding_layer")
    assert e4[2].host - e2[2].host == pytest.approx(168.15, abs=1e-6)


def test_accumulation_has_one_kernel_per_parameter_tensor():
    """2 GPT layers with biases: 12 tensors each plus word and position embeddings and the
    final norm's 2 = 28 kernels holding every parameter; the first is the word embedding,
    50304 x 64 = 3,219,456 parameters: 4.408 us + 3,219,456 x 0.003507 ns = 15.699 us on the
    device (the fit of the whole accumulations), host_accum_us on the host."""
    g = GPUS["h200"]
    cfg = _gpt()
    p = megatron_params(cfg)
    acc = ComputeModel(cfg, p).accumulation
    assert len(acc.kernels) == 28
    per = [(k[0] - g.opt_accum_t0_us) / g.opt_accum_ns * 1e3 for k in acc.kernels]
    assert sum(per) == pytest.approx(p.per_gpu, rel=1e-6)
    assert acc.kernels[0][0] == pytest.approx(4.408 + 3219456 * 0.003507e-3, abs=1e-3)
    assert all(k[1] == g.host_accum_us for k in acc.kernels)


def test_host_bound_accumulation_costs_its_dispatch():
    """At 64 tokens every kernel is short: the GPU is idle when the backward's last kernel
    ends, and the accumulation's kernels (device 4.4-15.7 us, host 10.09 us each) run as
    the host issues them. What it adds after the backward is then about 28 x 10.09 =
    282.5 us (plus the last kernel's 4.4 us, less the backward's last kernel's few us and
    the word embedding's 5.6 us head start): within 282.5 +- 10 us, once per micro-batch
    in the optimizer row."""
    cfg = _gpt()
    cm = ComputeModel(cfg, megatron_params(cfg))
    (_, _), added, _ = cm._host_lead(cfg)
    assert added == pytest.approx(28 * GPUS["h200"].host_accum_us, abs=10.0)
    assert 28 * GPUS["h200"].host_accum_us == pytest.approx(282.52)


def test_gpu_bound_accumulation_costs_its_kernels():
    """Hidden 4096 at 8 x 2048 tokens: the backward's GEMMs keep the GPU far behind the
    host, so the accumulation's kernels queue behind them and add their device time alone:
    sum over the 28 tensors of 4.408 us + 0.003507 ns a parameter."""
    cfg = _gpt(hidden=4096, heads=32, seq=2048, mbs=8)
    p = megatron_params(cfg)
    cm = ComputeModel(cfg, p)
    (_, _), added, _ = cm._host_lead(cfg)
    assert added == pytest.approx(28 * 4.408 + p.per_gpu * 0.003507e-3, rel=1e-6)
    sf, sb = host_scales(GPUS["h200"])
    assert sb > 0 and sf > 0
