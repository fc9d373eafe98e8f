#!/usr/bin/env python3
"""collsim against SimAI's analytical simulator, built as shipped (-O0) and with -O3.

Both run as whole processes on the same files, in interleaved pairs (collsim, SimAI -O3,
collsim, SimAI -O3, ...) so that load from other work on the machine hits both alike; the
ratio collsim / SimAI is taken per pair and reported as median and min-max. The -O0 build
(what SimAI's build script makes) is timed fewer times: it is 40-120x slower.

    python benchmarks/compare_simai.py [--repeat 7] [--o0-repeat 1] [--simai DIR]
                                       [--cost-model nccl,simai] [--write docs/performance.md]
                                       [--python PY | --venv VENV [--entry module|script]]
                                       [--instructions]

DIR holds ``SimAI_analytical_O3`` and ``SimAI_analytical_O0`` and the ``astra-sim-alibabacloud/
inputs`` they read (default: ../shared/peers/simai-analytical beside the checkout); it is
copied to a temporary folder first (SimAI writes its results relative to the working
directory). Without the binaries the script says so and exits 0. ``--write`` replaces the
section between ``<!-- simai:begin -->`` and ``<!-- simai:end -->``.

collsim runs with bytecode caching allowed (as an installed package runs: pip compiles it),
after one warm-up run per case, once per cost model asked for: ``nccl`` (the default, what a
user runs: NCCL's algorithms on the dgx-h100 preset) and ``simai`` (SimAI's busbw formulas,
like for like with SimAI). Each pair interleaves all of them with one SimAI -O3 run.

Which collsim is timed: by default this checkout, run by this script's interpreter
(``sys.executable -m simulator`` with ``PYTHONPATH`` = the checkout); ``--python PY`` runs the
checkout with another interpreter. ``--venv VENV`` times collsim as a user has it after the
README's install into a virtual environment (``python3 -m venv VENV && VENV/bin/pip install
.``): ``VENV/bin/python -m simulator`` (the README's command; ``--entry script``:
``VENV/bin/collsim``, the console script pip writes), no ``PYTHONPATH``, run from a folder
outside the checkout, so the installed package answers. An interpreter's start depends on
what its ``site-packages`` holds (``.pth`` files run at every start), so the output names the
command timed and that interpreter's bare start (``-c pass``). ``--instructions`` also counts
the instructions each process executes (valgrind's cachegrind without cache simulation, one
run per case and program): unlike times on a shared machine they do not move with the load.
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

from workloads import EX9216, SEED, with_gpus  # noqa: E402

BEGIN, END = "<!-- simai:begin -->", "<!-- simai:end -->"


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class Collsim:
    """How collsim is started: the command before ``simulate``, its environment and folder."""

    def __init__(self, prefix: list[str], python: str, env: dict, cwd: str, label: str):
        self.prefix, self.python, self.env, self.cwd, self.label = prefix, python, env, cwd, label

    def command(self, *argv: str) -> list[str]:
        return [*self.prefix, *argv]


def checkout_runner(python: str = sys.executable) -> Collsim:
    """This checkout, run by ``python`` (``PYTHONPATH`` = the checkout)."""
    return Collsim([python, "-m", "simulator"], python, _env(), ROOT,
                   f"`{python} -m simulator` on this checkout (PYTHONPATH={ROOT})")


def venv_runner(venv: str, entry: str, cwd: str) -> Collsim:
    """collsim installed in the virtual environment ``venv``, as a user runs it: no
    ``PYTHONPATH``, from ``cwd`` (outside the checkout: ``-m`` looks in the folder first)."""
    venv = os.path.abspath(venv)
    python = os.path.join(venv, "bin", "python")
    script = os.path.join(venv, "bin", "collsim")
    needed = python if entry == "module" else script
    if not os.path.exists(needed):
        raise ValueError(f"--venv {venv}: no {needed} (make it with `python3 -m venv {venv} "
                         f"&& {venv}/bin/pip install .`)")
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHOME"):
        env.pop(name, None)
    if entry == "module":
        return Collsim([python, "-m", "simulator"], python, env, cwd,
                       f"`{python} -m simulator` (installed in {venv})")
    return Collsim([script], python, env, cwd, f"`{script}` (console script, {venv})")


def installed_from(runner: Collsim) -> str:
    """Where the runner's ``simulator`` package is, and how many of its modules differ from
    this checkout's (a stale install times other code)."""
    p = subprocess.run([runner.python, "-c", "import simulator, os; "
                        "print(os.path.dirname(simulator.__file__))"],
                       capture_output=True, text=True, cwd=runner.cwd, env=runner.env)
    if p.returncode != 0:
        raise RuntimeError(f"{runner.python} cannot import simulator: {p.stderr[-300:]}")
    where = p.stdout.strip()
    differ = 0
    for folder, _, names in os.walk(os.path.join(ROOT, "simulator")):
        for name in names:
            if name.endswith(".py"):
                mine = os.path.join(folder, name)
                theirs = os.path.join(where, os.path.relpath(mine, os.path.join(ROOT,
                                                                                "simulator")))
                with open(mine, "rb") as a:
                    same = os.path.exists(theirs) and open(theirs, "rb").read() == a.read()
                differ += not same
    return where + ("" if not differ else
                    f" ({differ} modules differ from this checkout's: reinstall)")


