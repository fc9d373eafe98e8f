"""Errors and warnings users can act on.

Every problem with an input is raised as :class:`InputError`, which renders as one line
naming the file, the line and the field (``workload.txt:57: field 5 (fwd_bytes): ...``).
The CLI turns it into exit code 2 without a traceback.
"""
from __future__ import annotations

import warnings

from .lazyre import LazyPattern


class InputError(Exception):
    """Bad input: a file, a flag or a configuration that cannot be used as given."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return _bounded(f"{where}{field}{self.message}")


_LONG_QUOTE = LazyPattern(r"""(['"])([^'"\n]{48})[^'"\n]{24,}?([^'"\n]{8})\1""")


def _bounded(text: str) -> str:
    """One line, with any quoted value over 80 characters shortened (a 200k-character name
    from a file is not repeated to the terminal), and at most 1,000 characters."""
    text = " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text
    if len(text) > 200:
        text = _LONG_QUOTE.sub(lambda m: f"{m.group(1)}{m.group(2)}...{m.group(3)}{m.group(1)}",
                               text)
    return text if len(text) <= 1000 else text[:990] + " [...]"


class SimulationWarning(UserWarning):
    """A result that may be misleading (a group of size 1, a row-count mismatch, ...)."""


def warn(message: str) -> None:
    """Emit a :class:`SimulationWarning`; the CLI prints these as ``warning: ...`` lines."""
    warnings.warn(message, SimulationWarning, stacklevel=2)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so temporary files are removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
