"""Read measured operation times from CSV.

Accepted header (any column order, extra columns allowed and kept in ``Measurement.extra``):

* ``op`` -- a canonical op name (``all_reduce`` ... ``gemm``, see
  :data:`simulator.measurements.OPS`) or ``moe_all_to_all_fF``: an uneven all-to-all in
  which a share F of each rank's buffer goes to other ranks;
* ``ranks`` (or ``world``) -- the number of ranks;
* ``bytes`` (or ``size_bytes``) -- the buffer per rank, nccl-tests convention;
* ``time_us`` (or ``median_us``) -- the time of one operation in microseconds;
* optional ``dtype``, ``method``, ``placement``, ``share_remote``.

Lines that start with ``#`` and blank lines are skipped. A bad value raises
:class:`~simulator.errors.InputError` naming the file, the line and the column.
"""
from __future__ import annotations

import csv
import io
import os
import re
from typing import Any
from collections.abc import Iterable

from simulator.errors import InputError
from simulator.measurements import Measurement, canonical_op
from simulator.readers.numbers import parse_float, parse_int, shown

_ALTERNATIVES = {
    "op": ("op",),
    "ranks": ("ranks", "world", "world_size"),
    "bytes": ("bytes", "size_bytes", "size"),
    "time_us": ("time_us", "median_us"),
}
_OPTIONAL = ("dtype", "method", "placement", "share_remote")
_MOE_SHARE = re.compile(r"^(moe_all_to_all|moe_alltoall|moe_a2a)_f([0-9]*\.?[0-9]+)$")


#: beyond these a row is a typo, not a measurement: 2^20 ranks, a 16 TiB buffer per rank,
#: 1000 s for one operation
MAX_RANKS = 2 ** 20
MAX_BYTES = 2 ** 44
MAX_TIME_US = 1e9


def _value(text: str) -> Any:
    """A number where the text is one (int before float), else the text itself."""
    try:
        return parse_int(text)
    except ValueError:
        pass
    try:
        return parse_float(text)
    except ValueError:
        return text


def _parse_int(text: str, where: dict, minimum: int, maximum: int | None = None) -> int:
    try:
        return parse_int(text, lo=minimum, hi=maximum, what="an integer")
    except ValueError as exc:
        raise InputError(str(exc), **where) from None


def _parse_float(text: str, where: dict, positive: bool = False,
                 maximum: float | None = None) -> float:
    try:
        value = parse_float(text, hi=maximum)
    except ValueError as exc:
        raise InputError(str(exc), **where) from None
    if positive and value <= 0:
        raise InputError(f"expected a positive number, got {shown(text)}", **where)
    return value


def _parse_op(text: str, where: dict) -> tuple[str, float | None]:
    name = text.strip()
    m = _MOE_SHARE.match(name.lower())
    if m:
        share = float(m.group(2))
        if not 0.0 <= share <= 1.0:
            raise InputError(f"remote share in {shown(name)} must lie in [0, 1]", **where)
        return "moe_all_to_all", share
    op = canonical_op(name)
    if op is None:
        raise InputError(f"unknown operation {shown(name)}", **where)
    return op, None


def read_measurement_csv(path: str | os.PathLike, method: str = "",
                         placement: str = "") -> list[Measurement]:
    """Read a measurement CSV file into a list of :class:`Measurement`.

    ``method`` and ``placement`` are defaults for files without such columns.
    """
    from .source import read_text

    path = os.fspath(path)
    text = read_text(path, "measurement CSV")
    return parse_measurement_csv(io.StringIO(text, newline=""), path=path, method=method,
                                 placement=placement)


def _guarded(reader, path: str, line_numbers: list[int]):
    """csv rows, with the module's own errors (a field over 128 KiB, a NUL) as one line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"not a valid CSV line: {exc}", path=path,
                             line=line_numbers[-1] if line_numbers else None) from None
        yield row


def parse_measurement_csv(lines: Iterable[str], path: str = "<csv>", method: str = "",
                          placement: str = "") -> list[Measurement]:
    """Parse measurement CSV text (an iterable of lines, e.g. an open file)."""
    numbered = ((i, line) for i, line in enumerate(lines, start=1))
    kept = ((i, line) for i, line in numbered
            if line.strip() and not line.lstrip().startswith("#"))
    line_numbers: list[int] = []

    def feed():
        for i, line in kept:
            line_numbers.append(i)
            yield line

    reader = _guarded(csv.reader(feed()), path, line_numbers)
    header: list[str] | None = None
    header_line = 0
    columns: dict[str, int] = {}
    out: list[Measurement] = []
    for row in reader:
        lineno = line_numbers[-1] if line_numbers else 0
        if header is None:
            header = [h.strip() for h in row]
            header_line = lineno
            lowered = [h.lower() for h in header]
            for key, names in _ALTERNATIVES.items():
                found = [lowered.index(n) for n in names if n in lowered]
                if not found:
                    raise InputError(
                        f"missing column {key!r} (header has: "
                        f"{shown(', '.join(header), 120)})",
                        path=path, line=lineno, field=key)
                columns[key] = found[0]
            for key in _OPTIONAL:
                if key in lowered:
                    columns[key] = lowered.index(key)
            continue
        if len(row) != len(header):
            raise InputError(f"expected {len(header)} fields as in the header on line "
                             f"{header_line}, got {len(row)}", path=path, line=lineno)

        # called in this iteration only, so the loop variables are the current row's
        def where(key: str) -> dict:
            return {"path": path, "line": lineno, "field": header[columns[key]]}  # noqa: B023

        cell = {key: row[idx].strip() for key, idx in columns.items()}
        op, share = _parse_op(cell["op"], where("op"))
        ranks = _parse_int(cell["ranks"], where("ranks"), 1, MAX_RANKS)
        size = _parse_int(cell["bytes"], where("bytes"), 0, MAX_BYTES)
        time_us = _parse_float(cell["time_us"], where("time_us"), positive=True,
                               maximum=MAX_TIME_US)
        if cell.get("share_remote"):
            explicit = _parse_float(cell["share_remote"], where("share_remote"))
            if not 0.0 <= explicit <= 1.0:
                raise InputError(f"expected a share in [0, 1], got {shown(cell['share_remote'])}",
                                 **where("share_remote"))
            if share is not None and abs(share - explicit) > 1e-9:
                raise InputError(f"share {explicit} disagrees with the op name "
                                 f"{shown(cell['op'])}", **where("share_remote"))
            share = explicit
        used = set(columns.values())
        extra = {header[i]: _value(row[i].strip()) for i in range(len(header))
                 if i not in used and row[i].strip() != ""}
        out.append(Measurement(
            op=op, ranks=ranks, size_bytes=size, time_us=time_us,
            method=cell.get("method") or method,
            dtype=cell.get("dtype", ""),
            placement=cell.get("placement") or placement,
            share_remote=share, extra=extra))
    if header is None:
        raise InputError("empty file: expected a header line", path=path, line=1)
    return out
