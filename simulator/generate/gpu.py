"""GPU compute models for ``collsim generate``: kernel-level device and host terms per GPU.

A GEMM of m x n x k (bf16, ``2mnk`` FLOPs) takes

    t = t0 + max(2mnk / (peak x eff(m, n, k)),  bytes / (HBM bandwidth x mem_eff))
    eff(m, n, k) = e_max x m/(m+x0) x n/(n+x0) x k/(k+x0)

``e_max``, ``x0`` and ``t0`` were fitted (least squares on log time) to 180 bf16 GEMMs measured
on an H200 (``traces/h200x2/gemm.csv``; :func:`fit_gemm_curve` redoes the fit, and
``docs/generate-and-sweep.md`` gives the error). Other GPUs reuse the H200's curve with their
own peak and bandwidth (H100/H800 have the same SM array; the A100 gets its own ``e_max``, an
assumption, not a fit). Element-wise kernels and the attention forward use fixed efficiencies
(assumptions, documented); the attention backward's efficiency on Hopper was fitted to
attention kernels measured on an H200 (``traces/h200/layers_attention.csv``,
``benchmarks/accuracy_layers.py --fit``).

Kernel-level extensions (fitted on one H200, ``traces/h200/compute/``, by
:mod:`simulator.generate.kernel_fit`; see docs/compute-model.md):

* ``mem_ops``: per memory-bound operation and direction (``layer_norm.fwd``, ``dropout.bwd``,
  ``cross_entropy_fp32.fwd``, ...) a fixed device time and a bandwidth,
  ``t = t0 + bytes / bw`` (:meth:`GPUSpec.mem_us`);
* ``attn_fwd`` / ``attn_bwd``: attention as ``t0 + flops / (peak x e x s/(s+s0) x d/(d+d0))``
  (sequence ``s``, head size ``d``), used when the shape is given;
* ``host_ops``: the host (CPU) time of one operation's dispatch, forward and backward; a part
  of a row takes ``max(device time, host time)``: a step is never faster than its launches;
* the optimizer: the step (norm, clipping, fused Adam, bf16 copy) as ``a + b x params +
  c x tensors``, zeroing and the fp32 gradient accumulation per parameter, the
  accumulation's host cost per tensor.

GPUs that were not measured take the H200's values scaled by their published peaks: see
:func:`derived`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError

GIB = 1024 ** 3


@dataclass(frozen=True)
class GPUSpec:
    name: str
    peak_tflops: float         # dense bf16 tensor-core peak
    hbm_gbps: float            # HBM bandwidth, GB/s
    hbm_gib: float             # memory a training process can use, GiB
    gemm_emax: float = 0.712   # fitted on H200 (see module docstring)
    gemm_x0: float = 11.8      # dimension at which a GEMM reaches half efficiency per axis
    gemm_t0_us: float = 8.17   # fixed cost per GEMM call (launch, tail), microseconds
    # the reduction dimension's half-efficiency point (a short k leaves each output tile few
    # main-loop iterations to hide its prologue and epilogue); None: x0, the symmetric curve
    gemm_xk: float | None = None
    # the layouts autograd issues for F.linear: ((layout, factor on the efficiency), ...),
    # "dgrad" (dy W, NN) and "wgrad" (dy^T x, NT) against the forward's x W^T (TN); a layout
    # not named runs at the curve
    gemm_layouts: tuple = ()
    mem_eff: float = 0.80      # share of HBM bandwidth a streaming kernel reaches
    attn_eff: float = 0.50     # attention forward share of peak (an assumption)
    # attention backward share of peak (of 2.5x the forward FLOPs); None = attn_eff. Hopper:
    # fitted to cuDNN fused attention on an H200 (traces/h200/layers_attention.csv)
    attn_bwd_eff: float | None = 0.23
    kernel_us: float = 4.0     # fixed cost of one element-wise kernel
    # kernel-level model (None/empty: the plain roofline above); see the module docstring
    mem_ops: tuple = ()        # ((name, t0_us, gbps, c0), ...)
    attn_fwd: tuple | None = None   # (t0_us, e, s0, d0)
    attn_bwd: tuple | None = None
    host_ops: tuple = ()       # ((name, us), ...)
    opt_step: tuple | None = None   # (us, ns per parameter, us per tensor)
    opt_zero_ns: float = 0.0        # ns per parameter
    # gradient clipping's scale of the fp32 main gradients (``_foreach_mul_``, run when the
    # norm is above the clip): ns per parameter, from the profiled steps' kernels
    opt_clip_ns: float = 0.0
    # fp16's loss-scaler pass (unscale and inf check of the fp32 main gradients): ns per
    # parameter; 0: priced as the add kernel over 8 bytes a parameter
    opt_unscale_ns: float = 0.0
    # an fp16 step's kernels over the same kernels of the bf16 step (GEMMs, attention,
    # memory-bound kernels), measured side by side inside profiled steps; None: as bf16
    fp16_kernels: tuple | None = None
    # the optimizer step in its measured parts (optimizer_step.step_kernels, fitted on
    # traces/h200/compute/optstep1): host us (norm per tensor, per launch; clipping's scale per
    # tensor, per launch; Adam + copy fixed, per tensor, per Adam launch) at the host floor's
    # speed, and device (norm fixed us, ns a parameter; scale + Adam + copy fixed us, ns a
    # parameter); empty: the back-to-back ``opt_step`` as device time
    opt_host: tuple = ()
    opt_dev: tuple = ()
    # fused Adam's device time over optstep1's (1: as timed there); the validation's
    # plain-PyTorch FP8 steps run the same kernel longer on their gradients
    opt_adam_factor: float = 1.0
    opt_accum_ns: float = 0.0       # fp32 gradient accumulation: ns per parameter
    opt_accum_t0_us: float = 0.0    # and us per parameter tensor (one kernel each)
    host_accum_us: float = 0.0      # host us per parameter tensor
    # host floor of a GPT layer (tiny GPTs, kernel_fit.fit_host_floor): per layer forward,
    # backward (with its gradient accumulation), a checkpointed layer's extra, the fixed rest
    host_layer_fwd_us: float = 0.0
    host_layer_bwd_us: float = 0.0
    host_layer_recompute_us: float = 0.0
    host_fixed_fwd_us: float = 0.0
    host_fixed_bwd_us: float = 0.0
    # the host floor of GPTs with FP8 GEMMs or the unfused attention (their layers launch more
    # kernels) over the default GPT's, measured side by side:
    # ((variant, layer fwd ratio, layer bwd ratio, layer recompute ratio), ...)
    host_variants: tuple = ()
    # FP8 GEMMs (torch._scaled_mm, e4m3/e5m2 in, bf16 out): their curve (e_max, x0, t0 us) on
    # the FP8 peak (twice the bf16 one on Hopper); None: the bf16 curve at that peak
    fp8_gemm: tuple | None = None
    gemm_dtype: str = "bf16"   # "fp8": the GEMMs of this spec are FP8 (builder.fp8_gpu)
    # how the FP8 operands' transposes are made: "fused" (Transformer Engine's cast-transpose:
    # one pass writing both layouts, priced at the measured cast's bandwidth) or "copy" (a
    # separate strided copy, as the measured plain-PyTorch FP8 layer does)
    fp8_transpose: str = "fused"
    # unfused attention beyond its batched GEMMs: (t0 us, ns per score element), forward and
    # backward (kernel_fit.fit_unfused_attention)
    unfused_fwd: tuple | None = None
    unfused_bwd: tuple | None = None
    derivation: str = ""            # how the kernel-level values were obtained
    # the power cap's model (power.PowerCap, fitted on traces/h200/compute/powercap1 and
    # powercap2); None: no model, the kernels at their fitted rates whatever the load
    power_cap: Any = None
    # the factor on every compute-bound kernel (GEMMs, attention) at the clock a step
    # sustains under the cap (ComputeModel sets it per step; 1: the boost clock)
    compute_scale: float = 1.0
    # the factor on each memory-bound op under the cap ((op, factor), ...; ComputeModel sets
    # them per step from the power model's element-wise law; an op not named keeps 1)
    mem_scales: tuple = ()

    def host_variant(self, variant: str) -> tuple | None:
        """(layer fwd, layer bwd, layer recompute) host floor of ``variant`` over the default
        GPT's."""
        for name, *vals in self.host_variants:
            if name == variant:
                return tuple(vals)
        return None

    def gemm_us(self, m: int, n: int, k: int, count: int = 1, layout: str = "fwd",
                out_bytes: float = 2.0) -> float:
        """Time of ``count`` GEMMs of m x n x k (bf16 in and out; ``k`` the reduction),
        microseconds; ``layout`` the operands' layout as autograd issues it for ``F.linear``
        (``fwd``: x W^T, ``dgrad``: dy W, ``wgrad``: dy^T x). ``out_bytes``: the traffic of
        an output element (2: bf16 written; 8: an fp32 output read and written back, the
        weight-gradient GEMM that accumulates into the main gradients)."""
        if m <= 0 or n <= 0 or k <= 0 or count <= 0:
            return 0.0
        x0 = self.gemm_x0
        xk = x0 if self.gemm_xk is None else self.gemm_xk
        eff = self.gemm_emax * (m / (m + x0)) * (n / (n + x0)) * (k / (k + xk))
        for name, factor in self.gemm_layouts:
            if name == layout:
                eff *= factor
        t_flop = 2.0 * m * n * k / (self.peak_tflops * 1e6 * eff)
        t_mem = (2.0 * (m * k + k * n) + out_bytes * m * n) / (self.hbm_gbps * 1e3
                                                               * self.mem_eff)
        return count * (self.gemm_t0_us + max(t_flop, t_mem)) * self.compute_scale

    def attention_us(self, flops: float, backward: bool = False, seq: int | None = None,
                     head_dim: int | None = None) -> float:
        """Causal attention kernel of ``flops`` (the backward's: ``backward=True``, 2.5x the
        forward's); with ``seq`` and ``head_dim`` the shape-aware fit
        (:func:`attention_fit_us`), else one efficiency."""
        if flops <= 0:
            return 0.0
        fit = self.attn_bwd if backward else self.attn_fwd
        if fit and seq and head_dim:
            return attention_fit_us(fit, flops / (2.5 if backward else 1.0), seq, head_dim,
                                    self.peak_tflops, 2.5 if backward else 1.0) \
                * self.compute_scale
        eff = self.attn_bwd_eff if backward and self.attn_bwd_eff is not None else self.attn_eff
        return (self.gemm_t0_us + flops / (self.peak_tflops * 1e6 * eff)) * self.compute_scale

    def mem_us(self, op: str, nbytes: float, cols: float | None = None) -> float:
        """A memory-bound kernel ``op`` (``layer_norm.fwd``, ...) moving ``nbytes`` over rows
        of ``cols`` elements (the bandwidth falls for narrow rows: ``bw x c/(c+c0)``); an op
        without a fit falls back to :meth:`stream_us`."""
        if nbytes <= 0:
            return 0.0
        for name, t0, gbps, c0 in self.mem_ops:
            if name == op:
                share = cols / (cols + c0) if (cols and c0) else 1.0
                return (t0 + nbytes / (gbps * 1e3 * share)) * self.mem_scale(op)
        return self.stream_us(nbytes)

    def has_mem_op(self, op: str) -> bool:
        """Whether memory-bound kernel ``op`` has a fit of its own."""
        return any(name == op for name, *_ in self.mem_ops)

    def mem_scale(self, op: str) -> float:
        """The factor on memory-bound kernel ``op`` at the clock a step sustains under the
        power cap (``mem_scales``; 1: the boost clock, or an op the cap does not slow)."""
        for name, factor in self.mem_scales:
            if name == op:
                return factor
        return 1.0

    def host_us(self, op: str) -> float:
        """Host time of one dispatch of ``op`` (``linear.fwd``, ``layer_norm.bwd``, ...)."""
        for name, us in self.host_ops:
            if name == op:
                return us
        return 0.0

    def optimizer_us(self, params: float, tensors: int) -> float:
        """Device time of one optimizer step over ``params`` local parameters."""
        if self.opt_step:
            a, ns, per_tensor = self.opt_step
            return a + params * (ns + self.opt_clip_ns) / 1e3 + per_tensor * tensors
        return self.stream_us(34.0 * params, 8)

    def stream_us(self, nbytes: float, kernels: int = 1) -> float:
        """A memory-bound kernel sequence moving ``nbytes`` in total."""
        if nbytes <= 0:
            return 0.0
        return kernels * self.kernel_us + nbytes / (self.hbm_gbps * 1e3 * self.mem_eff)


