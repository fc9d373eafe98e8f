"""--fp8 prices one step chain: the layers at the FP8 rate, the embedding, output layer and
loss in bf16 (compute.py ``ComputeModel.link_fp8``). Expected values replayed by hand in
the docstrings (times in us)."""
from __future__ import annotations

import pytest

from simulator.generate import get_preset, resolve, with_overrides
from simulator.generate.builder import fp8_gpu, generate
from simulator.generate.compute import Z, ComputeModel, Cost
from simulator.generate.features import Features
from simulator.generate.sizes import megatron_params


def _gpt(layers=1, fp8=False, seq=64, mbs=1):
    model = with_overrides(get_preset("gpt-7b"), layers=layers, hidden=64, ffn=256, heads=2,
                           vocab=50257)
    return resolve(model, 1, tp=1, micro_batch=mbs, global_batch=mbs, seq_length=seq,
                   gpu="h200",
                   features=Features(fp8="hybrid" if fp8 else None,
                                     check_for_nan_in_loss=False))


def _hand_made(cm: ComputeModel, output_bwd: tuple, layer_bwd: tuple) -> None:
    """Replace ``cm``'s kernels by single hand-made ones: a forward of nothing; backward:
    the output layer ``output_bwd``, the one layer ``layer_bwd`` (attention row), the
    embedding (1 us device, 10 us host); no accumulation, zeroing or optimizer kernels."""
    zero = (Z, Z, Z)
    t = {k: zero for k in cm.costs}
    t["output"] = (Z, Cost((output_bwd,)), Z)
    t["attn_body"] = (Z, Cost((layer_bwd,)), Z)
    t["embedding"] = (Z, Cost(((1.0, 10.0),)), Z)
    cm.costs = t
    cm.accumulation = cm.step_start = cm._opt_cost = Z
    cm.opt_kernels = ()


def test_fp8_rows_share_the_chain_of_bf16_output_and_fp8_layers():
    """Backward, by hand (device, host): output (100, 10) in bf16, (300, 10) at the FP8 rate
    (its casts and transposes); the layer (5, 400); the embedding (1, 10).

    The step's chain (bf16 output, FP8 layer): the output is issued at 10 and runs to 110,
    the layer is issued at 410 and ends at 415, the embedding issued at 420 ends at 421.
    Each row alone: 110, 405, 11 = 526. So the lead factor is 421 / 526 and the rows add up
    to 421.

    Before, the FP8 model replayed its own chain, whose output ran 300 us: 10 -> 310, then
    410 -> 415, 420 -> 421, alone 310 + 405 + 11 = 726, so its layer rows took 421 / 726 =
    0.5799 of their time while the bf16 rows took 421 / 526: output + embedding 121 x 0.8004
    + layer 405 x 0.5799 = 331.7, 89 us short of the chain that runs."""
    cfg = _gpt()
    p = megatron_params(cfg)
    cm = ComputeModel(cfg, p)
    fm = ComputeModel(cfg, p, gpu=fp8_gpu(cfg.gpu_spec))
    _hand_made(cm, (100.0, 10.0), (5.0, 400.0))
    _hand_made(fm, (300.0, 10.0), (5.0, 400.0))
    # the FP8 model's own chain (the old pricing of its rows)
    (_, own), _, _ = fm._host_lead(cfg)
    assert own == pytest.approx(421 / 726)
    cm.link_fp8(fm)
    assert cm.lead == pytest.approx((1.0, 421 / 526))
    assert fm.lead == cm.lead
    rows = (cm.row("final_column")[1] + fm.row("attention_layer")[1]
            + cm.row("embedding_layer")[1])
    assert rows == pytest.approx(421.0)


def test_generate_prices_the_linked_chain():
    """generate --fp8 writes the FP8 layer rows and the optimizer row of the linked models
    (one lead; the accumulation and the step behind FP8 layers), not those of each model's
    own chain: at 4 x 1024 tokens the FP8 model's own chain runs the 50304-word output layer
    at the FP8 rate with Transformer Engine's cast of its output gradient (4 bytes an element
    of 4096 x 50304 at about 3.5 TB/s: 0.24 ms more GPU work in the backward's first row),
    which its host-bound layers absorb, so its own lead shrinks their rows (here by 2 us a
    layer row; the validation's plain-PyTorch FP8 layer, with strided transposes, by more)."""
    cfg = _gpt(layers=2, fp8=True, seq=1024, mbs=4)
    p = megatron_params(cfg)
    rows = {r.name: r for r in generate(cfg, check_memory=False).workload.rows}
    cm = ComputeModel(cfg, p)
    fm = ComputeModel(cfg, p, gpu=fp8_gpu(cfg.gpu_spec))
    unlinked = fm.row("attention_layer")
    cm.link_fp8(fm)
    linked = fm.row("attention_layer")
    assert fm.lead == cm.lead
    assert linked[1] - unlinked[1] > 1.0          # us: the lead moved
    assert rows["attention_layer"].ig_ns == round(1000 * linked[1])
    assert rows["optimizer1"].fwd_ns == round(1000 * cm.row("optimizer")[0])


def test_clip_scale_off_leaves_the_scale_out_of_the_step():
    """2 layers of hidden 64: 2 x 12 + 4 = 28 tensors, one launch each foreach op (28 < 110
    and 36 tensors a launch). With clipping's scale: the norm, the read, the scale, Adam's
    Python, Adam's launch (5 kernels); without it 4, the same but the scale."""
    on = ComputeModel(_gpt(layers=2), megatron_params(_gpt(layers=2))).opt_kernels
    cfg = resolve(with_overrides(get_preset("gpt-7b"), layers=2, hidden=64, ffn=256, heads=2,
                                 vocab=50257), 1, tp=1, micro_batch=1, global_batch=1,
                  seq_length=64, gpu="h200",
                  features=Features(check_for_nan_in_loss=False, clip_scale=False))
    off = ComputeModel(cfg, megatron_params(cfg)).opt_kernels
    assert len(on) == 5 and len(off) == 4
    assert off == on[:2] + on[3:]
