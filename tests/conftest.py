import pytest

from repo_paths import ROOT, SHARED, WORKLOADS, shared_path  # noqa: F401  (for modules that still import them from here)


@pytest.fixture
def write_workload(tmp_path):
    """Write a workload table from a header and rows; returns its path."""

    def _write(header: str, rows: list[str], count: int | None = None, name: str = "w.txt"):
        path = tmp_path / name
        n = len(rows) if count is None else count
        path.write_text(header + "\n" + str(n) + "\n" + "\n".join(rows) + "\n")
        return str(path)

    return _write
