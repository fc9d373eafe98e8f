#!/usr/bin/env python3
"""collsim's whole-process start against its interpreter's bare start, interleaved.

    python benchmarks/bare_start.py --venv VENV [--repeat 15] [FILE ...]

Each round runs ``VENV/bin/python -c pass`` and then ``VENV/bin/python -m simulator simulate
--quiet FILE`` for every FILE (default: seed 004), from a folder outside the checkout, so
load from other work hits all alike; it prints each command's median and minimum and the
median as a multiple of the bare start (issue 18 asks for 3x on the small files).
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
SEED = os.path.join(os.path.dirname(HERE), "workloads", "seed004_moe_tp8_ep4_pp4_128gpus.txt")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", default=[SEED], help="workload tables (default seed 004)")
    ap.add_argument("--venv", required=True, help="a venv with collsim installed (pip install .)")
    ap.add_argument("--repeat", type=int, default=15, help="rounds (default 15)")
    args = ap.parse_args()
    python = os.path.join(os.path.abspath(args.venv), "bin", "python")
    if not os.path.exists(python):
        ap.error(f"no {python}")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHOME")}
    commands = {"-c pass": [python, "-c", "pass"]}
    for f in args.files:
        commands[os.path.basename(f)] = [python, "-m", "simulator", "simulate", "--quiet",
                                         os.path.abspath(f)]
    times: dict[str, list[float]] = {k: [] for k in commands}
    loads = []
    with tempfile.TemporaryDirectory() as away:
        for cmd in commands.values():     # warm-up: bytecode, page cache
            subprocess.run(cmd, capture_output=True, cwd=away, env=env, check=True)
        for _ in range(args.repeat):
            loads.append(os.getloadavg()[0])
            for name, cmd in commands.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True, cwd=away, env=env)
                times[name].append(time.perf_counter() - t0)
    bare = statistics.median(times["-c pass"])
    for name, ts in times.items():
        print(f"{name:<40} median {statistics.median(ts) * 1e3:6.1f} ms  min "
              f"{min(ts) * 1e3:6.1f} ms  {statistics.median(ts) / bare:.2f}x the bare start")
    print(f"1-minute load average {min(loads):.1f}-{max(loads):.1f}; {args.repeat} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
