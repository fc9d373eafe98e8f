"""Outputs never land where they should not (issue 14): every command, every class of path.

- what is not a regular file (a FIFO, /dev/null, a /proc/self/fd link) is written through,
  never replaced by a regular file;
- an output that is an input, or two outputs that are one file (same inode, a symlink, two
  ``-``), is refused with exit 2 before anything is written, for every command;
- rewriting keeps mode (and owner, where we may); a symlink stays a link; a read-only file or a
  directory is refused; a full disk leaves no partial file and no temporary;
- a sweep's ``name:`` cannot leave the output directory;
- SIGINT, SIGTERM and SIGHUP at any moment of a multi-file write leave all old or all new
  files and no temporaries (SIGKILL: each file old or new, see simulator/report/output.py).
"""
from __future__ import annotations

import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import run_cli as cli
from simulator.errors import InputError
from simulator.report import output
from simulator.report.output import write_all

ROOT = Path(__file__).resolve().parent.parent
SEED004 = ROOT / "workloads" / "seed004_moe_tp8_ep4_pp4_128gpus.txt"
SMALL = ROOT / "workloads" / "sweeps" / "mixtral_nic_whatif.yaml"
CALIB = ROOT / "traces" / "h200x2" / "calib_h200x2.yaml"
OLD = b"old content that must survive\n"



def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".collsim-"))


# ------------------------------------------------------------------ not regular files

def _fifo_reader(path: Path, sink: list):
    def read():
        with open(path, "rb") as fh:
            sink.append(fh.read())
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list = []
    t = _fifo_reader(fifo, got)
    write_all({str(fifo): "through the pipe\n"})
    t.join(5)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still a FIFO
    assert leftovers(tmp_path) == []


def test_simulate_json_to_a_fifo(tmp_path):
    fifo = tmp_path / "r.fifo"
    os.mkfifo(fifo)
    got: list = []
    t = _fifo_reader(fifo, got)
    rc, _, err = cli(["simulate", SEED004, "--quiet", "--json", fifo])
    t.join(10)
    assert rc == 0, err
    assert got and got[0].startswith(b"{")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dev_null_and_proc_fd_are_written_through(tmp_path):
    # /dev/null: a character device; a regular file in its place would be a disaster as root
    before = os.stat("/dev/null")
    write_all({"/dev/null": "x"})
    after = os.stat("/dev/null")
    assert (before.st_ino, stat.S_ISCHR(after.st_mode)) == (after.st_ino, True)
    # /proc/self/fd/N open on a file: written through that descriptor's file, in place
    target = tmp_path / "fd_target"
    target.write_bytes(OLD)
    ino = target.stat().st_ino
    fd = os.open(target, os.O_RDWR)
    try:
        write_all({f"/proc/self/fd/{fd}": "via the descriptor\n"})
    finally:
        os.close(fd)
    assert target.read_bytes() == b"via the descriptor\n"
    assert target.stat().st_ino == ino  # the same file, not a replacement
    assert leftovers(tmp_path) == []


def test_two_outputs_on_dev_null_are_fine():
    rc, _, err = cli(["simulate", SEED004, "--quiet", "--json", "/dev/null", "--csv",
                      "/dev/null"])
    assert rc == 0, err


# ------------------------------------------------------------------ outputs vs inputs

def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def _commands(tmp_path: Path):
    """(argv, the input that must survive) for every command that writes files."""
    w = _copy(SEED004, tmp_path / "w.txt")
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: {model: gpt-7b, gpus: 8}\ngrid: {tp: [1, 2]}\n")
    model = tmp_path / "m.yaml"
    model.write_text("preset: gpt-7b\nlayers: 2\n")
    csv = tmp_path / "x.csv"
    csv.write_text("op,ranks,size_bytes,time_us\nall_reduce,8,1048576,40\n")
    cal = _copy(CALIB, tmp_path / "c.yaml")
    link = tmp_path / "link_to_w.txt"
    link.symlink_to(w)
    hard = tmp_path / "hard_w.txt"
    os.link(w, hard)
    return [
        (["simulate", w, "--quiet", "--json", w], w),
        (["simulate", w, "--quiet", "--csv", link], w),          # a symlink to the input
        (["simulate", w, "--quiet", "--trace", hard], w),        # a hard link: same inode
        (["simulate", w, "--quiet", "--calibration", cal, "--json", cal], cal),
        (["calibrate", csv, "-o", csv], csv),
        (["generate", "--model", model, "--gpus", "8", "-o", model], model),
        (["sweep", spec, "-o", spec, "--quiet"], spec),
        # a plot derived from -o would replace the spec (named like a plot)
        (["sweep", _copy(spec, tmp_path / "q-pareto.png"), "-o", tmp_path / "q.csv",
          "--quiet"], tmp_path / "q-pareto.png"),
    ]


