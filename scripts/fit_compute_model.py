#!/usr/bin/env python3
"""Fit the compute model's H200 kernel parameters to the kernel sweep and print them.

    python scripts/fit_compute_model.py            # parameters and residuals
    python scripts/fit_compute_model.py --write    # rewrite simulator/generate/h200_fit.py
    python scripts/fit_compute_model.py --docs docs/validation.md   # the residuals section
    python scripts/fit_compute_model.py --kernel-prices --write
        # the candidate (not shipped): the attention, the QKV split's kernels and the bias
        # gradient from traces/h200/compute/kernelprice*/, and the element-wise kernels' law
        # under the power cap, into simulator/generate/h200_kernelprice_fit.py

The sweep is ``traces/h200/compute/run*/kernels.csv`` (``python -m
simulator.measure.compute_run`` on one H200; traces/h200/compute/README.md says how).
"""
from __future__ import annotations

import argparse
import pprint
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.generate.kernel_fit import (default_paths, fit_kernels,  # noqa: E402
                                           gpubound_dirs, spec_kwargs, summary_lines)

TARGET = ROOT / "simulator" / "generate" / "h200_fit.py"
CANDIDATE = ROOT / "simulator" / "generate" / "h200_kernelprice_fit.py"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {TARGET.relative_to(ROOT)}")
    ap.add_argument("--docs", metavar="MD", help="replace the compute-fit section of this file")
    ap.add_argument("--kernel-prices", action="store_true",
                    help="the kernel-price candidate (kernelprice*/); --write writes "
                         f"{CANDIDATE.relative_to(ROOT)}")
    args = ap.parse_args()
    paths = default_paths(ROOT)
    params, resid = fit_kernels(paths, kernel_prices=args.kernel_prices)
    print("\n".join(summary_lines(params, resid)))
    if args.kernel_prices:
        power, stats = power_candidate()
        print(f"power cap, memory-bound kernels: {power} ({stats})")
        if args.write:
            write_candidate(paths, spec_kwargs(params), power)
        return 0
    if args.write:
        kw = spec_kwargs(params)
        text = ('"""H200 kernel parameters fitted by scripts/fit_compute_model.py on\n'
                + "".join(f"{p.relative_to(ROOT)}\n" for p in paths)
                + '(generated: do not edit by hand; rerun the script with --write)."""\n\n'
                + "H200_KERNEL_FIT = " + pprint.pformat(kw, width=96, sort_dicts=True) + "\n")
        TARGET.write_text(text)
        print(f"wrote {TARGET.relative_to(ROOT)}")
    if args.docs:
        write_docs(Path(args.docs), docs_section(params, resid, paths))
        print(f"wrote the compute-fit section of {args.docs}")
    return 0


def power_candidate() -> tuple[dict, dict]:
    """The element-wise kernels' law under the power cap (power_fit.fit_mem_cap on
    kernelprice1's mixes, given the shipped cap's powers)."""
    from simulator.generate.h200_power_fit import H200_POWER_CAP
    from simulator.generate.power_fit import fit_mem_cap
    cap, stats = fit_mem_cap(str(ROOT / "traces" / "h200" / "compute" / "kernelprice1"),
                             H200_POWER_CAP)
    return {"mem_threshold_w": cap.mem_threshold_w, "mem_sens": cap.mem_sens}, stats


def write_candidate(paths, kw: dict, power: dict) -> None:
    text = ('"""The kernel-price candidate of the H200 fit (not shipped: docs/compute-model.md,\n'
            '"The kernel-level prices"), fitted by scripts/fit_compute_model.py --kernel-prices\n'
            "on\n" + "".join(f"{p.relative_to(ROOT)}\n" for p in paths)
            + "and traces/h200/compute/kernelprice1 (the attention, the QKV split's kernels, "
              "the bias\ngradient; the element-wise kernels under the power cap) (generated: do "
              'not edit by hand;\nrerun the script with --kernel-prices --write)."""\n\n'
            + "H200_KERNELPRICE_FIT = " + pprint.pformat(kw, width=96, sort_dicts=True) + "\n"
            + "H200_KERNELPRICE_POWER = " + pprint.pformat(power, width=96, sort_dicts=True)
            + "\n")
    CANDIDATE.write_text(text)
    print(f"wrote {CANDIDATE.relative_to(ROOT)}")


BEGIN, END = "<!-- compute-fit:begin -->", "<!-- compute-fit:end -->"