def generate_comm_only(tmp: str, gpus: int, ga: int) -> str:
    """GPT-175B as AICB writes it without profiling (1 ns compute), TP 8, PP 8."""
    out = os.path.join(tmp, f"gpt175b-comm-{gpus}-ga{ga}.txt")
    dp = gpus // 64
    cmd = [sys.executable, "-m", "simulator", "generate", "--model", "gpt-175b", "--world-size",
           str(gpus), "--tp", "8", "--pp", "8", "--global-batch", str(ga * dp),
           "--micro-batch", "1", "--seq-length", "4096", "--style", "aicb", "--no-compute",
           # the file these figures were first taken on (the old default; without it the
           # table does not fit an H100's memory and generate refuses it)
           "--use-distributed-optimizer", "-o", out]
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


#: how each cost model is asked for on the command line ("nccl" is the default: no flag)
MODEL_FLAGS = {"nccl": [], "simai": ["--cost-model", "simai"]}
MODEL_NAMES = {"nccl": "collsim (default, nccl)", "simai": "collsim --cost-model simai"}


def time_collsim(path: str, model: str = "simai", runner: Collsim | None = None) -> float:
    runner = runner or checkout_runner()
    t0 = time.perf_counter()
    p = subprocess.run(runner.command("simulate", "--quiet", *MODEL_FLAGS[model], path),
                       capture_output=True, cwd=runner.cwd, env=runner.env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"collsim failed on {path}: {p.stderr.decode()[-500:]}")
    return dt


def time_simai(binary: str, workdir: str, path: str, gpus: int) -> float:
    cmd = simai_command(binary, path, gpus)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, cwd=workdir)
    dt = time.perf_counter() - t0
    if p.returncode != 0 or not os.path.exists(os.path.join(workdir, "results",
                                                            "bench-EndToEnd.csv")):
        raise RuntimeError(f"{os.path.basename(binary)} failed on {path}: "
                           f"{p.stdout.decode()[-300:]} {p.stderr.decode()[-300:]}")
    return dt


def python_floor(repeat: int, runner: Collsim | None = None) -> float:
    """The bare start (``-c pass``) of the interpreter that runs collsim, median."""
    runner = runner or checkout_runner()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([runner.python, "-c", "pass"], env=runner.env, cwd=runner.cwd)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def instructions(cmd: list[str], cwd: str, env: dict | None = None) -> int:
    """Instructions the process executes, as cachegrind counts them (its "I refs")."""
    p = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no",
                        "--cachegrind-out-file=/dev/null", *cmd], cwd=cwd, env=env,
                       capture_output=True, text=True)
    refs = [ln for ln in p.stderr.splitlines() if "I   refs:" in ln or "I refs:" in ln]
    if p.returncode != 0 or not refs:
        raise RuntimeError(f"{' '.join(cmd)} failed under valgrind: {p.stderr[-400:]}")
    return int(refs[-1].split(":")[1].strip().replace(",", ""))


