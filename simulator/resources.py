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

import sys
from pathlib import Path

#: the bundled kinds of data, each a top-level folder of the repository
KINDS = ("topologies", "traces")

_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and (root / "simulator").is_dir()


def _installed_roots() -> list[Path]:
    import sysconfig   # only outside a checkout (a checkout's data needs no lookup)

    roots = [Path(sys.prefix) / "share" / "collsim"]
    try:  # pip install --user puts data-files under the user base
        roots.append(Path(sysconfig.get_path("data", sysconfig.get_default_scheme()))
                     / "share" / "collsim")
        import site
        roots.append(Path(site.getuserbase()) / "share" / "collsim")
    except Exception:  # a missing scheme only means one place fewer to look
        pass
    return roots


def data_root(kind: str = "traces") -> Path:
    """The folder that holds ``kind`` (one of :data:`KINDS`): the checkout's root when it has
    that folder, else the first install location that does (else the usual install
    location, so that a missing file is named where it would have been)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of bundled data {kind!r}; known: {', '.join(KINDS)}")
    if _is_checkout(_SOURCE_ROOT) and (_SOURCE_ROOT / kind).is_dir():
        return _SOURCE_ROOT
    for root in _installed_roots():
        if (root / kind).is_dir():
            return root
    return _installed_roots()[0]


def bundled(kind: str, *parts: str) -> Path:
    """A bundled folder or file: ``bundled("topologies")``, ``bundled("traces", "h200x2",
    "calib_h200x2.yaml")``. The path may not exist (a caller reports that, naming it)."""
    return data_root(kind).joinpath(kind, *parts)


def checkout_root() -> Path | None:
    """The repository root when running from a source checkout with ``docs/``, else None."""
    if _is_checkout(_SOURCE_ROOT) and (_SOURCE_ROOT / "docs").is_dir():
        return _SOURCE_ROOT
    return None
