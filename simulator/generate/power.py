"""The GPU's sustained clock under its power cap: how much a step's tensor-core kernels stretch.

A GPU held at its power limit lowers its SM clock until its power fits. The compute model's
GEMM curve was fitted on the kernel sweep, whose ~40 ms runs of one GEMM ran partly below the
boost clock (traces/h200/compute/powercap2: the large shapes 4-6% slower than from a rested
GPU); with the cap modelled, GEMMs are priced on the curve referred to the boost clock
(``gemm_boost``, the ratio of the two curves' e_max), so the cap is not counted twice. The
attention fit's profiled calls ran at the boost clock (powercap2: within 1% of a rested GPU)
and the memory-bound fits are not slowed by the cap. This module takes a
step's kernels as the GPU runs them at that clock (a timeline of compute-bound kernels,
memory-bound kernels and idle gaps) and gives the factor by which the compute-bound ones
(GEMMs, attention) run longer at the clock the step sustains.

The model (fitted on kernel measurements only, :mod:`.power_fit`, traces/h200/compute/powercap1,
powercap2 and powercap3):

* each class of work draws a power at the boost clock: ``idle_w`` (nothing queued),
  ``mem_w`` (a memory-bound kernel), ``compute_w`` (a GEMM; above the cap), and the fused
  attention's own, ``attn_fwd_w`` / ``attn_bwd_w`` (run alone, a GPT layer's GEMMs slow by
  11-17%, its attention forward by 3-7% and its backward not at all: powercap3);
* the power controller sees that demand averaged over the recent past, a first-order filter
  of time constant ``tau_ms`` (at the boost timeline's times);
* while the filtered demand ``p`` exceeds ``threshold_w`` (at least ``cap_w``), a
  compute-bound kernel takes ``1 + gain x (p - threshold_w) / cap_w`` times its boost time;
  memory-bound kernels and gaps keep theirs. The threshold above the cap is what the steady
  mixes of GEMMs and element-wise kernels show (powercap2): at a lower clock every kernel
  draws less, so a mixed load's GEMMs slow less than the excess over the cap alone says.

So a short burst after idle (its filtered demand still low) runs at the boost rate, a long
GEMM-only stretch reaches ``1 + gain x (compute_w - cap_w) / cap_w``, and a step whose kernels
leave the GPU idle or memory-bound often enough (host-bound steps) never reaches the cap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: classes of a timeline segment: tensor-core GEMMs, memory-bound kernels, idle, and the
#: fused attention's forward and backward kernels (compute-bound, with powers of their own)
COMPUTE, MEMORY, IDLE, ATTN_FWD, ATTN_BWD = "c", "m", "i", "af", "ab"
#: the classes whose kernels slow under the cap
SLOWED = (COMPUTE, ATTN_FWD, ATTN_BWD)


@dataclass(frozen=True)
class PowerCap:
    cap_w: float        # the enforced power limit
    idle_w: float       # drawn with nothing queued
    mem_w: float        # drawn by a memory-bound kernel
    compute_w: float    # drawn by a tensor-core kernel at the boost clock
    gain: float         # compute-bound slowdown per unit of relative excess demand
    tau_ms: float       # the controller's averaging time constant
    source: str = ""    # what it was fitted on
    # the GEMM curve at the boost clock over the shipped (sweep-fitted) one, in e_max: the
    # sweep's GEMMs ran partly below boost (1.0: the curve is at boost already)
    gemm_boost: float = 1.0
    # the filtered demand from which compute-bound kernels slow (at most the cap: the lower
    # clock lowers every kernel's power, so a mixed load passes the cap before it slows)
    threshold_w: float = 0.0
    # the fused attention's forward and backward kernels' demand (None: ``compute_w``, as a
    # GEMM's); run back to back alone they slow far less than GEMMs (powercap3)
    attn_fwd_w: float | None = None
    attn_bwd_w: float | None = None
    # memory-bound kernels under the cap: from a filtered demand above ``mem_threshold_w``
    # each op named in ``mem_sens`` ((op, a), ...) takes ``1 + a x (p - mem_threshold_w) /
    # cap_w`` its boost time (kernelprice1's mixes); an op not named keeps its time
    mem_threshold_w: float = 0.0
    mem_sens: tuple = ()

    def demand_w(self, cls: str) -> float:
        if cls == ATTN_FWD and self.attn_fwd_w is not None:
            return self.attn_fwd_w
        if cls == ATTN_BWD and self.attn_bwd_w is not None:
            return self.attn_bwd_w
        if cls in SLOWED:
            return self.compute_w
        return self.mem_w if cls == MEMORY else self.idle_w

    def slowdown(self, filtered_w: float) -> float:
        """Compute-bound kernels' time factor at a filtered demand: ``gain`` per cap of demand
        beyond ``threshold_w`` (or the cap, whichever is higher)."""
        over = filtered_w - max(self.cap_w, self.threshold_w)
        return 1.0 + self.gain * max(0.0, over) / self.cap_w

    def steady_slowdown(self, compute_share: float, mem_share: float = 0.0) -> float:
        """The factor of a pattern repeated much faster than ``tau_ms``: its filtered demand
        is the time-weighted mean of its classes' (shares of boost time; the rest idle)."""
        rest = max(0.0, 1.0 - compute_share - mem_share)
        p = compute_share * self.compute_w + mem_share * self.mem_w + rest * self.idle_w
        return self.slowdown(p)


