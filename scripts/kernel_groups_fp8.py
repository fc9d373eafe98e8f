"""The profiled FP8 steps' kernels by group against the compute model's prices.

The FP8 steps of runs 8-10 (``traces/h200/compute/run{8,9,10}/profile.csv``: one profiled
step per case, ``torch.profiler``'s CUDA rows, each kernel's device time summed by name; the
plain-PyTorch FP8 linear of ``simulator/measure/paired.py``, ``_fp8_function``) split into
the kernel groups the ``--fp8`` model adds or reprices: the FP8 GEMMs forward
(``nvjet_sm90_qq*``: e4m3 x e4m3) and backward (``nvjet_sm90_qr*``: dgrad and wgrad, e5m2
dy), the bf16 -> FP8 casts (``vectorized_elementwise_kernel`` of ``float8_copy_kernel_cuda``
from bf16: x and W to e4m3 forward, dy to e5m2 backward) and the strided FP8 transposes
(``elementwise_kernel`` of ``float8_copy_kernel_cuda`` from an FP8 type: W^T and x^T in
e4m3, dy^T in e5m2), against the model's price of the same kernels (``compute.py``'s
``_Kernels.linear`` under ``fp8_gpu``, ``fp8_transpose = "copy"``, as the default
``--power-cap on`` prices them: the GEMMs at the boost clock times the step's power
factor), in ms a step. The profiled steps are host-bound at 125M and at micro-batch 1;
their kernels' own device times are still kernel-level measurements.

    PYTHONPATH=$PWD python3 scripts/kernel_groups_fp8.py [--markdown]
"""
from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = [ROOT / "traces" / "h200" / "compute" / f"run{i}" for i in (8, 9, 10)]
GROUPS = ("fp8_gemm.fwd", "fp8_gemm.bwd", "fp8_cast", "fp8_transpose")


def kernel_group(name: str) -> str | None:
    """The FP8 group of one CUDA kernel by its name (None: not an FP8 linear's kernel)."""
    # nvjet_sm90_q*: FP8 operands (bf16's are nvjet_sm90_tst); qq: e4m3 x e4m3 (the forward),
    # qr: e5m2 x e4m3 (dgrad and wgrad, dy in e5m2)
    if name.startswith("nvjet_sm90_qq"):
        return "fp8_gemm.fwd"
    if name.startswith("nvjet_sm90_q"):
        return "fp8_gemm.bwd"
    if "float8_copy_kernel_cuda" in name:
        if "lambda(c10::BFloat16)" in name:
            return "fp8_cast"                     # bf16 -> e4m3 / e5m2, contiguous
        if "lambda(c10::Float8_e" in name:
            return "fp8_transpose"                # FP8 -> FP8 through a transposed view
    return None


def measured_groups(rows: list[dict]) -> tuple[dict[str, float], dict[str, int]]:
    """ms a step and kernel count by group from one case's CUDA rows of ``profile.csv``."""
    ms: dict[str, float] = defaultdict(float)
    n: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["device_type"] != "CUDA":
            continue
        g = kernel_group(r["kernel"])
        if g:
            ms[g] += float(r["device_us"]) / 1e3
            n[g] += int(r["count"])
    return dict(ms), dict(n)


def linears(cfg) -> list[tuple[int, int, int]]:
    """A GPT layer's four linear layers, ``m x n x k`` (QKV, projection, FC1, FC2)."""
    T, h, F = cfg.tokens, cfg.model.hidden, cfg.model.ffn
    return [(T, 3 * h, h), (T, h, h), (T, F, h), (T, h, F)]


def model_groups(cfg) -> dict[str, float]:
    """ms a step by group as ``_Kernels.linear`` prices a layer's FP8 linears (its byte
    counts written out), all layers of the stage."""
    from simulator.generate.builder import fp8_gpu
    from simulator.generate.compute import ComputeModel
    from simulator.generate.sizes import megatron_params
    g = ComputeModel(cfg, megatron_params(cfg), gpu=fp8_gpu(cfg.gpu_spec)).gpu
    L = cfg.layers_per_stage
    ms: dict[str, float] = defaultdict(float)
    for m, n, k in linears(cfg):
        ms["fp8_gemm.fwd"] += L * g.gemm_us(m, n, k) / 1e3
        ms["fp8_gemm.bwd"] += L * (g.gemm_us(m, k, n, 1, "dgrad")
                                   + g.gemm_us(n, k, m, 1, "wgrad")) / 1e3
        ms["fp8_cast"] += L * (g.mem_us("cast_fp8.fwd", 3.0 * m * k, k)
                               + g.mem_us("cast_fp8.fwd", 3.0 * n * k, k)
                               + g.mem_us("cast_fp8.fwd", 3.0 * m * n, n)) / 1e3
        ms["fp8_transpose"] += L * (g.mem_us("transpose_fp8.fwd", 2.0 * n * k, k)
                                    + g.mem_us("transpose_fp8.fwd", 2.0 * m * n, n)
                                    + g.mem_us("transpose_fp8.fwd", 2.0 * m * k, k)) / 1e3
    return dict(ms)


def cases():
    """(run, case, cfg, measured ms, counts) for each profiled FP8 step of runs 8-10."""
    from simulator.generate import get_preset, resolve, with_overrides
    from simulator.generate.features import Features
    for d in RUNS:
        shapes = {r["case"]: r for r in csv.DictReader(open(d / "train.csv"))}
        prof: dict[str, list] = defaultdict(list)
        for r in csv.DictReader(open(d / "profile.csv")):
            prof[r["case"]].append(r)
        for case, rows in prof.items():
            if not case.endswith("-fp8"):
                continue                          # bf16 / unfused steps, the floor GPTs
            st = shapes[case]
            model = with_overrides(get_preset("gpt-7b"), layers=int(st["layers"]),
                                   hidden=int(st["hidden"]), ffn=int(st["ffn"]),
                                   heads=int(st["heads"]), vocab=int(st["vocab"]))
            b = int(st["mbs"])
            # the profiled steps are plain PyTorch: no gradient accumulation fusion
            cfg = resolve(model, 1, tp=1, micro_batch=b, global_batch=b,
                          seq_length=int(st["seq"]), gpu="h200",
                          features=Features(gradient_accumulation_fusion=False))
            ms, n = measured_groups(rows)
            yield d.name, case, cfg, ms, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true", help="a markdown table")
    args = ap.parse_args(argv)
    if args.markdown:
        print("| step | " + " | ".join(f"{g} model / measured ms" for g in GROUPS) + " |")
        print("|---" * (len(GROUPS) + 1) + "|")
    for run, case, cfg, meas, n in cases():
        mod = model_groups(cfg)
        name = f"{run}/{case.replace('gpt-', '').replace('-fp8', '')}"
        if args.markdown:
            cells = [f"{mod[g]:.2f} / {meas.get(g, 0):.2f}" for g in GROUPS]
            print(f"| {name} | " + " | ".join(cells) + " |")
        else:
            print(f"{name}: model ms, measured ms (kernels), measured / model")
            for g in GROUPS:
                a, m = mod[g], meas.get(g, 0.0)
                print(f"  {g:14s} {a:8.2f} {m:8.2f} ({n.get(g, 0):4d})  x{m / a:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
