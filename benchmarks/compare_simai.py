#!/usr/bin/env python3
"""collsim against SimAI's analytical simulator, built as shipped (-O0) and with -O3.

Both run as whole processes on the same files, in interleaved pairs (collsim, SimAI -O3,
collsim, SimAI -O3, ...) so that load from other work on the machine hits both alike; the
ratio collsim / SimAI is taken per pair and reported as median and min-max. The -O0 build
(what SimAI's build script makes) is timed fewer times: it is 40-120x slower.

    python benchmarks/compare_simai.py [--repeat 7] [--o0-repeat 1] [--simai DIR]
                                       [--write docs/performance.md]

DIR holds ``SimAI_analytical_O3`` and ``SimAI_analytical_O0`` and the ``astra-sim-alibabacloud/
inputs`` they read (default: ../shared/peers/simai-analytical beside the checkout); it is
copied to a temporary folder first (SimAI writes its results relative to the working
directory). Without the binaries the script says so and exits 0. ``--write`` replaces the
section between ``<!-- simai:begin -->`` and ``<!-- simai:end -->``.

collsim runs with bytecode caching allowed (as an installed package runs: pip compiles it),
after one warm-up run per case.
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from workloads import with_gpus  # noqa: E402

SEED = os.path.join(ROOT, "workloads", "seed004_moe_tp8_ep4_pp4_128gpus.txt")
EX9216 = os.path.join(ROOT, "workloads", "simai_example_9216.txt")
BEGIN, END = "<!-- simai:begin -->", "<!-- simai:end -->"


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def generate_comm_only(tmp: str, gpus: int, ga: int) -> str:
    """GPT-175B as AICB writes it without profiling (1 ns compute), TP 8, PP 8."""
    out = os.path.join(tmp, f"gpt175b-comm-{gpus}-ga{ga}.txt")
    dp = gpus // 64
    cmd = [sys.executable, "-m", "simulator", "generate", "--model", "gpt-175b", "--world-size",
           str(gpus), "--tp", "8", "--pp", "8", "--global-batch", str(ga * dp),
           "--micro-batch", "1", "--seq-length", "4096", "--style", "aicb", "--no-compute",
           "-o", out]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=_env())
    return out


def cases(tmp: str):
    yield "seed 004", 128, SEED
    yield "SimAI's 9216-GPU example", 9216, EX9216
    yield "the same at 147,456 GPUs", 147456, with_gpus(EX9216, os.path.join(tmp, "x147k.txt"),
                                                        147456)
    for gpus in (1024, 8192, 65536):
        yield f"GPT-175B comm only, {gpus:,} GPUs, GA 8", gpus, generate_comm_only(tmp, gpus, 8)
    for ga in (32, 128, 512):
        yield f"GPT-175B comm only, 1,024 GPUs, GA {ga}", 1024, generate_comm_only(tmp, 1024, ga)


def time_collsim(path: str) -> float:
    t0 = time.perf_counter()
    # SimAI's analytical model on both sides, like for like (collsim's default is nccl)
    p = subprocess.run([sys.executable, "-m", "simulator", "simulate", "--quiet",
                        "--cost-model", "simai", path],
                       capture_output=True, cwd=ROOT, env=_env())
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"collsim failed on {path}: {p.stderr.decode()[-500:]}")
    return dt


def time_simai(binary: str, workdir: str, path: str, gpus: int) -> float:
    cmd = [binary, "-w", path, "-g", str(gpus), "-g_p_s", "8", "-r", "bench-", "-nv", "360",
           "-nic", "48.5", "-n_p_s", "8"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, cwd=workdir)
    dt = time.perf_counter() - t0
    if p.returncode != 0 or not os.path.exists(os.path.join(workdir, "results",
                                                            "bench-EndToEnd.csv")):
        raise RuntimeError(f"{os.path.basename(binary)} failed on {path}: "
                           f"{p.stdout.decode()[-300:]} {p.stderr.decode()[-300:]}")
    return dt


def python_floor(repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=_env())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="interleaved pairs per case")
    ap.add_argument("--o0-repeat", type=int, default=1, help="runs of the -O0 build per case")
    ap.add_argument("--simai", default=os.path.join(ROOT, "..", "shared", "peers",
                                                    "simai-analytical"))
    ap.add_argument("--write", metavar="MD", help="replace the simai section of this file")
    args = ap.parse_args()
    src = os.path.abspath(args.simai)
    if not all(os.path.exists(os.path.join(src, b))
               for b in ("SimAI_analytical_O3", "SimAI_analytical_O0")):
        print(f"skipped: SimAI's analytical binaries are not in {src}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "simai")
        shutil.copytree(src, work)
        os.makedirs(os.path.join(work, "results"), exist_ok=True)
        o3 = os.path.join(work, "SimAI_analytical_O3")
        o0 = os.path.join(work, "SimAI_analytical_O0")
        floor = python_floor(args.repeat)
        for name, gpus, path in cases(tmp):
            time_collsim(path)                      # warm-up: bytecode, page cache
            time_simai(o3, work, path, gpus)
            ours, theirs, ratios = [], [], []
            for _ in range(args.repeat):
                a = time_collsim(path)
                b = time_simai(o3, work, path, gpus)
                ours.append(a)
                theirs.append(b)
                ratios.append(a / b)
            slow = [time_simai(o0, work, path, gpus) for _ in range(args.o0_repeat)]
            row = {"case": name, "gpus": gpus, "collsim": statistics.median(ours),
                   "o3": statistics.median(theirs), "o0": statistics.median(slow),
                   "ratio": statistics.median(ratios), "ratio_min": min(ratios),
                   "ratio_max": max(ratios), "load": os.getloadavg()[0]}
            rows.append(row)
            print(f"{name:<42} collsim {fmt_s(row['collsim'])} s  SimAI -O3 {fmt_s(row['o3'])} s"
                  f"  -O0 {fmt_s(row['o0'])} s  ratio {row['ratio']:.2f} "
                  f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f})  load {row['load']:.1f}",
                  flush=True)
    lines = [
        f"Measured with `python benchmarks/compare_simai.py --repeat {args.repeat}` "
        f"(whole processes, median of {args.repeat} interleaved pairs; ratio = collsim / "
        f"SimAI -O3 per pair, median and min-max; -O0 {args.o0_repeat} run(s)). Python's "
        f"own start (`python -c pass`) took {floor:.3f} s; 1-minute load average "
        f"{min(r['load'] for r in rows):.1f}-{max(r['load'] for r in rows):.1f} "
        "(other work on the 2 cores).",
        "",
        "| case | GPUs | collsim s | SimAI -O3 s | SimAI -O0 s | collsim / -O3 (min-max) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['gpus']:,} | {fmt_s(r['collsim'])} | {fmt_s(r['o3'])} | "
                     f"{fmt_s(r['o0'])} | {r['ratio']:.2f} ({r['ratio_min']:.2f}-"
                     f"{r['ratio_max']:.2f}) |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.write:
        text = open(args.write).read() if os.path.exists(args.write) else ""
        block = f"{BEGIN}\n{table}\n{END}"
        if BEGIN in text and END in text:
            text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        from simulator.report.output import write_atomic
        write_atomic(args.write, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
