"""Atomic output files: a result file is either complete or absent, never half-written."""
from __future__ import annotations

import os
import tempfile

from ..errors import InputError


def write_atomic(path: str, data: bytes | str) -> None:
    """Write to a temporary file beside ``path`` and rename it into place."""
    write_all({path: data})


def _stage(path: str, data: bytes | str) -> str:
    """Write ``data`` to a temporary file beside ``path``; returns the temporary's name."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError("the output directory does not exist", path=path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".collsim-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def write_all(outputs: dict[str, bytes | str]) -> None:
    """Write several rendered outputs as a set: every file is written to a temporary beside
    its target first, and only when all of them are written are they renamed into place, so
    an error (a missing directory, a full disk) leaves the old files, never a mix."""
    import sys

    staged: list[tuple[str, str]] = []
    try:
        for path, data in outputs.items():
            if path != "-":
                staged.append((_stage(path, data), path))
        for tmp, path in staged:
            os.replace(tmp, path)
        staged = []
    finally:
        for tmp, _ in staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    if "-" in outputs:
        data = outputs["-"]
        sys.stdout.write(data if isinstance(data, str) else data.decode())
