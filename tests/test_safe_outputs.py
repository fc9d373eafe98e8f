"""Result files are complete or absent: errors and Ctrl-C never leave a partial file.

``simulator/report/output.py`` writes each output to a temporary file beside it and renames
it into place, and ``collsim simulate`` renders every output before writing any. Checked
here: an error (or KeyboardInterrupt) while rendering or writing leaves no file and no
temporary file, a file that existed keeps its old content, and SIGINT sent to a running
``python -m simulator simulate`` at several moments leaves only old or complete files.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from simulator.cli import main as cli_main
from simulator.errors import InputError
from simulator.report import output
from simulator.report.output import write_atomic

ROOT = Path(__file__).resolve().parent.parent
SEED004 = ROOT / "workloads" / "seed004_moe_tp8_ep4_pp4_128gpus.txt"
OLD = b"old content that must survive\n"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".collsim-"))


def cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.showwarning = lambda *a, **k: None  # the CLI turns them back on
        rc = cli_main(args)
    return rc, err.getvalue()


# ------------------------------------------------------------------------------ write_atomic

def test_write_atomic_writes_and_replaces(tmp_path):
    target = tmp_path / "r.json"
    write_atomic(str(target), "first")
    write_atomic(str(target), b"second")
    assert target.read_bytes() == b"second"
    assert leftovers(tmp_path) == []
    mode = target.stat().st_mode & 0o777
    assert mode & 0o644 == 0o644 or mode == 0o666 & ~_umask()  # an ordinary file, not 0600


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


class _FailingFile(io.RawIOBase):
    """Writes half of what it is given, then raises."""

    def __init__(self, fh, exc: BaseException):
        self.fh = fh
        self.exc = exc

    def write(self, data):
        self.fh.write(bytes(data[: len(data) // 2]))
        self.fh.flush()
        raise self.exc

    def close(self):
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
@pytest.mark.parametrize("existed", [False, True])
def test_error_while_writing_leaves_old_file_or_none(tmp_path, monkeypatch, exc, existed):
    target = tmp_path / "r.csv"
    if existed:
        target.write_bytes(OLD)
    real_fdopen = os.fdopen
    monkeypatch.setattr(output.os, "fdopen",
                        lambda fd, mode="r", *a, **k: _FailingFile(real_fdopen(fd, mode), exc)
                        if "w" in mode else real_fdopen(fd, mode, *a, **k))
    # an OSError becomes the one-line InputError the CLI prints
    with pytest.raises(InputError if isinstance(exc, OSError) else type(exc)):
        write_atomic(str(target), b"x" * 100_000)
    assert (target.read_bytes() == OLD) if existed else not target.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [OSError(13, "Permission denied"), KeyboardInterrupt()])
def test_error_at_rename_leaves_old_file(tmp_path, monkeypatch, exc):
    target = tmp_path / "r.json"
    target.write_bytes(OLD)

    def fail(src, dst):
        raise exc
    monkeypatch.setattr(output.os, "replace", fail)
    with pytest.raises(InputError if isinstance(exc, OSError) else type(exc)):
        write_atomic(str(target), "new")
    assert target.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def test_missing_output_directory_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="the output directory does not exist"):
        write_atomic(str(tmp_path / "nope" / "r.json"), "x")


# ------------------------------------------------------------------------------ the CLI

def _outputs(tmp_path: Path) -> dict[str, Path]:
    return {"--json": tmp_path / "r.json", "--csv": tmp_path / "r.csv",
            "--trace": tmp_path / "t.json", "--plot": tmp_path / "p.png"}


def _args(outs: dict[str, Path]) -> list[str]:
    args = ["simulate", str(SEED004), "--quiet"]
    for flag, path in outs.items():
        args += [flag, str(path)]
    return args


@pytest.mark.parametrize("failing", ["simulator.report.plot.render_plot",
                                     "simulator.report.perfetto.render_trace",
                                     "simulator.report.summary.summary_dict"])
@pytest.mark.parametrize("exc", [RuntimeError("rendering failed"), KeyboardInterrupt()])
def test_error_while_rendering_writes_nothing(tmp_path, monkeypatch, failing, exc):
    """One renderer fails: no output is written and files that existed keep their content."""
    outs = _outputs(tmp_path)
    outs["--json"].write_bytes(OLD)
    outs["--csv"].write_bytes(OLD)
    module, _, name = failing.rpartition(".")

    def boom(*a, **k):
        raise exc
    monkeypatch.setattr(sys.modules[module] if module in sys.modules
                        else __import__(module, fromlist=[name]), name, boom)
    if isinstance(exc, KeyboardInterrupt):
        rc, err = cli(_args(outs))
        assert rc == 130 and "interrupted" in err
    else:
        with pytest.raises(RuntimeError):
            cli(_args(outs))
    assert outs["--json"].read_bytes() == OLD and outs["--csv"].read_bytes() == OLD
    assert not outs["--trace"].exists() and not outs["--plot"].exists()
    assert leftovers(tmp_path) == []


def test_successful_run_replaces_old_files(tmp_path):
    outs = _outputs(tmp_path)
    outs["--json"].write_bytes(OLD)
    rc, err = cli(_args(outs))
    assert rc == 0, err
    assert json.loads(outs["--json"].read_text())["iteration_time_ns"] > 0
    assert outs["--plot"].read_bytes()[:4] == b"\x89PNG"
    assert leftovers(tmp_path) == []


# (was a strict xfail: write_all renamed each output as it went; it now stages them all first)
def test_a_failed_write_leaves_no_mixed_set(tmp_path):
    csv_path = tmp_path / "r.csv"
    csv_path.write_bytes(OLD)
    rc, err = cli(["simulate", str(SEED004), "--quiet", "--csv", str(csv_path),
                   "--json", str(tmp_path / "missing" / "r.json")])
    assert rc == 2 and "output directory does not exist" in err
    assert csv_path.read_bytes() == OLD


# ------------------------------------------------------------------------------ SIGINT

def _popen(args: list[str]) -> subprocess.Popen:
    # a shell may start background jobs with SIGINT ignored; give the child the default
    return subprocess.Popen([sys.executable, "-m", "simulator", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX signals")
def test_sigint_leaves_old_or_complete_files(tmp_path):
    """Ctrl-C at several moments of a run writing four outputs: every output is either its
    old content, absent, or complete; no temporary file stays behind."""
    base = tmp_path / "baseline"
    base.mkdir()
    t0 = time.perf_counter()
    p = _popen(_args(_outputs(base)))
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    full = time.perf_counter() - t0
    complete = {flag: path.read_bytes() for flag, path in _outputs(base).items()}

    outcomes = []
    for k, fraction in enumerate([0.15, 0.4, 0.65, 0.9, 0.98]):
        d = tmp_path / f"run{k}"
        d.mkdir()
        outs = _outputs(d)
        outs["--json"].write_bytes(OLD)
        p = _popen(_args(outs))
        time.sleep(full * fraction)
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail("the interrupted run did not stop within 120 s")
        outcomes.append(p.returncode)
        if p.returncode == 130:  # interrupted inside the command: the CLI's own message
            assert err.strip().splitlines()[-1] == "collsim: interrupted", err
            assert "Traceback" not in err
        for flag, path in outs.items():
            if path.exists():
                data = path.read_bytes()
                if flag == "--json" and data == OLD:
                    continue
                # complete: the same bytes as the uninterrupted run (PNG and trace may differ
                # in embedded paths, so compare what must match)
                if flag in ("--json", "--csv"):
                    assert data.replace(str(d).encode(), b"D") == \
                        complete[flag].replace(str(base).encode(), b"D"), flag
                elif flag == "--plot":
                    assert data[:4] == b"\x89PNG" and data.endswith(b"IEND\xaeB`\x82")
                else:
                    json.loads(data)
            else:
                assert flag != "--json", "the old JSON vanished"
        assert leftovers(d) == []
    print(f"baseline {full:.2f} s; exit codes after SIGINT: {outcomes}")
    # the runs were interrupted (not all finished before the signal)
    assert any(rc != 0 for rc in outcomes), outcomes