def attention_fit_us(fit: tuple, fwd_flops: float, seq: int, head_dim: int,
                     peak_tflops: float, mult: float = 1.0) -> float:
    """Fused causal attention (us) on a fit of the forward's FLOPs ``fwd_flops`` (``2 b s^2
    heads d``; ``mult`` x them the kernel's own: 2.5 for the backward) at ``seq`` and
    ``head_dim``.

    ``fit`` (t0 us, e, s0, d0): ``t0 + F / (peak x e x s/(s+s0) x d/(d+d0))`` (the sweep's
    fit). (t0, e, s0, d0, b0, pad): the kernel runs the head size padded to a multiple of
    ``pad`` (cuDNN's tiles: head 80 costs what 128 does), so the time is that of the padded
    FLOPs, ``t0 + F x dp/d / (peak x e x s/(s+s0) x dp/(dp+d0) x bh/(bh+b0))`` with
    ``dp = pad x ceil(d / pad)`` and ``bh = F_fwd / (2 s^2 d)`` the batch x heads, the
    kernel's parallelism besides the sequence (kernel_fit.fit_attention_rested)."""
    import math
    if len(fit) >= 6:
        t0, e, s0, d0, b0, pad = fit[:6]
        dp = pad * math.ceil(head_dim / pad) if pad else head_dim
        bh = fwd_flops / (2.0 * seq * seq * head_dim)
        eff = e * seq / (seq + s0) * dp / (dp + d0) * bh / (bh + b0)
        return t0 + mult * fwd_flops * dp / head_dim / (peak_tflops * 1e6 * eff)
    t0, e, s0, d0 = fit[:4]
    eff = e * seq / (seq + s0) * head_dim / (head_dim + d0)
    return t0 + mult * fwd_flops / (peak_tflops * 1e6 * eff)