def test_no_command_overwrites_its_input(tmp_path):
    for argv, victim in _commands(tmp_path):
        before = victim.read_bytes()
        rc, _, err = cli(argv)
        assert rc == 2, (argv, rc, err)
        assert "would overwrite the input" in err, (argv, err)
        assert err.count("\n") == 1, err
        assert victim.read_bytes() == before, argv
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("flags", [["--json", "P", "--csv", "P"], ["--csv", "-", "--json", "-"],
                                   ["--json", "P", "--trace", "Q"]])
def test_two_outputs_on_one_path_are_refused(tmp_path, flags):
    p, q = tmp_path / "p.out", tmp_path / "q.out"
    q.symlink_to(p)  # Q resolves to P
    argv = ["simulate", SEED004, "--quiet"] + [
        str(p) if f == "P" else str(q) if f == "Q" else f for f in flags]
    rc, out, err = cli(argv)
    assert rc == 2, err
    assert ("same file" in err) or ("standard output" in err) or ("stdout" in err), err
    assert not p.exists() and out == ""


# ------------------------------------------------------------------ rewriting in place

def test_rewrite_keeps_mode_and_symlink(tmp_path):
    target = tmp_path / "r.json"
    target.write_bytes(OLD)
    os.chmod(target, 0o600)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_all({str(link): "new\n"})
    assert link.is_symlink()                    # the link is kept ...
    assert target.read_bytes() == b"new\n"      # ... and the file it names rewritten
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_read_only_file_directory_and_missing_directory(tmp_path):
    ro = tmp_path / "ro.json"
    ro.write_bytes(OLD)
    os.chmod(ro, 0o444)
    if os.geteuid() != 0:  # root may write anything; access() says so
        with pytest.raises(InputError, match="read-only"):
            write_all({str(ro): "new"})
        assert ro.read_bytes() == OLD
    with pytest.raises(InputError, match="is a directory"):
        write_all({str(tmp_path): "new"})
    with pytest.raises(InputError, match="directory does not exist"):
        write_all({str(tmp_path / "no" / "r.json"): "new"})
    rc, _, err = cli(["simulate", SEED004, "--quiet", "--json", tmp_path])
    assert rc == 2 and "is a directory" in err and err.count("\n") == 1


def test_full_disk_leaves_no_partial_file(tmp_path, monkeypatch):
    """ENOSPC from the kernel at the first write (as /dev/full gives): one line, exit 2, the
    old file intact and no temporary, for calibrate and simulate alike."""
    real_write = os.write

    class Full(io.RawIOBase):
        def __init__(self, fh):
            self.fh = fh

        def writable(self):
            return True

        def write(self, b):
            raise OSError(28, "No space left on device")

        def fileno(self):
            return self.fh.fileno()

        def close(self):
            self.fh.close()
            super().close()
    real_fdopen = os.fdopen
    monkeypatch.setattr(output.os, "fdopen", lambda fd, mode="r", *a, **k: Full(
        real_fdopen(fd, mode)) if "w" in mode else real_fdopen(fd, mode, *a, **k))
    out = tmp_path / "cal.yaml"
    out.write_bytes(OLD)
    csv = ROOT / "traces" / "h200x2" / "collectives.csv"
    for argv in (["calibrate", csv, "-o", out, "--quiet"],
                 ["simulate", SEED004, "--quiet", "--json", out]):
        rc, _, err = cli(argv)
        assert rc == 2, err
        assert "No space left on device" in err and err.count("\n") == 1, err
        assert out.read_bytes() == OLD
        assert leftovers(tmp_path) == []
    del real_write


def test_dev_full_as_output_is_one_line():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    rc, _, err = cli(["simulate", SEED004, "--quiet", "--json", "/dev/full"])
    assert rc == 2 and "No space left" in err and err.count("\n") == 1, err


