"""Fit the compute model's kernel parameters to a kernel sweep (``kernels.csv``).

The sweep is :mod:`simulator.measure.kernels` run on one GPU (``traces/h200/compute/run*/``).
Every group is fitted on its own, by least squares on the log of the time (relative error):

* ``gemm``: the GEMM curve of :class:`~simulator.generate.gpu.GPUSpec` (``gemm_emax``,
  ``gemm_x0``, ``gemm_t0_us``, the reduction's ``gemm_xk`` and the dgrad / wgrad layout
  factors) on the forward, dgrad and wgrad layouts together, the sweep's and the GPU-bound
  runs' (``gpubound*/``: operands rotated past the L2);
* the GPU-bound runs' profiled steps and kernels: clipping's scale, fp16's unscale and the
  fp16 / bf16 kernel factors (:func:`fit_step_profiles`, :func:`fit_unscale`);
* ``eltwise``, ``loss``, ``embedding``: per operation and direction a fixed device cost and a
  bandwidth, ``t = t0 + bytes / bw`` (the backward's time is forward+backward minus forward,
  its bytes likewise), the bytes counted as the sweep's ``bytes`` column counts them;
* ``attention``: ``t = t0 + flops / (peak x e x s/(s+s0) x d/(d+d0))`` for the forward and
  the backward (2.5x the forward's FLOPs), ``s`` the sequence, ``d`` the head size;
* ``optimizer``: the step (gradient norm with its host read, clipping, fused Adam, bf16 copy)
  as ``a + b x params + c x tensors``; zeroing and the fp32 gradient accumulation per
  parameter, the accumulation's host cost per tensor;
* ``host``: the host time of one call of each operation (the medians over every size, where
  the host time does not depend on the size), the backward's by difference with the
  ``add`` operation, whose backward launches no kernel (the cost of ``backward()`` itself).

:func:`fit_kernels` returns the parameters and the residuals (prediction / measurement - 1)
of every group; ``benchmarks/fit_compute.py`` prints them and docs/validation.md holds them.
"""
from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

MEM_OPS = ("layer_norm", "gelu", "dropout", "add", "float", "accum_fp32", "zero_fp32",
           "bias_grad", "cross_entropy_fp32", "embedding_pos", "cast_fp8", "transpose_fp8")
HOST_OPS = ("linear", "layer_norm", "gelu", "dropout", "add", "float", "sdpa",
            "cross_entropy_fp32", "embedding_pos")


