"""simulator/measure/ is self-contained: a GPU machine copies that folder alone and runs it.

Each module is imported from a copy of the folder in a temp dir, in a fresh interpreter that
cannot see the rest of ``simulator`` (``-I``: no cwd-independent paths, no user site; the copy
is reached through ``sys.path[0]`` only), and ``--help`` runs there. With PyTorch installed,
the CPU dry runs of both entry points run too (skipped where torch is absent).
"""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

MEASURE = pathlib.Path(__file__).resolve().parent.parent / "simulator" / "measure"
MODULES = sorted(p.stem for p in MEASURE.glob("*.py") if p.stem != "__main__")


def _copy_alone(tmp_path: pathlib.Path, parent: str) -> pathlib.Path:
    """The folder copied under ``tmp_path/parent`` (no simulator/__init__.py next to it)."""
    dest = tmp_path / parent / "measure" if parent else tmp_path / "measure"
    shutil.copytree(MEASURE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _run(root: pathlib.Path, code: str, timeout: int = 60) -> subprocess.CompletedProcess:
    # -I: isolated (no PYTHONPATH, no user site); sys.path[0] is set by hand to the copy
    # -S: no site-packages, so an installed or editable `simulator` cannot be found either
    prog = f"import sys; sys.path.insert(0, {str(root)!r})\n" + code
    return subprocess.run([sys.executable, "-I", "-S", "-c", prog], capture_output=True,
                          text=True, timeout=timeout, cwd=root)


def test_module_list_is_the_package():
    # the layering the package docstring states: shared helpers, then the measuring parts
    assert {"timing", "bench", "moe", "processes", "cli", "layer", "kernels", "gpt", "train",
            "compute_run", "runstart"} <= set(MODULES)


@pytest.mark.parametrize("parent", ["", "simulator"])
def test_every_module_imports_from_a_copy_of_the_folder_alone(tmp_path, parent):
    root = _copy_alone(tmp_path, parent)
    pkg = f"{parent}.measure" if parent else "measure"
    code = ("import importlib\n"
            f"for name in {MODULES!r}:\n"
            f"    mod = importlib.import_module({pkg!r} + '.' + name)\n"
            f"    assert mod.__file__.startswith({str(root)!r}), mod.__file__\n"
            # nothing outside the folder was pulled in: no simulator.<other> module
            "bad = [m for m in sys.modules if m.startswith('simulator.') and\n"
            "       not m.startswith('simulator.measure')]\n"
            "assert not bad, bad\n"
            "print('ok', len(" + repr(MODULES) + "))\n")
    r = _run(root, code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"ok {len(MODULES)}"


def test_help_runs_from_a_copy_of_the_folder_alone(tmp_path):
    root = _copy_alone(tmp_path, "")
    r = _run(root, "import runpy\nsys.argv = ['measure', '--help']\n"
                   "runpy.run_module('measure', run_name='__main__')")
    assert r.returncode == 0, r.stderr
    assert "--sizes" in r.stdout and "--phases" in r.stdout
    r = _run(root, "import runpy\nsys.argv = ['compute_run', '--help']\n"
                   "runpy.run_module('measure.compute_run', run_name='__main__')")
    assert r.returncode == 0, r.stderr
    assert "--tiny" in r.stdout


def test_cpu_dry_runs_from_a_copy_of_the_folder_alone(tmp_path):
    pytest.importorskip("torch")
    root = _copy_alone(tmp_path, "")
    out = tmp_path / "out"
    # with torch: keep site-packages (torch lives there), still only the copy on sys.path[0]
    r = subprocess.run([sys.executable, "-m", "measure", "--device", "cpu", "--world-size",
                        "2", "--phases", "collectives,moe_a2a,gemm,moe_step", "--sizes", "1K:4K",
                        "--iters", "3", "--warmup", "1", "--wall-iters", "2", "--shares",
                        "0.5", "--gemm-shapes", "64x64x64", "--moe-steps", "2",
                        "--moe-cases", "tiny:64:128:32:4:2:1", "--out", str(out / "coll")],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # 6 ops x 3 sizes + the uneven all-to-all x 3 sizes, one header each
    assert (out / "coll" / "collectives.csv").read_text().count("\n") == 1 + 7 * 3
    assert (out / "coll" / "gemm.csv").read_text().count("\n") == 1 + 1
    assert "a2a_per_step" in (out / "coll" / "moe_step.csv").read_text()
    r = subprocess.run([sys.executable, "-m", "measure.compute_run", "--tiny", "--device",
                        "cpu", "--out", str(out / "compute")],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_interleaved_dry_run_from_a_copy_of_the_folder_alone(tmp_path):
    """simulator.measure.interleaved on a CPU (--tiny): 4 cases (default, recompute, FP8,
    unfused) x 2 rounds give 8 train.csv rows with their round and variant, and each round a
    floor of 1 and of the case's layers (4 ops each, 5 with recompute) tagged with the case."""
    pytest.importorskip("torch")
    root = _copy_alone(tmp_path, "")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "measure.interleaved", "--tiny", "--device",
                        "cpu", "--rounds", "2", "--steps", "1", "--out", str(out)],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import csv
    train = list(csv.DictReader(open(out / "train.csv")))
    assert [(t["round"], t["variant"]) for t in train] == [
        ("1", "default"), ("2", "default")] * 2 + [("1", "fp8"), ("2", "fp8"),
                                                  ("1", "unfused"), ("2", "unfused")]
    floor = [k for k in csv.DictReader(open(out / "kernels.csv")) if k["group"] == "hostfloor"]
    # per round: tiny (2 layers) 2 x 3 ops, tiny2-rc (3 layers) 2 x 4, fp8 and unfused 2 x 3
    assert len(floor) == 2 * (6 + 8 + 6 + 6)
    assert {k["note"] for k in floor if "fp8" in k["note"]} == {
        "round 1; case tiny-s64-b2-fp8; variant fp8", "round 2; case tiny-s64-b2-fp8; variant fp8"}