def _h200() -> GPUSpec:
    from .h200_fit import H200_KERNEL_FIT
    from .h200_power_fit import H200_POWER_CAP
    fit: dict[str, Any] = dict(H200_KERNEL_FIT, power_cap=H200_POWER_CAP)
    fit["mem_ops"] = tuple((tuple(m) + (0.0,))[:4] for m in fit.get("mem_ops", ()))
    return GPUSpec("h200", peak_tflops=989.4, hbm_gbps=4800, hbm_gib=141, **fit,
                   derivation="fitted on kernels measured on one H200 (traces/h200/compute/, "
                              "scripts/fit_compute_model.py)")


def derived(base: GPUSpec, name: str, peak_tflops: float, hbm_gbps: float,
            hbm_gib: float, gemm_share: float = 1.0, share_source: str = "") -> GPUSpec:
    """A GPU that was not measured, from ``base`` (measured) and its published peaks.

    Compute-bound terms keep the measured share of peak (GEMM ``e_max`` and size curve,
    attention efficiencies), so they scale with ``peak_tflops``; ``gemm_share`` multiplies
    the GEMM ``e_max`` where a published benchmark run the same way on both GPUs says the
    share differs (``share_source`` names it). Memory-bound kernels keep the measured share
    of HBM bandwidth: each op's bandwidth x hbm_gbps / base's; the optimizer's (and its
    parts'), the zeroing's, the accumulation's and the unfused attention's score passes' ns
    per element x base's / hbm_gbps. Fixed per-kernel device times and every host (dispatch)
    time stay as measured: they depend on the launch path and the CPU, not the GPU.
    """
    k = base.hbm_gbps / hbm_gbps
    mem = tuple((n, t0, gbps / k, c0) for n, t0, gbps, c0 in base.mem_ops)
    opt = base.opt_step
    if opt:
        opt = (opt[0], opt[1] * k, opt[2])
    # the optimizer's parts: their ns a parameter stream like the other memory-bound terms
    opt_dev = (base.opt_dev[0], base.opt_dev[1] * k, base.opt_dev[2], base.opt_dev[3] * k) \
        if base.opt_dev else ()
    # the unfused attention's passes over the scores (mask, softmax) are memory-bound:
    # (fixed us, ns per score element), the latter scaled like the other streaming terms
    uf = (base.unfused_fwd[0], base.unfused_fwd[1] * k) if base.unfused_fwd else None
    ub = (base.unfused_bwd[0], base.unfused_bwd[1] * k) if base.unfused_bwd else None
    share = (f"; GEMM share of peak x {gemm_share:.3f} ({share_source})"
             if gemm_share != 1.0 else "")
    return replace(base, name=name, peak_tflops=peak_tflops, hbm_gbps=hbm_gbps,
                   hbm_gib=hbm_gib, mem_ops=mem, opt_step=opt, opt_dev=opt_dev,
                   gemm_emax=min(1.0, base.gemm_emax * gemm_share),
                   unfused_fwd=uf, unfused_bwd=ub,
                   opt_zero_ns=base.opt_zero_ns * k, opt_accum_ns=base.opt_accum_ns * k,
                   opt_clip_ns=base.opt_clip_ns * k, opt_unscale_ns=base.opt_unscale_ns * k,
                   derivation=f"derived from the H200 fit and published peaks "
                              f"({peak_tflops:g} TFLOP/s bf16 dense, {hbm_gbps:g} GB/s HBM): "
                              "compute at the measured share of peak, memory-bound kernels at "
                              "the measured share of HBM bandwidth, host and fixed kernel "
                              "times as measured" + share)


