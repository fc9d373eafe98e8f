#!/usr/bin/env python3
"""Start-up of `collsim simulate`: whole processes, and where one process spends its time.

    python benchmarks/startup.py [--repeat 7] [--before DIR] [--breakdown] [--instructions]

Times ``python -m simulator simulate --quiet FILE`` as whole processes (bytecode cached, as
an installed package runs), for the default cost model (nccl on the dgx-h100 preset) and
``--cost-model simai``, next to ``python -c pass`` (Python's own start on this machine).
Runs are interleaved round by round (every case once per round) so that load from other
work hits all alike; each figure is the median of ``--repeat`` rounds, with the load.
``--before DIR`` (a checkout of an older commit, e.g. ``git archive COMMIT | tar -x -C DIR``)
times that tree in the same rounds. ``--instructions`` also counts the instructions each
process executes (valgrind's cachegrind without cache simulation, one run per case and
tree): unlike times on a shared machine they do not move with the load. ``--breakdown``
then runs one process per case with marks around the phases: imports (the CLI, the command
and engine, what ``run`` imports, the nccl model and topology), reading the table, building
the cost model, simulating (pricing and replay), the rest; medians of ``--repeat``
processes, milliseconds.
"""
from __future__ import annotations

import argparse
import ast
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

from workloads import EX9216, SEED, with_gpus  # noqa: E402


# the phase marks of --breakdown, run as `python -c` in the tree timed
_BREAKDOWN = r'''
import importlib, sys, time
T = {}
def imp(label, *mods):
    t = time.perf_counter()
    for m in mods:
        importlib.import_module(m)
    T[label] = time.perf_counter() - t
imp("import cli", "simulator.cli")
imp("import command + engine", "simulator.commands.simulate")
imp("import run's modules", "simulator.study", "simulator.scenario", "simulator.report.output",
    "simulator.readers.workload", "simulator.checks")
if "--cost-model" not in sys.argv:
    imp("import nccl model + topology", "simulator.costmodel.nccl",
        "simulator.topology.overrides", "simulator.topology.simpleyaml")
marks = {}
def timed(mod, name, label):
    f = getattr(mod, name)
    def g(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            marks[label] = marks.get(label, 0.0) + time.perf_counter() - t
    setattr(mod, name, g)
import simulator.cli as cli, simulator.commands.simulate as cs
import simulator.commands.common as cc
import simulator.readers.workload as rw, simulator.study as st
timed(rw, "read_workload", "read table")
timed(cc, "build_cost_model_for", "build cost model")
timed(st, "run_study", "simulate (price + replay)")
t = time.perf_counter()
cli.main(["simulate", "--quiet"] + sys.argv[1:])
total = time.perf_counter() - t
T.update(marks)
T["rest (argparse, checks)"] = total - sum(marks.values())
print(repr({k: v * 1e3 for k, v in T.items()}))
'''


def _env(root: str) -> dict:
    env = dict(os.environ, PYTHONPATH=root)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(cmd: list[str], root: str) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {root}: {p.stderr.decode()[-400:]}")
    return dt


def _instructions(cmd: list[str], root: str) -> int:
    """Instructions the process executes, as cachegrind counts them (its "I refs")."""
    p = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                        "--cachegrind-out-file=/dev/null", *cmd], cwd=root, env=_env(root),
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed under valgrind: {p.stderr[-400:]}")
    refs = [ln for ln in p.stderr.splitlines() if "I   refs:" in ln or "I refs:" in ln]
    return int(refs[-1].split(":")[1].strip().replace(",", ""))


