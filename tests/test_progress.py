"""Progress for long what-ifs: on stderr, only on a terminal, never with --quiet."""
import io
import os
import pty
import subprocess
import sys

from repo_paths import ROOT, WORKLOADS
from simulator.progress import Progress, wanted

MICRO = str(WORKLOADS / "simai_microAllReduce.txt")
SEED = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")


def test_plain_line_without_tqdm():
    out = io.StringIO()
    with Progress(3, "draws", "draw", stream=out, force=True, use_tqdm=False) as bar:
        for _ in range(3):
            bar.update(postfix="x")
    assert out.getvalue().endswith("\rdraws: 3/3 draws: x\n")


def test_not_a_terminal_or_quiet_draws_nothing():
    assert not wanted(True, io.StringIO())
    out = io.StringIO()
    with Progress(3, "draws", stream=out) as bar:
        bar.update()
    assert out.getvalue() == ""


def _run_on_a_terminal(*args) -> str:
    """stderr of a collsim run whose stderr is a pseudo-terminal."""
    master, slave = pty.openpty()
    try:
        p = subprocess.run([sys.executable, "-m", "simulator", *args], stdout=subprocess.PIPE,
                           stderr=slave, cwd=ROOT, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
        os.close(slave)
        slave = None
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        assert p.returncode == 0
        return b"".join(chunks).decode(errors="replace")
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)


def test_draws_show_progress_on_a_terminal_only():
    args = ("simulate", SEED, "--straggler", "fraction=0.05,compute=1.2,seed=1", "--draws", "3")
    tty = _run_on_a_terminal(*args)
    # 2 more draws and the baseline beside them
    assert "what-if runs" in tty and "3/3" in tty
    assert "what-if runs" not in _run_on_a_terminal(*args, "--quiet")
    piped = subprocess.run([sys.executable, "-m", "simulator", *args], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
    assert piped.returncode == 0 and "what-if runs" not in piped.stderr
