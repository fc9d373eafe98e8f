"""Fuzzing the readers with mutated real files: every input ends in a result or one clear error.

The mutator is deterministic (``random.Random(seed)``): byte flips, truncation, deleted and
duplicated fields and lines, huge numbers, NaN/inf, non-ASCII digits and separators, tabs,
CRLF, blank lines, binary junk, header values that do not divide. Every mutated workload is
run through the ``collsim simulate`` entry point (in process, with a time limit, and a
sample in a subprocess): the exit code must be 0 or 2, an error must be one line, a result
must hold no NaN or infinity. The other readers (Echo traces, MoE logs, measurement CSV,
nccl-tests output, topology, sweep and calibration YAML) get the same treatment directly.

Inputs that once failed live in ``tests/fuzz_corpus/`` with their expected outcome.
Bugs found in readers other than the workload table are listed in ``KNOWN_BUGS`` with a
minimal reproducer. An entry with ``open=True`` is tolerated by the campaign (so it keeps
running) and its reproducer is a strict xfail; once fixed (``open=False``, all of them now)
the campaign fails on it again and the reproducer is a plain regression test.

``COLLSIM_FUZZ_SCALE=20`` runs a twenty times longer campaign; ``COLLSIM_FUZZ_SEED=N``
shifts the seeds to explore new inputs.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import glob
import io
import json
import math
import os
import random
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.cli import main as cli_main
from simulator.errors import InputError
from simulator.readers.workload import read_workload, read_workload_text

from fuzz_mutator import Mutator, TimeLimit, time_limit

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
SCALE = float(os.environ.get("COLLSIM_FUZZ_SCALE", "1"))
SEED0 = int(os.environ.get("COLLSIM_FUZZ_SEED", "0"))

#: numbers of mutated inputs per campaign at scale 1 (see docs/testing.md for the totals)
N_WORKLOAD = int(400 * SCALE)
N_WORKLOAD_SUBPROCESS = max(4, int(10 * SCALE))
N_OTHER = int(150 * SCALE)
TIME_LIMIT_S = 20


def existing(*patterns: str) -> list[Path]:
    out: list[Path] = []
    for pattern in patterns:
        out.extend(Path(p) for p in sorted(glob.glob(pattern)))
    return [p for p in out if p.is_file()]


WORKLOAD_SOURCES = existing(str(SHARED / "corpus" / "*.txt"), str(SHARED / "seeds" / "004_*"),
                            str(ROOT / "workloads" / "*.txt"))


def _no_constants(name: str):
    raise AssertionError(f"JSON holds {name}")


def check_result_files(json_path: Path, csv_path: Path) -> None:
    """A result's JSON has no NaN/Infinity and sane times; its CSV has no nan/inf cells."""
    doc = json.loads(json_path.read_text(), parse_constant=_no_constants)
    assert math.isfinite(doc["iteration_time_us"]) and doc["iteration_time_us"] >= 0
    assert doc["iteration_time_ns"] >= 0

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, float):
            assert math.isfinite(x), doc
    walk(doc)
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            for cell in row[5:]:  # the name column may legitimately say anything
                assert cell.strip().lower() not in ("nan", "inf", "-inf", "infinity"), row


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def errors(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if not ln.startswith("warning: ")]


def run_cli_in_process(args: list[str]) -> Outcome:
    """``collsim ARGS`` in this process, stdout and stderr captured, under a time limit."""
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with time_limit(TIME_LIMIT_S), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("default")
        # print warnings as the CLI does (one 'warning: ...' line each), not to pytest's log
        warnings.showwarning = lambda message, category, filename, lineno, _file=None, \
            line=None: sys.stderr.write(warnings.formatwarning(message, category, filename,
                                                               lineno, line))
        rc = cli_main(args)
    return Outcome(rc, out.getvalue(), err.getvalue(), time.perf_counter() - t0)


def check_outcome(o: Outcome, out_dir: Path | None = None) -> str:
    """The contract: exit 0 with finite results, or exit 2 with one error line."""
    assert o.rc in (0, 2), f"exit code {o.rc}\n{o.stderr[-2000:]}"
    assert "Traceback" not in o.stderr, o.stderr[-2000:]
    if o.rc == 2:
        assert len(o.errors) == 1 and o.errors[0].startswith("collsim: error: "), o.stderr
        return "error"
    assert not o.errors, o.stderr
    if out_dir is not None:
        check_result_files(out_dir / "r.json", out_dir / "r.csv")
    return "ok"


