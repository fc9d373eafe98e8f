"""``collsim bench``: simulated nccl-tests, one collective over a range of sizes.

The rows come from :mod:`simulator.costmodel.bench`, rendered by :mod:`simulator.report.bench`;
the cost model from the same builder as ``collsim simulate`` uses (``--topology`` for the
NCCL model, else the analytical one).
"""
from __future__ import annotations

import argparse
import sys

from ..costmodel.bench import OPS, bench_rows
from ..errors import InputError
from ..report.bench import render
from ..units import parse_size_bytes
from .arguments import add_cluster_arguments, positive_int
from .common import build_cost_model

HELP = ("Simulated nccl-tests: the time, algorithm bandwidth and bus bandwidth of one "
        "collective over a range of sizes, priced by the same cost model as simulate.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--op", required=True, choices=OPS, help="the collective")
    p.add_argument("--ranks", required=True, type=positive_int, metavar="N",
                   help="ranks in the group: ranks 0..N-1 (on the topology's GPUs of those "
                        "ranks; Megatron order unless the topology places them otherwise)")
    p.add_argument("--sizes", default="1K:1G", metavar="LO:HI",
                   help="sizes per rank, nccl-tests convention: LO:HI (multiplied by "
                        "--factor), or a list such as 1K,64K,1M (default 1K:1G)")
    p.add_argument("--factor", type=positive_int, default=2,
                   help="step between sizes of a LO:HI range (default 2)")
    p.add_argument("--algorithm", metavar="NAME",
                   help="force an algorithm (ring, tree, nvls, nvls_tree, collnet, "
                        "collnet_chain, pat, direct, hierarchical); default: the fastest of "
                        "those NCCL would run on the group (needs the nccl cost model)")
    p.add_argument("--protocol", choices=("LL", "LL128", "Simple"),
                   help="force a protocol (needs the nccl cost model); default: the fastest")
    p.add_argument("--format", choices=("table", "csv"), default="table",
                   help="output format (default table)")
    p.add_argument("--details", action="store_true",
                   help="also print the algorithm and protocol chosen per size (CSV columns "
                        "algorithm,protocol)")
    add_cluster_arguments(p)  # includes --topology and --calibration


def parse_sizes(text: str, factor: int) -> list[int]:
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 2:
                raise ValueError(f"expected LO:HI, got {text!r}")
            lo, hi = (parse_size_bytes(x) for x in parts)
            if lo < 1 or hi < lo:
                raise ValueError(f"expected 1 <= LO <= HI, got {text!r}")
            if factor < 2:
                raise ValueError("--factor must be at least 2 for a range")
            sizes = []
            s = lo
            while s <= hi:
                sizes.append(s)
                s *= factor
            return sizes
        sizes = [parse_size_bytes(x) for x in text.split(",") if x.strip()]
        if not sizes or min(sizes) < 1:
            raise ValueError(f"expected sizes of at least 1 byte, got {text!r}")
        return sizes
    except ValueError as exc:
        raise InputError(str(exc), field="--sizes") from None


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes, args.factor)
    cluster, cost_model = build_cost_model(args)  # the same builder as simulate
    rows = bench_rows(cost_model, cluster, args.op, args.ranks, sizes, args.algorithm,
                      args.protocol)
    from ..report.text import describe_cost_model
    header = "\n# ".join(describe_cost_model(cost_model.describe()))
    sys.stdout.write(render(rows, args.format, args.details, header))
    return 0