_H200 = _h200()
#: A100 SXM over H100 SXM best-shape bf16 matmul share of peak (ml-engineering MAMF table)
A100_GEMM_SHARE = 0.859 / 0.801
A100_SHARE_SOURCE = ("published best-shape matmul: 85.9% of peak on A100 SXM, 80.1% on "
                     "H100 SXM, ml-engineering's MAMF table")
GPUS: dict[str, GPUSpec] = {g.name: g for g in [
    # H100 and H800 SXM: the H200's SM array and clocks, 80 GB of HBM3 at 3.35 TB/s; the
    # H200's power-cap model carried over (the same die, boost clock and 700 W limit: an
    # assumption, not measured); the A100s have none (400 W, other clocks: not measured)
    derived(_H200, "h100", 989.4, 3350, 80),
    _H200,
    derived(_H200, "h800", 989.4, 3350, 80),
    # A100 SXM 80 GB: 312 TFLOP/s bf16 dense, 2039 GB/s (the vendor's datasheet); 40 GB:
    # 1555 GB/s. cuBLAS reaches a larger share of the A100's peak than of Hopper's (power-
    # and clock-bound): the best-shape bf16 matmul of Bekman's ml-engineering MAMF table,
    # one benchmark (mamf-finder.py, CUDA 12.1) on both, is 85.9% of 312 on A100 SXM and
    # 80.1% of 989 on H100 SXM, so the A100's e_max is the H200 fit's x 85.9 / 80.1
    replace(derived(_H200, "a100", 312.0, 2039, 80, A100_GEMM_SHARE, A100_SHARE_SOURCE),
            attn_bwd_eff=None, attn_eff=0.60, power_cap=None),
    replace(derived(_H200, "a100-40gb", 312.0, 1555, 40, A100_GEMM_SHARE, A100_SHARE_SOURCE),
            attn_bwd_eff=None, attn_eff=0.60, power_cap=None),
]}


