"""Where the tests find the repository and the shared data beside it (import these from test
modules; conftest.py holds only fixtures)."""
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
WORKLOADS = ROOT / "workloads"


def shared_path(*parts: str) -> pathlib.Path:
    """A file under ../shared, or a clean skip when the checkout has none beside it."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared sits beside the checkout)")
    return path
