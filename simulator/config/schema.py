"""Option fields: a dataclass field whose metadata says what it means, its unit and its kind.

Every option of the typed configuration layer is declared with :func:`option`, so one
declaration carries the default, the help text, the unit and how a value from YAML is checked
(``kind``: ``int``, ``float``, ``bool``, ``str``, ``bw`` (a bandwidth, GB/s inside),
``latency`` (ns inside), ``strs`` (a list of texts, kept as a tuple); a trailing ``?``
allows null). The loader and the documentation read
the metadata; adding a parameter is adding one field.
"""
from __future__ import annotations

from collections.abc import Callable

from ..records import MISSING, Field, field, fields

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any

KINDS = ("int", "float", "bool", "str", "strs", "bw", "latency")


def option(default: Any = None, help: str = "", unit: str = "", kind: str = "str",
           lo: float | None = None, hi: float | None = None,
           choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None) -> Any:
    """A dataclass field with its help, unit and kind in ``metadata``."""
    base = kind.rstrip("?")
    if base not in KINDS:
        raise ValueError(f"unknown option kind {kind!r}")
    meta = {"help": help, "unit": unit, "kind": kind, "lo": lo, "hi": hi, "choices": choices}
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable (use a tuple)")
    return field(default=default, metadata=meta)


def option_fields(cls) -> dict[str, Field]:
    """name -> field of an options dataclass, in declaration order."""
    return {f.name: f for f in fields(cls)}


def default_of(f: Field) -> Any:
    return None if f.default is MISSING else f.default


def describe(cls) -> list[tuple[str, str, str, Any]]:
    """(name, help, unit, default) of every option: what docs and ``--help`` print."""
    return [(f.name, f.metadata.get("help", ""), f.metadata.get("unit", ""), default_of(f))
            for f in fields(cls)]