def generate_comm_only(tmp: str, gpus: int, ga: int) -> str:
    """GPT-175B as AICB writes it without profiling (1 ns compute), TP 8, PP 8."""
    out = os.path.join(tmp, f"gpt175b-comm-{gpus}-ga{ga}.txt")
    subprocess.run([sys.executable, "-m", "simulator", "generate", "--model", "gpt-175b",
                    "--world-size", str(gpus), "--tp", "8", "--pp", "8", "--global-batch",
                    str(ga * gpus // 64), "--micro-batch", "1", "--seq-length", "4096",
                    "--style", "aicb", "--no-compute", "--use-distributed-optimizer", "-o", out],
                   check=True, capture_output=True, cwd=ROOT, env=_env(ROOT))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="interleaved rounds")
    ap.add_argument("--before", metavar="DIR", help="an older tree to time in the same rounds")
    ap.add_argument("--breakdown", action="store_true", help="phase marks inside one process")
    ap.add_argument("--instructions", action="store_true",
                    help="instructions executed per process (needs valgrind), millions")
    args = ap.parse_args()
    trees = [("after", ROOT)] + ([("before", os.path.abspath(args.before))]
                                 if args.before else [])
    with tempfile.TemporaryDirectory() as tmp:
        files = [("seed 004 (128 GPUs)", SEED), ("SimAI's 9216-GPU example", EX9216),
                 ("the same at 147,456 GPUs", with_gpus(EX9216, os.path.join(tmp, "x147k.txt"),
                                                        147456)),
                 ("GPT-175B comm only, 1,024 GPUs, GA 32", generate_comm_only(tmp, 1024, 32))]
        cases = [("`python -c pass`", "-", [], [sys.executable, "-c", "pass"])]
        for label, path in files:
            for model, flags in (("nccl (default)", []), ("simai", ["--cost-model", "simai"])):
                cases.append((label, model, flags + [path],
                              [sys.executable, "-m", "simulator", "simulate", "--quiet", *flags,
                               path]))
        times: dict = {}
        for _, root in trees:                        # warm-up: bytecode, page cache
            for case in cases:
                _run(case[3], root)
        loads = []
        for _ in range(args.repeat):
            for tree, root in trees:
                for case in cases:
                    times.setdefault((tree, case[0], case[1]), []).append(_run(case[3], root))
            loads.append(os.getloadavg()[0])
        print(f"whole processes, median of {args.repeat} interleaved rounds, 1-minute load "
              f"average {min(loads):.1f}-{max(loads):.1f}\n")
        head = "| case | cost model | " + " | ".join(f"{t} s" for t, _ in trees) + " |"
        print(head)
        print("|---|---|" + "---:|" * len(trees))
        for label, model, _, _ in cases:
            cells = [f"{statistics.median(times[(t, label, model)]):.3f}" for t, _ in trees]
            print(f"| {label} | {model} | " + " | ".join(cells) + " |")
        if args.instructions:
            print("\ninstructions executed (millions; valgrind --tool=cachegrind "
                  "--cache-sim=no, one process each):\n")
            print("| case | cost model | " + " | ".join(f"{t} (M)" for t, _ in trees) + " |")
            print("|---|---|" + "---:|" * len(trees))
            for label, model, _, cmd in cases:
                cells = [f"{_instructions(cmd, root) / 1e6:.0f}" for _, root in trees]
                print(f"| {label} | {model} | " + " | ".join(cells) + " |")
        if args.breakdown:
            print("\nmilliseconds inside one process (after Python's start), median of "
                  f"{args.repeat} processes:\n")
            for label, model, argv, _ in cases[1:]:
                runs = []
                for _ in range(args.repeat):
                    p = subprocess.run([sys.executable, "-c", _BREAKDOWN, *argv], cwd=ROOT,
                                       env=_env(ROOT), capture_output=True, text=True,
                                       check=True)
                    runs.append(ast.literal_eval(p.stdout.strip().splitlines()[-1]))
                keys = list(runs[0])
                parts = [f"{k} {statistics.median(r[k] for r in runs):.1f}" for k in keys]
                total = statistics.median(sum(r.values()) for r in runs)
                print(f"- {label}, {model}: {total:.1f} ms = " + ", ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
