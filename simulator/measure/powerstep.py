"""A GPT step's own kernels under the power cap: how much each slows when it runs sustained,
and how much each element-wise kernel slows between GEMMs.

    python -m simulator.measure.powerstep --out DIR                      # a GPU (cuda:0)
    python -m simulator.measure.powerstep --out DIR --device cpu --tiny  # a dry run

Phases (``--phases``, in this order; NVML sampled every ``--sample-ms`` with the label of
what ran: ``clocks.csv``):

* ``sustain``: every kernel of a GPT layer at five step sizes (350M at micro-batch 16, 760M,
  1.3B and 2.7B at 4, 6.7B at 1): the four linear layers' GEMMs in the three layouts
  autograd issues (forward ``x W^T``, dgrad ``dy W``, wgrad ``dy^T x``), the fused causal
  attention forward and its backward alone (``autograd.grad`` of contiguous q, k, v: the
  attention kernels without the QKV split's gradient copies). Each after ``--idle-s`` with
  nothing queued, then back to back for ``--sustain-s``, timed in windows of about
  ``--window-us`` between CUDA events (``windows.csv``: ``t_ms`` the window's start on the
  GPU since the first call).
* ``mixgap``: 2 ms periods of 4096^3 GEMMs for a share 0.7, then one element-wise kernel
  (at a 2.7B micro-batch-8 size, as powerref's mixes) repeated until the period is full, for
  ``--mix-s`` after idle; per kind: layer norm, GELU and dropout each way, the add, the fp32
  accumulation, a 256 MiB copy. ``periods.csv`` (one row per 5 periods: GEMM us and gap us
  between CUDA events, ``gap_calls``) and ``gapref.csv`` (each gap kernel's time warm and
  alone: ``kernels.Timer``, the boost time the slowdown is taken against).

Kernel-level phases for the compute model's prices (``--phases attnparts,split,biasgrad,
eltcap``; their rows in ``kernels.csv``, the sweep's columns):

* ``attnparts``: the fused causal attention from a rested GPU (``--idle-s`` before each
  timing; kernel durations under the profiler, 2 calls), over head sizes 64-128 (80
  included), seq 1024-4096, several batches and head counts, and every GPT model's heads at
  seq 1024 / 2048, micro-batch 1 / 4 / 8 (group ``attention_rest``): ``fwd`` (over views of
  a fused [b, s, 3, heads, head] QKV, as the step), ``bwd`` (``autograd.grad`` of the output
  over contiguous q, k, v: the backward's kernels alone), ``bwd_views`` (the same over the
  fused QKV's views: the step's layout, without the split); at the models' shapes also
  ``bwd_fused`` (the sweep's ``backward()`` into the fused QKV: its attention kernels in
  ``dev_us``, and rows ``split_fill`` / ``split_copy`` / ``split_add`` with the QKV split's
  kernels of the same calls). Every kernel of these timings in ``attn_kernels.csv`` (both
  calls: its name, us).
* ``split``: the QKV split's kernels as their own ops (:func:`.kernels.run_split`).
* ``biasgrad``: the bias gradient ``dy.sum(0)`` over the GPT's [tokens, n] shapes
  (:func:`.kernels.run_bias_grad`).
* ``eltcap``: element-wise kernels (layer norm, GELU, dropout each way, the add, the fp32
  accumulation, a 256 MiB copy; 2.7B micro-batch-8 size) under the cap: each kind's time
  from a rested GPU (``--idle-s``, a 1 ms spin, calls for about 3 ms, per call between CUDA
  events: ``gapref.csv`` ``ref`` ``rested_before``, and again after its mixes,
  ``rested_after``), then 2 ms periods of 4096^3 GEMMs for a share ``d`` of 0.3, 0.5, 0.7,
  0.85 and the kind repeated for the rest, each for ``--mix-s`` after idle (``periods.csv``);
  the 4096^3 GEMM's rested time first (``gapref.csv`` ``gemm``).

Torch is imported inside functions only.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from . import kernels
from .powercap import CLOCK_COLUMNS, Sampler, elapsed_us, timer_event
from .powerref import PERIOD_COLUMNS, burst_us
from .runstart import attempt, finish, free_gpu, parser, start_run
from .runstart import log as _log
from .train import MODELS, write_csv

WINDOW_COLUMNS = ["kernel", "size", "layout", "m", "n", "k", "t_ms", "calls", "per_call_us"]
GAPREF_COLUMNS = ["gap", "dev_us", "ref", "first_us", "calls"]
KERNEL_COLUMNS = kernels.COLUMNS + ["t_s"]
ATTN_KERNEL_COLUMNS = ["case", "phase", "kernel", "us"]
#: (size, tokens, hidden, heads, micro-batch, seq) of the step sizes whose kernels run
SIZES = (("350m-b16", 16384, 1024, 16, 16, 1024), ("760m-b4", 8192, 1536, 16, 4, 2048),
         ("1.3b-b4", 8192, 2048, 16, 4, 2048), ("2.7b-b4", 8192, 2560, 32, 4, 2048),
         ("6.7b-b1", 2048, 4096, 32, 1, 2048))
TINY_SIZES = (("tiny", 64, 32, 2, 1, 64),)


class Run:
    def __init__(self, device, dtype, cuda, sampler: Sampler, out: str = ""):
        self.device, self.dtype, self.cuda, self.sampler = device, dtype, cuda, sampler
        self.windows: list[dict] = []
        self.periods: list[dict] = []
        self.gapref: list[dict] = []
        #: every kernel of the attnparts timings (attn_kernels.csv: case, phase, name, us)
        self.attn_kernels: list[dict] = []
        #: the kernel-level phases' rows (kernels.csv), timed as the sweep times its kernels
        self.sweep = kernels.Sweep(out, device, dtype, cuda, log=_log)


def rest(run: Run, idle_s: float, label: str) -> None:
    """Nothing queued and the host asleep for ``idle_s`` (the samples labelled ``label``)."""
    if run.cuda:
        import torch
        torch.cuda.synchronize()
    run.sampler.label = label
    time.sleep(idle_s)


def sustain(run: Run, fields: dict, fn, idle_s: float, seconds: float, window_us: float):
    """``fn`` back to back for ``seconds`` after ``idle_s`` idle, timed in windows."""
    import torch
    timer = kernels.Timer(run.cuda)
    fn()
    est = max(1.0, timer(fn, reps=3, warmup=1)[0])
    per = max(1, round(window_us / est))
    n_win = max(2, round(seconds * 1e6 / (per * est)))
    label = f"{fields['kernel']} {fields['size']} {fields.get('layout', '')}".strip()
    rest(run, idle_s, f"idle {label}")
    run.sampler.label = label
    marks = [timer_event(run.cuda)]
    for i in range(n_win):
        for _ in range(per):
            fn()
        marks.append(timer_event(run.cuda))
        if run.cuda and i >= 30:
            marks[i - 30].synchronize()   # the host stays ~30 windows ahead of the GPU
    if run.cuda:
        torch.cuda.synchronize()
    run.sampler.label = ""
    t = 0.0
    for a, b in zip(marks, marks[1:]):
        us = elapsed_us(a, b)
        run.windows.append({**fields, "t_ms": round(t / 1e3, 3), "calls": per,
                            "per_call_us": round(us / per, 3)})
        t += us
    first = [w["per_call_us"] for w in run.windows[-n_win:][1:6]]
    late = [w["per_call_us"] for w in run.windows[-n_win:] if w["t_ms"] >= 200]
    _log(f"sustain {label}: {est:.1f} us warm, first windows {min(first or [0]):.1f}, "
         f"from 200 ms {sorted(late)[len(late) // 2] if late else 0:.1f} us a call")


def layer_kernels(device, dtype, size, T, h, nh, b, s):
    """(fields, fn) of one step size's kernels."""
    import torch
    import torch.nn.functional as F
    out: list[tuple[dict, Any]] = []
    x = torch.randn(T, 4 * h, device=device, dtype=dtype)
    dy = torch.randn(T, 4 * h, device=device, dtype=dtype)
    for name, n, k in (("qkv", 3 * h, h), ("proj", h, h), ("fc1", 4 * h, h), ("fc2", h, 4 * h)):
        w = torch.randn(n, k, device=device, dtype=dtype)
        xk, dyn = x[:, :k].contiguous(), dy[:, :n].contiguous()
        base = {"kernel": f"gemm {name}", "size": size}
        out += [({**base, "layout": "fwd", "m": T, "n": n, "k": k},
                 lambda xk=xk, w=w: torch.mm(xk, w.t())),
                ({**base, "layout": "dgrad", "m": T, "n": k, "k": n},
                 lambda dyn=dyn, w=w: torch.mm(dyn, w)),
                ({**base, "layout": "wgrad", "m": n, "n": k, "k": T},
                 lambda dyn=dyn, xk=xk: torch.mm(dyn.t(), xk))]
    hd = h // nh
    q, kk, v = (torch.randn(b, nh, s, hd, device=device, dtype=dtype, requires_grad=True)
                for _ in range(3))
    o = F.scaled_dot_product_attention(q, kk, v, is_causal=True)
    do = torch.randn_like(o)
    base = {"kernel": "attention", "size": size, "m": b * nh, "n": s, "k": hd}
    out += [({**base, "layout": "fwd"},
             lambda: F.scaled_dot_product_attention(q, kk, v, is_causal=True)),
            ({**base, "layout": "bwd"},
             lambda: torch.autograd.grad(o, (q, kk, v), do, retain_graph=True))]
    return out


