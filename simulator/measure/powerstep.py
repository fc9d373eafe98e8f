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

Torch is imported inside functions only.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from . import kernels
from .powercap import CLOCK_COLUMNS, Sampler, elapsed_us, timer_event
from .powerref import PERIOD_COLUMNS
from .runstart import attempt, finish, free_gpu, parser, start_run
from .runstart import log as _log
from .train import write_csv

WINDOW_COLUMNS = ["kernel", "size", "layout", "m", "n", "k", "t_ms", "calls", "per_call_us"]
GAPREF_COLUMNS = ["gap", "dev_us"]
#: (size, tokens, hidden, heads, micro-batch, seq) of the step sizes whose kernels run
SIZES = (("350m-b16", 16384, 1024, 16, 16, 1024), ("760m-b4", 8192, 1536, 16, 4, 2048),
         ("1.3b-b4", 8192, 2048, 16, 4, 2048), ("2.7b-b4", 8192, 2560, 32, 4, 2048),
         ("6.7b-b1", 2048, 4096, 32, 1, 2048))
TINY_SIZES = (("tiny", 64, 32, 2, 1, 64),)


class Run:
    def __init__(self, device, dtype, cuda, sampler: Sampler):
        self.device, self.dtype, self.cuda, self.sampler = device, dtype, cuda, sampler
        self.windows: list[dict] = []
        self.periods: list[dict] = []
        self.gapref: list[dict] = []


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


def run_mixgap(run: Run, args) -> None:
    """Per element-wise kind: 2 ms periods, 4096^3 GEMMs for 0.7 of it, the kind's kernel
    repeated for the rest, issued back to back (the host stays ahead)."""
    import torch
    tiny = args.tiny
    g = 64 if tiny else 4096
    a = torch.randn(g, g, device=run.device, dtype=run.dtype)
    bm = torch.randn(g, g, device=run.device, dtype=run.dtype)
    T, h = (64, 32) if tiny else (16384, 2560)
    gemm = lambda: torch.mm(a, bm)  # noqa: E731
    timer = kernels.Timer(run.cuda)
    g_us = timer(gemm, reps=20)[0]
    period_ms, d = 2.0, 0.7
    n_g = max(1, round(d * period_ms * 1e3 / g_us))
    for fields, fn in eltwise_kernels(run.device, run.dtype, "2.7b-b8", T, h):
        gap = f"{fields['kernel']}.{fields['layout']}"
        op_us = timer(fn, reps=20)[0]
        run.gapref.append({"gap": gap, "dev_us": round(op_us, 3)})
        reps = max(1, round((1 - d) * period_ms * 1e3 / op_us))
        periods = max(2, round(args.mix_s * 1e3 / period_ms))
        case = f"{gap} P{period_ms:g} d{d:g}"
        rest(run, args.idle_s, f"mix idle {case}")
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
        _log(f"mixgap {case}: GEMM {g_us:.1f} us x {n_g}, {reps} x {op_us:.1f} us; last "
             f"{run.periods[-1]['per_gemm_us']} us a GEMM, "
             f"{run.periods[-1]['gap_us'] / run.periods[-1]['gap_calls']:.1f} us a gap call")


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
    run = Run(device, dtype, cuda, sampler)

    def flush() -> None:
        write_csv(os.path.join(args.out, "windows.csv"), WINDOW_COLUMNS, run.windows)
        write_csv(os.path.join(args.out, "periods.csv"), PERIOD_COLUMNS, run.periods)
        write_csv(os.path.join(args.out, "gapref.csv"), GAPREF_COLUMNS, run.gapref)
        write_csv(os.path.join(args.out, "clocks.csv"), CLOCK_COLUMNS, list(sampler.rows))
    phases = {"sustain": run_sustain, "mixgap": run_mixgap}
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
