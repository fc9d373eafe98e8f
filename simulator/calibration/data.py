"""Measurement files for calibration: format detection, method and placement classes.

A file is nccl-tests output when one of its first lines is an nccl-tests banner
(``# nThread ..``, ``# Collective test ..``, ``#  Rank ..``, or a line naming an
``*_perf`` binary); otherwise it is read as a measurement CSV
(:mod:`simulator.readers.measurement_csv`). The measuring method matters: nccl-tests times
the device alone (a floor of about 12 us on two H200s), a framework call through PyTorch
includes its host dispatch (about 28 us), so one calibration holds one method class.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from ..errors import InputError
from ..readers.source import read_errors
from ..measurements import Measurement
from .model import CAL_OPS, parse_placement

IN_FRAMEWORK = "in-framework"
NCCL_TESTS = "nccl-tests"

_NCCL_BANNER = re.compile(r"^#\s*(nThread\b|Collective test|Rank\s+\d+|Using devices)|"
                          r"\b[a-z_]+_perf(_mpi)?\b")


@dataclass
class CalRow:
    """One measured point, ready for fitting."""

    op: str
    ranks: int
    size: int
    time_us: float
    share: float | None
    scope: str
    per_server: int
    method: str          # as written
    method_class: str
    host_us: float | None
    source: str


def method_class(method: str) -> str | None:
    m = (method or "").lower()
    if "nccl-tests" in m or "nccl_tests" in m:
        return NCCL_TESTS
    if "torch" in m or "framework" in m or "megatron" in m:
        return IN_FRAMEWORK
    return None


def detect_format(path: str) -> str:
    """``nccl-tests`` or ``csv``."""
    with read_errors(path, "measurement file"), \
            open(path, encoding="utf-8", errors="replace") as fh:
        for i, line in enumerate(fh):
            if i >= 60:
                break
            text = line.strip()
            if not text:
                continue
            if _NCCL_BANNER.search(text):
                return "nccl-tests"
    return "csv"


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_files(paths: list[str], method_default: str | None = None,
               placement: str | None = None,
               nccl_tests_op: str | None = None) -> tuple[list[CalRow], list[dict]]:
    """All collective measurements of the files, and a description of each source
    (``nccl_tests_op``: the operation of nccl-tests files that do not name their binary)."""
    from ..readers.measurement_csv import read_measurement_csv
    from ..readers.nccl_tests import read_nccl_tests

    rows: list[CalRow] = []
    sources: list[dict] = []
    for path in paths:
        path = os.fspath(path)
        fmt = detect_format(path)
        ms: list[Measurement] = (read_nccl_tests(path, op=nccl_tests_op) if fmt == "nccl-tests"
                                 else read_measurement_csv(path))
        kept = 0
        for m in ms:
            if m.op not in CAL_OPS or m.ranks < 2 or m.size_bytes <= 0:
                continue
            cls = method_class(m.method)
            if cls is None:
                if method_default is None:
                    raise InputError(
                        f"the method of the {m.op} rows is {m.method or 'not given'!r}: say how "
                        "they were measured with --method-default in-framework|nccl-tests",
                        path=path)
                cls = method_default
            try:
                scope, per = parse_placement(placement or m.placement, m.ranks)
            except ValueError as exc:
                raise InputError(str(exc), path=path, field="placement") from None
            host = m.extra.get("host_us")
            rows.append(CalRow(op=m.op, ranks=m.ranks, size=m.size_bytes, time_us=m.time_us,
                               share=m.share_remote, scope=scope, per_server=min(per, m.ranks),
                               method=m.method or cls, method_class=cls,
                               host_us=float(host) if isinstance(host, (int, float)) else None,
                               source=path))
            kept += 1
        sources.append({"path": path, "format": fmt, "rows": len(ms), "collective_rows": kept,
                        "sha256": _sha256(path)})
    return rows, sources


def select(rows: list[CalRow], ops: list[str] | None, method: str | None,
           ) -> tuple[list[CalRow], str]:
    """Rows of the chosen operations and one method class (an error if it is ambiguous)."""
    if ops:
        rows = [r for r in rows if r.op in ops]
    classes = sorted({r.method_class for r in rows})
    if method is not None:
        rows = [r for r in rows if r.method_class == method]
        if not rows:
            raise InputError(f"no {method} measurements"
                             + (f" of {', '.join(ops)}" if ops else "")
                             + (f" (the files hold: {', '.join(classes)})" if classes else ""))
        return rows, method
    if not rows:
        raise InputError("no collective measurements to fit"
                         + (f" (asked for: {', '.join(ops)})" if ops else ""))
    if len(classes) > 1:
        raise InputError(f"the files mix measuring methods ({', '.join(classes)}): their "
                         "small-size times differ by about 2x; pick one with --method")
    return rows, classes[0]
