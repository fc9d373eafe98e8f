"""Reading input files and YAML so that every failure is one InputError line.

The readers of workloads, measurements, topologies, calibrations and sweep specs all go
through these: a missing file, a directory, bytes that are not UTF-8, YAML the scanner
rejects (a NUL byte, a tab in the wrong place) or a scalar Python cannot convert (an integer
of thousands of digits) each become ``file:line: message``, never a traceback.
"""
from __future__ import annotations

import os

from ..errors import InputError


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, expected a {what}", path=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not a text file ({exc.reason} at byte {exc.start})", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def yaml_error(exc: Exception, path: str) -> InputError:
    """An InputError at the line PyYAML (or a scalar conversion) complained about."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "malformed YAML"
        return InputError(f"not valid YAML: {one_line(what)}", path=path,
                          line=mark.line + 1 if mark is not None else None)
    if isinstance(exc, yaml.reader.ReaderError):
        # a character YAML does not allow (NUL, other control characters)
        return InputError(f"not valid YAML: character {exc.character!r} at byte {exc.position} "
                          "is not allowed", path=path)
    if isinstance(exc, yaml.YAMLError):
        return InputError(f"not valid YAML: {one_line(exc)}", path=path)
    return InputError(f"cannot read a value: {one_line(exc)}", path=path)


def yaml_errors():
    """The exceptions parsing and constructing YAML scalars may raise."""
    import yaml

    return (yaml.YAMLError, ValueError, OverflowError, RecursionError)
