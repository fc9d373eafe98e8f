"""The calibrated communication model: structural terms per placement class, then corrections.

Structural part (one set of parameters per placement class: inside one server, or across
servers), in microseconds::

    floor(op)  = overhead + (framework calls of op - 1) x dispatch
    device(op) = latency + steps(op, n) x step_latency
                 + max(wire_bytes(op, n, S) / link_bandwidth,     # the remote share
                       local_bytes(op, n, S) / copy_bandwidth)    # all-to-all: the own share
    t          = max(floor(op), device(op))

``overhead`` is the per-call cost that overlaps the device's work (a framework dispatch
when calls are issued back to back: the time of a tiny collective); ``latency`` the fixed
device time of one call; ``step_latency`` what each algorithm step adds (ring all-reduce
2(n-1) steps, all-gather / reduce-scatter / broadcast / all-to-all n-1, send/recv 1).
``wire_bytes`` are the bytes through the busiest link per rank (nccl-tests' bus-bandwidth
factors: 2(n-1)/n S for all-reduce, (n-1)/n S for all-gather, reduce-scatter and
all-to-all, S for broadcast and send/recv, share_remote x S for an uneven all-to-all).
``local_bytes`` is the all-to-all's own share, copied inside the GPU at the same time.
The framework-call count is 2 for send/recv (PyTorch's ``batch_isend_irecv`` of a send and
a receive), 1 for every other operation; ``dispatch`` is the measured host time of one call.

Correction part: a factor, piecewise linear in log2(size) between knots every few octaves
(continuous SMPI-style bands), per measured (operation, class, ranks) and, for the uneven
all-to-all, per measured remote share (linear between shares). Operations that were not
measured in a class get that class's transfer correction, fitted on all its measurements
and keyed by wire bytes, so that what a link does at a given transfer size carries over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..collectives import BY_NAME, COLLECTIVES

#: operations the calibration knows (canonical names of simulator.measurements)
CAL_OPS = tuple(c.name for c in COLLECTIVES)

#: framework operations one call issues (PyTorch): send/recv is a batch of a send and a recv
FRAMEWORK_CALLS = {"sendrecv": 2}

INTRA = "intra-server"
INTER = "inter-server"
SCOPES = (INTRA, INTER)

#: size bands for reports: (label, lower bound inclusive, upper bound exclusive) in bytes
KIB, MIB = 1024, 1024 * 1024
BANDS = (("<=64KiB", 0, 64 * KIB + 1), ("64KiB-16MiB", 64 * KIB + 1, 16 * MIB),
         (">=16MiB", 16 * MIB, float("inf")))


def band_of(size_bytes: float) -> str:
    for label, lo, hi in BANDS:
        if lo <= size_bytes < hi:
            return label
    return BANDS[-1][0]


def steps(op: str, n: int) -> int:
    if op == "all_reduce":
        return 2 * (n - 1)
    if op == "sendrecv":
        return 1
    return n - 1


def wire_bytes(op: str, n: int, size: float, share: float | None = None,
               max_per_server: int | None = None, scope: str = INTRA) -> float:
    """Bytes through the busiest link of one rank."""
    if op in ("all_to_all", "moe_all_to_all"):
        if share is None:
            if scope == INTER and max_per_server:
                # across servers the slow link carries the share bound for other servers
                return (n - max_per_server) / n * size
            share = (n - 1) / n
        return share * size
    if op in BY_NAME:  # the others: nccl-tests' bus factor x the buffer (simulator.collectives)
        return BY_NAME[op].wire_bytes(n, size)
    raise ValueError(f"no wire bytes for {op}")


def local_bytes(op: str, n: int, size: float, share: float | None = None) -> float:
    """The all-to-all's own share, copied inside the GPU; 0 for other operations."""
    if op not in ("all_to_all", "moe_all_to_all"):
        return 0.0
    if share is None:
        share = (n - 1) / n
    return (1.0 - share) * size


