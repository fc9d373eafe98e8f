"""Where the bundled data lives: the repository's folders in a checkout, or the copies a plain
(non-editable) install puts under ``<prefix>/share/collsim/`` (pyproject's data-files).

Commands reach ``topologies/`` and ``traces/`` only through :func:`bundled`, so that they
work the same from a clone and from ``pip install collsim``.
"""
from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def _installed_roots() -> list[Path]:
    roots = [Path(sys.prefix) / "share" / "collsim"]
    try:  # pip install --user puts data-files under the user base
        roots.append(Path(sysconfig.get_path("data", f"{sysconfig.get_default_scheme()}"))
                     / "share" / "collsim")
        import site
        roots.append(Path(site.getuserbase()) / "share" / "collsim")
    except Exception:  # a missing scheme only means one place fewer to look
        pass
    return roots


def data_root(kind: str = "traces") -> Path:
    """The folder that holds ``kind`` (``'traces'``, ``'topologies'``): the checkout's root
    when it has that folder, else the first install location that does."""
    if (_REPO / kind).is_dir() and (_REPO / "pyproject.toml").is_file():
        return _REPO
    for root in _installed_roots():
        if (root / kind).is_dir():
            return root
    return _installed_roots()[0]


def bundled(kind: str) -> Path:
    """``topologies/`` or ``traces/`` as shipped with this copy of collsim."""
    return data_root(kind) / kind


def in_checkout() -> bool:
    """True when running from a source checkout (docs/ can be written back)."""
    return (_REPO / "pyproject.toml").is_file() and (_REPO / "docs").is_dir()


REPO_ROOT = _REPO