def test_error_at_the_second_rename_puts_the_first_back(tmp_path, monkeypatch):
    a, b = tmp_path / "a.csv", tmp_path / "b.json"
    a.write_bytes(OLD)
    b.write_bytes(OLD)
    real = os.replace
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 2 and str(src).endswith(".tmp"):
            raise OSError(5, "Input/output error")
        return real(src, dst)
    monkeypatch.setattr(output.os, "replace", replace)
    with pytest.raises(InputError, match="Input/output error"):
        write_all({str(a): "new a", str(b): "new b"})
    assert a.read_bytes() == OLD and b.read_bytes() == OLD
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ sweep names

@pytest.mark.parametrize("name", ["../escape", "/tmp/escape", ".hidden", "a/b", "x\ny"])
def test_sweep_name_cannot_leave_the_directory(tmp_path, name):
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: {name!r}\nbase: {{model: gpt-7b, gpus: 8}}\n".replace("'", '"'))
    rc, _, err = cli(["sweep", spec, "--dry-run"])
    assert rc == 2, err
    assert "plain file name" in err and err.count("\n") == 1, err
    assert f"{spec}:1: name:" in err


def test_sweep_cache_that_is_a_file_or_hand_edited(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: {model: gpt-7b, gpus: 8, num_layers: 2}\n"
                    "grid: {tp: [1, 2]}\n")
    cache = tmp_path / "cache"
    cache.write_text("not a directory")
    rc, _, err = cli(["sweep", spec, "-o", tmp_path / "s.csv", "--cache-dir", cache,
                      "--executor", "serial", "--quiet", "--no-plots"])
    assert rc == 2 and "cache directory is a file" in err, err
    cache.unlink()
    rc, _, err = cli(["sweep", spec, "-o", tmp_path / "s.csv", "--cache-dir", cache,
                      "--executor", "serial", "--quiet", "--no-plots"])
    assert rc == 0, err
    good = (tmp_path / "s.csv").read_text()
    entries = sorted(cache.iterdir())
    assert len(entries) == 2
    entries[0].write_text("[1, 2, 3]")                      # not a mapping
    entries[1].write_text('{"status": "ok", "iteration_ms": "fast"}')  # wrong key, types
    rc, _, err = cli(["sweep", spec, "-o", tmp_path / "s.csv", "--cache-dir", cache,
                      "--executor", "serial", "--quiet", "--no-plots"])
    assert rc == 0, err
    assert (tmp_path / "s.csv").read_text() == good  # recomputed, not trusted


# ------------------------------------------------------------------ signals

_WRITER = r"""
import os, sys, time
sys.path.insert(0, {root!r})
from simulator.cli import _terminate_by_unwinding
from simulator.report import output
_terminate_by_unwinding()
real_stage, real_replace = output._stage, output.os.replace
def slow_stage(*a, **k):
    t = real_stage(*a, **k); print("staged", flush=True); time.sleep({stage_s}); return t
def slow_replace(src, dst):
    print("renaming", flush=True); time.sleep({rename_s}); return real_replace(src, dst)
output._stage = slow_stage
output.os.replace = slow_replace
d = sys.argv[1]
try:
    output.write_all({{os.path.join(d, n): "new " + n for n in ("a", "b", "c")}})
except KeyboardInterrupt:
    print("interrupted", flush=True); sys.exit(130)
print("done", flush=True)
"""


