"""``collsim measure``: time collectives, uneven MoE all-to-alls, GEMMs, an EP MoE step and
dense transformer layers.

Run on a machine with GPUs (needs PyTorch)::

    python -m simulator.measure.cli --out results/ --sizes 1K:1G
    python -m simulator.measure.cli --out results/ --phases layer     # one GPU, no NCCL

The ``layer`` phase (not in the default set) runs in this process on GPU 0: see
:mod:`simulator.measure.layer`.

One process per GPU is started with ``torch.multiprocessing`` (or, under ``torchrun``, the
launcher's processes are used). Every point is warmed up, then timed call by call with
CUDA events (the median, p10 and p90 over the timed calls of the slowest rank per call),
and the host-side time per call is recorded too. Results go to CSV files that
:func:`simulator.readers.measurement_csv.read_measurement_csv` reads back.

This module imports no torch at import time, so ``--help`` works anywhere.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

from .layer import (DEFAULT_LAYER_CASES, DEFAULT_LAYER_MBS, DEFAULT_LAYER_SEQS,
                    LayerCaseError, parse_ints, parse_layer_cases)

DEFAULT_PHASES = ("collectives", "moe_a2a", "gemm", "moe_step")
PHASES = DEFAULT_PHASES + ("layer",)
COLLECTIVE_OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast",
                  "sendrecv")
DTYPES = ("bf16", "fp16", "fp32")
DEFAULT_SHARES = "0,0.25,0.5,0.75,1"
# name:hidden:ffn:tokens_per_rank:experts:topk:layers
DEFAULT_MOE_CASES = "mixtral:4096:14336:4096:8:2:4,small:4096:2048:1024:8:2:4"

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20,
          "MB": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}


class UsageError(ValueError):
    """A bad command-line value."""


def parse_size(text: str) -> int:
    """``1K`` -> 1024, ``4MiB`` -> 4194304, ``512`` -> 512 (binary units)."""
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise UsageError(f"bad size {text!r} (examples: 512, 1K, 4M, 1G)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def parse_sizes(text: str) -> list[int]:
    """``1K:1G`` (powers of 2), ``1K:1G:4`` (factor 4) or a list ``1K,64K,1M``."""
    text = text.strip()
    if ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise UsageError(f"bad size range {text!r} (expected LO:HI or LO:HI:FACTOR)")
        lo, hi = parse_size(parts[0]), parse_size(parts[1])
        factor = int(parts[2]) if len(parts) == 3 and parts[2].strip().isdigit() else 2
        if len(parts) == 3 and not parts[2].strip().isdigit():
            raise UsageError(f"bad factor in {text!r}")
        if lo <= 0 or hi < lo or factor < 2:
            raise UsageError(f"bad size range {text!r}")
        sizes = []
        s = lo
        while s <= hi:
            sizes.append(s)
            s *= factor
        return sizes
    sizes = [parse_size(p) for p in text.split(",") if p.strip()]
    if not sizes:
        raise UsageError("no sizes given")
    return sizes


def parse_list(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [p.strip() for p in text.split(",") if p.strip()]
    for item in items:
        if item not in allowed:
            raise UsageError(f"unknown {what} {item!r} (choose from {', '.join(allowed)})")
    return items


def parse_shares(text: str) -> list[float]:
    try:
        shares = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UsageError(f"bad shares {text!r} (expected numbers in [0, 1])") from None
    if any(not 0.0 <= s <= 1.0 for s in shares):
        raise UsageError(f"bad shares {text!r} (expected numbers in [0, 1])")
    return shares


def parse_gemm_shapes(text: str) -> list[tuple[int, int, int]]:
    """``MxNxK,MxNxK`` (sizes may carry units: ``4Kx4Kx4K``)."""
    shapes = []
    for part in text.split(","):
        if not part.strip():
            continue
        dims = part.lower().split("x")
        if len(dims) != 3:
            raise UsageError(f"bad GEMM shape {part!r} (expected MxNxK)")
        m, n, k = (parse_size(d.upper()) for d in dims)
        shapes.append((m, n, k))
    return shapes


def parse_moe_cases(text: str) -> list[dict]:
    cases = []
    for part in text.split(","):
        if not part.strip():
            continue
        fields = part.split(":")
        if len(fields) != 7:
            raise UsageError(f"bad MoE case {part!r} "
                             "(expected name:hidden:ffn:tokens:experts:topk:layers)")
        try:
            h, f, t, e, k, layers = (int(x) for x in fields[1:])
        except ValueError:
            raise UsageError(f"bad MoE case {part!r}: numbers expected") from None
        cases.append({"name": fields[0], "hidden": h, "ffn": f, "tokens": t, "experts": e,
                      "topk": k, "layers": layers})
    return cases


class _DefaultsFormatter(argparse.HelpFormatter):
    """Every option's default in --help, unless its help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" not in text and action.option_strings
                and not any(action.default is v for v in (None, argparse.SUPPRESS, False))):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="collsim measure", formatter_class=_DefaultsFormatter,
        description="Measure collectives (torch.distributed + NCCL), uneven MoE all-to-alls, "
                    "bf16 GEMMs and an expert-parallel MoE step on this machine's GPUs; "
                    "write CSV files that collsim reads as calibration data. Needs PyTorch.")
    p.add_argument("--out", default="measurements", help="output folder (default: %(default)s)")
    p.add_argument("--phases", default=",".join(DEFAULT_PHASES),
                   help=f"what to measure, comma-separated from {', '.join(PHASES)} "
                        "(default: %(default)s; 'layer' times dense transformer layers on one "
                        "GPU)")
    p.add_argument("--world-size", type=int, default=0,
                   help="processes (one per GPU) to spawn; 0 = every visible GPU "
                        "(2 on CPU). Ignored under torchrun")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda (NCCL) or cpu (gloo, for testing the script)")
    p.add_argument("--ops", default=",".join(COLLECTIVE_OPS),
                   help="collectives to time (default: %(default)s)")
    p.add_argument("--sizes", default="1K:1G",
                   help="buffer sizes per rank, nccl-tests convention: LO:HI[:FACTOR] or a "
                        "list (default: %(default)s)")
    p.add_argument("--dtype", choices=DTYPES, default="bf16",
                   help="element type of collectives and GEMMs (default: %(default)s)")
    p.add_argument("--shares", default=DEFAULT_SHARES,
                   help="remote shares of the uneven MoE all-to-all (default: %(default)s)")
    p.add_argument("--moe-sizes", default=None,
                   help="sizes of the uneven MoE all-to-all (default: as --sizes)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls per point")
    p.add_argument("--iters", type=int, default=50, help="timed calls per point")
    p.add_argument("--wall-iters", type=int, default=20,
                   help="calls per point timed on the host with a synchronize around each")
    p.add_argument("--gemm-shapes", default=None,
                   help="GEMM shapes MxNxK,... (default: transformer and MoE-expert layer "
                        "shapes, forward and both backward GEMMs)")
    p.add_argument("--gemm-target-ms", type=float, default=30.0,
                   help="timed milliseconds per GEMM shape (at least 10 calls)")
    p.add_argument("--moe-cases", default=DEFAULT_MOE_CASES,
                   help="EP MoE step cases name:hidden:ffn:tokens_per_rank:experts:topk:layers"
                        " (default: %(default)s)")
    p.add_argument("--moe-steps", type=int, default=20, help="timed MoE steps per case")
    p.add_argument("--layer-cases", default=DEFAULT_LAYER_CASES,
                   help="layer phase: name:hidden:ffn:heads:kv_groups:tp:style[:preset], "
                        "style gpt or llama; tp > 1 times one rank's shard "
                        "(default: %(default)s)")
    p.add_argument("--layer-seqs", default=DEFAULT_LAYER_SEQS,
                   help="layer phase: sequence lengths (default: %(default)s)")
    p.add_argument("--layer-mbs", default=DEFAULT_LAYER_MBS,
                   help="layer phase: micro-batch sizes (default: %(default)s)")
    p.add_argument("--time-budget-s", type=float, default=0,
                   help="stop starting new points after this many seconds (0 = no limit); "
                        "what was measured is kept")
    p.add_argument("--timeout-s", type=int, default=600,
                   help="process-group timeout in seconds (default: %(default)s)")
    return p


