"""Simulated nccl-tests: one collective over a range of sizes, priced by a cost model.

Sizes follow nccl-tests (the buffer per rank; the gathered output for all_gather), and so
do the bandwidths: algbw = bytes / time, busbw = algbw x 2(n-1)/n for all_reduce, x (n-1)/n
for all_gather, reduce_scatter and all_to_all, x 1 for broadcast and sendrecv. ``collsim
bench`` prints these rows; benchmarks and scripts compare them with measured nccl-tests.
"""
from __future__ import annotations

from ..collectives import BY_NAME, ENGINE_NAMES
from ..errors import InputError

#: the collectives nccl-tests and the engine share (simulator.collectives)
OPS = ENGINE_NAMES
COLUMNS = ("op", "ranks", "bytes", "time_us", "algbw_GB_per_s", "busbw_GB_per_s")


def group_placement(ranks: int, gpus_per_server: int):
    """The placement of ranks 0..N-1, as the engine computes placements."""
    import numpy as np

    from ..parallel import _placements_of

    return _placements_of(np.arange(ranks)[None, :], gpus_per_server)[0]


def bench_rows(cost_model, cluster, op: str, ranks: int, sizes: list[int],
               algorithm: str | None = None, protocol: str | None = None) -> list[dict]:
    """One dict per size: the columns of COLUMNS plus algorithm and protocol."""
    from .nccl import NcclCostModel
    workload_op = BY_NAME[op].op
    if ranks < 2:
        raise InputError("a collective needs at least 2 ranks", field="ranks")
    placement = group_placement(ranks, cluster.gpus_per_server)
    nccl = isinstance(cost_model, NcclCostModel)
    if (algorithm or protocol) and not nccl and not isinstance(getattr(cost_model, "base", None),
                                                               NcclCostModel):
        raise InputError("choosing an algorithm or protocol needs the nccl cost model "
                         "(--cost-model nccl or --topology)",
                         field="algorithm" if algorithm else "protocol")
    factor = BY_NAME[op].bus_factor(ranks)
    rows = []
    for size in sizes:
        if nccl:
            try:
                est = cost_model.estimate(workload_op, size, placement, algorithm, protocol)
            except InputError as exc:
                if exc.field in ("algorithm", "protocol"):
                    raise InputError(exc.message, field=exc.field) from None
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
