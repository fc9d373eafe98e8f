"""Speed of the shared-fabric model: whole `collsim simulate` processes, and where they spend.

    python benchmarks/fabric_scale.py [--repeat 5] [--out benchmarks/fabric_results.csv]

Cases: SimAI's 9216-GPU example and its header scaled to 147,456 GPUs, with every
collective and send a flow over the links of the topology shared max-min: on `--topology
dgx-h100` (shared by default) and with `--contention` on the preset the default flags imply
(the same fabric), priced alone (`--no-contention`) for comparison, plus the 9216 case with
ECMP hashing on 4-server leaves (every uplink its own link: the symmetry reduction finds
fewer equal links).

Each row: the median wall time of whole processes (``python -m simulator simulate ...``
as a user runs it: start-up, imports and the program's exit included; until 2026-12-03 the
command ran through benchmarks/_measure_one.py's ``main(argv)``, which keeps Python's own
collector settings and teardown and numpy's BLAS threads: some 5% more instructions), the
runs interleaved case after case so that a change of the machine's load spreads over every
case; their min and max; the median CPU time of the process (user + system: what the
machine's load inflates least); the peak resident memory (the process's rusage); the flow
shapes / links / link classes the run reported; the iteration time (which must not depend
on the repetition). For the shared cases one more process, timed from inside, splits the
run into the fabric's set-up (`build_fabric`: laying out the groups, link classes) and the
flow network (FlowNetwork.transfer and the flow starts and ends it schedules: max-min
rates, completions); those two are measured with a timer around each call, so they include
about a microsecond per call of timing overhead (upper bounds).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EX9216 = os.path.join(ROOT, "workloads", "simai_example_9216.txt")
BIG = ["--gpus", "147456"]

# (name, simulate arguments, whether the fabric is shared)
CASES = [
    ("9216 GPUs, --topology dgx-h100 (shared fabric)", [EX9216, "--topology", "dgx-h100"], True),
    ("9216 GPUs, --contention", [EX9216, "--contention"], True),
    ("9216 GPUs, alone (--no-contention)",
     [EX9216, "--topology", "dgx-h100", "--no-contention"], False),
    ("9216 GPUs, shared, --ecmp hash --servers-per-leaf 4",
     [EX9216, "--topology", "dgx-h100", "--ecmp", "hash", "--servers-per-leaf", "4"], True),
    ("147,456 GPUs, --topology dgx-h100 (shared fabric)",
     [EX9216, *BIG, "--topology", "dgx-h100"], True),
    ("147,456 GPUs, --contention", [EX9216, *BIG, "--contention"], True),
    ("147,456 GPUs, alone (--no-contention)",
     [EX9216, *BIG, "--topology", "dgx-h100", "--no-contention"], False),
]

_INNER = r"""
import json, sys, time
import simulator.engine.fabric as F
from simulator.network import flows as FL
spent = {"build_fabric": 0.0, "flow_network": 0.0, "calibration": 0.0}
depth = {"build_fabric": 0, "flow_network": 0, "calibration": 0}
calls = {"build_fabric": 0, "flow_network": 0, "calibration": 0}
def timed(owner, name, key):
    f = getattr(owner, name)
    def w(*a, **k):
        depth[key] += 1
        t = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            depth[key] -= 1
            if not depth[key]:          # the outermost call only (transfer starts flows)
                spent[key] += time.thread_time() - t
                calls[key] += 1
    setattr(owner, name, w)
# what the timer itself costs a call: a wrapped call that does nothing, less a bare one
class Noop:
    @staticmethod
    def f(*a):
        return None
bare = Noop.f
t = time.thread_time()
for _ in range(100000):
    bare(1)
bare_s = time.thread_time() - t
timed(Noop, "f", "calibration")
t = time.thread_time()
for _ in range(100000):
    Noop.f(1)
