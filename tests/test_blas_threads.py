"""A simulate program run asks numpy's OpenBLAS for one thread (cli._one_blas_thread):
its numpy work is vector arithmetic, and the pool OpenBLAS starts per core at import spins
on the machine's cores (docs/performance.md, the fabric section)."""
import os
import subprocess
import sys

import pytest

from repo_paths import ROOT, WORKLOADS

from simulator import cli


def test_unset_becomes_one_and_a_users_setting_is_kept(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    cli._one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    cli._one_blas_thread()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"


@pytest.mark.skipif(not os.path.isdir("/proc/self/task") or (os.cpu_count() or 1) < 2,
                    reason="counts the process's threads in /proc; one core starts no pool")
def test_a_contention_run_has_no_blas_threads():
    # the whole program (python -m simulator's entry), stopped before its fast exit: with
    # numpy loaded by the fabric's set-up the process holds only its main thread (OpenBLAS
    # would add cores - 1 threads of its own)
    code = (
        "import os, sys\n"
        "import simulator.cli as cli\n"
        "cli.exit_now = lambda code: None\n"
        f"sys.argv = ['collsim', 'simulate', {str(WORKLOADS / 'simai_example_9216.txt')!r},"
        " '--contention', '--quiet']\n"
        "assert cli.program() == 0\n"
        "assert 'numpy' in sys.modules\n"
        "print(len(os.listdir('/proc/self/task')))\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith("NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "1"