def eltwise_kernels(device, dtype, size, T, h):
    """(fields, fn) of the layer norm, GELU, dropout (each way), the add, the fp32
    accumulation and a 256 MiB copy at one size."""
    import torch
    import torch.nn.functional as F
    aten = torch.ops.aten
    x = torch.randn(T, h, device=device, dtype=dtype)
    dy = torch.randn(T, h, device=device, dtype=dtype)
    x4 = torch.randn(T, 4 * h, device=device, dtype=dtype)
    dy4 = torch.randn(T, 4 * h, device=device, dtype=dtype)
    w = torch.ones(h, device=device, dtype=dtype)
    bb = torch.zeros(h, device=device, dtype=dtype)
    _, mean, rstd = aten.native_layer_norm(x, [h], w, bb, 1e-5)
    _, mask = aten.native_dropout(x, 0.1, True)
    g32 = torch.zeros(T, h, device=device, dtype=torch.float32)
    n = 2 ** 12 if T < 1024 else 2 ** 27
    ca, cb = torch.randn(n, device=device, dtype=dtype), torch.empty(n, device=device,
                                                                      dtype=dtype)
    ops = [("layer_norm", "fwd", lambda: F.layer_norm(x, (h,), w, bb, 1e-5)),
           ("layer_norm", "bwd", lambda: aten.native_layer_norm_backward(
               dy, x, [h], mean, rstd, w, bb, [True, True, True])),
           ("gelu", "fwd", lambda: F.gelu(x4, approximate="tanh")),
           ("gelu", "bwd", lambda: aten.gelu_backward(dy4, x4, approximate="tanh")),
           ("dropout", "fwd", lambda: aten.native_dropout(x, 0.1, True)),
           ("dropout", "bwd", lambda: aten.native_dropout_backward(dy, mask, 1 / 0.9)),
           ("add", "fwd", lambda: x + dy),
           ("accum_fp32", "fwd", lambda: g32.add_(x)),
           ("copy_256MiB", "fwd", lambda: cb.copy_(ca))]
    return [({"kernel": op, "size": size, "layout": lay, "m": T, "n": h}, fn)
            for op, lay, fn in ops]


