"""Measured operation times: the calibration and validation data of the cost models.

A :class:`Measurement` is one timed operation (a collective at one size, a GEMM shape, ...).
Sizes follow the nccl-tests convention: ``size_bytes`` is the full buffer per rank; for
all-gather it is the gathered output, for reduce-scatter the full input. Readers for the
file formats live in :mod:`simulator.readers.measurement_csv` and
:mod:`simulator.readers.nccl_tests`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .collectives import BY_NAME, COLLECTIVES as _TABLE

#: Canonical operation names: the collectives of simulator.collectives, then GEMMs.
OPS: tuple[str, ...] = (*(c.name for c in _TABLE), "gemm")

#: Collective operations (every canonical op except ``gemm``).
COLLECTIVES: tuple[str, ...] = tuple(op for op in OPS if op != "gemm")

_ALIASES = {**{a: c.name for c in _TABLE for a in c.aliases}, "matmul": "gemm", "mm": "gemm"}


def canonical_op(name: str) -> str | None:
    """Return the canonical name of ``name`` (case, dashes and common aliases folded), or None."""
    key = name.strip().lower().replace("-", "_")
    if key in OPS:
        return key
    return _ALIASES.get(key)


def bus_factor(op: str, ranks: int, share_remote: float | None = None) -> float | None:
    """nccl-tests' bus-bandwidth factor (busbw = algbw x factor); None where it has none.

    For ``moe_all_to_all`` the factor is the share of the buffer that leaves the rank
    (``share_remote``; an even all-to-all sends (n-1)/n).
    """
    c = BY_NAME.get(op)
    return None if c is None else c.bus_factor(ranks, share_remote)


@dataclass
class Measurement:
    """One measured operation.

    ``time_us`` is the representative time (a median for our own measurements, the
    out-of-place time for nccl-tests). ``method`` says how it was measured
    (``nccl-tests``, ``torch.distributed``, ``torch.matmul``, ...) because the method
    changes small-size times by 2x. ``extra`` holds every other column of the source
    (percentiles, host-side times, GEMM dimensions ``m``, ``n``, ``k``...).
    """

    op: str
    ranks: int
    size_bytes: int
    time_us: float
    method: str = ""
    dtype: str = ""
    placement: str = ""
    share_remote: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def algbw_gbps(self) -> float:
        """Algorithm bandwidth, size / time, in GB/s (1e9 bytes per second)."""
        return self.size_bytes / self.time_us / 1e3 if self.time_us > 0 else 0.0

    @property
    def busbw_gbps(self) -> float | None:
        """nccl-tests' bus bandwidth in GB/s; None for operations without a factor (GEMMs)."""
        factor = bus_factor(self.op, self.ranks, self.share_remote)
        return None if factor is None else self.algbw_gbps * factor

    @property
    def flops(self) -> float | None:
        """2*m*n*k for a GEMM with ``m``, ``n``, ``k`` in ``extra``; None otherwise."""
        try:
            m, n, k = (int(self.extra[d]) for d in ("m", "n", "k"))
        except (KeyError, TypeError, ValueError):
            return None
        return 2.0 * m * n * k

    @property
    def tflops(self) -> float | None:
        """Achieved TFLOP/s of a GEMM; None where :attr:`flops` is None."""
        f = self.flops
        return None if f is None or self.time_us <= 0 else f / self.time_us / 1e6
