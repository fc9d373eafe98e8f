"""Reading input files and YAML so that every failure is one InputError line.

The readers of workloads, measurements, topologies, calibrations and sweep specs all go
through these: a missing file, a directory, bytes that are not UTF-8, YAML the scanner
rejects (a NUL byte, a tab in the wrong place) or a scalar Python cannot convert (an integer
of thousands of digits) each become ``file:line: message``, never a traceback.
"""
from __future__ import annotations

import contextlib
import os

from ..errors import InputError


#: inputs larger than this are refused (a FIFO or /dev/zero is never read without limit)
MAX_INPUT_BYTES = 1 << 30
_CHUNK = 1 << 20


def read_text(path: str | os.PathLike, what: str = "file", limit: int | None = None) -> str:
    """The text of ``path``: UTF-8, no NUL bytes, at most ``limit`` bytes (one InputError
    line otherwise). Reads in chunks so that binary data or an endless device is refused at
    its first megabyte, not after filling memory."""
    import codecs

    path = os.fspath(path)
    limit = MAX_INPUT_BYTES if limit is None else limit
    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    total = 0
    with read_errors(path, what), open(path, "rb") as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            nul = chunk.find(b"\0")
            if nul >= 0:
                raise InputError(f"not a text file (a NUL byte at byte {total + nul}); "
                                 f"expected a {what}", path=path)
            total += len(chunk)
            if total > limit:
                raise InputError(f"larger than {limit / 2 ** 20:g} MiB; expected a {what}",
                                 path=path)
            try:
                parts.append(decoder.decode(chunk))
            except UnicodeDecodeError as exc:
                raise InputError(f"not a text file ({exc.reason} at byte "
                                 f"{total - len(chunk) + exc.start})", path=path) from None
        try:
            parts.append(decoder.decode(b"", final=True))
        except UnicodeDecodeError as exc:
            raise InputError(f"not a text file ({exc.reason} at the end)",
                             path=path) from None
    text = "".join(parts)
    # newline="" semantics of the old reader: line ends are kept as written
    return text


@contextlib.contextmanager
def read_errors(path: str, what: str = "file"):
    """Opening or reading ``path`` inside: a missing file, a directory or any other OSError
    becomes one InputError line (``what`` names the file one expected)."""
    try:
        yield
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, expected a {what}", path=path) from None
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
