"""Speed of the shared-fabric model: whole `collsim simulate --topology` processes.

    python benchmarks/fabric_scale.py [--repeat 3] [--out benchmarks/fabric_results.csv]

Cases: SimAI's 9216-GPU example and its header scaled to 147,456 GPUs, on dgx-h100, with
every collective and send a flow over the topology's links shared max-min (the default) and
priced alone (--no-contention) for comparison, plus the 9216 case with ECMP hashing (every
uplink its own link, the symmetry reduction then finds fewer equal links). Each row: median
wall time of whole processes (start-up and imports included), peak resident memory, the
flow shapes / links / link classes the run reported and the iteration time (which must not
depend on the repetition).
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EX9216 = os.path.join(ROOT, "workloads", "simai_example_9216.txt")

CASES = [
    ("9216 GPUs, shared fabric", [EX9216, "--topology", "dgx-h100"]),
    ("9216 GPUs, alone (--no-contention)", [EX9216, "--topology", "dgx-h100", "--no-contention"]),
    ("9216 GPUs, shared fabric, ECMP hash, 4 servers per leaf",
     [EX9216, "--topology", "dgx-h100", "--ecmp", "hash", "--servers-per-leaf", "4"]),
    ("147,456 GPUs, shared fabric", [EX9216, "--gpus", "147456", "--topology", "dgx-h100"]),
    ("147,456 GPUs, alone (--no-contention)",
     [EX9216, "--gpus", "147456", "--topology", "dgx-h100", "--no-contention"]),
]


def run_case(args: list[str], repeat: int) -> dict:
    walls, rss, text = [], [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, os.path.join(HERE, "_measure_one.py"), "simulate",
                            *args], capture_output=True, text=True, cwd=ROOT)
        walls.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise RuntimeError(f"collsim simulate {' '.join(args)} failed: {p.stderr[-2000:]}")
        rss.append(int(re.search(r"maxrss_kib=(\d+)", p.stderr).group(1)))
        text = p.stdout
    it = re.search(r"iteration time\s+([\d.]+) ms", text)
    fab = re.search(r"(\d+) flow shapes over (\d+) links of the topology in (\d+) link classes",
                    text)
    return {"wall_s": round(statistics.median(walls), 3), "max_rss_mib": round(max(rss) / 1024),
            "iteration_ms": it.group(1) if it else "",
            "flow_shapes": fab.group(1) if fab else "", "links": fab.group(2) if fab else "",
            "link_classes": fab.group(3) if fab else ""}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "fabric_results.csv"))
    args = ap.parse_args()
    rows = []
    for name, case in CASES:
        r = {"case": name, **run_case(case, args.repeat)}
        rows.append(r)
        print(f"{name:58s} {r['wall_s']:7.2f} s {r['max_rss_mib']:6d} MiB  "
              f"{r['iteration_ms']} ms  classes {r['link_classes']}", flush=True)
    import io

    from simulator.report.output import write_atomic
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    write_atomic(str(args.out), buf.getvalue())  # the one writer: all or nothing
    return 0


if __name__ == "__main__":
    sys.exit(main())