def _default_signals() -> None:
    """The writer starts with default signal dispositions: a suite run from a background
    shell (``&``, ``nohup``) hands its children SIGINT/SIGHUP ignored, and the command rightly
    keeps an ignored signal ignored, so the test would otherwise signal a deaf writer."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("moment", ["staged", "renaming"])
def test_signal_during_a_set_of_writes_is_all_or_nothing(tmp_path, sig, moment):
    """The signal arrives while staging (all old, no temporaries) or while renaming (held:
    all new, then the signal is acted on)."""
    for n in "abc":
        (tmp_path / n).write_bytes(OLD)
    script = tmp_path / "writer.py"
    # The writer pauses at the moment the signal is meant for, long enough that a parent
    # descheduled on a loaded machine still signals inside it: a signal while staging ends
    # the pause at once; one while renaming is held, so those pauses stay short.
    stage_s, rename_s = (30, 0) if moment == "staged" else (0, 1.5)
    script.write_text(_WRITER.format(root=str(ROOT), stage_s=stage_s, rename_s=rename_s))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    while True:
        line = proc.stdout.readline()
        assert line, "the writer ended early"
        if line.strip() == moment:
            break
    proc.send_signal(sig)
    proc.wait(20)
    contents = {(tmp_path / n).read_bytes() for n in "abc"}
    assert contents in ({OLD}, {b"new a", b"new b", b"new c"}) or \
        [(tmp_path / n).read_bytes() for n in "abc"] == [b"new a", b"new b", b"new c"]
    if moment == "staged":
        assert contents == {OLD}
    else:
        assert [(tmp_path / n).read_bytes() for n in "abc"] == [b"new a", b"new b", b"new c"]
    assert leftovers(tmp_path) == []
    assert proc.returncode != 0


def test_sigkill_leaves_each_file_old_or_whole(tmp_path):
    """What is promised under SIGKILL: every file is its old or its complete new content."""
    for n in "abc":
        (tmp_path / n).write_bytes(OLD)
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(root=str(ROOT), stage_s=0, rename_s=0.4))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    seen = 0
    while seen < 2:  # during the second rename
        line = proc.stdout.readline()
        assert line
        seen += line.strip() == "renaming"
    proc.kill()
    proc.wait(20)
    for n in "abc":
        assert (tmp_path / n).read_bytes() in (OLD, f"new {n}".encode())


def test_sigterm_stops_sweep_workers(tmp_path):
    """SIGTERM to a running sweep: exit 143, and none of its pool workers lives on."""
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: {model: mixtral-8x7b, gpus: 256, global_batch: 1024}\n"
                    "grid: {tp: [1, 2, 4], ep: [1, 2, 4, 8], pp: [1, 2, 4, 8]}\n")
    proc = subprocess.Popen([sys.executable, "-m", "simulator", "sweep", str(spec), "-o",
                             str(tmp_path / "s.csv"), "-j", "2", "--no-cache", "--quiet"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    workers: set[int] = set()
    deadline = time.time() + 20
    while time.time() < deadline and len(workers) < 2:
        workers = _children(proc.pid)
        time.sleep(0.1)
    assert workers, "no pool worker started"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "collsim: terminated" in err and "Traceback" not in err
    time.sleep(0.5)
    assert not {w for w in workers if _alive(w)}, "pool workers outlived the sweep"
    assert not (tmp_path / "s.csv").exists()


def _children(pid: int) -> set[int]:
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


_real_run_point = None


def _deadly_point(point, base_dir="."):
    if point["tp"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_run_point(point, base_dir)


def test_a_killed_worker_fails_only_its_point(tmp_path, monkeypatch):
    """A point whose worker dies (here it SIGKILLs itself, as the OOM killer would) is an
    error; the other points of the sweep, in flight in the same pool, are results."""
    from simulator.sweep import runner
    from simulator.sweep.spec import load_spec

    global _real_run_point
    _real_run_point = runner.run_point
    monkeypatch.setattr(runner, "run_point", _deadly_point)  # forked workers see it
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nbase: {model: gpt-7b, gpus: 8, num_layers: 2}\n"
                    "grid: {tp: [1, 2, 4, 8]}\n")
    sp = load_spec(str(spec))
    with runner.make_executor("process", 2) as ex:
        results = runner.run_points(sp.points, ex, runner.Cache(None), progress=False)
    status = {r["point"]["tp"]: r["status"] for r in results}
    assert status == {1: "ok", 2: "error", 4: "ok", 8: "ok"}, [r["error"] for r in results]
    assert "worker process" in next(r["error"] for r in results if r["point"]["tp"] == 2)


# ------------------------------------------------------------------ empty output paths

@pytest.mark.parametrize("args", [
    ["simulate", SEED004, "--quiet", "--json="],           # the exact reader's path
    ["simulate", SEED004, "--quiet", "--jso", ""],          # argparse's (an abbreviation)
    ["simulate", SEED004, "--quiet", "--plot", ""],
    ["generate", "--model", "gpt-125m", "--world-size", "8", "-o", ""],
])
def test_an_empty_output_path_is_refused(args, tmp_path, monkeypatch):
    # `--json=` used to be read as "no JSON": the run exited 0 and wrote nothing asked for
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli(args)
    assert rc == 2 and err.count("\n") == 1 and "an empty path" in err, err
    written = args[-1].rstrip("=") if args[-1].endswith("=") else args[-2]
    flag = {"--jso": "--json", "-o": "--output"}.get(written, written)
    assert flag in err and out == "" and list(tmp_path.iterdir()) == []