#: the device's turnaround between back-to-back kernels without the profiler, us: the median
#: over turnaround1's element-wise, layer-norm and 2048^3 GEMM chains of (CUDA-event period
#: of 1000 queued kernels - their mean CUPTI duration), 0.88-1.73 us by kind
#: (traces/h200/compute/turnaround1). The sweep's event-timed prices include it; CUPTI
#: durations (kernelprice1's attention, QKV split and bias gradient) do not.
KERNEL_TURNAROUND_US = 1.22
#: device activities of one call of a CUPTI-priced op (kernelprice1's attn_kernels.csv: the
#: flash forward a memset and its kernel; the backward a memset, dot(dO, O), the kernel and
#: dQ's conversion; the split's fill, copy and add and the bias gradient one kernel each)
_CUPTI_KERNELS = {"attn_fwd": 2, "attn_bwd": 4, "qkv_fill.fwd": 1, "qkv_copy.fwd": 1,
                  "qkv_add.fwd": 1, "bias_grad.fwd": 1}


def _with_turnaround(fit: dict[str, Any]) -> dict[str, Any]:
    """The CUPTI-priced terms of ``fit`` with :data:`KERNEL_TURNAROUND_US` per device
    activity added to their fixed cost, so that they are priced as the event-timed ones."""
    tau = KERNEL_TURNAROUND_US
    out: dict[str, Any] = {}
    for key in ("attn_fwd", "attn_bwd"):
        if fit.get(key):
            t0, *rest = fit[key]
            out[key] = (t0 + _CUPTI_KERNELS[key] * tau, *rest)
    out["mem_ops"] = tuple((m[0], m[1] + _CUPTI_KERNELS.get(m[0], 0) * tau, *m[2:])
                           for m in fit["mem_ops"])
    return out