def stretch(cap: PowerCap, segments, filtered_w: float | None = None,
            ) -> tuple[float, float, float]:
    """(compute-bound boost us, their extra us under the cap, the filtered demand at the end)
    of ``segments`` ((boost us, class), in GPU order), the filter starting at ``filtered_w``
    (None: idle). Segments longer than a tenth of ``tau_ms`` are taken in tenths (the filter
    moves within them)."""
    tau = cap.tau_ms * 1e3
    p = cap.idle_w if filtered_w is None else filtered_w
    busy = extra = 0.0
    for us, cls in segments:
        if us <= 0:
            continue
        target = cap.demand_w(cls)
        pieces = max(1, math.ceil(us / (0.1 * tau)))
        dt = us / pieces
        decay = math.exp(-dt / tau)
        # mean of the filter over a piece, relative to its start: (1 - decay) tau / dt
        mean_k = (1.0 - decay) * tau / dt
        for _ in range(pieces):
            if cls in SLOWED:
                mean_p = target + (p - target) * mean_k
                extra += dt * (cap.slowdown(mean_p) - 1.0)
                busy += dt
            p = target + (p - target) * decay
    return busy, extra, p


def mem_excess(cap: PowerCap, segments, filtered_w: float | None = None
               ) -> tuple[float, float, float]:
    """(memory-bound boost us, their time-weighted excess ``max(0, p - mem_threshold_w) /
    cap_w`` summed over that time, the filtered demand at the end) of ``segments``, the
    filter as :func:`stretch` moves it."""
    tau = cap.tau_ms * 1e3
    p = cap.idle_w if filtered_w is None else filtered_w
    busy = excess = 0.0
    for us, cls in segments:
        if us <= 0:
            continue
        target = cap.demand_w(cls)
        pieces = max(1, math.ceil(us / (0.1 * tau)))
        dt = us / pieces
        decay = math.exp(-dt / tau)
        mean_k = (1.0 - decay) * tau / dt
        for _ in range(pieces):
            if cls == MEMORY:
                mean_p = target + (p - target) * mean_k
                excess += dt * max(0.0, mean_p - cap.mem_threshold_w) / cap.cap_w
                busy += dt
            p = target + (p - target) * decay
    return busy, excess, p


def step_mem_scales(cap: PowerCap, segments) -> tuple:
    """((op, factor), ...) of the memory-bound ops ``mem_sens`` names, once steps repeat
    back to back: the step's mean excess over its memory-bound time (replayed from idle, then
    from where it left the filter) times each op's sensitivity; () where the cap does not
    slow them (no ``mem_sens``, or the demand never passes the threshold)."""
    if not cap.mem_sens:
        return ()
    _, _, p = stretch(cap, segments)
    busy, excess, _ = mem_excess(cap, segments, p)
    e = excess / busy if busy > 0 else 0.0
    if e <= 0.0:
        return ()
    return tuple((op, 1.0 + a * e) for op, a in cap.mem_sens if a > 0)


def step_factor(cap: PowerCap, segments) -> float:
    """The step's compute-bound kernels' mean time factor once steps repeat back to back: the
    step replayed from idle, then again from where it left the filter (steady state)."""
    _, _, p = stretch(cap, segments)
    busy, extra, _ = stretch(cap, segments, p)
    return 1.0 + extra / busy if busy > 0 else 1.0


def timeline(kernels, issued: float = 0.0, gpu_free: float = 0.0):
    """((boost us, class) segments, host clock, GPU-free time) of a kernel chain replayed as
    :func:`~.host_sync.run` does: a gap where the GPU waits for the host is idle; a kernel
    flagged ``"c"``, ``"af"`` or ``"ab"`` (third element: a GEMM, the attention forward or
    backward) compute-bound, any other memory-bound."""
    segs: list[tuple[float, str]] = []
    for k in kernels:
        flag = k[2] if len(k) > 2 else None
        if flag is True:
            issued = max(issued, gpu_free)
        issued += k[1]
        start = max(gpu_free, issued)
        if start > gpu_free:
            segs.append((start - gpu_free, IDLE))
        if k[0] > 0:
            segs.append((k[0], flag if flag in SLOWED else MEMORY))
        gpu_free = start + k[0]
    return segs, issued, gpu_free
