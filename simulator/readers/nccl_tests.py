"""Read the text output of NVIDIA's nccl-tests (``all_reduce_perf``, ``alltoall_perf``, ...).

The operation comes from the binary's name (in the ``# Collective test starting: X_perf``
banner, or a command line naming ``X_perf`` before the table); the number of ranks from
the ``#  Rank N ...`` device lines (else ``nThread x nGpus`` from the parameter line).
Each table row becomes one :class:`~simulator.measurements.Measurement` with the
out-of-place time, ``method="nccl-tests"``; the in-place time, bandwidths, element count
and the rest go to ``extra``.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable

from simulator.collectives import NCCL_TESTS_STEMS
from simulator.errors import InputError
from simulator.readers.numbers import parse_float, parse_int, shown
from simulator.measurements import Measurement

#: nccl-tests binary stem -> canonical op.
BINARY_OPS = NCCL_TESTS_STEMS

#: nccl-tests type names -> the short dtype names used elsewhere.
DTYPES = {
    "float": "fp32", "float32": "fp32", "half": "fp16", "float16": "fp16",
    "bfloat16": "bf16", "double": "fp64", "float64": "fp64",
    "int8": "int8", "uint8": "uint8", "int32": "int32", "uint32": "uint32",
    "int64": "int64", "uint64": "uint64", "f8e4m3": "fp8e4m3", "f8e5m2": "fp8e5m2",
}

_PERF = re.compile(r"\b([a-z_]+)_perf(?:_mpi)?\b")
_RANK = re.compile(r"^#\s*Rank\s+(\S+)", re.ASCII)
_PARAMS = re.compile(r"nThread\s+(\S+)\s+nGpus\s+(\S+)", re.ASCII)
MAX_RANKS = 2 ** 20
MAX_BYTES = 2 ** 44
_LOG = re.compile(r"\bNCCL (INFO|WARN|TRACE)\b")

# Columns of a row before the out-of-place block, when no column header is found.
_DEFAULT_PREFIX = ["size", "count", "type", "redop", "root"]


def read_nccl_tests(path: str | os.PathLike, op: str | None = None,
                    placement: str = "") -> list[Measurement]:
    """Read an nccl-tests output file. ``op`` overrides the op found in the file."""
    import io

    from .source import read_text

    path = os.fspath(path)
    text = read_text(path, "nccl-tests output", limit=256 * 2 ** 20)
    return parse_nccl_tests(io.StringIO(text), path=path, op=op, placement=placement)


def _number(text: str, kind, lineno: int, name: str, path: str, lo=None, hi=None):
    try:
        if kind is int:
            return parse_int(text, lo=lo, hi=hi, what="an integer")
        return parse_float(text, lo=lo, hi=hi)
    except ValueError as exc:
        raise InputError(str(exc), path=path, line=lineno, field=name) from None


def parse_nccl_tests(lines: Iterable[str], path: str = "<nccl-tests>", op: str | None = None,
                     placement: str = "") -> list[Measurement]:
    """Parse nccl-tests output text (an iterable of lines)."""
    found_op: str | None = None
    op_line = 0
    rank_ids: set[int] = set()
    threads_x_gpus: int | None = None
    prefix: list[str] | None = None
    in_table = False
    rows: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n")
        text = line.strip()
        if not text or _LOG.search(text):
            continue
        if text.startswith("#"):
            m = _RANK.match(text)
            if m:
                rank_ids.add(_number(m.group(1), int, lineno, "Rank", path, 0, MAX_RANKS - 1))
            m = _PARAMS.search(text)
            if m:
                threads_x_gpus = (_number(m.group(1), int, lineno, "nThread", path, 1, MAX_RANKS)
                                  * _number(m.group(2), int, lineno, "nGpus", path, 1,
                                            MAX_RANKS))
                if threads_x_gpus > MAX_RANKS:
                    raise InputError(f"nThread x nGpus is {threads_x_gpus:,}; at most "
                                     f"{MAX_RANKS:,} ranks", path=path, line=lineno)
            body = text.lstrip("#").split()
            if len(body) >= 3 and body[0] == "size" and body[1] == "count":
                prefix = body[:body.index("time")] if "time" in body else _DEFAULT_PREFIX
                in_table = True
        elif not in_table:
            # free text before the table: a command line, a launcher's banner
            pass
        else:
            rows.append((lineno, text.split()))
            continue
        if found_op is None:
            m = _PERF.search(text)
            if m:
                stem = m.group(1)
                if stem not in BINARY_OPS:
                    raise InputError(f"unsupported nccl-tests binary {stem}_perf (known: "
                                     + ", ".join(sorted({k + '_perf' for k in BINARY_OPS}))
                                     + ")", path=path, line=lineno)
                found_op, op_line = BINARY_OPS[stem], lineno
    if op is None:
        if found_op is None:
            raise InputError("cannot tell the operation: no '<name>_perf' binary named in the "
                             "file; name it: collsim calibrate --nccl-tests-op OP (op= in the "
                             "library)",
                             path=path)
        op = found_op
    if rank_ids:
        ranks = max(rank_ids) + 1
    elif threads_x_gpus is not None:
        ranks = threads_x_gpus
    else:
        raise InputError("cannot tell the number of ranks: no '# Rank' lines and no "
                         "'nThread .. nGpus ..' line", path=path)
    if prefix is None:
        prefix = _DEFAULT_PREFIX
    width = len(prefix) + 8
    out: list[Measurement] = []
    for lineno, cells in rows:
        if len(cells) != width:
            raise InputError(f"expected {width} columns ({', '.join(prefix)}, then time, "
                             f"algbw, busbw, #wrong out of place and in place), got "
                             f"{len(cells)}", path=path, line=lineno)
        named = dict(zip(prefix, cells))
        size = _number(named["size"], int, lineno, "size", path, 0, MAX_BYTES)
        base = len(prefix)
        time_us = _number(cells[base], float, lineno, "time (out-of-place)", path)
        if time_us <= 0:
            raise InputError(f"expected a positive time, got {shown(cells[base])}", path=path,
                             line=lineno, field="time (out-of-place)")
        extra: dict = {}
        if "count" in named:
            extra["count"] = _number(named["count"], int, lineno, "count", path)
        if "redop" in named:
            extra["redop"] = named["redop"]
        if "root" in named:
            extra["root"] = _number(named["root"], int, lineno, "root", path)
        extra["algbw_GBps"] = _number(cells[base + 1], float, lineno, "algbw (out-of-place)",
                                      path)
        extra["busbw_GBps"] = _number(cells[base + 2], float, lineno, "busbw (out-of-place)",
                                      path)
        extra["wrong"] = cells[base + 3]
        extra["inplace_time_us"] = _number(cells[base + 4], float, lineno,
                                           "time (in-place)", path)
        extra["inplace_algbw_GBps"] = _number(cells[base + 5], float, lineno,
                                              "algbw (in-place)", path)
        extra["inplace_busbw_GBps"] = _number(cells[base + 6], float, lineno,
                                              "busbw (in-place)", path)
        extra["inplace_wrong"] = cells[base + 7]
        raw_type = named.get("type", "")
        out.append(Measurement(op=op, ranks=ranks, size_bytes=size, time_us=time_us,
                               method="nccl-tests", dtype=DTYPES.get(raw_type, raw_type),
                               placement=placement, extra=extra))
    if not out:
        raise InputError("no result rows found", path=path, line=op_line or None)
    return out