def h200_kernel_prices(turnaround: bool = False) -> GPUSpec:
    """The H200 with the kernel-price candidate (``h200_kernelprice_fit``, not shipped): the
    attention fitted on its own kernels from a rested GPU, the QKV split's kernels and the
    bias gradient as measured over the GPT's shapes, and the power cap's law for the
    element-wise kernels (docs/compute-model.md, "The kernel-level prices"). ``turnaround``:
    those CUPTI-timed prices with the device's turnaround between kernels added
    (:data:`KERNEL_TURNAROUND_US`)."""
    from .h200_kernelprice_fit import H200_KERNELPRICE_FIT, H200_KERNELPRICE_POWER
    fit: dict[str, Any] = dict(H200_KERNELPRICE_FIT)
    fit["mem_ops"] = tuple((tuple(m) + (0.0,))[:4] for m in fit.get("mem_ops", ()))
    if turnaround:
        fit.update(_with_turnaround(fit))
    return replace(_H200, **fit,
                   power_cap=replace(_H200.power_cap, **H200_KERNELPRICE_POWER),
                   derivation=_H200.derivation + "; kernel-price candidate "
                                                  "(h200_kernelprice_fit)")


def fp16_spec(gpu: GPUSpec) -> GPUSpec:
    """``gpu`` as an fp16 step runs its kernels: the GEMMs, the attention and the
    memory-bound kernels each slower by ``fp16_kernels`` (measured: the same kernels of an
    fp16 and a bf16 step profiled side by side; fp16 GEMMs draw more power, and under the
    power cap every kernel of the step runs at lower clocks). The optimizer's terms stay."""
    if not gpu.fp16_kernels or gpu.gemm_dtype != "bf16":
        return gpu
    f_gemm, f_attn, f_mem = gpu.fp16_kernels

    def attn(fit):
        return None if fit is None else (fit[0], fit[1] / f_attn) + tuple(fit[2:])
    return replace(gpu, gemm_emax=gpu.gemm_emax / f_gemm, attn_fwd=attn(gpu.attn_fwd),
                   attn_bwd=attn(gpu.attn_bwd), attn_eff=gpu.attn_eff / f_attn,
                   attn_bwd_eff=None if gpu.attn_bwd_eff is None else gpu.attn_bwd_eff / f_attn,
                   mem_ops=tuple((n, t0, gbps / f_mem, c0) for n, t0, gbps, c0 in gpu.mem_ops),
                   gemm_dtype="fp16")