def run_sustain(run: Run, args) -> None:
    import torch
    sizes = TINY_SIZES if args.tiny else SIZES
    for size, T, h, nh, b, s in sizes:
        ks = layer_kernels(run.device, run.dtype, size, T, h, nh, b, s)
        for fields, fn in ks:
            sustain(run, fields, fn, args.idle_s, args.sustain_s, args.window_us)
        del ks
        if run.cuda:
            torch.cuda.empty_cache()


def _mix(run: Run, gemm, n_g: int, fn, reps: int, periods: int, gap: str, d: float,
         idle_s: float, g: int, period_ms: float = 2.0) -> None:
    """``periods`` periods of ``n_g`` GEMMs then ``reps`` calls of ``fn``, after ``idle_s``
    idle, issued back to back (the host stays ~40 periods ahead); a ``periods.csv`` row per 5
    periods (GEMM us and gap us between CUDA events)."""
    import torch
    case = f"{gap} P{period_ms:g} d{d:g}"
    rest(run, idle_s, f"mix idle {case}")
    run.sampler.label = f"mix {case}"
    marks = []
    for i in range(periods):
        s0 = timer_event(run.cuda)
        for _ in range(n_g):
            gemm()
        s1 = timer_event(run.cuda)
        marks.append((s0, s1))
        for _ in range(reps):
            fn()
        if run.cuda and i >= 40:
            marks[i - 40][1].synchronize()
    end = timer_event(run.cuda)
    if run.cuda:
        torch.cuda.synchronize()
    run.sampler.label = ""
    t = 0.0
    for j in range(0, periods, 5):
        gu = pu = 0.0
        cnt = 0
        for i in range(j, min(periods, j + 5)):
            nxt = marks[i + 1][0] if i + 1 < periods else end
            gu += elapsed_us(marks[i][0], marks[i][1])
            pu += elapsed_us(marks[i][1], nxt)
            cnt += 1
        run.periods.append({"case": f"{g}^3 bf16", "gap": gap, "period_ms": period_ms,
                            "duty_set": d, "t_ms": round(t / 1e3, 3), "periods": cnt,
                            "gemms": cnt * n_g, "gap_calls": cnt * reps,
                            "gemm_us": round(gu, 1), "gap_us": round(pu, 1),
                            "per_gemm_us": round(gu / (cnt * n_g), 3)})
        t += gu + pu
    last = run.periods[-1]
    _log(f"mix {case}: {n_g} GEMMs + {reps} calls; last {last['per_gemm_us']} us a GEMM, "
         f"{last['gap_us'] / max(1, last['gap_calls']):.1f} us a gap call")