per_call = max(0.0, time.thread_time() - t - bare_s) / 100000
timed(F, "build_fabric", "build_fabric")
# the network's entry points: transfer (which may start the flow), a flow's start after its
# latency and a completion timer; nothing else calls into it
for name in ("transfer", "_join", "_wake"):
    timed(FL.FlowNetwork, name, "flow_network")
from simulator.cli import main
t0 = time.thread_time()
main(["simulate", *sys.argv[1:], "--quiet"])
spent["run"] = time.thread_time() - t0
spent["flow_network_calls"] = calls["flow_network"]
# timers nested inside the flow network's calls (none: it calls nothing timed) and the
# timer's own cost on every outermost call
spent["flow_network"] -= calls["flow_network"] * per_call
print(json.dumps(spent), file=sys.stderr)
"""


# this checkout's package, whatever is installed
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_once(args: list[str]) -> tuple[float, float, int, str]:
    """(wall s, CPU s of the process: user + system, peak KiB, its output) of ``python -m
    simulator simulate ARGS``: the program a user runs, with what it does as a program (its
    collector's settings, its exit without teardown, one BLAS thread: simulator/cli.py);
    the process's own rusage comes from wait4, its output through files (no pipes to
    drain before the wait)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "simulator", "simulate", *args],
                             stdout=out, stderr=err, text=True, cwd=ROOT, env=ENV)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)   # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        raise RuntimeError(f"collsim simulate {' '.join(args)} failed: {stderr[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, stdout


def breakdown(args: list[str]) -> dict:
    p = subprocess.run([sys.executable, "-c", _INNER, *args], capture_output=True, text=True,
                       cwd=ROOT, env=ENV)
    if p.returncode != 0:
        raise RuntimeError(f"breakdown of {' '.join(args)} failed: {p.stderr[-2000:]}")
    return json.loads(p.stderr.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(HERE, "fabric_results.csv"))
    args = ap.parse_args()
    walls: dict = {name: [] for name, _, _ in CASES}
    cpus: dict = {name: [] for name, _, _ in CASES}
    rss: dict = {name: [] for name, _, _ in CASES}
    text: dict = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeat):            # interleaved: one run of every case per round
        for name, case, _ in CASES:
            w, c, r, out = run_once(case)
            walls[name].append(w)
            cpus[name].append(c)
            rss[name].append(r)
            text[name] = out
        load.append(os.getloadavg()[0])
    rows = []
    for name, case, shared in CASES:
        it = re.search(r"iteration time\s+([\d.]+) ms", text[name])
        fab = re.search(r"(\d+) flow shapes over (\d+) links of the topology in (\d+) link "
                        r"classes", text[name])
        inner = breakdown(case) if shared else {}
        rows.append({
            "case": name, "wall_s": round(statistics.median(walls[name]), 3),
            "min_s": round(min(walls[name]), 3), "max_s": round(max(walls[name]), 3),
            "cpu_s": round(statistics.median(cpus[name]), 3),
            "max_rss_mib": round(max(rss[name]) / 1024),
            "fabric_setup_s": round(inner["build_fabric"], 3) if inner else "",
            "flow_network_s": round(inner["flow_network"], 3) if inner else "",
            "iteration_ms": it.group(1) if it else "",
            "flow_shapes": fab.group(1) if fab else "", "links": fab.group(2) if fab else "",
            "link_classes": fab.group(3) if fab else ""})
        r = rows[-1]
        print(f"{name:52s} {r['wall_s']:6.2f} s ({r['min_s']:.2f}-{r['max_s']:.2f}) "
              f"cpu {r['cpu_s']:.2f} s "
              f"{r['max_rss_mib']:5d} MiB  set-up {r['fabric_setup_s']} s  flows "
              f"{r['flow_network_s']} s  {r['iteration_ms']} ms  classes {r['link_classes']}",
              flush=True)
    print(f"load average (1 min) during the runs: {min(load):.1f}-{max(load):.1f} "
          f"on {os.cpu_count()} CPUs; repeats: {args.repeat}")
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
