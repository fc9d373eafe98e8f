#!/usr/bin/env python3
"""Sweep points per second inside one process, against SimAI -O3's per-process rate.

A what-if sweep simulates one workload under many clusters. Inside one Python process
collsim parses the file once and keeps what the cluster does not change (policy layout,
micro-batch split, schedule, group placements, the rows each sequence prices and their
distinct collectives: simulator/engine/memo.py and plan.py; a sweep spec's parsed points,
cost models and sidecars: simulator/sweep/runner.py), so a point costs pricing each distinct
collective once and the pipeline's evaluation (simulator/engine/direct.py: passes in
dependency order, repeating steady rounds extrapolated). SimAI runs one process per point;
its rate is 1 / (its whole-process time), measured here on the same points (the same file
and NIC bandwidth) with SimAI's -O3 build when ../shared/peers/simai-analytical is there
(skipped cleanly when it is not).

    python benchmarks/sweep_throughput.py [--points 200] [--repeat 3] [--whatif 10000]
                                          [--sweep-jobs 2] [--simai DIR]

Each point sets a different NIC bandwidth (25-74 GB/s), so every price really changes.
Timings are medians over ``--repeat`` rounds, each timing collsim's points and SimAI's
processes on the same points one after the other (interleaved). The case "as sweep-spec
points" runs the generated point as a sweep spec's points do (``run_point``: model and
parallelism keys per point, the workload generated from them; points that share those keys
share one generated workload). ``--whatif N`` then times one N-point NIC what-if that way,
start to end, in this process. ``--sweep-jobs J`` then times the same N points as a sweep
spec through ``collsim sweep SPEC --jobs J --no-cache`` (a new process, J workers, CSV and
plots included), with its peak memory.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from compare_simai import EX9216, generate_comm_only  # noqa: E402


def generate_gpt175b(tmp: str, gpus: int = 1024, ga: int = 32) -> str:
    out = os.path.join(tmp, f"gpt175b-{gpus}-ga{ga}.txt")
    dp = gpus // (8 * 16)
    subprocess.run([sys.executable, "-m", "simulator", "generate", "--model", "gpt-175b",
                    "--world-size", str(gpus), "--tp", "8", "--pp", "16", "--global-batch",
                    str(ga * dp), "--micro-batch", "1", "--seq-length", "4096",
                    "--use-distributed-optimizer", "-o", out],
                   check=True, capture_output=True, cwd=ROOT)
    return out


def nic_of(i: int) -> float:
    """The NIC bandwidth (GB/s) of point ``i``."""
    return 25.0 + i % 50


class FileSweep:
    """A NIC what-if on one parsed file through the Python API, in this process."""

    def __init__(self, path: str):
        from simulator.readers.workload import read_workload

        self.path = path
        t0 = time.perf_counter()
        self.workload = read_workload(path)
        self.point(0)
        self.first_s = time.perf_counter() - t0
        self.done = 1

    def point(self, i: int) -> None:
        from simulator.cluster import Cluster
        from simulator.costmodel.analytical import AnalyticalCostModel
        from simulator.engine import SimulationOptions, simulate

        cluster = Cluster(nic_gbps=nic_of(i))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # a sweep reports the iteration and its breakdown, not the per-row detail
            simulate(self.workload, cluster, AnalyticalCostModel(cluster),
                     SimulationOptions(row_detail=False))

    def rate(self, points: int) -> float:
        """Points per second over ``points`` new points."""
        t0 = time.perf_counter()
        for _ in range(points):
            self.point(self.done)
            self.done += 1
        return points / (time.perf_counter() - t0)


class SpecSweep(FileSweep):
    """The same what-if as sweep-spec points (simulator/sweep/runner.py): each point names the
    model and parallelism, the runner generates the workload (shared by points alike)."""

    def __init__(self, gpus: int, ga: int, path: str):
        self.base = {"model": "gpt-175b", "gpus": gpus, "tp": 8, "pp": 16,
                     "global_batch": ga * gpus // (8 * 16), "micro_batch": 1,
                     "seq_length": 4096, "cost_model": "simai"}
        self.path = path
        t0 = time.perf_counter()
        self.point(0)
        self.first_s = time.perf_counter() - t0
        self.done = 1

    def point(self, i: int) -> None:
        from simulator.sweep.runner import run_point

        out = run_point({**self.base, "nic_bw": nic_of(i)})
        if out["status"] != "ok":
            raise RuntimeError(f"sweep point failed: {out['error']}")


def whatif_spec(tmp: str, points: int, ga: int = 32) -> str:
    """A sweep spec of ``points`` NIC bandwidths (25 GB/s on, 0.005 GB/s apart) on the
    generated GPT-175B point's keys (1,024 GPUs, TP 8, PP 16, GA ``ga``)."""
    path = os.path.join(tmp, f"whatif{points}.yaml")
    nics = ", ".join(f"{25 + k * 0.005:.3f}" for k in range(points))
    with open(path, "w") as f:
        f.write(f"name: whatif{points}\nbase:\n  model: gpt-175b\n  gpus: 1024\n  tp: 8\n"
                f"  pp: 16\n  global_batch: {ga * 8}\n  micro_batch: 1\n  seq_length: 4096\n"
                f"  cost_model: simai\ngrid:\n  nic_bw: [{nics}]\n")
    return path


def cli_sweep(tmp: str, spec: str, jobs: int) -> tuple[float, float | None]:
    """(wall seconds, peak RSS MiB of the largest process or None) of ``collsim sweep``."""
    import resource

    out = os.path.join(tmp, "cli-sweep.csv")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "simulator", "sweep", spec, "--jobs", str(jobs),
                    "--no-cache", "--quiet", "-o", out], check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss   # KiB on Linux
    return wall, peak_kib / 1024 if sys.platform.startswith("linux") else None


