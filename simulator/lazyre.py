"""A regular expression compiled on first use.

Compiling a pattern runs Python's regex compiler (0.2-1 M instructions each); a module
that holds patterns for rare paths (error messages, interleaved chunks, flag parsing)
would otherwise pay for them in every process that imports it.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any


class LazyPattern:
    """Stands for ``re.compile(pattern, flags)``: every attribute is the compiled one's."""

    __slots__ = ("_args", "_compiled")

    def __init__(self, pattern: str, flags: int = 0):
        self._args = (pattern, flags)
        self._compiled: Any = None

    def __getattr__(self, name: str) -> Any:
        compiled = self._compiled
        if compiled is None:
            import re
            compiled = self._compiled = re.compile(*self._args)
        return getattr(compiled, name)
