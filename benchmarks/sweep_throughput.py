#!/usr/bin/env python3
"""Sweep points per second inside one process, against SimAI -O3's per-process rate.

A what-if sweep simulates one workload under many clusters. Inside one Python process
collsim parses the file once and keeps what the cluster does not change (policy layout,
micro-batch split, group placements: simulator/engine/memo.py), so a point costs planning
with new prices and the event replay. SimAI runs one process per point; its rate is
1 / (its whole-process time) on the same file.

    python benchmarks/sweep_throughput.py [--points 200] [--simai DIR]

Each point sets a different NIC bandwidth (25-74 GB/s), so every price really changes.
The last case runs the generated point as a sweep spec's points do (``run_point``: model and
parallelism keys per point, the workload generated from them), where points that share
those keys share one generated workload.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from compare_simai import EX9216, generate_comm_only, time_simai  # noqa: E402


def generate_gpt175b(tmp: str, gpus: int = 1024, ga: int = 32) -> str:
    import subprocess
    out = os.path.join(tmp, f"gpt175b-{gpus}-ga{ga}.txt")
    dp = gpus // (8 * 16)
    subprocess.run([sys.executable, "-m", "simulator", "generate", "--model", "gpt-175b",
                    "--world-size", str(gpus), "--tp", "8", "--pp", "16", "--global-batch",
                    str(ga * dp), "--micro-batch", "1", "--seq-length", "4096", "-o", out],
                   check=True, capture_output=True, cwd=ROOT)
    return out


def points_per_second(path: str, points: int) -> tuple[float, float]:
    """(first point s, points/s after the first) for a NIC-bandwidth sweep in this process."""
    from simulator.cluster import Cluster
    from simulator.costmodel.analytical import AnalyticalCostModel
    from simulator.engine import simulate
    from simulator.readers.workload import read_workload

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        wl = read_workload(path)
        cluster = Cluster(nic_gbps=25.0)
        simulate(wl, cluster, AnalyticalCostModel(cluster))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(1, points + 1):
            cluster = Cluster(nic_gbps=25.0 + i % 50)
            simulate(wl, cluster, AnalyticalCostModel(cluster))
        rate = points / (time.perf_counter() - t0)
    return first, rate


def sweep_points_per_second(gpus: int, ga: int, points: int) -> tuple[float, float]:
    """The same NIC what-if through the sweep runner (simulator/sweep/runner.py), as a sweep
    spec's points: each point names the model and parallelism, so the runner generates the
    workload; points that share those keys share one generated workload."""
    from simulator.sweep.runner import run_point

    base = {"model": "gpt-175b", "gpus": gpus, "tp": 8, "pp": 16,
            "global_batch": ga * gpus // (8 * 16), "micro_batch": 1, "seq_length": 4096,
            "cost_model": "simai"}
    t0 = time.perf_counter()
    assert run_point({**base, "nic_bw": 25.0})["status"] == "ok"
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(1, points + 1):
        assert run_point({**base, "nic_bw": 25.0 + i % 50})["status"] == "ok"
    return first, points / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--simai", default=os.path.join(ROOT, "..", "shared", "peers",
                                                    "simai-analytical"))
    args = ap.parse_args()
    o3_src = os.path.join(os.path.abspath(args.simai), "SimAI_analytical_O3")
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("SimAI's 9216-GPU example", 9216, EX9216),
                 ("GPT-175B generated, 1,024 GPUs, TP 8, PP 16, GA 32", 1024,
                  generate_gpt175b(tmp)),
                 ("GPT-175B comm only, 1,024 GPUs, GA 8", 1024, generate_comm_only(tmp, 1024, 8))]
        work = None
        if os.path.exists(o3_src):
            import shutil
            work = os.path.join(tmp, "simai")
            shutil.copytree(os.path.dirname(o3_src), work)
            os.makedirs(os.path.join(work, "results"), exist_ok=True)
        print("| case | collsim first point s | collsim points/s after | ms/point | "
              "SimAI -O3 s/process | SimAI points/s | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        runner = "the same as sweep-spec points (simulator/sweep/runner.py)"
        cases.append((runner, 1024, cases[1][2]))
        for name, gpus, path in cases:
            first, rate = (sweep_points_per_second(gpus, 32, args.points) if name == runner
                           else points_per_second(path, args.points))
            simai = "-"
            simai_rate = ratio = "-"
            if work:
                o3 = os.path.join(work, "SimAI_analytical_O3")
                time_simai(o3, work, path, gpus)
                t = statistics.median(time_simai(o3, work, path, gpus) for _ in range(5))
                simai, simai_rate, ratio = f"{t:.3f}", f"{1 / t:.1f}", f"{rate * t:.0f}x"
            print(f"| {name} | {first:.3f} | {rate:.0f} | {1000 / rate:.1f} | {simai} | "
                  f"{simai_rate} | {ratio} |", flush=True)
    print(f"\n(load average {os.getloadavg()[0]:.1f}; {args.points} points per case)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
