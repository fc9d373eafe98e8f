"""GPU compute models for ``collsim generate``: a roofline per kernel with a fitted GEMM curve.

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
"""
from __future__ import annotations

from dataclasses import dataclass, replace

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
    mem_eff: float = 0.80      # share of HBM bandwidth a streaming kernel reaches
    attn_eff: float = 0.50     # attention forward share of peak (an assumption)
    # attention backward share of peak (of 2.5x the forward FLOPs); None = attn_eff. Hopper:
    # fitted to cuDNN fused attention on an H200 (traces/h200/layers_attention.csv)
    attn_bwd_eff: float | None = 0.23
    kernel_us: float = 4.0     # fixed cost of one element-wise kernel

    def gemm_us(self, m: int, n: int, k: int, count: int = 1) -> float:
        """Time of ``count`` GEMMs of m x n x k (bf16 in and out), microseconds."""
        if m <= 0 or n <= 0 or k <= 0 or count <= 0:
            return 0.0
        x0 = self.gemm_x0
        eff = self.gemm_emax * (m / (m + x0)) * (n / (n + x0)) * (k / (k + x0))
        t_flop = 2.0 * m * n * k / (self.peak_tflops * 1e6 * eff)
        t_mem = 2.0 * (m * k + k * n + m * n) / (self.hbm_gbps * 1e3 * self.mem_eff)
        return count * (self.gemm_t0_us + max(t_flop, t_mem))

    def attention_us(self, flops: float, backward: bool = False) -> float:
        """Causal attention kernel of ``flops`` (the backward's: ``backward=True``)."""
        eff = self.attn_bwd_eff if backward and self.attn_bwd_eff is not None else self.attn_eff
        return 0.0 if flops <= 0 else self.gemm_t0_us + flops / (self.peak_tflops * 1e6 * eff)

    def stream_us(self, nbytes: float, kernels: int = 1) -> float:
        """A memory-bound kernel sequence moving ``nbytes`` in total."""
        if nbytes <= 0:
            return 0.0
        return kernels * self.kernel_us + nbytes / (self.hbm_gbps * 1e3 * self.mem_eff)


GPUS: dict[str, GPUSpec] = {g.name: g for g in [
    GPUSpec("h100", peak_tflops=989.4, hbm_gbps=3350, hbm_gib=80),
    GPUSpec("h200", peak_tflops=989.4, hbm_gbps=4800, hbm_gib=141),
    GPUSpec("h800", peak_tflops=989.4, hbm_gbps=3350, hbm_gib=80),
    # A100: about 80% of peak on large bf16 GEMMs is typical; not fitted here
    GPUSpec("a100", peak_tflops=312.0, hbm_gbps=2039, hbm_gib=80, gemm_emax=0.80,
            attn_eff=0.60, attn_bwd_eff=None, gemm_t0_us=6.0),
]}


def get_gpu(name: str) -> GPUSpec:
    key = name.strip().lower()
    if key not in GPUS:
        raise InputError(f"unknown GPU {name!r}; expected one of {', '.join(sorted(GPUS))}",
                         field="--gpu")
    return GPUS[key]


def fit_gemm_curve(measurements, gpu: GPUSpec) -> tuple[GPUSpec, dict]:
    """Fit ``gemm_emax``, ``gemm_x0`` and ``gemm_t0_us`` to measured GEMMs.

    ``measurements``: :class:`~simulator.measurements.Measurement` objects with ``op == 'gemm'``
    and ``m``, ``n``, ``k`` columns. Returns the fitted spec and error statistics of the
    prediction (relative error, prediction / measurement - 1).
    """
    import numpy as np
    from scipy.optimize import least_squares

    rows = []
    for x in measurements:
        if x.op != "gemm":
            continue
        try:
            rows.append((int(x.extra["m"]), int(x.extra["n"]), int(x.extra["k"]), x.time_us))
        except (KeyError, TypeError, ValueError):
            continue
    if len(rows) < 4:
        raise InputError(f"need at least 4 GEMM measurements with m, n, k columns, got {len(rows)}")
    arr = np.array(rows, dtype=float)
    m, n, k, t = arr.T

    def predict(p):
        g = replace(gpu, gemm_emax=p[0], gemm_x0=p[1], gemm_t0_us=p[2])
        return np.array([g.gemm_us(int(a), int(b), int(c)) for a, b, c in zip(m, n, k)])

    fit = least_squares(lambda p: np.log(predict(p) / t), [0.7, 64.0, 5.0],
                        bounds=([0.05, 0.0, 0.0], [1.0, 4096.0, 100.0]))
    fitted = replace(gpu, gemm_emax=float(fit.x[0]), gemm_x0=float(fit.x[1]),
                     gemm_t0_us=float(fit.x[2]))
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
    return fitted, stats
