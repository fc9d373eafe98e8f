"""Text from input files made safe where it is shown: on a terminal and in a spreadsheet.

Row names, file names and spec values come from files anyone may have written. On a terminal
an escape sequence in a name could move the cursor, retitle the window or hide a line; in a
spreadsheet a cell that starts with ``=``, ``+``, ``-`` or ``@`` is a formula
(``=HYPERLINK(...)``). :func:`for_terminal` writes control and bidirectional-override
characters as ``\\x1b``-style escapes; :func:`csv_cell` puts a ``'`` before a text cell a
spreadsheet would evaluate (OWASP's advice), leaving numbers as they are.
"""
from __future__ import annotations

from ..lazyre import LazyPattern

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    import re

# C0 and C1 controls but newline and tab; DEL; bidirectional overrides and isolates
_UNSAFE = LazyPattern("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NUMBER = LazyPattern(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")


def _escape(m: re.Match) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def for_terminal(text: str) -> str:
    # ASCII text has nothing _UNSAFE matches but its non-printable characters other than
    # newline and tab (ASCII's non-printables are 0x00-0x1f and 0x7f): most text needs no
    # regex
    if text.isascii() and text.replace("\n", "").replace("\t", "").isprintable():
        return text
    return _UNSAFE.sub(_escape, text)


def csv_cell(value):
    """``value`` for a CSV cell: a text a spreadsheet would run as a formula gets a ``'``."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] in "=+-@\t\r" and not _NUMBER.match(value):
        return "'" + value
    return value