def _gemm(run: Run, tiny: bool):
    import torch
    g = 64 if tiny else 4096
    a = torch.randn(g, g, device=run.device, dtype=run.dtype)
    bm = torch.randn(g, g, device=run.device, dtype=run.dtype)
    return g, lambda: torch.mm(a, bm)


def run_mixgap(run: Run, args) -> None:
    """Per element-wise kind: 2 ms periods, 4096^3 GEMMs for 0.7 of it, the kind's kernel
    repeated for the rest, issued back to back (the host stays ahead)."""
    tiny = args.tiny
    g, gemm = _gemm(run, tiny)
    T, h = (64, 32) if tiny else (16384, 2560)
    timer = kernels.Timer(run.cuda)
    g_us = timer(gemm, reps=20)[0]
    period_ms, d = 2.0, 0.7
    n_g = max(1, round(d * period_ms * 1e3 / g_us))
    for fields, fn in eltwise_kernels(run.device, run.dtype, "2.7b-b8", T, h):
        gap = f"{fields['kernel']}.{fields['layout']}"
        op_us = timer(fn, reps=20)[0]
        run.gapref.append({"gap": gap, "dev_us": round(op_us, 3), "ref": "warm"})
        reps = max(1, round((1 - d) * period_ms * 1e3 / op_us))
        periods = max(2, round(args.mix_s * 1e3 / period_ms))
        _mix(run, gemm, n_g, fn, reps, periods, gap, d, args.idle_s, g, period_ms)


def rested_us(run: Run, fn, idle_s: float, label: str, burst: float = 3000.0,
              ) -> tuple[float, float, int]:
    """(median us a call after the first, the first's, calls) of ``fn`` from a rested GPU:
    ``idle_s`` with nothing queued, a 1 ms spin, then calls for about ``burst`` us, each
    between CUDA events (:func:`.powerref.burst_us`)."""
    timer = kernels.Timer(run.cuda)
    est = max(1.0, timer(fn, reps=3, warmup=1)[0])
    reps = int(max(3, min(200, round(burst / est))))
    rest(run, idle_s, f"idle {label}")
    run.sampler.label = label
    ts = burst_us(run.cuda, fn, reps)
    run.sampler.label = ""
    return statistics.median(ts[1:]), ts[0], reps


