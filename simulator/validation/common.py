"""Shared pieces of the validation cases: results, paths, workload building."""
from __future__ import annotations

import csv
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..workload import NO_COMM, Comm, Group, Op, Row, Workload

from ..resources import bundled, data_root

#: the folder holding traces/: the checkout, or <prefix>/share/collsim for an installed copy
ROOT = data_root("traces")
TRACES = bundled("traces")
DEFAULT_CALIBRATION = TRACES / "h200x2" / "calib_h200x2.yaml"
MS = 1_000_000  # ns per ms
TARGET_MEDIAN = 0.05   # the validation's targets on |predicted / measured - 1|
TARGET_MAX = 0.10


@dataclass
class CaseResult:
    """One compared quantity of one validation case."""

    case: str
    quantity: str
    measured: float
    predicted: float
    unit: str = "ms"
    primary: bool = True          # counted in the median / maximum
    inputs: str = ""              # what was measured and what modelled
    note: str = ""
    extra: dict = field(default_factory=dict)
    #: the repeated measurements ``measured`` is the median of (a paired run's rounds, or the
    #: runs without rounds), so the error can be read beside the measurement's own spread;
    #: empty where the case has one measured value
    repeats: tuple[float, ...] = ()

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1.0

    def spread(self) -> tuple[float, float, float, float] | None:
        """(min, first quartile, third quartile, max) of :attr:`repeats` (quartiles by
        linear interpolation between order statistics, ``statistics.quantiles``'
        inclusive method); None with fewer than two repeats."""
        if len(self.repeats) < 2:
            return None
        q = statistics.quantiles(self.repeats, n=4, method="inclusive")
        return min(self.repeats), q[0], q[2], max(self.repeats)

    def within_repeats(self) -> str | None:
        """Where the prediction falls among the repeats: ``"interquartile"`` (between the
        quartiles), ``"range"`` (outside them, inside min-max), ``"outside"``; None
        without a spread."""
        sp = self.spread()
        if sp is None:
            return None
        lo, q1, q3, hi = sp
        if q1 <= self.predicted <= q3:
            return "interquartile"
        return "range" if lo <= self.predicted <= hi else "outside"


def rel(path: Path) -> str:
    try:
        return os.path.relpath(path, ROOT)
    except ValueError:
        return str(path)


def need(path: Path) -> Path:
    if not path.exists():
        raise InputError("validation input missing", path=rel(path))
    return path


def read_csv_rows(path: Path) -> list[dict]:
    with open(need(path), newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(line for line in fh if not line.startswith("#"))]


def comm(op: Op, group: Group, size: int) -> Comm:
    return Comm(op, group, int(size)) if size > 0 else NO_COMM


def row(name: str, fwd_ns: float = 0, fwd: Comm = NO_COMM, ig_ns: float = 0,
        ig: Comm = NO_COMM, wg_ns: float = 0, wg: Comm = NO_COMM, update_ns: float = 0) -> Row:
    """A workload row; times in ns, rounded to whole ns."""
    return Row(name=name, fwd_ns=int(round(fwd_ns)), fwd=fwd, ig_ns=int(round(ig_ns)), ig=ig,
               wg_ns=int(round(wg_ns)), wg=wg, update_ns=int(round(update_ns)))


def workload(name: str, rows: list[Row], *, tp: int = 1, ep: int = 1, pp: int = 1, ga: int = 1,
             gpus: int, pp_comm_bytes: int = 0) -> Workload:
    return Workload(path=name, policy="HYBRID_TRANSFORMER_FWD_IN_BCKWD", tp=tp, ep=ep, pp=pp,
                    ga=ga, all_gpus=gpus, pp_comm_bytes=pp_comm_bytes,
                    declared_rows=len(rows), rows=tuple(rows))


def stream_copy_us(nbytes: float, kernels: int, hbm_gbps: float, mem_eff: float = 0.8,
                   kernel_us: float = 4.0) -> float:
    """A memory-bound kernel sequence: fixed cost per kernel plus bytes at a share of HBM."""
    return kernels * kernel_us + nbytes / (hbm_gbps * mem_eff) / 1e3
