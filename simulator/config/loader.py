"""The one loader of typed options: a YAML mapping (or a plain dict) -> a frozen dataclass.

Every value is checked by its field's ``kind`` (see :mod:`simulator.config.schema`); every
error names the key the user wrote, and the file and line where they are known
(``sweep.yaml:4: grid.tp: must be between 1 and 2,147,483,648, got 0``). An unknown key is
refused with the closest known spelling, never ignored.
"""
from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from typing import Any

from ..errors import InputError, SimulationWarning
from ..readers.numbers import shown
from ..records import Field
from .schema import option_fields

#: whole numbers an option takes at most (as on the command line)
MAX_INT = 2 ** 31


class Where:
    """Where a value came from: the file, the line and the key as the user wrote it."""

    def __init__(self, path: str | None = None, line: int | None = None,
                 key: str | None = None):
        self.path, self.line, self.key = path, line, key

    def error(self, message: str) -> InputError:
        return InputError(message, path=self.path, line=self.line, field=self.key)

    def warn(self, message: str) -> None:
        at = f"{self.path}:{self.line}: " if self.path and self.line else ""
        warnings.warn(f"{at}{self.key + ': ' if self.key else ''}{message}", SimulationWarning,
                      stacklevel=3)


def coerce(f: Field, value: Any, where: Where) -> Any:
    """``value`` checked and converted as field ``f`` declares (errors at ``where``)."""
    meta = f.metadata
    kind = meta.get("kind", "str")
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        if optional:
            return None
        raise where.error(f"{f.name} needs a value")
    if kind == "str":
        if isinstance(value, (dict, list)):
            raise where.error(f"expected a name, got {shown(value)}")
        choices = meta.get("choices")
        choices = choices() if callable(choices) else choices
        if choices and str(value) not in choices:
            raise where.error(f"unknown {f.name.replace('_', ' ')} {shown(value)}; known: "
                              f"{', '.join(choices)}")
        return str(value)
    if kind == "strs":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise where.error(f"expected a list of texts, got {shown(value)}")
        return tuple(items)
    if kind == "bool":
        if not isinstance(value, bool):
            raise where.error(f"expected true or false, got {shown(value)}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error(f"expected a whole number, got {shown(value)}")
        lo = 1 if meta.get("lo") is None else meta["lo"]
        hi = MAX_INT if meta.get("hi") is None else meta["hi"]
        if not lo <= value <= hi:
            raise where.error(f"must be between {lo} and {hi:,} (as on the command line), "
                              f"got {value}")
        return value
    if kind == "bw":
        from ..units import implausible_bandwidth, parse_bandwidth_gbps
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise where.error(f"expected a bandwidth like 400Gbit/s or 50GB/s, got {value!r}")
        try:
            gbps = parse_bandwidth_gbps(value)
        except ValueError as exc:
            raise where.error(str(exc)) from None
        message = implausible_bandwidth(value, gbps, f.name.split("_")[0], "")
        if message:
            at = f"{where.path}:{where.line}: " if where.path and where.line else ""
            warnings.warn(f"{at}{where.key or f.name}{message}", SimulationWarning, stacklevel=2)
        return gbps
    if kind == "latency":
        from ..units import parse_latency_ns
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise where.error(f"expected a time like 10us or 500ns, got {shown(value)}")
        try:
            return parse_latency_ns(str(value))
        except ValueError as exc:
            raise where.error(str(exc)) from None
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.error(f"expected a number, got {shown(value)}")
        lo = 0 if meta.get("lo") is None else meta["lo"]
        hi = 1e9 if meta.get("hi") is None else meta["hi"]
        if not lo <= value <= hi:
            shown_hi = "1e9" if hi == 1e9 else f"{hi:g}"
            raise where.error(f"must be between {lo:g} and {shown_hi}, got {value:g}")
        return float(value)
    raise AssertionError(kind)


def unknown_key(key: str, known, where: Where) -> InputError:
    """The error for a key no option has: names it and the closest spelling."""
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return where.error(f"unknown key {shown(key)}{hint}; known: {', '.join(sorted(known))}")


def from_mapping(cls, data: Mapping | None, path: str | None = None,
                 lines: Mapping[str, int] | None = None, prefix: str = "",
                 aliases: Mapping[str, str] | None = None):
    """An instance of the options dataclass ``cls`` from a mapping of its keys.

    ``lines``: key (with ``prefix``) -> 1-based line, for the errors; ``aliases``: other
    spellings of a key. Keys left out take the field's default.
    """
    lines = lines or {}
    aliases = aliases or {}
    known = option_fields(cls)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InputError(f"expected a mapping of keys, got {shown(data)}", path=path,
                         line=lines.get(prefix.rstrip(".")), field=prefix.rstrip(".") or None)
    values: dict[str, Any] = {}
    for key, value in data.items():
        written = f"{prefix}{key}"
        where = Where(path, lines.get(written), written)
        name = aliases.get(str(key), str(key))
        if name not in known:
            raise unknown_key(str(key), known, where)
        if name in values:
            raise where.error(f"given twice (as {name!r} and an alias)")
        values[name] = coerce(known[name], value, where)
    return cls(**values)


def load_options(cls, path: str, section: str | None = None, what: str = "options file"):
    """Options from a YAML file (or one top-level ``section`` of it), with lines in errors."""
    from ..readers.source import read_text
    from ..readers.yamlload import MAX_BYTES, compose_yaml, construct, key_lines

    node, loader = compose_yaml(read_text(path, what, limit=MAX_BYTES), path)
    data = None if node is None else construct(loader, node)
    lines = key_lines(node) if node is not None else {}
    if section is not None:
        if not isinstance(data, Mapping):
            raise InputError(f"expected a mapping with {section}:", path=path, line=1)
        return from_mapping(cls, data.get(section), path, lines, prefix=f"{section}.")
    return from_mapping(cls, data, path, lines)
