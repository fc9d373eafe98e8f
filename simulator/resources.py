"""Where the bundled data lives: the one place the library finds ``topologies/`` (the presets)
and ``traces/`` (the measurements ``collsim validate``, the README examples and the compute-model
fit read).

In a source checkout that is the repository's own folders; after a plain (non-editable)
``pip install`` it is the copies pyproject's ``[tool.setuptools.data-files]`` puts under
``<prefix>/share/collsim/`` (or the user base for ``pip install --user``). Library code asks
:func:`bundled` for a path and never builds one from ``__file__``, so a command behaves the
same from a clone and from an installed copy (``scripts/plain_install_check.sh`` runs them
both and compares). :func:`checkout_root` is for what only a checkout has (``docs/`` to write
back into).
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

#: the bundled kinds of data, each a top-level folder of the repository
KINDS = ("topologies", "traces")

# plain strings (os.path), not pathlib: a simulate run looks its preset up here, and pathlib
# with urllib.parse is 16 M instructions to import (a sixth of such a run beyond Python's start)
_SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def _is_checkout(root: str) -> bool:
    return (os.path.isfile(os.path.join(root, "pyproject.toml"))
            and os.path.isdir(os.path.join(root, "simulator")))


def _installed_roots() -> Iterator[str]:
    """The install locations, first the usual one (a venv's or a system prefix): the rest
    only when asked for (sysconfig is 1.4 M instructions to import)."""
    yield os.path.join(sys.prefix, "share", "collsim")
    try:  # pip install --user puts data-files under the user base
        import sysconfig
        others = [os.path.join(sysconfig.get_path("data", sysconfig.get_default_scheme()),
                               "share", "collsim")]
        import site
        others.append(os.path.join(site.getuserbase(), "share", "collsim"))
    except Exception:  # a missing scheme only means one place fewer to look
        return
    yield from others


def data_root_path(kind: str = "traces") -> str:
    """:func:`data_root` as a string."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of bundled data {kind!r}; known: {', '.join(KINDS)}")
    if _is_checkout(_SOURCE_ROOT) and os.path.isdir(os.path.join(_SOURCE_ROOT, kind)):
        return _SOURCE_ROOT
    for root in _installed_roots():
        if os.path.isdir(os.path.join(root, kind)):
            return root
    return os.path.join(sys.prefix, "share", "collsim")


def data_root(kind: str = "traces") -> Path:
    """The folder that holds ``kind`` (one of :data:`KINDS`): the checkout's root when it has
    that folder, else the first install location that does (else the usual install
    location, so that a missing file is named where it would have been)."""
    from pathlib import Path

    return Path(data_root_path(kind))


def bundled_path(kind: str, *parts: str) -> str:
    """:func:`bundled` as a string (what pathlib would make of it: no trailing separator)."""
    return os.path.join(data_root_path(kind), kind, *parts)


def bundled(kind: str, *parts: str) -> Path:
    """A bundled folder or file: ``bundled("topologies")``, ``bundled("traces", "h200x2",
    "calib_h200x2.yaml")``. The path may not exist (a caller reports that, naming it)."""
    from pathlib import Path

    return Path(bundled_path(kind, *parts))


def checkout_root() -> Path | None:
    """The repository root when running from a source checkout with ``docs/``, else None."""
    if _is_checkout(_SOURCE_ROOT) and os.path.isdir(os.path.join(_SOURCE_ROOT, "docs")):
        from pathlib import Path

        return Path(_SOURCE_ROOT)
    return None