def mutated_workload(seed: int) -> tuple[bytes, str]:
    rng = random.Random(seed)
    src = rng.choice(WORKLOAD_SOURCES)
    m = Mutator(seed)
    data = m(src.read_bytes())
    return data, f"seed {seed}: {src.name} + {', '.join(m.history)}"


def cli_flags(seed: int) -> list[str]:
    rng = random.Random(seed ^ 0x5EED)
    flags: list[str] = []
    if rng.random() < 0.2:
        flags += ["--pp-schedule", rng.choice(["gpipe", "interleaved"])]
    if rng.random() < 0.1:
        flags.append("--strict")
    if rng.random() < 0.1:
        flags += ["--gpus", str(rng.choice([1, 8, 64, 128, 1024]))]
    if rng.random() < 0.1:
        flags += ["--gpus-per-server", str(rng.choice([1, 2, 4, 16]))]
    return flags


# ------------------------------------------------------------------------------ workloads

needs_sources = pytest.mark.skipif(not WORKLOAD_SOURCES, reason="no workload files to mutate")


@needs_sources
def test_fuzz_workloads_through_the_cli(tmp_path):
    """Mutated workload files through ``collsim simulate`` in process."""
    failures: list[str] = []
    tally = {"ok": 0, "error": 0}
    slowest = (0.0, "")
    for seed in range(SEED0, SEED0 + N_WORKLOAD):
        data, what = mutated_workload(seed)
        path = tmp_path / "in.txt"
        path.write_bytes(data)
        for f in ("r.json", "r.csv"):
            (tmp_path / f).unlink(missing_ok=True)
        flags = cli_flags(seed)
        try:
            o = run_cli_in_process(["simulate", str(path), "--quiet", "--json",
                                    str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"),
                                    *flags])
            tally[check_outcome(o, tmp_path)] += 1
            slowest = max(slowest, (o.seconds, what))
        except BaseException as exc:  # noqa: BLE001 - every failure is collected and shown
            if isinstance(exc, KeyboardInterrupt):
                raise
            kept = tmp_path / f"failure_{seed}.txt"
            kept.write_bytes(data)
            failures.append(f"{what} {flags}: {type(exc).__name__}: {str(exc)[:300]} "
                            f"(input kept as {kept})\n{''.join(traceback.format_tb(exc.__traceback__)[-3:])}")
    print(f"{N_WORKLOAD} mutated workloads: {tally['ok']} simulated, {tally['error']} "
          f"clear errors; slowest {slowest[0]:.2f} s ({slowest[1]})")
    assert not failures, f"{len(failures)} of {N_WORKLOAD} inputs failed:\n" + "\n".join(
        failures[:10])
    assert tally["ok"] >= N_WORKLOAD // 10, "the mutator should leave many inputs valid"


CORPUS_EXPECTED = json.loads((CORPUS / "workload" / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTED))
def test_fuzz_corpus_regressions(name, tmp_path):
    """Inputs that once crashed, hung or were misread: each has its expected outcome."""
    expected = CORPUS_EXPECTED[name]
    path = CORPUS / "workload" / name
    o = run_cli_in_process(["simulate", str(path), "--quiet", "--json", str(tmp_path / "r.json"),
                            "--csv", str(tmp_path / "r.csv")])
    check_outcome(o, tmp_path)
    assert o.rc == expected["rc"], o.stderr
    if expected["message"]:
        assert expected["message"] in o.errors[0], o.errors[0]


def _subprocess_cli(path: Path, out_dir: Path) -> Outcome:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "simulator", "simulate", str(path), "--quiet",
             "--json", str(out_dir / "r.json"), "--csv", str(out_dir / "r.csv")],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env=dict(os.environ, PYTHONWARNINGS="default"))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{path}: hung (no answer in 120 s)") from None
    return Outcome(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0)


@needs_sources
def test_fuzz_workloads_in_a_subprocess(tmp_path):
    """A sample of mutated inputs and the regression corpus through ``python -m simulator``:
    exit code 0 or 2, never a traceback, never a hang."""
    jobs: list[tuple[Path, str]] = []
    for k, seed in enumerate(range(SEED0 + 10_000, SEED0 + 10_000 + N_WORKLOAD_SUBPROCESS)):
        data, what = mutated_workload(seed)
        p = tmp_path / f"mutated_{k}.txt"
        p.write_bytes(data)
        jobs.append((p, what))
    for name in sorted(CORPUS_EXPECTED):
        jobs.append((CORPUS / "workload" / name, f"corpus {name}"))

    def one(job):
        path, what = job
        out = tmp_path / f"out_{path.stem}"
        out.mkdir()
        o = _subprocess_cli(path, out)
        try:
            check_outcome(o, out)
        except AssertionError as exc:
            return f"{what}: {exc}"
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        problems = [p for p in pool.map(one, jobs) if p]
    assert not problems, "\n".join(problems)


