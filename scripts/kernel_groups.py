"""The profiled GPU-bound steps' kernels by group against the compute model's prices.

For each bf16 step of traces/h200/compute/gpubound1 and recompute1 (``ops.csv``: each op's
own kernels' device time over one step), the device time of each kernel group (GEMMs,
attention forward / backward, layer norm, GELU, dropout, the residual adds, the QKV split's
zero fills, copies and adds, bias gradients, the rest) against the model's price of the same
kernels at the boost clock (``--power-cap off``), in ms a step, and the attention backward
as the sweep gives it without the QKV split's kernels (``attn.bwd-split``: the fit with
``fit_attention(..., mem)``, not shipped). The model's layer groups are
the kernels ``simulator/generate/compute.py`` prices for a GPT layer, written out here with
its byte counts; the script checks that they add up to the model's own layer (``costs``).

    PYTHONPATH=$PWD python3 scripts/kernel_groups.py [--markdown] [--kernel-prices]

With ``--kernel-prices`` the model is the kernel-price candidate (traces/h200/compute/
kernelprice1: the attention on its own kernels, the QKV split's and the bias gradient's
kernels as measured, the element-wise kernels under the cap; docs/compute-model.md).
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIRS = [ROOT / "traces" / "h200" / "compute" / d for d in ("gpubound1", "recompute1")]
GROUPS = ("gemm", "attn.fwd", "attn.bwd", "layer_norm", "gelu", "dropout", "resid_add",
          "qkv_split", "bias_grad")


def _shape(s: str) -> list[list[int]]:
    return [[int(x) for x in m.split(",") if x.strip()]
            for m in re.findall(r"\[([0-9, ]*)\]", s)]


def measured_groups(ops: list[dict], b: int, s: int, h: int, nh: int) -> dict[str, float]:
    """ms a step by group from one case's ``ops.csv`` rows (ops with their own device time)."""
    hd = h // nh
    out: dict[str, float] = defaultdict(float)
    for r in ops:
        us = float(r["device_us"] or 0)
        if us <= 0:
            continue
        op, sh = r["op"], _shape(r["input_shapes"])
        first = sh[0] if sh else []
        if op in ("aten::mm", "aten::addmm"):
            g = "gemm"
        elif op == "aten::_cudnn_attention_forward":
            g = "attn.fwd"
        elif op == "aten::_cudnn_attention_backward":
            g = "attn.bwd"
        elif op in ("aten::native_layer_norm", "aten::native_layer_norm_backward"):
            g = "layer_norm"
        elif op in ("aten::gelu", "aten::gelu_backward"):
            g = "gelu"
        elif op in ("aten::native_dropout", "aten::native_dropout_backward"):
            g = "dropout"
        elif op in ("aten::add", "aten::add_") and first == [b, s, h]:
            g = "resid_add"    # the residual add forward, autograd's gradient sum backward
        elif first in ([b, s, 3, nh, hd], [b, s, nh, hd]):
            g = "qkv_split"    # fill_, copy_ (select_backward) and add_ over the QKV gradient
        elif op == "aten::sum" and len(first) == 2 and first[0] == b * s:
            g = "bias_grad"
        else:
            continue           # embedding, head, loss, optimizer: not compared here
        out[g] += us / 1e3
    return dict(out)


def split_free_attn_bwd() -> tuple:
    """The attention backward refitted on the shipped sweeps less the QKV split's kernels."""
    from simulator.generate.gpu import get_gpu
    from simulator.generate.kernel_fit import (default_paths, fit_attention, fit_memory_ops,
                                               read_kernels)
    rows = read_kernels(default_paths(ROOT))
    mem, _ = fit_memory_ops(rows)
    params, _ = fit_attention(rows, get_gpu("h200").peak_tflops, mem)
    return params["attn_bwd"]