GROUPS = [
    ("GEMM curve (fwd, dgrad, wgrad)", "gemm"),
    ("layer norm fwd / bwd", "layer_norm"), ("GELU fwd / bwd", "gelu"),
    ("dropout fwd / bwd", "dropout"), ("add fwd (residual, gradient sums)", "add.fwd"),
    ("cast / layout copy fwd", "float.fwd"), ("fp32 accumulate", "accum_fp32.fwd"),
    ("zero fill", "zero_fp32.fwd"), ("bias gradient", "bias_grad.fwd"),
    ("cross entropy (fp32) fwd / bwd", "cross_entropy_fp32"),
    ("embedding + positions fwd / bwd", "embedding_pos"),
    ("attention fwd", "attn"), ("attention bwd", "attn_bwd"),
    ("optimizer step (norm, Adam, copy; the sweep's steps after the first ran unclipped)",
     "opt_step"),
    ("gradient clipping's scale of the fp32 main gradients (profiled steps, gpubound1)",
     "opt_clip"),
    ("fp16 unscale and inf check of the fp32 main gradients (gpubound1)", "opt_unscale"),
    ("fp16 step's GEMMs / bf16 step's (profiled pairs, gpubound1)", "fp16 gemm"),
    ("fp16 step's attention / bf16 step's", "fp16 attention"),
    ("fp16 step's memory-bound kernels / bf16 step's", "fp16 memory"),
    ("zero main gradients", "opt_zero_grad"),
    ("fp32 gradient accumulation", "opt_accumulate_fp32"),
    ("fp32 accumulation's host dispatch (steps with / without it, hostcause2)",
     "host accumulate (steps with / without)"),
    ("FP8 GEMM curve (torch._scaled_mm, fwd, dgrad, wgrad)", "fp8_gemm"),
    ("cast bf16 -> FP8", "cast_fp8.fwd"), ("FP8 transpose copy", "transpose_fp8.fwd"),
    ("unfused attention fwd (beyond its GEMMs)", "unfused_fwd"),
    ("unfused attention bwd (beyond its GEMMs)", "unfused_bwd"),
    ("host floor: GPT forward", "hostfloor forward"),
    ("host floor: forward + backward + accumulation", "hostfloor fwdbwd_accumulate"),
    ("host floor: the same with full recompute", "hostfloor fwdbwd_accumulate_recompute"),
    ("host floor, FP8 GPT: forward + backward", "hostfloor fwdbwd_accumulate (fp8)"),
    ("host floor, unfused-attention GPT: forward + backward",
     "hostfloor fwdbwd_accumulate (unfused)"),
]


def _cell(s: dict) -> str:
    if not s or not s.get("n"):
        return "-"
    return f"{100 * s['median_abs']:.1f}% / {100 * s['max_abs']:.1f}% ({s['n']})"