# -- grammar-based inputs (hypothesis): tokens from the format, in any order and number ------

TOKENS = st.sampled_from(
    ["HYBRID_TRANSFORMER_FWD_IN_BCKWD", "MICRO", "DATA", "model_parallel_NPU_group:", "ep:",
     "pp:", "vpp:", "ga:", "all_gpus:", "pp_comm", "pp_comm:", "checkpoints:",
     "checkpoint_initiates:", "ep:4", "1", "2", "4", "0", "-1", "8.0", "2.5", "1e3", "layer",
     "ALLREDUCE", "ALLGATHER_EP", "REDUCESCATTER_DP_EP", "ALLTOALL", "BROADCAST", "NONE",
     "ALLREDUCEALLTOALL_EP", "100", "1048576", "nan", "inf", "9" * 40]) | st.text(max_size=6)


@st.composite
def token_files(draw) -> str:
    lines = [" ".join(draw(st.lists(TOKENS, max_size=16)))]
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(["1", "2", "3", "0", "x", ""])))
    for _ in range(draw(st.integers(0, 4))):
        row = draw(st.lists(TOKENS, min_size=10, max_size=13))
        lines.append(draw(st.sampled_from([" ", "\t"])).join(row))
    return "\n".join(lines)


@settings(max_examples=int(300 * SCALE), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(token_files())
def test_reader_grammar_fuzz(text):
    """Any sequence of format tokens reads into a workload or one clear error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            w = read_workload_text(text, path="t.txt")
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith("t.txt")
            return
    assert w.rows and all(r.fwd_ns >= 0 and r.update_ns >= 0 for r in w.rows)


@needs_sources
def test_reader_round_trip_of_every_source():
    """Writing a parsed file back and reading it again gives the same workload."""
    def write(w) -> str:
        head = (f"{w.policy} model_parallel_NPU_group: {w.tp} ep: {w.ep} pp: {w.pp} "
                f"vpp: {w.vpp} ga: {w.ga}" + (f" all_gpus: {w.all_gpus}" if w.all_gpus else "")
                + f" checkpoints: {len(w.checkpoints)} {' '.join(map(str, w.checkpoints))}"
                + f" checkpoint_initiates: {len(w.checkpoint_initiates)} "
                + " ".join(map(str, w.checkpoint_initiates)) + f" pp_comm: {w.pp_comm_bytes}")
        rows = ["\t".join(map(str, (r.name, -1, r.fwd_ns, r.fwd.type_name(), r.fwd.size_bytes,
                                    r.ig_ns, r.ig.type_name(), r.ig.size_bytes, r.wg_ns,
                                    r.wg.type_name(), r.wg.size_bytes, r.update_ns)))
                for r in w.rows]
        return "\n".join([head, str(len(rows))] + rows) + "\n"

    for src in WORKLOAD_SOURCES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = read_workload(src)
            again = read_workload_text(write(w), path=str(src))
        assert again.rows == w.rows
        assert (again.tp, again.ep, again.pp, again.vpp, again.ga, again.all_gpus,
                again.checkpoints, again.checkpoint_initiates, again.pp_comm_bytes) == (
            w.tp, w.ep, w.pp, w.vpp, w.ga, w.all_gpus, w.checkpoints,
            w.checkpoint_initiates, w.pp_comm_bytes)


# ------------------------------------------------------------------------------ other readers

from reader_targets import (calibration as _calibration, echo as _echo,  # noqa: E402
                            measurement_csv as _measurement_csv, moe_logs as _moe,
                            nccl_tests as _nccl_tests, sweep as _sweep, topology as _topology)

# seed 002 (930 KB) is left out: every mutation would re-read it; 000 and 001 are the same format
READERS = {
    "echo_trace": (_echo, existing(str(ROOT / "traces" / "seeds" / "003_*.txt"))),
    "moe_logs": (_moe, existing(str(ROOT / "traces" / "seeds" / "00[01]_*.txt"))),
    "measurement_csv": (_measurement_csv, existing(str(SHARED / "measurements" / "*.csv"),
                                                    str(ROOT / "traces" / "h200x2" / "*.csv"))),
    "nccl_tests": (_nccl_tests, existing(str(SHARED / "measurements" / "nccl-tests_*.txt"))),
    "topology_yaml": (_topology, existing(str(ROOT / "topologies" / "*.yaml"))),
    "sweep_yaml": (_sweep, existing(str(ROOT / "workloads" / "sweeps" / "*.yaml"))),
    "calibration_yaml": (_calibration, existing(str(ROOT / "traces" / "*" / "calib_*.yaml"))),
}


@dataclass(frozen=True)
class KnownBug:
    """A failure the campaign found in someone else's reader, and its minimal reproducer."""

    reader: str
    kind: str          # exception class name, or "multi-line error"
    fragment: str      # in the message
    reproducer: str    # file under tests/fuzz_corpus/<reader>/
    reason: str
    open: bool = False  # True: not fixed yet (tolerated by the campaign, strict xfail)

    def matches(self, reader: str, kind: str, message: str) -> bool:
        return (self.open and reader == self.reader and kind == self.kind
                and self.fragment in message)


KNOWN_BUGS = [
    KnownBug("measurement_csv", "UnicodeDecodeError", "codec can't decode", "bad_utf8.csv",
             "readers/measurement_csv.py opens with encoding='utf-8' and catches only OSError"),
    KnownBug("topology_yaml", "UnicodeDecodeError", "codec can't decode", "bad_utf8.yaml",
             "topology/__init__.py read_spec catches only OSError around the decode"),
    KnownBug("topology_yaml", "ReaderError", "special characters are not allowed", "nul.yaml",
             "topology/yamlsrc.py lets yaml.reader.ReaderError (a control character) escape"),
    KnownBug("topology_yaml", "ValueError", "Exceeds the limit", "huge_int.yaml",
             "PyYAML's int() of a 5000-digit scalar raises ValueError, not caught"),
    KnownBug("sweep_yaml", "UnicodeDecodeError", "codec can't decode", "bad_utf8.yaml",
             "sweep/spec.py load_spec catches only FileNotFoundError and OSError"),
    KnownBug("sweep_yaml", "ValueError", "Exceeds the limit", "huge_int.yaml",
             "PyYAML's int() of a 5000-digit scalar raises ValueError, not caught"),
    KnownBug("sweep_yaml", "multi-line error", "special characters are not allowed",
             "vertical_tab.yaml", "str(yaml.reader.ReaderError) spans two lines"),
    KnownBug("calibration_yaml", "multi-line error", "special characters are not allowed",
             "vertical_tab.yaml", "str(yaml.reader.ReaderError) spans two lines"),
]


def classify(reader: str, func, path: Path) -> tuple[str, str]:
    """('ok' | 'error' | exception kind, message) for one input."""
    try:
        with time_limit(TIME_LIMIT_S), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            func(path)
    except InputError as exc:
        message = str(exc)
        if "\n" in message:
            return "multi-line error", message
        return "error", message
    except TimeLimit as exc:
        return "hang", str(exc)
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__, str(exc)
    return "ok", ""


@pytest.mark.parametrize("reader", sorted(READERS))
def test_fuzz_other_readers(reader, tmp_path):
    func, sources = READERS[reader]
    if not sources:
        pytest.skip(f"no {reader} files to mutate")
    unknown: list[str] = []
    tally: dict[str, int] = {}
    for seed in range(SEED0, SEED0 + N_OTHER):
        rng = random.Random(seed)
        src = rng.choice(sources)
        m = Mutator(seed)
        data = m(src.read_bytes())
        path = tmp_path / f"input{src.suffix}"
        path.write_bytes(data)
        kind, message = classify(reader, func, path)
        bug = next((b for b in KNOWN_BUGS if b.matches(reader, kind, message)), None)
        label = kind if kind in ("ok", "error") else ("known bug" if bug else "FAILURE")
        tally[label] = tally.get(label, 0) + 1
        if label == "FAILURE":
            kept = tmp_path / f"failure_{seed}{src.suffix}"
            kept.write_bytes(data)
            unknown.append(f"seed {seed} {src.name} + {m.history}: {kind}: {message[:200]} "
                           f"(kept as {kept})")
    print(f"{reader}: {N_OTHER} mutated inputs: {tally}")
    assert not unknown, "\n".join(unknown[:10])


@pytest.mark.parametrize("bug", [
    pytest.param(b, id=f"{b.reader}-{b.reproducer}", marks=[pytest.mark.xfail(
        strict=True, raises=AssertionError, reason=f"open bug: {b.reason}")] if b.open else [])
    for b in KNOWN_BUGS])
def test_known_reader_bug_reproducer(bug):
    """Each bug the campaign found must end in one clear InputError. These were strict
    xfails until simulator/readers/source.py made every reader read text and YAML through
    one place; they stay as regression tests."""
    path = CORPUS / bug.reader / bug.reproducer
    func = READERS[bug.reader][0]
    kind, message = classify(bug.reader, func, path)
    assert kind == "error", f"{kind}: {message}"