def config_from_args(args: argparse.Namespace) -> dict:
    phases = parse_list(args.phases, PHASES, "phase")
    sizes = parse_sizes(args.sizes)
    cfg = {
        "out": os.path.abspath(args.out),
        "phases": phases,
        "world_size": args.world_size,
        "device": args.device,
        "ops": parse_list(args.ops, COLLECTIVE_OPS, "op"),
        "sizes": sizes,
        "dtype": args.dtype,
        "shares": parse_shares(args.shares),
        "moe_sizes": parse_sizes(args.moe_sizes) if args.moe_sizes else sizes,
        "warmup": args.warmup,
        "iters": args.iters,
        "wall_iters": args.wall_iters,
        "gemm_shapes": parse_gemm_shapes(args.gemm_shapes) if args.gemm_shapes else None,
        "gemm_target_ms": args.gemm_target_ms,
        "moe_cases": parse_moe_cases(args.moe_cases),
        "moe_steps": args.moe_steps,
        "layer_cases": parse_layer_cases(args.layer_cases),
        "layer_seqs": parse_ints(args.layer_seqs, "--layer-seqs"),
        "layer_mbs": parse_ints(args.layer_mbs, "--layer-mbs"),
        "time_budget_s": args.time_budget_s,
        "timeout_s": args.timeout_s,
    }
    if args.iters < 1 or args.warmup < 0 or args.wall_iters < 0 or args.moe_steps < 1:
        raise UsageError("--iters and --moe-steps must be >= 1, --warmup and --wall-iters >= 0")
    return cfg


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except (UsageError, LayerCaseError) as exc:
        print(f"collsim measure: error: {exc}", file=sys.stderr)
        return 2
    try:
        import torch  # noqa: F401
    except ImportError:
        print("collsim measure: error: PyTorch is not installed (install the 'measure' extra)",
              file=sys.stderr)
        return 2
    rc = 0
    if any(ph in cfg["phases"] for ph in DEFAULT_PHASES):
        from .processes import launch
        rc = launch(cfg)
    if "layer" in cfg["phases"] and rc == 0:
        from .layer import run_layers
        rc = run_layers(cfg)
    return rc


if __name__ == "__main__":
    sys.exit(main())
