"""The one number parser for what users type: in files, in YAML and in flags.

A number is ASCII digits with an optional sign, decimal point and exponent. Not numbers:
non-ASCII digits (``١٦``, ``１``, ``²``), ``1_6``, ``0x10``, ``inf``, ``nan``, strings of more
than :data:`MAX_DIGITS` characters (Python refuses ``int()`` beyond 4,300 digits and they are
typos), values that overflow to infinity and subnormal values (below 2.2e-308, which lose
precision and are never meant). Range checks are the caller's: pass ``lo``/``hi``.
Errors are ``ValueError`` with a message that needs no context but the field name.
"""
from __future__ import annotations

import math

from ..lazyre import LazyPattern

MAX_DIGITS = 40
_INT_RE = LazyPattern(r"(?a)[-+]?[0-9]+\Z")
_FLOAT_RE = LazyPattern(r"(?a)[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_TINY = 2.2250738585072014e-308  # smallest normal double


def shown(text: object, limit: int = 40) -> str:
    """``text`` as it may appear in one line of a message: repr'd and shortened."""
    s = repr(str(text))
    return s if len(s) <= limit else s[: limit - 5] + "...'" + f" ({len(str(text))} chars)"


def parse_int(text: str | int, lo: int | None = None, hi: int | None = None,
              what: str = "a whole number") -> int:
    if isinstance(text, bool):
        raise ValueError(f"expected {what}, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        s = str(text).strip()
        if len(s) > MAX_DIGITS:
            raise ValueError(f"expected {what}, got a number of {len(s)} characters")
        digits = s[1:] if s[:1] in ("+", "-") else s
        if digits.isascii() and digits.isdigit():   # what _INT_RE matches, without a regex
            return _range(int(s), lo, hi)
        if not _INT_RE.match(s):
            if _FLOAT_RE.match(s):
                f = parse_float(s)
                if f.is_integer() and abs(f) < 2 ** 63:
                    return _range(int(f), lo, hi)
            raise ValueError(f"expected {what}, got {shown(s)}")
        value = int(s)
    return _range(value, lo, hi)


def parse_float(text: str | int | float, lo: float | None = None, hi: float | None = None,
                what: str = "a number") -> float:
    if isinstance(text, bool):
        raise ValueError(f"expected {what}, got {text!r}")
    if isinstance(text, int):
        if abs(text) > 10 ** MAX_DIGITS:
            raise ValueError(f"expected {what}, got a number of {len(str(text))} digits")
        value = float(text)
    elif isinstance(text, float):
        value = text
    else:
        s = str(text).strip()
        if len(s) > MAX_DIGITS:
            raise ValueError(f"expected {what}, got a number of {len(s)} characters")
        if not _FLOAT_RE.match(s):
            raise ValueError(f"expected {what}, got {shown(s)}")
        value = float(s)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {shown(text)}")
    if value != 0 and abs(value) < _TINY:
        raise ValueError(f"{shown(text)} is too small to be meant (below 2.2e-308)")
    return _range(value, lo, hi)


def _fmt(x) -> str:
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def _range(value, lo, hi):
    if lo is not None and value < lo:
        raise ValueError(f"must be >= {_fmt(lo)}, got {_fmt(value)}")
    if hi is not None and value > hi:
        raise ValueError(f"must be <= {_fmt(hi)}, got {_fmt(value)}")
    return value