@dataclass
class ClassParams:
    """Structural parameters of one placement class."""

    scope: str
    overhead_us: float
    latency_us: float
    step_latency_us: float
    link_gbps: float
    copy_gbps: float | None = None      # None: the all-to-all's own share is not modelled
    dispatch_us: float | None = None    # None: extra framework calls cost nothing more
    ranks: tuple[int, ...] = ()
    ops: tuple[str, ...] = ()
    transfer: Curve | None = None     # correction for unmeasured operations, by wire bytes

    def floor_us(self, op: str) -> float:
        extra = FRAMEWORK_CALLS.get(op, 1) - 1
        return self.overhead_us + extra * (self.dispatch_us or 0.0)

    def predict_us(self, op: str, n: int, size: float, share: float | None = None,
                   max_per_server: int | None = None) -> float:
        w = wire_bytes(op, n, size, share, max_per_server, self.scope)
        t = w / self.link_gbps / 1e3
        if self.copy_gbps:
            t = max(t, local_bytes(op, n, size, share) / self.copy_gbps / 1e3)
        device = self.latency_us + steps(op, n) * self.step_latency_us + t
        return max(self.floor_us(op), device)


@dataclass
class Curve:
    """A correction factor, piecewise linear in log2(x) between knots, constant outside."""

    knots: tuple[float, ...]    # x values (bytes), increasing
    factors: tuple[float, ...]

    def __post_init__(self) -> None:
        self._lx = np.log2(np.asarray(self.knots, dtype=float))
        self._f = np.asarray(self.factors, dtype=float)

    def __call__(self, x: float) -> float:
        if x <= 0:
            return float(self._f[0])
        return float(np.interp(math.log2(x), self._lx, self._f))


def knot_grid(sizes, octaves: float) -> tuple[float, ...]:
    """Knots every ``octaves`` powers of two from the smallest size, and one at the largest."""
    lx = np.log2(np.asarray([s for s in sizes if s > 0], dtype=float))
    lo, hi = float(lx.min()), float(lx.max())
    pts = [lo]
    while pts[-1] + octaves < hi - 0.5 * octaves:
        pts.append(pts[-1] + octaves)
    if hi > lo:
        pts.append(hi)
    return tuple(float(round(2.0 ** p)) if float(p).is_integer() else float(2.0 ** p)
                 for p in pts)


@dataclass
class OpCorrection:
    """Corrections of one measured (op, class, ranks); per remote share for uneven all-to-all."""

    op: str
    scope: str
    ranks: int
    curves: dict = field(default_factory=dict)   # share (None for even ops) -> Curve

    def factor(self, size: float, share: float | None) -> float:
        if None in self.curves or share is None:
            curve = self.curves.get(None)
            if curve is None:  # only uneven shares measured: take the nearest share
                share = 0.5 if share is None else share
            else:
                return curve(size)
        shares = sorted(s for s in self.curves if s is not None)
        if share <= shares[0]:
            return self.curves[shares[0]](size)
        if share >= shares[-1]:
            return self.curves[shares[-1]](size)
        for a, b in zip(shares, shares[1:]):
            if a <= share <= b:
                w = (share - a) / (b - a) if b > a else 0.0
                return (1 - w) * self.curves[a](size) + w * self.curves[b](size)
        return 1.0  # unreachable


def scope_of(servers: int) -> str:
    return INTRA if servers <= 1 else INTER


def parse_placement(text: str, ranks: int) -> tuple[str, int]:
    """(scope, most ranks per server) from a ``NODESxGPUS`` placement such as ``1x2``.

    An empty placement means one server (nccl-tests in one process, or a local run).
    """
    t = (text or "").strip().lower()
    if not t:
        return INTRA, ranks
    if "x" in t:
        a, _, b = t.partition("x")
        try:
            nodes, per = int(a), int(b)
        except ValueError:
            raise ValueError(f"placement {text!r}: expected NODESxGPUS such as 1x8") from None
        if nodes < 1 or per < 1:
            raise ValueError(f"placement {text!r}: both counts must be at least 1")
        return scope_of(nodes), per
    if t in ("intra", "intra-server", "node", "1node"):
        return INTRA, ranks
    if t in ("inter", "inter-server"):
        return INTER, 1
    raise ValueError(f"placement {text!r}: expected NODESxGPUS such as 1x8")