def model_groups(cfg, attn_bwd: tuple) -> tuple[dict[str, float], float]:
    """ms a step by group as the compute model prices the layers (compute.py's byte counts),
    and the model's own layer device time (ms, all layers) to check them against."""
    from simulator.generate.compute import ComputeModel
    from simulator.generate.sizes import megatron_params
    cm = ComputeModel(cfg, megatron_params(cfg))
    g = cm.gpu
    m = cfg.model
    T, h, F, L = cfg.tokens, m.hidden, m.ffn, cfg.layers_per_stage
    nh, hd = m.heads, m.hd
    width = T * 3 * nh * hd
    rc = 2.0 if cfg.recompute else 1.0      # a checkpointed layer runs its forward twice
    ms: dict[str, float] = defaultdict(float)

    def lin(mm, n, k):
        return (rc * g.gemm_us(mm, n, k), g.gemm_us(mm, k, n, 1, "dgrad")
                + g.gemm_us(n, k, mm, 1, "wgrad"), g.mem_us("bias_grad.fwd", 2.0 * mm * n, n))

    for mm, n, k in ((T, 3 * h, h), (T, h, h), (T, F, h), (T, h, F)):
        f, bw, bg = lin(mm, n, k)
        ms["gemm"] += L * (f + bw) / 1e3
        ms["bias_grad"] += L * bg / 1e3
    af = 4.0 * T * cfg.seq_length * nh * hd * 0.5
    ms["attn.fwd"] = L * rc * g.attention_us(af, seq=cfg.seq_length, head_dim=hd) / 1e3
    ms["attn.bwd"] = L * g.attention_us(2.5 * af, backward=True, seq=cfg.seq_length,
                                        head_dim=hd) / 1e3
    ms["attn.bwd-split"] = L * replace(g, attn_bwd=attn_bwd).attention_us(
        2.5 * af, backward=True, seq=cfg.seq_length, head_dim=hd) / 1e3
    ms["layer_norm"] = L * 2 * (rc * g.mem_us("layer_norm.fwd", 4 * T * h, h)
                                + g.mem_us("layer_norm.bwd", 8 * T * h, h)) / 1e3
    ms["gelu"] = L * (rc * g.mem_us("gelu.fwd", 4 * T * F, F)
                      + g.mem_us("gelu.bwd", 6 * T * F, F)) / 1e3
    ms["dropout"] = L * 2 * (rc * g.mem_us("dropout.fwd", 5 * T * h, h)
                             + g.mem_us("dropout.bwd", 5 * T * h, h)) / 1e3
    ms["resid_add"] = L * 2 * (rc + 1) * g.mem_us("add.fwd", 6 * T * h, h) / 1e3
    if g.has_mem_op("qkv_copy.fwd"):     # the split's kernels measured as their own ops
        ms["qkv_split"] = L * (3 * g.mem_us("qkv_copy.fwd", 4 * T * nh * hd)
                               + 3 * g.mem_us("qkv_fill.fwd", 2 * width)
                               + 2 * g.mem_us("qkv_add.fwd", 6 * width)) / 1e3
    else:                                  # the shipped fit's: contiguous copies, fp32 zeroing
        copy = g.mem_us("float.fwd", 4 * T * nh * hd)
        ms["qkv_split"] = L * (rc * copy + 2 * copy + 3 * g.mem_us("zero_fp32.fwd", 2 * width)
                               + 2 * g.mem_us("add.fwd", 6 * width)) / 1e3
    # the model's own layer (forward once: the check is on the kernels it lists)
    t = cm.costs
    own = sum(c.dev for key in ("attn_in", "attn_body", "ln", "mlp_body") for c in t[key])
    return dict(ms), L * own / 1e3


def cases():
    from simulator.generate import get_preset, resolve, with_overrides
    from simulator.generate.features import Features
    for d in DIRS:
        steps = {r["case"]: r for r in csv.DictReader(open(d / "steps.csv"))}
        ops: dict[str, list] = defaultdict(list)
        for r in csv.DictReader(open(d / "ops.csv")):
            ops[r["case"]].append(r)
        for case, st in steps.items():
            if st["dtype"] != "bf16" or st["status"] != "ok":
                continue
            h, nh, L = int(st["hidden"]), int(st["heads"]), int(st["layers"])
            b, s = int(st["mbs"]), int(st["seq"])
            model = with_overrides(get_preset("gpt-7b"), layers=L, hidden=h, ffn=4 * h,
                                   heads=nh, vocab=50257)
            # the profiled steps are plain PyTorch: no gradient accumulation fusion
            cfg = resolve(model, 1, tp=1, micro_batch=b, global_batch=b, seq_length=s,
                          recompute="-rc-" in case, gpu="h200",
                          features=Features(gradient_accumulation_fusion=False))
            yield d.name, case, cfg, measured_groups(ops[case], b, s, h, nh)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="a markdown table")
    ap.add_argument("--kernel-prices", action="store_true",
                    help="price with the kernel-price candidate (gpu.h200_kernel_prices)")
    args = ap.parse_args(argv)
    if args.kernel_prices:
        from simulator.generate import gpu
        gpu.GPUS["h200"] = gpu.h200_kernel_prices()
    attn_bwd = split_free_attn_bwd()
    cols = GROUPS[:3] + ("attn.bwd-split",) + GROUPS[3:]
    if args.markdown:
        print("model ms / measured ms a step; attention backward without the split: "
              f"attn_bwd = {attn_bwd}\n")
        print("| step | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
    else:
        print(f"attention backward refitted without the QKV split's kernels: {attn_bwd}")
    for run, case, cfg, meas in cases():
        mod, own = model_groups(cfg, attn_bwd)
        listed = sum(v for k, v in mod.items() if k != "attn.bwd-split")
        if not cfg.recompute and abs(listed / own - 1) > 0.002:
            sys.stderr.write(f"{case}: the listed layer kernels {listed:.2f} ms against the "
                             f"model's layer {own:.2f} ms\n")
        name = case.replace("gpt-", "").replace("-s2048", "").replace("-bf16", "")
        meas["attn.bwd-split"] = meas.get("attn.bwd", 0.0)
        if args.markdown:
            cells = [f"{mod.get(g, 0):.1f} / {meas.get(g, 0):.1f}" for g in cols]
            print(f"| {name} | " + " | ".join(cells) + " |")
        else:
            print(f"{run}/{name}: model ms, measured ms, measured / model")
            for g in cols:
                a, m = mod.get(g, 0.0), meas.get(g, 0.0)
                print(f"  {g:14s} {a:8.2f} {m:8.2f}  x{m / a if a else 0:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
