#!/usr/bin/env python3
"""Issue 18's rank-class targets as whole processes: a random 1% of slow GPUs.

    python benchmarks/rank_classes.py [--repeat 1]

Times ``collsim simulate --quiet FILE --straggler 'fraction=0.01,compute=1.2,seed=1'``
(nearly every rank its own class: simulator/engine/class_replay.py) on SimAI's 9216-GPU
example and on a generated GPT-175B table of 131,072 GPUs (TP 8, PP 16, GA 32, Megatron's
distributed optimizer), each also with ``--draws 20``; wall time and peak RSS of each
process (its own rusage, as ``/usr/bin/time -f %M`` gives it), median over ``--repeat``.
Targets (issue 18, item 4): the 9216 example under 5 s and 500 MiB, 131,072 GPUs under
30 s, its ``--draws 20`` under a minute.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from workloads import EX9216  # noqa: E402

STRAGGLERS = "fraction=0.01,compute=1.2,seed=1"


def generate_131k(tmp: str) -> str:
    out = os.path.join(tmp, "gpt175b-131072-ga32.txt")
    subprocess.run([sys.executable, "-m", "simulator", "generate", "--model", "gpt-175b",
                    "--world-size", "131072", "--tp", "8", "--pp", "16", "--global-batch",
                    str(32 * 131072 // 128), "--micro-batch", "1", "--seq-length", "4096",
                    "--use-distributed-optimizer", "-o", out],
                   check=True, capture_output=True, cwd=ROOT)
    return out


def timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one collsim process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "simulator", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"collsim {' '.join(args)} failed: {err[-400:]}")
    return wall, usage.ru_maxrss / 1024   # KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (median)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = generate_131k(tmp)
        cases = [("SimAI's 9216-GPU example", EX9216, [], "5 s, 500 MiB"),
                 ("the same, --draws 20", EX9216, ["--draws", "20"], "-"),
                 ("GPT-175B generated, 131,072 GPUs, GA 32", big, [], "30 s"),
                 ("the same, --draws 20", big, ["--draws", "20"], "60 s")]
        print("| case | wall s | peak MiB | target |")
        print("|---|---:|---:|---|")
        for name, path, extra, target in cases:
            runs = [timed(["simulate", "--quiet", path, "--straggler", STRAGGLERS, *extra])
                    for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in runs)
            mib = statistics.median(r[1] for r in runs)
            print(f"| {name} | {wall:.2f} | {mib:.0f} | {target} |", flush=True)
    print(f"\n(load average {os.getloadavg()[0]:.1f} after; median of {args.repeat})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
