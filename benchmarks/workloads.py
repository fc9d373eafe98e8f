"""Benchmark inputs made from shipped workloads: more GPUs (header) or more micro-batches (rows).

Scaling the GPU count rewrites ``all_gpus`` (DP grows, per-rank work stays); scaling GA
re-unrolls the micro-batch block the way AICB writes it, so the file grows with GA as real
files do.
"""
from __future__ import annotations

import os
import re
import warnings

from simulator.engine.segment import segment
from simulator.readers.workload import read_workload

# the bundled workloads the benchmarks time
_BUNDLED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workloads")
SEED = os.path.join(_BUNDLED, "seed004_moe_tp8_ep4_pp4_128gpus.txt")
EX9216 = os.path.join(_BUNDLED, "simai_example_9216.txt")


def with_gpus(src: str, dst: str, gpus: int) -> str:
    text = open(src).read()
    header, rest = text.split("\n", 1)
    header = re.sub(r"all_gpus:\s*\d+", f"all_gpus: {gpus}", header)
    open(dst, "w").write(header + "\n" + rest)
    return dst


def with_ga(src: str, dst: str, ga: int) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wl = read_workload(src)
        seg = segment(wl)
    lines = open(src).read().splitlines()
    header = re.sub(r"ga:\s*\d+", f"ga: {ga}", lines[0])
    body = lines[2:]
    # the last distinct micro-batch is the steady one; the first keeps its own compute
    first = [body[i] for i in seg.variants[0]]
    steady = [body[i] for i in seg.variants[-1]]
    rows = ([body[i] for i in seg.prefix] + first + steady * (ga - 1)
            + [body[i] for i in seg.suffix])
    open(dst, "w").write("\n".join([header, str(len(rows))] + rows) + "\n")
    return dst