def simai_command(binary: str, path: str, gpus: int) -> list[str]:
    return [binary, "-w", path, "-g", str(gpus), "-g_p_s", "8", "-r", "bench-", "-nv", "360",
            "-nic", "48.5", "-n_p_s", "8"]


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7, help="interleaved pairs per case")
    ap.add_argument("--o0-repeat", type=int, default=1,
                    help="runs of the -O0 build per case (0: not timed)")
    ap.add_argument("--simai", default=os.path.join(ROOT, "..", "shared", "peers",
                                                    "simai-analytical"))
    ap.add_argument("--cost-model", default="nccl,simai",
                    help="collsim's cost models to time, comma-separated (nccl: the default; "
                         "simai: SimAI's own formulas); default both")
    ap.add_argument("--write", metavar="MD", help="replace the simai section of this file")
    who = ap.add_mutually_exclusive_group()
    who.add_argument("--python", metavar="PY", default=sys.executable,
                     help="the interpreter that runs this checkout (default: this one)")
    who.add_argument("--venv", metavar="VENV",
                     help="time collsim installed in this virtual environment instead "
                          "(`python3 -m venv VENV && VENV/bin/pip install .`)")
    ap.add_argument("--entry", choices=["module", "script"], default="module",
                    help="with --venv: VENV/bin/python -m simulator (module, the README's "
                         "command) or VENV/bin/collsim (script)")
    ap.add_argument("--instructions", action="store_true",
                    help="also count each program's instructions per case (needs valgrind)")
    args = ap.parse_args()
    models = [m.strip() for m in args.cost_model.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODEL_FLAGS]
    if unknown or not models:
        ap.error(f"--cost-model: choose from {', '.join(MODEL_FLAGS)}, got {args.cost_model!r}")
    if args.entry != "module" and not args.venv:
        ap.error("--entry needs --venv")
    if args.python != sys.executable and not os.path.exists(args.python):
        ap.error(f"--python: no {args.python}")
    if args.o0_repeat < 0:
        ap.error(f"--o0-repeat: 0 or more, got {args.o0_repeat}")
    if args.instructions and shutil.which("valgrind") is None:
        ap.error("--instructions needs valgrind")
    src = os.path.abspath(args.simai)
    if not all(os.path.exists(os.path.join(src, b))
               for b in ("SimAI_analytical_O3", "SimAI_analytical_O0")):
        print(f"skipped: SimAI's analytical binaries are not in {src}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.venv:
            away = os.path.join(tmp, "run")
            os.makedirs(away)
            try:
                runner = venv_runner(args.venv, args.entry, away)
            except ValueError as exc:
                ap.error(str(exc))
            where = installed_from(runner)
        else:
            runner = checkout_runner(args.python)
            where = ROOT
        work = os.path.join(tmp, "simai")
        shutil.copytree(src, work)
        os.makedirs(os.path.join(work, "results"), exist_ok=True)
        o3 = os.path.join(work, "SimAI_analytical_O3")
        o0 = os.path.join(work, "SimAI_analytical_O0")
        floor = python_floor(args.repeat, runner)
        print(f"collsim timed: {runner.label}; package {where}; its interpreter's bare "
              f"start (`{runner.python} -c pass`) {floor:.3f} s", flush=True)
        counts: dict[str, float] = {}
        if args.instructions:
            counts["python"] = instructions([runner.python, "-c", "pass"], runner.cwd,
                                            runner.env)
        for name, gpus, path in cases(tmp):
            for m in models:
                time_collsim(path, m, runner)       # warm-up: bytecode, page cache
            time_simai(o3, work, path, gpus)
            ours: dict[str, list[float]] = {m: [] for m in models}
            ratios: dict[str, list[float]] = {m: [] for m in models}
            theirs = []
            for _ in range(args.repeat):
                b = time_simai(o3, work, path, gpus)
                theirs.append(b)
                for m in models:
                    a = time_collsim(path, m, runner)
                    ours[m].append(a)
                    ratios[m].append(a / b)
            slow = [time_simai(o0, work, path, gpus) for _ in range(args.o0_repeat)]
            row = {"case": name, "gpus": gpus, "o3": statistics.median(theirs),
                   "o0": statistics.median(slow) if slow else None, "load": os.getloadavg()[0]}
            for m in models:
                row[m] = statistics.median(ours[m])
                row[m + "_ratio"] = (statistics.median(ratios[m]), min(ratios[m]),
                                     max(ratios[m]))
            if args.instructions:
                row["o3_instr"] = instructions(simai_command(o3, path, gpus), work)
                for m in models:
                    row[m + "_instr"] = instructions(
                        runner.command("simulate", "--quiet", *MODEL_FLAGS[m], path),
                        runner.cwd, runner.env)
            rows.append(row)
            parts = [f"{m} {fmt_s(row[m])} s ratio {row[m + '_ratio'][0]:.2f} "
                     f"({row[m + '_ratio'][1]:.2f}-{row[m + '_ratio'][2]:.2f})" for m in models]
            if args.instructions:
                parts += [f"instructions {m} {row[m + '_instr'] / 1e6:.0f} M" for m in models]
                parts.append(f"-O3 {row['o3_instr'] / 1e6:.0f} M")
            print(f"{name:<42} SimAI -O3 {fmt_s(row['o3'])} s  -O0 {fmt_s(row['o0'])} s  "
                  + "  ".join(parts) + f"  load {row['load']:.1f}", flush=True)
    flags = "" if args.cost_model == "nccl,simai" else f" --cost-model {args.cost_model}"
    if args.venv:
        flags += f" --venv {args.venv}" + (" --entry script" if args.entry == "script" else "")
    elif args.python != sys.executable:
        flags += f" --python {args.python}"
    if args.instructions:
        flags += " --instructions"
    lines = [
        f"Measured with `python benchmarks/compare_simai.py --repeat {args.repeat}{flags}` "
        f"(whole processes, median of {args.repeat} interleaved rounds, each one SimAI -O3 run "
        f"and one collsim run per cost model; ratio = collsim / SimAI -O3 per round, median "
        f"and min-max; -O0 {args.o0_repeat} run(s)). collsim ran as {runner.label}; that "
        f"interpreter's own start (`-c pass`) took {floor:.3f} s; 1-minute load average "
        f"{min(r['load'] for r in rows):.1f}-{max(r['load'] for r in rows):.1f} "
        "(other work on the 2 cores).",
        "",
        "| case | GPUs | " + " | ".join(f"{MODEL_NAMES[m]} s" for m in models)
        + " | SimAI -O3 s | SimAI -O0 s | "
        + " | ".join(f"{m} / -O3 (min-max)" for m in models)
        + "".join(f" | {m} / -O3 instructions (M)" for m in models if args.instructions)
        + " |",
        "|---|---:|" + "---:|" * (2 * len(models) + 2 + len(models) * args.instructions),
    ]
    for r in rows:
        cells = [fmt_s(r[m]) for m in models] + [fmt_s(r["o3"]), fmt_s(r["o0"])]
        cells += [f"{r[m + '_ratio'][0]:.2f} ({r[m + '_ratio'][1]:.2f}-{r[m + '_ratio'][2]:.2f})"
                  for m in models]
        if args.instructions:
            cells += [f"{r[m + '_instr'] / 1e6:.0f} / {r['o3_instr'] / 1e6:.0f}"
                      for m in models]
        lines.append(f"| {r['case']} | {r['gpus']:,} | " + " | ".join(cells) + " |")
    if args.instructions:
        lines += ["", f"The interpreter's bare start (`-c pass`) is {counts['python'] / 1e6:.0f} M "
                  "instructions of each collsim figure (valgrind --tool=cachegrind "
                  "--cache-sim=no, one run each)."]
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
