import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
WORKLOADS = ROOT / "workloads"


def shared_path(*parts: str) -> pathlib.Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared sits beside the checkout)")
    return path


@pytest.fixture
def write_workload(tmp_path):
    """Write a workload table from a header and rows; returns its path."""

    def _write(header: str, rows: list[str], count: int | None = None, name: str = "w.txt"):
        path = tmp_path / name
        n = len(rows) if count is None else count
        path.write_text(header + "\n" + str(n) + "\n" + "\n".join(rows) + "\n")
        return str(path)

    return _write