def simai_seconds(binary: str, workdir: str, path: str, gpus: int, i: int) -> float | None:
    """SimAI's whole-process time on point ``i`` (same file, that NIC bandwidth); None when
    it wrote no result row (it exits 0 without one on the GA 512 file)."""
    cmd = [binary, "-w", path, "-g", str(gpus), "-g_p_s", "8", "-r", "sweep-", "-nv", "360",
           "-nic", f"{nic_of(i):g}", "-n_p_s", "8"]
    csv = os.path.join(workdir, "results", "sweep-EndToEnd.csv")
    if os.path.exists(csv):
        os.remove(csv)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, cwd=workdir)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(binary)} failed on {path}: "
                           f"{p.stdout.decode()[-300:]} {p.stderr.decode()[-300:]}")
    if not os.path.exists(csv):
        return None
    with open(csv) as f:
        rows = sum(1 for line in f if line.strip())
    return dt if rows >= 2 else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=200, help="collsim points per round")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds per case")
    ap.add_argument("--simai-points", type=int, default=3,
                    help="SimAI processes per round (each a point of the same sweep)")
    ap.add_argument("--whatif", type=int, default=0,
                    help="then time one what-if of this many points (sweep-spec points)")
    ap.add_argument("--sweep-jobs", type=int, default=0,
                    help="then time the --whatif points through collsim sweep --jobs N")
    ap.add_argument("--simai", default=os.path.join(ROOT, "..", "shared", "peers",
                                                    "simai-analytical"))
    args = ap.parse_args()
    o3_src = os.path.join(os.path.abspath(args.simai), "SimAI_analytical_O3")
    with tempfile.TemporaryDirectory() as tmp:
        g32 = generate_gpt175b(tmp)
        cases = [("SimAI's 9216-GPU example (GA 24, PP 12)", 9216, EX9216, None),
                 ("GPT-175B generated, 1,024 GPUs, TP 8, PP 16, GA 32", 1024, g32, None),
                 ("the same, GA 128", 1024, generate_gpt175b(tmp, ga=128), None),
                 ("the same, GA 512", 1024, generate_gpt175b(tmp, ga=512), None),
                 ("GPT-175B comm only, 1,024 GPUs, GA 8", 1024,
                  generate_comm_only(tmp, 1024, 8), None),
                 ("GA 32 as sweep-spec points (simulator/sweep/runner.py)", 1024, g32, 32)]
        work = None
        if os.path.exists(o3_src):
            work = os.path.join(tmp, "simai")
            shutil.copytree(os.path.dirname(o3_src), work)
            os.makedirs(os.path.join(work, "results"), exist_ok=True)
        else:
            print(f"({o3_src} not found: SimAI columns left out)")
        print("| case | collsim first point s | collsim points/s after | ms/point | "
              "SimAI -O3 s/process | SimAI points/s | ratio (min-max) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, gpus, path, spec_ga in cases:
            sweep = SpecSweep(gpus, spec_ga, path) if spec_ga else FileSweep(path)
            rates: list[float] = []
            simai_s: list[float] = []
            ratios: list[float] = []
            no_result = False
            for _ in range(args.repeat):
                rate = sweep.rate(args.points)
                rates.append(rate)
                if work:
                    o3 = os.path.join(work, "SimAI_analytical_O3")
                    ts = [simai_seconds(o3, work, path, gpus, sweep.done + k)
                          for k in range(args.simai_points)]
                    done = [x for x in ts if x is not None]
                    if len(done) < len(ts):
                        no_result = True
                        continue
                    t = statistics.median(done)
                    simai_s.append(t)
                    ratios.append(rate * t)
            rate = statistics.median(rates)
            simai = simai_rate = ratio = "-"
            if no_result:
                simai = "no result row"
            elif simai_s:
                t = statistics.median(simai_s)
                simai, simai_rate = f"{t:.3f}", f"{1 / t:.1f}"
                ratio = (f"{statistics.median(ratios):.0f}x ({min(ratios):.0f}-"
                         f"{max(ratios):.0f})")
            print(f"| {name} | {sweep.first_s:.3f} | {rate:.0f} | {1000 / rate:.2f} | "
                  f"{simai} | {simai_rate} | {ratio} |", flush=True)
        print(f"\n(load average {os.getloadavg()[0]:.1f} after the table; {args.points} points "
              f"per round, {args.repeat} rounds; SimAI {args.simai_points} processes a round)")
        if args.whatif:
            sweep = SpecSweep(1024, 32, g32)
            t0 = time.perf_counter()
            sweep.rate(args.whatif - 1)
            total = time.perf_counter() - t0 + sweep.first_s
            print(f"\n{args.whatif}-point NIC what-if, GPT-175B 1,024 GPUs GA 32 as sweep-spec "
                  f"points in one process: {total:.1f} s ({args.whatif / total:.0f} points/s; "
                  f"load average {os.getloadavg()[0]:.1f})")
        if args.whatif and args.sweep_jobs:
            spec = whatif_spec(tmp, args.whatif)
            load = os.getloadavg()[0]
            wall, peak = cli_sweep(tmp, spec, args.sweep_jobs)
            mem = f", peak RSS {peak:.0f} MiB (largest process)" if peak else ""
            print(f"\nthe same {args.whatif} points through collsim sweep SPEC --jobs "
                  f"{args.sweep_jobs} --no-cache (CSV and plots included): {wall:.1f} s "
                  f"({args.whatif / wall:.0f} points/s{mem}; load average {load:.1f} before, "
                  f"{os.getloadavg()[0]:.1f} after)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