def run_eltcap(run: Run, args) -> None:
    """Each element-wise kind rested, between GEMMs at four shares, rested again."""
    tiny = args.tiny
    g, gemm = _gemm(run, tiny)
    g_us, first, n = rested_us(run, gemm, args.idle_s, "rested gemm")
    run.gapref.append({"gap": f"gemm {g}^3", "dev_us": round(g_us, 3), "ref": "rested_before",
                       "first_us": round(first, 3), "calls": n})
    T, h = (64, 32) if tiny else (16384, 2560)
    period_ms = 2.0
    periods = max(2, round(args.mix_s * 1e3 / period_ms))
    for fields, fn in eltwise_kernels(run.device, run.dtype, "2.7b-b8", T, h):
        gap = f"{fields['kernel']}.{fields['layout']}"
        op_us, first, n = rested_us(run, fn, args.idle_s, f"rested {gap}")
        run.gapref.append({"gap": gap, "dev_us": round(op_us, 3), "ref": "rested_before",
                           "first_us": round(first, 3), "calls": n})
        for d in (0.3, 0.5, 0.7, 0.85):
            n_g = max(1, round(d * period_ms * 1e3 / g_us))
            reps = max(1, round((1 - d) * period_ms * 1e3 / op_us))
            _mix(run, gemm, n_g, fn, reps, periods, gap, d, args.idle_s, g, period_ms)
        op2, first, n = rested_us(run, fn, args.idle_s, f"rested {gap}")
        run.gapref.append({"gap": gap, "dev_us": round(op2, 3), "ref": "rested_after",
                           "first_us": round(first, 3), "calls": n})
        _log(f"eltcap {gap}: rested {op_us:.1f} us before, {op2:.1f} after")


