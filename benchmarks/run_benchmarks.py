"""Time whole `collsim simulate` processes (start-up included) and record peak memory.

    python benchmarks/run_benchmarks.py [--repeat 3] [--out benchmarks/results.csv] [--quick]

Cases: seed 004 (128 GPUs), SimAI's 9216-GPU example and its header scaled to 147,456 GPUs,
the same example re-unrolled with GA 8..96, and, when `collsim generate` exists, generated
Mixtral-like and GPT-175B-like workloads on 1k, 16k and 131k GPUs, all priced with
`--cost-model simai` (SimAI's analytical model, like for like with SimAI). Writes a CSV and
docs/performance.md's table with plots of time vs GPU count and vs GA.
"""
from __future__ import annotations

import argparse
import csv
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

from workloads import EX9216, SEED, with_ga, with_gpus  # noqa: E402



def run_case(args: list[str], repeat: int) -> dict:
    walls, rss = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, os.path.join(HERE, "_measure_one.py"), *args],
                           capture_output=True, text=True, cwd=ROOT)
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise RuntimeError(f"collsim {' '.join(args)} failed: {p.stderr[-2000:]}")
        rss.append(int(p.stderr.strip().splitlines()[-1].split("=")[1]))
    return {"wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
            "peak_rss_mib": max(rss) / 1024}


def generate(tmp: str, model: str, gpus: int, tp: int, pp: int, ep: int, ga: int,
             extra: tuple = ()) -> str | None:
    out = os.path.join(tmp, f"{model}-{gpus}{'-'.join(extra)}.txt")
    dp = gpus // (tp * pp)
    cmd = [sys.executable, "-m", "simulator", "generate", "--model", model, "--world-size",
           str(gpus), "--tp", str(tp), "--pp", str(pp), "--ep", str(ep), "--global-batch",
           str(ga * dp), "--micro-batch", "1", "--seq-length", "4096",
           "--use-distributed-optimizer", "-o", out, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        print(f"skip {model} {gpus}: {p.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return out


def cases(tmp: str, quick: bool):
    yield "seed 004", 128, 1, [SEED]
    yield "SimAI example 9216", 9216, 24, [EX9216]
    yield "SimAI example 9216 interleaved", 9216, 24, [EX9216, "--pp-schedule", "interleaved"]
    yield "SimAI example scaled", 147456, 24, [with_gpus(EX9216, os.path.join(tmp, "x147k.txt"),
                                                         147456)]
    if quick:
        return
    for ga in (8, 24, 48, 96):
        path = with_ga(EX9216, os.path.join(tmp, f"ga{ga}.txt"), ga)
        yield f"SimAI example GA {ga}", 9216, ga, [path]
    for gpus in (1024, 16384, 131072):
        for model, tp, pp, ep in (("mixtral-8x7b", 4, 8, 8), ("gpt-175b", 8, 16, 1)):
            path = generate(tmp, model, gpus, tp, pp, ep, ga=32)
            if path:
                yield f"{model} generated", gpus, 32, [path]
    # communication only, as AICB writes it (compute 1 ns): SimAI takes 0.04-0.31 s on these
    for gpus in (1024, 65536):
        path = generate(tmp, "gpt-175b", gpus, 8, 8, 1, ga=8, extra=("--style", "aicb",
                                                                      "--no-compute"))
        if path:
            yield "gpt-175b comm-only (AICB style)", gpus, 8, [path]
    # the detailed engine: contention, and one straggler (rank classes)
    yield "SimAI example --contention", 9216, 24, [EX9216, "--contention"]
    yield "SimAI example scaled --contention", 147456, 24, [
        os.path.join(tmp, "x147k.txt"), "--contention"]
    big = generate(tmp, "gpt-175b", 131072, 8, 16, 1, ga=32)
    if big:
        yield "gpt-175b 131k one straggler", 131072, 32, [big, "--straggler",
                                                          "rank=12345,compute=1.2"]


def plot(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    by_model: dict[str, list] = {}
    for r in rows:
        if "GA" not in r["case"] and "interleaved" not in r["case"]:
            key = r["case"].replace(" scaled", "").replace(" 9216", "")
            by_model.setdefault(key, []).append((r["gpus"], r["wall_s_median"]))
    for name, pts in by_model.items():
        pts.sort()
        a.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
    a.set_xscale("log")
    a.set_xlabel("GPUs")
    a.set_ylabel("wall time, whole process (s)")
    a.set_ylim(bottom=0)
    a.legend(fontsize=8)
    a.set_title("time vs GPU count")
    ga = sorted((r["ga"], r["wall_s_median"]) for r in rows if "GA " in r["case"])
    b.plot([g for g, _ in ga], [t for _, t in ga], "o-")
    b.set_xlabel("gradient-accumulation steps (micro-batches)")
    b.set_ylabel("wall time, whole process (s)")
    b.set_ylim(bottom=0)
    b.set_title("SimAI 9216-GPU example re-unrolled with more GA")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "results.csv"))
    ap.add_argument("--quick", action="store_true", help="only the first four cases")
    ap.add_argument("--plot", metavar="PNG", help="plot time vs GPU count and vs GA")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="fail (exit 1) if any case's median wall time exceeds this (CI check)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, gpus, ga, argv in cases(tmp, args.quick):
            # SimAI's analytical model, as the SimAI comparison runs (the default is nccl)
            res = run_case(["simulate", "--quiet", "--cost-model", "simai", *argv], args.repeat)
            row = {"case": name, "gpus": gpus, "ga": ga, **{k: round(v, 3) for k, v in res.items()}}
            rows.append(row)
            print(f"{name:<34}{gpus:>8} GPUs  GA {ga:>3}  {res['wall_s_median']:7.3f} s  "
                  f"{res['peak_rss_mib']:7.1f} MiB", flush=True)
    import io

    from simulator.report.output import write_atomic
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_atomic(str(args.out), buf.getvalue())  # the one writer: all or nothing
    if args.plot:
        plot(rows, args.plot)
    if args.max_seconds is not None:
        slow = [r for r in rows if r["wall_s_median"] > args.max_seconds]
        if slow:
            print(f"speed regression: {slow}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