def get_gpu(name: str) -> GPUSpec:
    key = name.strip().lower()
    if key not in GPUS:
        raise InputError(f"unknown GPU {name!r}; expected one of {', '.join(sorted(GPUS))}",
                         field="gpu")
    return GPUS[key]


def fit_gemm_curve(measurements, gpu: GPUSpec, shape_aware: bool = False
                   ) -> tuple[GPUSpec, dict]:
    """Fit ``gemm_emax``, ``gemm_x0`` and ``gemm_t0_us`` to measured GEMMs; with
    ``shape_aware`` also the reduction dimension's ``gemm_xk`` and the dgrad and wgrad
    layouts' factors (``gemm_layouts``).

    ``measurements``: :class:`~simulator.measurements.Measurement` objects with ``op == 'gemm'``
    and ``m``, ``n``, ``k`` columns (``k`` the reduction), optionally ``layout`` (``fwd``,
    ``dgrad``, ``wgrad``). Returns the fitted spec and error statistics of the prediction
    (relative error, prediction / measurement - 1), over all and per layout.
    """
    import numpy as np
    from scipy.optimize import least_squares

    rows = []
    for x in measurements:
        if x.op != "gemm":
            continue
        try:
            rows.append((int(x.extra["m"]), int(x.extra["n"]), int(x.extra["k"]), x.time_us,
                         str(x.extra.get("layout") or "fwd")))
        except (KeyError, TypeError, ValueError):
            continue
    if len(rows) < 4:
        raise InputError(f"need at least 4 GEMM measurements with m, n, k columns, got {len(rows)}")
    m = np.array([r[0] for r in rows], dtype=float)
    n = np.array([r[1] for r in rows], dtype=float)
    k = np.array([r[2] for r in rows], dtype=float)
    t = np.array([r[3] for r in rows], dtype=float)
    lay = [r[4] for r in rows]

    def spec(p):
        if not shape_aware:
            return replace(gpu, gemm_emax=p[0], gemm_x0=p[1], gemm_t0_us=p[2], gemm_xk=None,
                           gemm_layouts=())
        return replace(gpu, gemm_emax=p[0], gemm_x0=p[1], gemm_t0_us=p[2], gemm_xk=p[3],
                       gemm_layouts=(("dgrad", p[4]), ("wgrad", p[5])))

    def predict(p):
        g = spec(p)
        return np.array([g.gemm_us(int(a), int(b), int(c), layout=lo)
                         for a, b, c, lo in zip(m, n, k, lay)])

    p0, lo_b, hi_b = [0.7, 64.0, 5.0], [0.05, 0.0, 0.0], [1.0, 4096.0, 100.0]
    if shape_aware:
        p0, lo_b, hi_b = p0 + [64.0, 1.0, 1.0], lo_b + [0.0, 0.5, 0.5], hi_b + [4096.0, 1.5, 1.5]
    fit = least_squares(lambda p: np.log(predict(p) / t), p0, bounds=(lo_b, hi_b))
    fitted = spec([float(v) for v in fit.x])
    err = predict(fit.x) / t - 1
    big = 2 * m * n * k >= 1e11
    stats = {
        "shapes": int(len(t)),
        "median_abs_err": float(np.median(np.abs(err))),
        "p90_abs_err": float(np.percentile(np.abs(err), 90)),
        "max_abs_err": float(np.abs(err).max()),
        "mean_err": float(err.mean()),
        "large_shapes": int(big.sum()),
        "large_median_abs_err": float(np.median(np.abs(err[big]))) if big.any() else None,
        "large_max_abs_err": float(np.abs(err[big]).max()) if big.any() else None,
    }
    for name in ("fwd", "dgrad", "wgrad"):
        sel = np.array([lo == name for lo in lay])
        if sel.any():
            stats[f"{name}_median_abs_err"] = float(np.median(np.abs(err[sel])))
            stats[f"{name}_mean_err"] = float(err[sel].mean())
            stats[f"{name}_n"] = int(sel.sum())
    return fitted, stats