def docs_section(params: dict, resid: dict, paths) -> str:
    lines = [BEGIN, "", "## The compute model's kernel fit (H200)", "",
             "Generated by `python scripts/fit_compute_model.py --docs docs/validation.md` from "
             + ", ".join(f"`{p.relative_to(ROOT)}`" for p in paths)
             + "".join(f", `{d.relative_to(ROOT)}/` (its layout-aware bf16 GEMMs, fp16 kernels "
                       "and profiled steps)" for d in gpubound_dirs(paths))
             + " (traces/h200/compute/README.md says how they were measured; "
             "docs/compute-model.md what each term is). Residual = fitted model / measured "
             "kernel - 1; cells give the median / maximum |residual| and (the timings). These "
             "are in-sample: the parameters are fitted on these kernels. The training steps in "
             "the `collsim validate` section are not fitted at all.", "",
             "| kernel group | median / max abs residual (n) | parameters |", "|---|---|---|"]
    for label, key in GROUPS:
        if key == "fp8_gemm":
            g = resid.get("fp8_gemm", {})
            cell = (f"{100 * g['median_abs_err']:.1f}% / {100 * g['max_abs_err']:.1f}% "
                    f"({g['shapes']}; >= 0.1 TFLOP: {100 * g['large_median_abs_err']:.1f}% / "
                    f"{100 * g['large_max_abs_err']:.1f}%)") if g else "-"
            v = params.get("fp8_gemm")
            par = (f"e_max {v[0]}, x0 {v[1]}, t0 {v[2]} us on the FP8 peak (2 x bf16)"
                   if v else "-")
        elif key.startswith("host accumulate"):
            cell = _cell(resid.get(key))
            par = (f"{params.get('host_accumulate_per_tensor')} us per tensor on the floor's "
                   "machines (median of the per-round differences; single rounds scatter)")
        elif key in ("opt_clip", "opt_unscale"):
            cell = _cell(resid.get(key))
            par = f"{params.get(key + '_ns')} ns/param"
        elif key.startswith("fp16 "):
            cell = _cell(resid.get(key))
            i = ("fp16 gemm", "fp16 attention", "fp16 memory").index(key)
            v = params.get("fp16_kernels")
            par = (f"x {v[i]} (pooled: total fp16 / total bf16 device time over the pairs)"
                   if v else "-")
        elif key.startswith("unfused_"):
            cell = _cell(resid.get(key))
            v = params.get(key)
            par = f"t0 {v[0]} us + {v[1]} ns per score element" if v else "-"
        elif key.startswith("hostfloor") and key.endswith(")"):
            cell = _cell(resid.get(key))
            variant = key.rsplit("(", 1)[1].rstrip(")")
            v = params.get(f"host_variant.{variant}")
            par = (f"x {v[0]} forward, x {v[1]} backward, x {v[2]} recompute extra per "
                   "layer of the default GPT's, measured side by side") if v else "-"
        elif key == "gemm":
            g = resid.get("gemm", {})
            cell = (f"{100 * g['median_abs_err']:.1f}% / {100 * g['max_abs_err']:.1f}% "
                    f"({g['shapes']}; >= 0.1 TFLOP: {100 * g['large_median_abs_err']:.1f}% / "
                    f"{100 * g['large_max_abs_err']:.1f}%)") if g else "-"
            cell += "".join(f"; {lo} {100 * g[f'{lo}_median_abs_err']:.1f}% (mean "
                            f"{100 * g[f'{lo}_mean_err']:+.1f}%, {g[f'{lo}_n']})"
                            for lo in ("fwd", "dgrad", "wgrad") if f"{lo}_n" in g)
            par = (f"e_max {params['gemm_emax']}, x0 {params['gemm_x0']}, "
                   f"t0 {params['gemm_t0_us']} us")
            if "gemm_xk" in params:
                par += (f", reduction xk {params['gemm_xk']}, layouts "
                        + ", ".join(f"{n} x{f}" for n, f in params["gemm_layouts"]))
        elif "." in key or key.startswith(("attn", "opt_", "hostfloor")):
            cell = _cell(resid.get(key))
            v = params.get(key)
            if key.startswith("hostfloor"):
                par = {"hostfloor forward": f"{params.get('host_layer_fwd_us')} us per layer",
                       "hostfloor fwdbwd_accumulate":
                           f"backward {params.get('host_layer_bwd_us')} us per layer",
                       "hostfloor fwdbwd_accumulate_recompute":
                           f"+{params.get('host_layer_recompute_us')} us per layer"}[key]
            elif key.startswith("attn"):
                par = "t0 {} us, e {}, s0 {}, d0 {}".format(*v) if v else "-"
            elif key == "opt_step":
                par = "{} us + {} ns/param + {} us/tensor".format(*v) if v else "-"
            elif key == "opt_accumulate_fp32":
                par = f"{params.get('opt_accumulate_fp32_t0')} us/tensor + {v} ns/param"
            elif key.startswith("opt_"):
                par = f"{v} ns/param"
            else:
                par = "t0 {} us, {} GB/s, c0 {}".format(*v) if v else "-"
        else:
            f, b = resid.get(f"{key}.fwd"), resid.get(f"{key}.bwd")
            cell = f"{_cell(f)}; {_cell(b)}"
            vf, vb = params.get(f"{key}.fwd"), params.get(f"{key}.bwd")
            par = "; ".join("t0 {} us, {} GB/s, c0 {}".format(*v) for v in (vf, vb) if v)
        lines.append(f"| {label} | {cell} | {par} |")
    lines += ["", "Host dispatch of one op (median over every size of the sweep, us): "
              + ", ".join(f"{k[5:]} {v}" for k, v in params.items()
                          if k.startswith("host.") and k.endswith(".fwd"))
              + ". These weigh the ops of a layer; the measured host floor of a layer sets "
              "the total.", "", END]
    return "\n".join(lines) + "\n"


def write_docs(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Validation\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
