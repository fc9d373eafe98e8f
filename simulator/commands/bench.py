"""``collsim bench``: simulated nccl-tests, one collective over a range of sizes.

Sizes follow nccl-tests (the buffer per rank; the gathered output for all_gather), and so
do the bandwidths: algbw = bytes / time, busbw = algbw x 2(n-1)/n for all_reduce, x (n-1)/n
for all_gather, reduce_scatter and all_to_all, x 1 for broadcast and sendrecv. The cost
model comes from the same builder as ``collsim simulate`` uses (``--topology`` for the NCCL
model, else the analytical one).
"""
from __future__ import annotations

import argparse
import sys

from ..collectives import BY_NAME, ENGINE_NAMES
from ..errors import InputError
from ..units import parse_size_bytes
from .common import add_cluster_arguments, build_cost_model, positive_int

HELP = ("Simulated nccl-tests: the time, algorithm bandwidth and bus bandwidth of one "
        "collective over a range of sizes, priced by the same cost model as simulate.")

#: the collectives nccl-tests and the engine share (simulator.collectives)
OPS = ENGINE_NAMES
COLUMNS = ("op", "ranks", "bytes", "time_us", "algbw_GB_per_s", "busbw_GB_per_s")


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
                   help="force an algorithm (ring, tree, direct, hierarchical); default: the "
                        "fastest, as NCCL's tuner picks (needs the nccl cost model)")
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


def group_placement(ranks: int, gpus_per_server: int):
    """The placement of ranks 0..N-1, as the engine computes placements."""
    import numpy as np

    from ..parallel import _placements_of

    return _placements_of(np.arange(ranks)[None, :], gpus_per_server)[0]


def bench_rows(cost_model, cluster, op: str, ranks: int, sizes: list[int],
               algorithm: str | None = None, protocol: str | None = None) -> list[dict]:
    """One dict per size: the columns of COLUMNS plus algorithm and protocol."""
    from ..costmodel.nccl import NcclCostModel
    workload_op = BY_NAME[op].op
    if ranks < 2:
        raise InputError("a collective needs at least 2 ranks", field="--ranks")
    placement = group_placement(ranks, cluster.gpus_per_server)
    nccl = isinstance(cost_model, NcclCostModel)
    if (algorithm or protocol) and not nccl and not isinstance(getattr(cost_model, "base", None),
                                                               NcclCostModel):
        raise InputError("choosing an algorithm or protocol needs the nccl cost model "
                         "(--cost-model nccl or --topology)",
                         field="--algorithm" if algorithm else "--protocol")
    factor = BY_NAME[op].bus_factor(ranks)
    rows = []
    for size in sizes:
        if nccl:
            try:
                est = cost_model.estimate(workload_op, size, placement, algorithm, protocol)
            except InputError as exc:
                if exc.field in ("algorithm", "protocol"):
                    raise InputError(exc.message, field="--" + exc.field) from None
                raise
            ns, algo, proto = est.time_ns, est.algorithm, est.protocol
        else:
            ns, algo, proto = cost_model.collective_ns(workload_op, size, placement), "-", "-"
        time_us = ns / 1000.0
        algbw = size / ns if ns > 0 else float("inf")   # bytes/ns == GB/s
        rows.append({"op": op, "ranks": ranks, "bytes": size, "time_us": time_us,
                     "algbw_GB_per_s": algbw, "busbw_GB_per_s": algbw * factor,
                     "algorithm": algo, "protocol": proto})
    return rows


def render(rows: list[dict], fmt: str, details: bool, header: str = "") -> str:
    cols = list(COLUMNS) + (["algorithm", "protocol"] if details or fmt == "table" else [])

    def cell(row, c):
        v = row[c]
        if c == "time_us":
            return f"{v:.3f}" if fmt == "csv" else f"{v:.2f}"
        if c.endswith("_GB_per_s"):
            return f"{v:.6g}" if fmt == "csv" else f"{v:.2f}"
        return str(v)

    if fmt == "csv":
        lines = [",".join(cols)] + [",".join(cell(r, c) for c in cols) for r in rows]
        return "\n".join(lines) + "\n"
    table = [cols] + [[cell(r, c) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = [("# " + header) if header else None]
    for k, row in enumerate(table):
        lines.append("  ".join(v.rjust(w) if k else v.rjust(w) for v, w in zip(row, widths)))
    return "\n".join(x for x in lines if x is not None) + "\n"


def run(args: argparse.Namespace) -> int:
    sizes = parse_sizes(args.sizes, args.factor)
    cluster, cost_model = build_cost_model(args)  # the same builder as simulate
    rows = bench_rows(cost_model, cluster, args.op, args.ranks, sizes, args.algorithm,
                      args.protocol)
    from ..report.text import describe_cost_model
    header = "\n# ".join(describe_cost_model(cost_model.describe()))
    sys.stdout.write(render(rows, args.format, args.details, header))
    return 0
