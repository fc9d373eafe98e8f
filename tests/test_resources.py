"""Bundled data: found through simulator.resources, shipped by pyproject's data-files, and
kept apart from code (scripts live in scripts/, not in the data folders).

A plain install is exercised end to end by scripts/plain_install_check.sh (CI); these tests
check, cheaply, the two facts it rests on: the lookup answers with the checkout's folders here,
and every tracked file under traces/ and every preset is matched by a data-files pattern (a
folder missing there would be missing, silently, from an installed copy).
"""
from __future__ import annotations

import glob
import os
import subprocess


import pytest

from repo_paths import ROOT
from simulator import resources

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

DATA_FOLDERS = ("traces", "topologies", "workloads")


def _tracked(*folders: str) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", *folders], cwd=ROOT, capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return out.split()


def test_lookup_answers_with_the_checkouts_folders():
    assert resources.data_root("traces") == ROOT
    assert resources.bundled("topologies") == ROOT / "topologies"
    assert resources.bundled("traces", "h200x2", "calib_h200x2.yaml") == \
        ROOT / "traces" / "h200x2" / "calib_h200x2.yaml"
    assert resources.checkout_root() == ROOT
    with pytest.raises(ValueError, match="unknown kind of bundled data 'docs'"):
        resources.bundled("docs")


def test_library_users_of_bundled_data_go_through_the_lookup():
    from simulator.generate.kernel_fit import default_paths
    from simulator.topology import PRESET_DIR
    from simulator.validation.common import DEFAULT_CALIBRATION
    assert PRESET_DIR == resources.bundled("topologies")
    assert DEFAULT_CALIBRATION == resources.bundled("traces", "h200x2", "calib_h200x2.yaml")
    # the ten one-GPU kernel sweeps (traces/h200/compute/run1..run10)
    assert [p.parent.name for p in default_paths()] == [f"run{i}" for i in range(1, 11)]
    assert default_paths() == default_paths(ROOT)
    # no module outside measure/ (which a GPU machine copies alone) finds data from __file__
    offenders = []
    for path in (ROOT / "simulator").rglob("*.py"):
        rel = path.relative_to(ROOT / "simulator")
        if rel.parts[0] == "measure" or rel.name == "resources.py":
            continue
        if "__file__" in path.read_text():
            offenders.append(str(rel))
    assert offenders == []


def test_every_bundled_file_is_shipped_by_data_files():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        data_files = tomllib.load(fh)["tool"]["setuptools"]["data-files"]
    shipped: dict[str, str] = {}
    for dest, patterns in data_files.items():
        for pattern in patterns:
            for f in glob.glob(str(ROOT / pattern)):
                rel = os.path.relpath(f, ROOT)
                # installed under share/collsim/ with the repository's own layout
                assert dest == "share/collsim/" + os.path.dirname(rel), (dest, pattern)
                shipped[rel] = dest
    # topologies/data/: the device-only timings the benchmarks read from a checkout
    wanted = [f for f in _tracked("traces", "topologies")
              if not f.startswith("topologies/data/")]
    assert [f for f in wanted if f not in shipped] == []
    assert "topologies/dgx-h100.yaml" in shipped and "traces/h200/compute/run4/kernels.csv" \
        in shipped


def test_no_scripts_in_the_data_folders():
    code = [f for f in _tracked(*DATA_FOLDERS)
            if f.endswith((".py", ".sh", ".ipynb")) or os.access(ROOT / f, os.X_OK)]
    assert code == []