def attention_cases(tiny: bool) -> tuple[list, set]:
    """(all (batch, seq, heads, head_dim) cases, the GPT models' among them)."""
    if tiny:
        return [(1, 64, 2, 32), (2, 128, 2, 80)], {(1, 64, 2, 32)}
    grid = {(b, s, nh, hd) for hd in (64, 80, 96, 112, 128) for s in (1024, 2048, 4096)
            for b, nh in ((1, 16), (4, 16), (2, 32))}
    models = {(b, s, nh, h // nh) for _, h, nh in MODELS.values() for s in (1024, 2048)
              for b in (1, 4, 8)}
    return sorted(grid | models), models


def run_attnparts(run: Run, args) -> None:
    cases, models = attention_cases(args.tiny)
    for (b, s, nh, hd) in cases:
        attention_case(run, args.idle_s, b, s, nh, hd, (b, s, nh, hd) in models)
        free_gpu(run.cuda)


def attention_case(run: Run, idle_s: float, b: int, s: int, nh: int, hd: int,
                   fused: bool) -> None:
    """One attnparts case: each variant after ``idle_s`` idle, timed under the profiler."""
    import torch
    import torch.nn.functional as F
    sw = run.sweep
    flops = 4.0 * b * s * s * nh * hd * 0.5
    dev, dt = run.device, run.dtype
    qkv = torch.randn(b, s, 3, nh, hd, device=dev, dtype=dt, requires_grad=True)
    qv, kv, vv = (qkv[:, :, j].transpose(1, 2) for j in range(3))
    qc, kc, vc = (torch.randn(b, nh, s, hd, device=dev, dtype=dt, requires_grad=True)
                  for _ in range(3))
    do = torch.randn(b, nh, s, hd, device=dev, dtype=dt)
    ov = F.scaled_dot_product_attention(qv, kv, vv, is_causal=True)
    oc = F.scaled_dot_product_attention(qc, kc, vc, is_causal=True)

    def clear():
        qkv.grad = None
    variants: list[tuple[str, Any, Any]] = [
        ("fwd", lambda: F.scaled_dot_product_attention(qv, kv, vv, is_causal=True), None),
        ("bwd", lambda: torch.autograd.grad(oc, (qc, kc, vc), do, retain_graph=True), None),
        ("bwd_views", lambda: torch.autograd.grad(ov, (qv, kv, vv), do, retain_graph=True),
         None)]
    if fused:
        variants.append(("bwd_fused", lambda: ov.backward(do, retain_graph=True), clear))
    base = {"group": "attention_rest", "op": "sdpa_causal", "batch": b, "seq": s,
            "heads": nh, "head_dim": hd, "flops": f"{flops:.6g}", "reps": 2}
    shape = f"{b}x{s}x{nh}x{hd}"
    n0 = len(sw.rows)
    for phase, fn, before in variants:
        label = f"attention {phase} {shape}"
        rest(run, idle_s, f"idle {label}")
        run.sampler.label = label
        t_s = round(time.monotonic() - run.sampler.t0, 3)
        ks, wall = kernels.profiled_kernels(fn, 2, run.cuda, before=before, warmup=2)
        run.sampler.label = ""
        run.attn_kernels += [{"case": shape, "phase": phase, "kernel": name[:160],
                              "us": round(us, 3)} for name, us in ks]
        by: dict[str, list[float]] = {}
        for name, us in ks:
            kind = kernels.kernel_kind(name) if phase == "bwd_fused" else "attention"
            by.setdefault(kind, []).append(us)
        att = by.pop("attention", [])
        sw.rows.append({**base, "phase": phase, "dev_us": round(sum(att) / 2, 3),
                        "host_us": round(wall, 3), "tensors": len(att) // 2,
                        "status": "profiler", "t_s": t_s,
                        "note": "rested; dev_us: the attention kernels' durations per call"})
        for kind, v in sorted(by.items()):
            sw.rows.append({**base, "op": f"split_{kind}", "phase": phase,
                            "dev_us": round(sum(v) / 2, 3), "tensors": len(v) // 2,
                            "status": "profiler", "t_s": t_s,
                            "note": "rested; the QKV split's kernels of this kind per call"})
    _log(f"attnparts {shape}: " + ", ".join(
        f"{r['phase']}{'' if r['op'] == 'sdpa_causal' else ' ' + r['op']} {r['dev_us']}"
        for r in sw.rows[n0:]))


def run_split_phase(run: Run, args) -> None:
    tokens = [(1, 64), (2, 64)] if args.tiny else [
        (b, s) for s in (1024, 2048) for b in (1, 2, 4, 8, 16) if b * s <= 32768]
    models = [(32, 2)] if args.tiny else [(h, nh) for _, h, nh in MODELS.values()]
    kernels.run_split(run.sweep, kernels.split_shapes(models, tokens))


def run_biasgrad(run: Run, args) -> None:
    hiddens = [32] if args.tiny else sorted({h for _, h, _ in MODELS.values()})
    tokens = [64, 128] if args.tiny else [1024, 2048, 4096, 8192, 16384, 32768]
    kernels.run_bias_grad(run.sweep, kernels.bias_shapes(hiddens, tokens))


def main(argv=None) -> int:
    ap = parser("powerstep", __doc__)
    ap.add_argument("--phases", default="sustain,mixgap")
    ap.add_argument("--idle-s", type=float, default=0.2)
    ap.add_argument("--sustain-s", type=float, default=0.55)
    ap.add_argument("--window-us", type=float, default=2000.0)
    ap.add_argument("--mix-s", type=float, default=1.0)
    ap.add_argument("--sample-ms", type=float, default=5.0)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "powerstep")
    sampler = Sampler(args.sample_ms / 1e3)
    with open(os.path.join(args.out, "nvml_env.txt"), "w") as fh:
        fh.write("\n".join(sampler.info) + "\n")
    run = Run(device, dtype, cuda, sampler, args.out)

    def flush() -> None:
        write_csv(os.path.join(args.out, "windows.csv"), WINDOW_COLUMNS, run.windows)
        write_csv(os.path.join(args.out, "periods.csv"), PERIOD_COLUMNS, run.periods)
        write_csv(os.path.join(args.out, "gapref.csv"), GAPREF_COLUMNS, run.gapref)
        write_csv(os.path.join(args.out, "clocks.csv"), CLOCK_COLUMNS, list(sampler.rows))
        if run.sweep.rows:
            write_csv(os.path.join(args.out, "kernels.csv"), KERNEL_COLUMNS, run.sweep.rows)
        if run.attn_kernels:
            write_csv(os.path.join(args.out, "attn_kernels.csv"), ATTN_KERNEL_COLUMNS,
                      run.attn_kernels)
    phases = {"sustain": run_sustain, "mixgap": run_mixgap, "attnparts": run_attnparts,
              "split": run_split_phase, "biasgrad": run_biasgrad, "eltcap": run_eltcap}
    failed: list[str] = []
    try:
        for name in (p.strip() for p in args.phases.split(",") if p.strip()):
            t1 = time.monotonic()
            if not attempt(name, failed, phases[name], run, args):
                sampler.label = ""
                free_gpu(cuda)
            flush()
            _log(f"{name}: done in {time.monotonic() - t1:.0f} s")
    finally:
        sampler.stop()
        flush()
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