def read_kernels(paths) -> list[dict]:
    rows = []
    for p in paths:
        with open(p, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                r["source"] = str(p)
                rows.append(r)
    return rows


def _f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _stats(err) -> dict:
    a = [abs(e) for e in err]
    if not a:
        return {"n": 0}
    return {"n": len(a), "median_abs": statistics.median(a), "max_abs": max(a),
            "mean": statistics.fmean(err)}


def _fit_t0_bw(points):
    """points: (bytes, us, row width) -> (t0_us, gbps, c0, residuals) of
    ``t = t0 + bytes / (bw x c / (c + c0))`` (c0 = 0 where one width only)."""
    import numpy as np
    from scipy.optimize import least_squares
    b = np.array([p[0] for p in points], dtype=float)
    t = np.array([p[1] for p in points], dtype=float)
    c = np.array([p[2] or 1.0 for p in points], dtype=float)
    widths = len(set(c.tolist())) > 1

    def pred(x):
        c0 = x[2] if widths else 0.0
        return x[0] + b / (x[1] * 1e3 * c / (c + c0))
    fit = least_squares(lambda x: np.log(pred(x) / t), [3.0, 2500.0, 64.0],
                        bounds=([0.0, 50.0, 0.0], [200.0, 20000.0, 65536.0]))
    err = pred(fit.x) / t - 1
    return (float(fit.x[0]), float(fit.x[1]), float(fit.x[2]) if widths else 0.0,
            [float(e) for e in err])


def _pairs(rows, group, op):
    """(fwd row, fwdbwd row) per (source, shape) of one op."""
    by: dict[tuple, dict] = defaultdict(dict)
    for r in rows:
        if r["group"] != group or r["op"] != op:
            continue
        key = (r["source"], r["rows"], r["cols"], r["numel"], r["m"], r["batch"], r["seq"],
               r["heads"], r["head_dim"])
        by[key][r["phase"]] = r
    return list(by.values())


def fit_memory_ops(rows) -> tuple[dict, dict]:
    params, resid = {}, {}
    prof = any(r["group"] == "embedding_prof" for r in rows)
    for op in MEM_OPS:
        group = {"cross_entropy_fp32": "loss",
                 "embedding_pos": "embedding_prof" if prof else "embedding"}.get(op, "eltwise")
        fwd, bwd = [], []
        for pr in _pairs(rows, group, op):
            f, fb = pr.get("fwd"), pr.get("fwdbwd")
            if f and _f(f["dev_us"]) and _f(f["bytes"]) and f["status"] in ("ok", "profiler"):
                fwd.append((_f(f["bytes"]), _f(f["dev_us"]), _f(f["cols"])))
            if f and fb and _f(fb["dev_us"]) and _f(f["dev_us"]) and _f(fb["bytes"]):
                d = _f(fb["dev_us"]) - _f(f["dev_us"])
                nb = _f(fb["bytes"]) - _f(f["bytes"])
                if d > 0.2 and nb > 0:  # host-bound rows kept: the sync is part of the kernel
                    bwd.append((nb, d, _f(f["cols"])))
        for phase, pts in (("fwd", fwd), ("bwd", bwd)):
            if len(pts) >= 3:
                t0, bw, c0, err = _fit_t0_bw(pts)
                params[f"{op}.{phase}"] = (round(t0, 3), round(bw, 1), round(c0, 1))
                resid[f"{op}.{phase}"] = _stats(err)
    return params, resid


GEMM_GROUPS = ("gemm", "gemm_layout")
GEMM_KEYS = ("gemm_emax", "gemm_x0", "gemm_t0_us", "gemm_xk", "gemm_layouts")


def _gemm_measurements(rows, groups, dtypes):
    """Measurements (``m, n, k`` with ``k`` the reduction, ``layout``) of the GEMM rows of
    ``groups`` in ``dtypes``: the sweep's ``m, n, k`` are the forward's, so dgrad (dy[m,n] @
    W[n,k]) is an m x k x n GEMM and wgrad (dy^T[n,m] @ x[m,k]) an n x k x m one."""
    from ..measurements import Measurement
    ms = []
    for r in rows:
        if r["group"] not in groups or not _f(r["dev_us"]) or r["status"] != "ok" \
                or (dtypes is not None and (r.get("dtype") or "bfloat16") not in dtypes):
            continue
        m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
        if r["phase"] == "dgrad":
            m, n, k = m, k, n
        elif r["phase"] == "wgrad":
            m, n, k = n, k, m
        ms.append(Measurement(op="gemm", ranks=1, size_bytes=0, time_us=_f(r["dev_us"]),
                              extra={"m": m, "n": n, "k": k, "layout": r["phase"]}))
    return ms


def fit_gemm(rows, gpu, shape_aware: bool = True, groups=GEMM_GROUPS,
             dtypes: tuple | None = ("bfloat16", "bf16")) -> tuple[dict, dict]:
    """The GEMM curve on the forward, dgrad and wgrad layouts together; ``shape_aware``: with
    the reduction's own half-efficiency point and the layouts' factors."""
    from .gpu import fit_gemm_curve
    fitted, stats = fit_gemm_curve(_gemm_measurements(rows, groups, dtypes), gpu,
                                   shape_aware=shape_aware)
    p: dict[str, Any] = {"gemm_emax": round(fitted.gemm_emax, 4),
                         "gemm_x0": round(fitted.gemm_x0, 2),
                         "gemm_t0_us": round(fitted.gemm_t0_us, 3)}
    if shape_aware:
        p["gemm_xk"] = round(float(fitted.gemm_xk or 0.0), 2)
        p["gemm_layouts"] = tuple((n, round(float(f), 4)) for n, f in fitted.gemm_layouts)
    return p, {"gemm": stats}


def _attention_us(x, flops, seq, head_dim, peak_tflops: float):
    """Attention time (us) for parameters x = (t0_us, e_max, seq_half, head_dim_half): the
    efficiency saturates in the sequence length and in the head dimension."""
    eff = x[1] * seq / (seq + x[2]) * head_dim / (head_dim + x[3])
    return x[0] + flops / (peak_tflops * 1e6 * eff)


def _mem_price(mem: dict, op: str, nbytes: float) -> float:
    """A memory-bound kernel's price (us) on the fitted ``mem`` parameters (contiguous rows:
    the column term off), as :meth:`~simulator.generate.gpu.GPUSpec.mem_us` gives it."""
    t0, bw, _ = mem[op]
    return t0 + nbytes / (bw * 1e3)


def split_kernels_us(mem: dict, batch: int, seq: int, heads: int, head_dim: int) -> float:
    """What the compute model prices apart from the attention kernel among the sweep's
    forward + backward kernels over a fused QKV tensor (``q, k, v = qkv[:, :, j]``): the
    QKV split's backward (three zero fills of the full-width gradient, two adds summing
    them) and the three copies of each chunk's gradient into its slice, priced as the
    model's layout copies (compute.py: 4 bytes an element, one forward and two backward)."""
    n = batch * seq * heads * head_dim
    width = 3 * n
    return (3 * _mem_price(mem, "float.fwd", 4.0 * n)
            + 3 * _mem_price(mem, "zero_fp32.fwd", 2.0 * width)
            + 2 * _mem_price(mem, "add.fwd", 6.0 * width))


def fit_attention(rows, peak_tflops: float, mem: dict | None = None) -> tuple[dict, dict]:
    """The attention forward and backward (see the module docstring). With ``mem`` (the
    memory-bound fits) the backward is the sweep's forward + backward less its forward less
    :func:`split_kernels_us`: the model prices those kernels in the layer already."""
    import numpy as np
    from scipy.optimize import least_squares
    fwd, bwd = [], []
    group = "attention_prof" if any(r["group"] == "attention_prof" for r in rows) \
        else "attention"
    for pr in _pairs(rows, group, "sdpa_causal"):
        f, fb = pr.get("fwd"), pr.get("fwdbwd")
        if not f or not _f(f["dev_us"]):
            continue
        s, d, fl = int(f["seq"]), int(f["head_dim"]), float(f["flops"])
        fwd.append((fl, s, d, _f(f["dev_us"])))
        if fb and _f(fb["dev_us"]):
            t = _f(fb["dev_us"]) - _f(f["dev_us"])
            if mem:
                t -= split_kernels_us(mem, int(f["batch"]), s, int(f["heads"]), d)
            bwd.append((2.5 * fl, s, d, t))
    params, resid = {}, {}
    for name, pts in (("attn", fwd), ("attn_bwd", bwd)):
        if len(pts) < 5:
            continue
        a = np.array(pts, dtype=float)
        fl, s, d, t = a.T
        fit = least_squares(lambda x, fl=fl, s=s, d=d, t=t:
                            np.log(_attention_us(x, fl, s, d, peak_tflops) / t),
                            [10.0, 0.6, 256.0, 32.0],
                            bounds=([0.0, 0.05, 0.0, 0.0], [200.0, 1.0, 16384.0, 1024.0]))
        err = _attention_us(fit.x, fl, s, d, peak_tflops) / t - 1
        params[name] = tuple(round(float(v), 4) for v in fit.x)
        resid[name] = _stats([float(e) for e in err])
    return params, resid


#: the head sizes the fused attention pads to a multiple of (kernelprice1: 80, 96 and 112 run
#: within 10% of 128's time, 64 at about two thirds of it)
ATTN_HEAD_PAD = 64


def fit_attention_rested(rows, peak_tflops: float, pad: int = ATTN_HEAD_PAD
                         ) -> tuple[dict, dict]:
    """The attention forward and backward on the kernels timed alone from a rested GPU
    (``attention_rest`` rows: :mod:`simulator.measure.powerstep`'s ``attnparts``): the forward
    over the fused QKV's views (``fwd``), the backward's kernels alone over contiguous q, k, v
    (``bwd``: ``autograd.grad``, without the QKV split's kernels); each
    ``t0 + F dp/d / (peak e s/(s+s0) dp/(dp+d0) bh/(bh+b0))``
    (:func:`~simulator.generate.gpu.attention_fit_us`, ``dp`` the head size padded to
    ``pad``), least squares on the log of the time."""
    import numpy as np
    from scipy.optimize import least_squares

    from .gpu import attention_fit_us
    params, resid = {}, {}
    for name, phase, mult in (("attn", "fwd", 1.0), ("attn_bwd", "bwd", 2.5)):
        pts = [(float(r["flops"]), int(r["seq"]), int(r["head_dim"]), _f(r["dev_us"]))
               for r in rows if r["group"] == "attention_rest" and r["op"] == "sdpa_causal"
               and r["phase"] == phase and _f(r["dev_us"])]
        if len(pts) < 6:
            continue

        def pred(x, pts=pts, mult=mult):
            return np.array([attention_fit_us(tuple(x) + (pad,), fl, s, d, peak_tflops, mult)
                             for fl, s, d, _ in pts])
        t = np.array([p[3] for p in pts])
        fit = least_squares(lambda x, pred=pred, t=t: np.log(pred(x) / t),
                            [10.0, 0.8, 500.0, 64.0, 8.0],
                            bounds=([0.0, 0.05, 0.0, 0.0, 0.0], [200.0, 3.0, 16384.0, 1024.0,
                                                                  4096.0]))
        x = tuple(round(float(v), 4) for v in fit.x)
        params[name] = x + (pad,)
        resid[name] = _stats([float(e) for e in pred(x) / t - 1])
    return params, resid


#: the QKV split's kernels (kernels.run_split) and the model's op names for them
SPLIT_OPS = (("fill", "qkv_fill.fwd"), ("copy", "qkv_copy.fwd"), ("add", "qkv_add.fwd"))


def fit_split_and_bias(rows) -> tuple[dict, dict]:
    """The QKV split's kernels (``qkv_split`` rows: the zero fill of the fused gradient, the
    copy of a chunk's gradient into its slice, the add of two fused gradients) and the bias
    gradient over the GPT's [tokens, n] shapes (``bias_grad`` rows, its width ``n``), each
    ``t0 + bytes / (bw x c/(c+c0))`` as the memory-bound ops (:func:`_fit_t0_bw`)."""
    params, resid = {}, {}
    for kind, name in SPLIT_OPS:
        pts = [(_f(r["bytes"]), _f(r["dev_us"]), None) for r in rows
               if r["group"] == "qkv_split" and r["op"] == kind and r["status"] == "ok"
               and _f(r["dev_us"])]
        if len(pts) >= 3:
            t0, bw, c0, err = _fit_t0_bw(pts)
            params[name] = (round(t0, 3), round(bw, 1), round(c0, 1))
            resid[name] = _stats(err)
    pts = [(_f(r["bytes"]), _f(r["dev_us"]), _f(r["cols"])) for r in rows
           if r["group"] == "bias_grad" and r["status"] == "ok" and _f(r["dev_us"])]
    if len(pts) >= 3:
        t0, bw, c0, err = _fit_t0_bw(pts)
        params["bias_grad.fwd"] = (round(t0, 3), round(bw, 1), round(c0, 1))
        resid["bias_grad.fwd"] = _stats(err)
    return params, resid


def kernelprice_dirs(paths) -> list[Path]:
    """The kernel-level price runs beside the kernel sweeps (``kernelprice*/``:
    :mod:`simulator.measure.powerstep`'s ``attnparts``, ``split``, ``biasgrad`` phases)."""
    dirs = {Path(p).parent.parent for p in paths}
    return sorted(q for d in dirs for q in d.glob("kernelprice*")
                  if (q / "kernels.csv").exists())


def fit_optimizer(rows) -> tuple[dict, dict]:
    import numpy as np
    pts = defaultdict(list)
    for r in rows:
        if r["group"] != "optimizer" or not _f(r["dev_us"]):
            continue
        pts[r["op"]].append((float(r["numel"]), float(r["tensors"]), _f(r["dev_us"]),
                             _f(r["host_us"])))
    params: dict[str, Any] = {}
    resid: dict[str, dict] = {}
    if pts.get("step"):
        a = np.array(pts["step"])
        X = np.column_stack([np.ones(len(a)), a[:, 0], a[:, 1]])
        coef, *_ = np.linalg.lstsq(X / a[:, 2:3], np.ones(len(a)), rcond=None)
        pred = X @ coef
        params["opt_step"] = (round(float(coef[0]), 2), round(float(coef[1]) * 1e3, 6),
                              round(float(coef[2]), 3))   # us, ns/param, us/tensor
        resid["opt_step"] = _stats(list(pred / a[:, 2] - 1))
    if pts.get("zero_grad"):
        a = np.array(pts["zero_grad"])
        ns = float(np.median(a[:, 2] / a[:, 0] * 1e3))
        pred = a[:, 0] * ns / 1e3
        params["opt_zero_grad"] = round(ns, 6)
        resid["opt_zero_grad"] = _stats(list(pred / a[:, 2] - 1))
    if pts.get("accumulate_fp32"):
        # one kernel per parameter tensor (PyTorch's per-tensor path for bf16 into fp32): a
        # fixed time per tensor and a time per parameter, least squares (non-negative) over
        # the models' whole accumulations
        from scipy.optimize import nnls
        a = np.array(pts["accumulate_fp32"])
        X = np.column_stack([a[:, 1], a[:, 0]])
        (t0, per), _ = nnls(X / a[:, 2:3], np.ones(len(a)))
        pred = X @ np.array([t0, per])
        params["opt_accumulate_fp32"] = round(float(per) * 1e3, 6)       # ns per parameter
        params["opt_accumulate_fp32_t0"] = round(float(t0), 3)           # us per tensor
        resid["opt_accumulate_fp32"] = _stats(list(pred / a[:, 2] - 1))
        params["host_accumulate_per_tensor"] = round(float(np.median(a[:, 3] / a[:, 1])), 2)
    return params, resid


def fit_host(rows) -> tuple[dict, dict]:
    """Host microseconds per call: forward ops, backward nodes, the backward() call."""
    host = defaultdict(list)
    for r in rows:
        if r["group"] not in ("host", "eltwise", "gemm", "attention", "loss", "embedding") \
                or not _f(r["host_us"]) or r["status"] not in ("ok", "host_bound"):
            continue
        op = r["op"]
        if r["group"] == "gemm":
            if r["phase"] != "fwd":
                continue
            op = "linear_nobias"
        if r["group"] == "attention":
            op = "sdpa" if r["op"] == "sdpa_causal" else "unfused"
        host[(op, r["phase"], r["source"], r["group"], r["numel"], r["batch"], r["seq"])].append(
            _f(r["host_us"]))
    per = defaultdict(list)
    diff = defaultdict(list)
    for (op, phase, src, grp, numel, b, s), v in host.items():
        per[(op, phase)].append(v[0])
        if phase == "fwd":
            fb = host.get((op, "fwdbwd", src, grp, numel, b, s))
            if fb:
                diff[op].append(fb[0] - v[0])
    out = {f"host.{op}.fwd": round(statistics.median(per[(op, "fwd")]), 2)
           for op in HOST_OPS + ("linear_nobias",) if per.get((op, "fwd"))}
    call = statistics.median(diff["add"]) if diff.get("add") else 0.0
    out["host.backward_call"] = round(call, 2)
    for op in HOST_OPS:
        if diff.get(op) and op != "add":
            out[f"host.{op}.bwd"] = round(max(0.0, statistics.median(diff[op]) - call), 2)
    spread = {k: _stats([x / statistics.median(per[k]) - 1 for x in per[k]])
              for k in per if len(per[k]) > 1}
    return out, {f"host {a}.{b}": v for (a, b), v in spread.items()}


def _line(xs, ys):
    """Least-squares line y = a + b x with a, b >= 0 (a host time is never negative); (a, b,
    relative residuals)."""
    import numpy as np
    from scipy.optimize import nnls
    x, y = np.array(xs, dtype=float), np.array(ys, dtype=float)
    (a, b), _ = nnls(np.column_stack([np.ones_like(x), x]), y)
    return float(a), float(b), [float(v) for v in (a + b * x) / y - 1]


def floor_variant(r: dict) -> str:
    """The model of a ``hostfloor`` row: ``default``, ``fp8`` or ``unfused`` (its note says
    ``variant X``)."""
    note = r.get("note") or ""
    return note.split("variant ", 1)[1].split(";")[0].strip() if "variant " in note \
        else "default"


def floor_case(r: dict) -> str:
    """The training case a ``hostfloor`` row was measured beside (its note says ``case X``;
    simulator.measure.interleaved), or ''."""
    for part in (r.get("note") or "").split(";"):
        part = part.strip()
        if part.startswith("case "):
            return part[len("case "):].strip()
    return ""


def fit_host_floor(rows, variant: str = "default") -> tuple[dict, dict]:
    """GPTs of 1-24 layers whose kernels take microseconds (``hostfloor``): host
    microseconds per layer, forward and backward (with the fp32 accumulation of its 12
    tensors), the extra of a checkpointed layer beyond its recomputed forward, and the fixed
    rest (embedding, head, loss): least-squares lines over every width and round given."""
    by = defaultdict(list)
    for r in rows:
        if r["group"] == "hostfloor" and _f(r["host_us"]) and floor_variant(r) == variant:
            by[r["op"]].append((int(r["rows"]), _f(r["host_us"]), int(r["tensors"] or 0)))
    need = ("forward", "fwdbwd_accumulate")
    if not all(len(by.get(k, ())) >= 3 for k in need):
        return {}, {}
    params, resid = {}, {}
    lines = {}
    for op, pts in by.items():
        a, b, err = _line([p[0] for p in pts], [p[1] for p in pts])
        lines[op] = (a, b)
        resid[f"hostfloor {op}"] = _stats(err)
        _, kb, _ = _line([p[0] for p in pts], [p[2] for p in pts])
        params[f"kernels_per_layer.{op}"] = round(kb, 1)
    fa, fb = lines["forward"]
    ta, tb = lines["fwdbwd_accumulate"]
    params["host_layer_fwd_us"] = round(fb, 2)
    params["host_layer_bwd_us"] = round(max(0.0, tb - fb), 2)  # backward + accumulation
    params["host_fixed_fwd_us"] = round(fa, 2)
    params["host_fixed_bwd_us"] = round(max(0.0, ta - fa), 2)
    if "fwdbwd_accumulate_recompute" in lines:
        _, rb = lines["fwdbwd_accumulate_recompute"]
        params["host_layer_recompute_us"] = round(rb - tb, 2)   # forward again + checkpoint
    return params, resid


def fit_accumulation_host(method_rows, floor: dict) -> tuple[dict, dict]:
    """The fp32 accumulation's host time per parameter tensor, from training steps timed
    with and without it (``method.csv`` of :mod:`simulator.measure.hostcause`: ``step`` and
    ``step_noacc`` host enqueue, the bf16 gradients dropped instead of accumulated), scaled
    from the machine that ran them to the fit's floor machines by the ratio of the case's
    64-token floor GPT (``floor_loop``) to the fitted floor line at its layer count. Only the
    host-bound cases (the step's wall under twice its host enqueue: a full launch queue
    blocks the host otherwise). The kernel sweep's own ``accumulate_fp32`` host time (36 us)
    was taken behind a spin kernel with hundreds of launches queued, a full launch queue."""
    by: dict[tuple, dict] = defaultdict(dict)
    for r in method_rows:
        by[(r["case"], r["round"])][r["mode"]] = r
    per = []
    for m in by.values():
        need = ("step", "step_noacc", "floor_loop")
        if not all(k in m for k in need) or not floor.get("host_layer_bwd_us"):
            continue
        step, noacc, fl = m["step"], m["step_noacc"], m["floor_loop"]
        if _f(step["wall_us"]) > 2.0 * _f(step["host_us"]):
            continue
        layers = int(step["layers"])
        fitted = (floor["host_fixed_fwd_us"] + floor["host_fixed_bwd_us"]
                  + layers * (floor["host_layer_fwd_us"] + floor["host_layer_bwd_us"]))
        tensors = 12 * layers + 4
        diff = (_f(step["host_us"]) - _f(noacc["host_us"])) / tensors
        per.append(diff * fitted / _f(fl["host_us"]))
    if len(per) < 3:
        return {}, {}
    med = statistics.median(per)
    return ({"host_accumulate_per_tensor": round(med, 2)},
            {"host accumulate (steps with / without)": _stats([x / med - 1 for x in per])})


def fit_optimizer_parts(opt_rows, floor: dict) -> tuple[dict, dict]:
    """The optimizer step's parts (``optstep.csv`` of :mod:`simulator.measure.optstep`):

    * host, from the step after a backward (``after_backward``: nothing queued hides it):
      the norm's enqueue over tensors and launches (``norm_us``), clipping's scale
      (``mul_us``), Adam and the bf16 copy (``adam_us + copy_us``) with a fixed part, each a
      least-squares fit (non-negative, relative) on the per-round values scaled from the
      measuring machine to the fit's floor machines by the fitted floor line at the model's
      layers over that round's floor (``floor``: the 64-token floor GPT back to back);
    * device, with no host gaps (``device``): the norm half and the rest, each a fixed time
      and ns a parameter.

    Launch counts by :func:`simulator.generate.optimizer_step.launches`."""
    import numpy as np
    from scipy.optimize import nnls

    from .optimizer_step import launches
    need = ("host_layer_fwd_us", "host_layer_bwd_us", "host_fixed_fwd_us", "host_fixed_bwd_us")
    if not opt_rows or not all(floor.get(k) for k in need):
        return {}, {}
    by: dict[tuple, dict] = defaultdict(dict)
    for r in opt_rows:
        by[(r["source"], r["model"], r["round"])][r["mode"]] = r
    host: dict[str, list] = defaultdict(list)
    dev: dict[str, list] = defaultdict(list)
    for m in by.values():
        ab, fl, dv = m.get("after_backward"), m.get("floor"), m.get("device")
        if ab and fl and int(_f(ab["clipped"]) or 0):
            layers, P, T = int(ab["layers"]), float(ab["params"]), int(ab["tensors"])
            fitted = (floor["host_fixed_fwd_us"] + floor["host_fixed_bwd_us"]
                      + layers * (floor["host_layer_fwd_us"] + floor["host_layer_bwd_us"]))
            k = fitted / _f(fl["total_us"])
            n1, n4 = launches(P, T, 1), launches(P, T, 4)
            host["norm"].append(([0.0, T, n1], _f(ab["norm_us"]) * k))
            host["mul"].append(([0.0, T, n1], _f(ab["mul_us"]) * k))
            host["adam"].append(([1.0, T, n4], (_f(ab["adam_us"]) + _f(ab["copy_us"])) * k))
        if dv and int(_f(dv["host_ok"]) or 0):
            P = float(dv["params"])
            dev["norm"].append(([1.0, P / 1e3], _f(dv["dev_norm_us"])))
            dev["post"].append(([1.0, P / 1e3], _f(dv["dev_post_us"])))
    if len(host["norm"]) < 3 or len(dev["norm"]) < 3:
        return {}, {}

    def rel_fit(pts):
        X = np.array([p[0] for p in pts], dtype=float)
        y = np.array([p[1] for p in pts], dtype=float)
        coef, _ = nnls(X / y[:, None], np.ones(len(y)))
        return [float(c) for c in coef], [float(e) for e in X @ coef / y - 1]
    params: dict[str, Any] = {}
    resid: dict[str, dict] = {}
    (_, nt, nl), e1 = rel_fit(host["norm"])
    (_, mt, ml), e2 = rel_fit(host["mul"])
    (a0, at, al), e3 = rel_fit(host["adam"])
    params["opt_host"] = tuple(round(x, 3) for x in (nt, nl, mt, ml, a0, at, al))
    (d0, dns), e4 = rel_fit(dev["norm"])
    (p0, pns), e5 = rel_fit(dev["post"])
    params["opt_dev"] = (round(d0, 2), round(dns, 6), round(p0, 2), round(pns, 6))
    for name, e in (("norm host", e1), ("scale host", e2), ("Adam + copy host", e3),
                    ("norm device", e4), ("scale + Adam + copy device", e5)):
        resid[f"optimizer {name}"] = _stats(e)
    return params, resid


def optstep_paths(paths) -> list[Path]:
    """The ``optstep.csv`` files beside the kernel sweeps (``optstep*/``)."""
    dirs = {Path(p).parent.parent for p in paths}
    return sorted(q for d in dirs for q in d.glob("optstep*/optstep.csv"))


def method_paths(paths) -> list[Path]:
    """The ``method.csv`` files beside the kernel sweeps (``hostcause*/``)."""
    dirs = {Path(p).parent.parent for p in paths}
    return sorted(q for d in dirs for q in d.glob("hostcause*/method.csv"))


def fit_host_variants(rows) -> tuple[dict, dict]:
    """The host floor of the FP8 and unfused-attention GPTs as ratios to the default GPT's
    on the same machines (the runs that measured both): per layer forward, backward and
    recompute extra. Host speed differs between machines; the ratio of two floors measured
    side by side is what carries over to another machine's default floor."""
    params, resid = {}, {}
    floor = [r for r in rows if r["group"] == "hostfloor"]
    for variant in sorted({floor_variant(r) for r in floor} - {"default"}):
        sources = {r["source"] for r in floor if floor_variant(r) == variant}
        same = [r for r in floor if r["source"] in sources]
        p, e = fit_host_floor(same, variant)
        d, _ = fit_host_floor(same)
        if not p or not d:
            continue
        keys = ("host_layer_fwd_us", "host_layer_bwd_us", "host_layer_recompute_us")
        params[f"host_variant.{variant}"] = tuple(
            round(p.get(k, 0.0) / d[k], 4) if d.get(k) else 1.0 for k in keys)
        resid.update({f"{k} ({variant})": v for k, v in e.items()})
    return params, resid


def fit_fp8_gemm(rows, gpu) -> tuple[dict, dict]:
    """The GEMM curve of FP8 GEMMs (``gemm_fp8``: ``torch._scaled_mm``) on the FP8 peak
    (twice the bf16 peak on Hopper)."""
    from dataclasses import replace
    fp8 = [dict(r, group="gemm") for r in rows if r["group"] == "gemm_fp8"]
    if len(fp8) < 4:
        return {}, {}
    p, e = fit_gemm(fp8, replace(gpu, peak_tflops=2.0 * gpu.peak_tflops), shape_aware=False,
                    groups=("gemm",), dtypes=None)
    return ({"fp8_gemm": (p["gemm_emax"], p["gemm_x0"], p["gemm_t0_us"])},
            {"fp8_gemm": e["gemm"]})


def fit_unfused_attention(rows, gpu) -> tuple[dict, dict]:
    """Unfused causal attention (scores materialised; ``unfused_mask`` rows, the profiler's
    kernel durations where there are some): beyond its batched GEMMs (QK^T and PV forward;
    dV, dP, dQ, dK backward, priced by ``gpu``'s GEMM curve, one kernel each), a fixed time
    plus nanoseconds per score element, ``t0 + ns x batch x heads x seq^2``, forward and
    backward (forward+backward minus forward)."""
    from .compute import unfused_gemms_us
    group = "attention_prof" if any(r["group"] == "attention_prof" and r["op"] ==
                                    "unfused_mask" for r in rows) else "attention"
    fwd, bwd = [], []
    for pr in _pairs(rows, group, "unfused_mask"):
        f, fb = pr.get("fwd"), pr.get("fwdbwd")
        if not f or not _f(f["dev_us"]) or f["status"] not in ("ok", "profiler"):
            continue
        b, s, nh, hd = (int(f[k]) for k in ("batch", "seq", "heads", "head_dim"))
        scores = float(b * nh * s * s)
        gf, gb = unfused_gemms_us(gpu, b, s, nh, hd)
        fwd.append((scores, _f(f["dev_us"]) - gf, _f(f["dev_us"]), gf))
        if fb and _f(fb["dev_us"]) and fb["status"] in ("ok", "profiler"):
            t = _f(fb["dev_us"]) - _f(f["dev_us"])
            bwd.append((scores, t - gb, t, gb))
    params, resid = {}, {}
    for name, pts in (("unfused_fwd", fwd), ("unfused_bwd", bwd)):
        if len(pts) < 3:
            continue
        t0, ns_per_us, _ = _line([p[0] for p in pts], [p[1] for p in pts])
        params[name] = (round(t0, 3), round(ns_per_us * 1e3, 6))   # us, ns per score
        resid[name] = _stats([(t0 + ns_per_us * p[0] + p[3]) / p[2] - 1 for p in pts])
    return params, resid


def gpubound_dirs(paths) -> list[Path]:
    """The GPU-bound runs beside the kernel sweeps (``gpubound*/``:
    :mod:`simulator.measure.gpubound`)."""
    dirs = {Path(p).parent.parent for p in paths}
    return sorted(q for d in dirs for q in d.glob("gpubound*") if q.is_dir())


def _per_param(points) -> tuple[float, list[float]]:
    """points (parameters, us): ns per parameter through the origin, least squares on the
    relative error; (ns, residuals)."""
    x = [p / t for p, t in points]
    us = sum(x) / sum(v * v for v in x)
    return us * 1e3, [us * v - 1 for v in x]


def _kernel_class(op: str) -> str:
    """A profiled op's class for the fp16 / bf16 comparison (``ops.csv``)."""
    if op in ("aten::mm", "aten::addmm"):
        return "gemm"
    if "attention" in op:
        return "attention"
    if op in ("aten::_fused_adam_", "aten::_foreach_norm", "aten::_foreach_mul_",
              "aten::_amp_foreach_non_finite_check_and_unscale_") or not op.startswith("aten::"):
        return ""     # the optimizer's own kernels, the profiler's records
    return "memory"


def fit_step_profiles(dirs) -> tuple[dict, dict]:
    """From the profiled GPU-bound steps (``ops.csv``: every op's own kernels' device time,
    ``steps.csv``: the case's parameters and dtype):

    * ``opt_clip_ns``: gradient clipping's scale of the fp32 main gradients
      (``aten::_foreach_mul_``) per parameter, over the bf16 steps (the norm of a random-init
      model's gradients is above the clip, so the step scales them; the kernel sweep's
      repeated optimizer steps clipped once, then ran at norm 1 without the scale);
    * ``fp16_kernels``: the fp16 step's GEMM, attention and memory-bound kernels over the
      bf16 step's of the same model (pooled over the pairs: total fp16 / total bf16)."""
    meta: dict[str, dict] = {}
    ops: list[dict] = []
    for d in dirs:
        if (d / "steps.csv").exists() and (d / "ops.csv").exists():
            meta.update({r["case"]: r for r in read_kernels([d / "steps.csv"])
                         if r.get("status") == "ok"})
            ops += read_kernels([d / "ops.csv"])
    params: dict[str, Any] = {}
    resid: dict[str, dict] = {}
    clip = [(float(meta[r["case"]]["params"]), _f(r["device_us"])) for r in ops
            if r["op"] == "aten::_foreach_mul_" and r["case"] in meta
            and meta[r["case"]]["dtype"] == "bf16" and _f(r["device_us"])]
    if len(clip) >= 3:
        ns, err = _per_param(clip)
        params["opt_clip_ns"] = round(ns, 6)
        resid["opt_clip"] = _stats(err)
    sums: dict[tuple, float] = defaultdict(float)
    for r in ops:
        m = meta.get(r["case"])
        cls = _kernel_class(r["op"])
        if m and cls and _f(r["device_us"]):
            base = r["case"].rsplit("-", 1)[0]
            sums[(base, m["dtype"], cls)] += _f(r["device_us"])
    pairs = sorted({b for (b, dt, _) in sums if dt == "fp16" and (b, "bf16", "gemm") in sums})
    if pairs:
        factors = []
        for cls in ("gemm", "attention", "memory"):
            f16 = sum(sums[(b, "fp16", cls)] for b in pairs)
            b16 = sum(sums[(b, "bf16", cls)] for b in pairs)
            factors.append(round(f16 / b16, 4) if b16 else 1.0)
            resid[f"fp16 {cls}"] = _stats([sums[(b, "fp16", cls)] / sums[(b, "bf16", cls)]
                                           / factors[-1] - 1 for b in pairs
                                           if sums[(b, "bf16", cls)]])
        params["fp16_kernels"] = tuple(factors)
    return params, resid


def fit_unscale(rows) -> tuple[dict, dict]:
    """fp16's unscale-and-check over the fp32 main gradients (``fp16_opt`` ``unscale_fp32``:
    the models' parameter tensors, one fused call), ns per parameter."""
    pts = [(float(r["numel"]), _f(r["dev_us"])) for r in rows
           if r["group"] == "fp16_opt" and r["op"] == "unscale_fp32" and _f(r["dev_us"])]
    if len(pts) < 3:
        return {}, {}
    ns, err = _per_param(pts)
    return {"opt_unscale_ns": round(ns, 6)}, {"opt_unscale": _stats(err)}


def fit_kernels(paths, gpu=None, kernel_prices: bool = False) -> tuple[dict, dict]:
    """All groups: (parameters, residuals by group). ``kernel_prices``: the attention, the
    QKV split's kernels and the bias gradient from the kernel-level price runs
    (``kernelprice*/``) instead of the sweep (the candidate of docs/compute-model.md, not
    shipped: the validated steps get worse with it)."""
    from dataclasses import replace

    from .gpu import GPUS
    gpu = gpu or GPUS["h200"]
    # the host floors measured beside one training case each (simulator.measure.interleaved,
    # run8 on) price that case in the validation; the shipped floor stays the sweeps' (runs
    # 3-7, five machines): those rows, many per machine, would outweigh the other machines
    rows = [r for r in read_kernels(paths)
            if not (r["group"] == "hostfloor" and floor_case(r))]
    # the GPU-bound runs: their layout-aware bf16 GEMMs (operands rotated past the L2) join
    # the sweep's; fp16's kernels and the profiled steps are fitted on their own
    gb = gpubound_dirs(paths)
    gb_rows = read_kernels([d / "kernels.csv" for d in gb if (d / "kernels.csv").exists()])
    rows += [r for r in gb_rows if r["group"] == "gemm_layout" and r["dtype"] == "bf16"
             and r["note"] != "1 operand set"]
    params, resid = {}, {}
    # the attention backward as shipped still holds the QKV split's kernels (which the
    # layer prices again): without them the validated steps get worse, the double count
    # covering GPU time priced short elsewhere (docs/compute-model.md; scripts/kernel_groups.py
    # gives the corrected fit)
    for fn in (lambda r: fit_gemm(r, gpu), fit_memory_ops,
               lambda r: fit_attention(r, gpu.peak_tflops), fit_optimizer, fit_host,
               fit_host_floor, fit_host_variants, lambda r: fit_fp8_gemm(r, gpu)):
        p, e = fn(rows)
        params.update(p)
        resid.update(e)
    for p, e in (fit_step_profiles(gb), fit_unscale(gb_rows)):
        params.update(p)
        resid.update(e)
    # with kernel_prices, the kernel-level prices (kernelprice*/): the attention refitted on
    # its own kernels from a rested GPU (its backward without the QKV split's kernels, which
    # the layer prices as their own ops), those ops, and the bias gradient over the GPT's
    # shapes; they replace the sweep's attention and bias-gradient fits
    kp = read_kernels([d / "kernels.csv" for d in kernelprice_dirs(paths)]) \
        if kernel_prices else []
    if kp:
        for p, e in (fit_attention_rested(kp, gpu.peak_tflops), fit_split_and_bias(kp)):
            params.update(p)
            resid.update(e)
    method = read_kernels(method_paths(paths))
    p, e = fit_accumulation_host(method, params)
    params.update(p)
    resid.update(e)
    p, e = fit_optimizer_parts(read_kernels(optstep_paths(paths)), params)
    params.update(p)
    resid.update(e)
    fitted = replace(gpu, **{k: params[k] for k in GEMM_KEYS if k in params})
    p, e = fit_unfused_attention(rows, fitted)
    params.update(p)
    resid.update(e)
    return params, resid


def host_floor_spec(gpu, paths):
    """``gpu`` with the host floor fitted on ``paths`` alone (one machine's runs)."""
    from dataclasses import replace
    rows = [r for r in read_kernels(paths) if r["group"] == "hostfloor"]
    p, _ = fit_host_floor(rows)
    if not p:
        return gpu
    v, _ = fit_host_variants(rows)
    kw = {k: p[k] for k in ("host_layer_fwd_us", "host_layer_bwd_us", "host_layer_recompute_us",
                            "host_fixed_fwd_us", "host_fixed_bwd_us") if k in p}
    if v:   # this machine's own ratios; else the fit's (measured on other machines)
        kw["host_variants"] = tuple((k.split(".", 1)[1],) + tuple(x) for k, x in v.items())
    kw.update(_machine_accum(gpu, kw))
    return replace(gpu, **kw)


def _machine_accum(gpu, kw: dict, variant: str = "default") -> dict:
    """The fp32 accumulation's host time per tensor and the optimizer step's host parts on
    a machine whose floor is ``kw``: ``gpu``'s (at the fitted floor's speed), scaled as the
    machine's backward floor (which carries the accumulation) to ``gpu``'s of the same
    variant. Host speed differs by up to 50% between the lent machines; the accumulation is
    part of the backward's host floor there, so it is taken to move with it, and so are the
    optimizer's host parts (its Python and launches run on the same CPU)."""
    ref = gpu.host_layer_bwd_us
    if variant != "default":
        ratio = gpu.host_variant(variant)
        ref = ref * ratio[1] if ratio else 0.0
    if not ref or not kw.get("host_layer_bwd_us"):
        return {}
    k = kw["host_layer_bwd_us"] / ref
    out: dict[str, Any] = {}
    if gpu.host_accum_us:
        out["host_accum_us"] = gpu.host_accum_us * k
    if gpu.opt_host:   # the optimizer step's host parts, measured the same way
        out["opt_host"] = tuple(x * k for x in gpu.opt_host)
    return out


def case_floor_spec(gpu, rows, variant: str = "default"):
    """``gpu`` with the host floor of ``variant``'s GPT fitted on ``rows`` alone (the floor
    GPTs measured beside one training case, :mod:`simulator.measure.interleaved`): that
    variant's own lines, so its ratio to the default floor is 1. None where ``rows`` hold
    no such floor."""
    from dataclasses import replace
    p, _ = fit_host_floor([r for r in rows if r["group"] == "hostfloor"], variant)
    if not p:
        return None
    kw = {k: p[k] for k in ("host_layer_fwd_us", "host_layer_bwd_us", "host_layer_recompute_us",
                            "host_fixed_fwd_us", "host_fixed_bwd_us") if k in p}
    kw.update(_machine_accum(gpu, kw, variant))
    if variant != "default":
        kw["host_variants"] = ((variant, 1.0, 1.0, 1.0),)
    return replace(gpu, **kw)


def default_paths(root: Path | None = None) -> list[Path]:
    """The kernel sweeps the compute model is fitted on: ``traces/h200/compute/run*/
    kernels.csv`` under ``root`` (a repository), by default the bundled copy."""
    from ..resources import bundled

    base = Path(root) / "traces" / "h200" / "compute" if root else bundled("traces", "h200",
                                                                          "compute")
    def number(p: Path):   # run2 before run10
        tail = p.parent.name[len("run"):]
        return (int(tail) if tail.isdigit() else 1 << 30, p.parent.name)
    return sorted(base.glob("run*/kernels.csv"), key=number)


def summary_lines(params: dict, resid: dict) -> list[str]:
    out = []
    for k, v in params.items():
        out.append(f"{k} = {v}")
    for k, s in resid.items():
        if s.get("n"):
            out.append(f"residual {k}: n {s['n']}, median |err| {100 * s['median_abs']:.1f}%, "
                       f"max {100 * s['max_abs']:.1f}%")
    return out


if __name__ == "__main__":  # pragma: no cover
    p, r = fit_kernels(default_paths())
    print("\n".join(summary_lines(p, r)))
    _ = math


def spec_kwargs(params: dict) -> dict:
    """GPUSpec keyword arguments from :func:`fit_kernels`'s parameters."""
    kw = {k: params[k] for k in GEMM_KEYS if k in params}
    kw["mem_ops"] = tuple((k, float(v[0]), float(v[1]), float(v[2]))
                          for k, v in params.items()
                          if isinstance(v, tuple) and len(v) == 3 and "." in k
                          and not k.startswith("host_variant."))
    if "attn" in params:
        kw["attn_fwd"] = tuple(params["attn"])
    if "attn_bwd" in params:
        kw["attn_bwd"] = tuple(params["attn_bwd"])
    kw["host_ops"] = tuple((k[len("host."):], float(v)) for k, v in params.items()
                           if k.startswith("host."))
    if "opt_step" in params:
        kw["opt_step"] = tuple(params["opt_step"])
    kw["opt_zero_ns"] = params.get("opt_zero_grad", 0.0)
    for k in ("opt_clip_ns", "opt_unscale_ns", "fp16_kernels", "opt_host", "opt_dev"):
        if k in params:
            kw[k] = params[k]
    kw["opt_accum_ns"] = params.get("opt_accumulate_fp32", 0.0)
    kw["opt_accum_t0_us"] = params.get("opt_accumulate_fp32_t0", 0.0)
    kw["host_accum_us"] = params.get("host_accumulate_per_tensor", 0.0)
    for k in ("host_layer_fwd_us", "host_layer_bwd_us", "host_layer_recompute_us",
              "host_fixed_fwd_us", "host_fixed_bwd_us", "fp8_gemm", "unfused_fwd",
              "unfused_bwd"):
        if k in params:
            kw[k] = params[k]
    kw["host_variants"] = tuple((k.split(".", 1)[1],) + tuple(v) for k, v in params.items()
                                if k.startswith("host_variant."))
    return kw
