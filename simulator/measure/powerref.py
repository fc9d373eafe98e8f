"""Which clock the kernel sweep's GEMMs ran at, and what a GPT step's element-wise kernels draw.

    python -m simulator.measure.powerref --out DIR                      # a GPU (cuda:0)
    python -m simulator.measure.powerref --out DIR --device cpu --tiny  # a dry run

Phases (``--phases``, in this order; NVML sampled every ``--sample-ms`` throughout, with the
label of what ran: ``clocks.csv``):

* ``sweep``: the kernel sweep's GEMM phase as ``compute_run`` runs it
  (:func:`simulator.measure.kernels.run_gemm` over ``gemm_shapes`` of the seven GPT models at
  1024-32768 tokens and the grid: per shape forward, dgrad, wgrad, each a spin kernel then
  3-100 calls, about 40 ms, back to back). ``kernels.csv`` rows with ``note`` ``sweep`` and
  their index ``row``; the samples taken while a row ran are labelled ``row N``.
* ``cold``: each of those shapes' forward GEMM from a rested GPU: one untimed call, then
  ``--idle-s`` with nothing queued, a 1 ms spin, then calls for about ``--burst-us`` (at least
  2), each between CUDA events; ``dev_us`` the median of the calls after the first (``note``
  ``cold``; ``first_us`` the first).
* ``attention``: the attention fit's own timing (:func:`~.kernels.run_profiled_attention`,
  kernel durations under the profiler, the sweep's 42 cases; ``note`` ``sweep``), then each
  case again from a rested GPU (``--idle-s``, then the same profiler timing of 2 calls;
  ``note`` ``cold``).
* ``eltwise``: each memory-bound kernel of a GPT step (layer norm, GELU, dropout, add, the
  fp32 accumulation, zeroing and cast, the bias gradient, the unfused softmax, the fp32 cross
  entropy, fused AdamW, and a 256 MiB copy as powercap1 ran it) at two step sizes, and the
  fused attention, back to back for ``--eltwise-s`` after ``--idle-s``: ``power.csv`` (device
  time per call behind a spin, the loop's span per call, the median instantaneous power and
  SM clock over the run's second half).
* ``mix``: 2 ms periods of 4096^3 GEMMs for a share ``d`` and then GPT element-wise kernels
  (layer norm, GELU, dropout, add in turn; or 256 MiB copies), for ``--mix-s`` after idle:
  ``periods.csv`` as :mod:`.powercap`'s duty phase, with the element-wise calls per period.

Torch is imported inside functions only.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

from . import kernels
from .powercap import CLOCK_COLUMNS, Sampler, elapsed_us, timer_event
from .runstart import attempt, finish, free_gpu, parser, start_run
from .runstart import log as _log
from .train import MODELS, write_csv

KERNEL_COLUMNS = kernels.COLUMNS + ["row", "t0_s", "t1_s", "first_us"]
POWER_COLUMNS = ["op", "size", "numel", "calls", "dev_us", "span_us", "busy_share",
                 "power_w", "power_p10_w", "power_p90_w", "sm_mhz", "samples"]
PERIOD_COLUMNS = ["case", "gap", "period_ms", "duty_set", "t_ms", "periods", "gemms",
                  "gap_calls", "gemm_us", "gap_us", "per_gemm_us"]
SPIN_CLOCK_HZ = 1.98e9


class LabelledSweep(kernels.Sweep):
    """The sweep's own timing, each row's NVML samples labelled ``row N`` and its start and
    end on the sampler's clock, written with those columns."""

    def __init__(self, out, device, dtype, cuda, sampler: Sampler, log=_log):
        super().__init__(out, device, dtype, cuda, log=log)
        self.sampler = sampler
        self.note = ""

    def now(self) -> float:
        return round(time.monotonic() - self.sampler.t0, 4)

    def add(self, fields, fn, est_us, before=None, warmup=2):
        n = len(self.rows)
        self.sampler.label = f"row {n}"
        t0 = self.now()
        dev = super().add(fields, fn, est_us, before=before, warmup=warmup)
        self.rows[-1].update(row=n, t0_s=t0, t1_s=self.now(), note=self.note)
        self.sampler.label = ""
        return dev

    def flush(self):
        write_csv(self.path, KERNEL_COLUMNS, self.rows)


def burst_us(cuda: bool, fn, reps: int, spin_us: float = 1000.0) -> list[float]:
    """Per-call times of ``reps`` calls back to back behind a spin kernel (the host enqueues
    them while it runs), each between CUDA events."""
    import torch
    if not cuda:
        out = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e6)
        return out
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
    torch.cuda._sleep(int(spin_us * SPIN_CLOCK_HZ / 1e6))
    ev[0].record()
    for i in range(reps):
        fn()
        ev[i + 1].record()
    torch.cuda.synchronize()
    return [ev[i].elapsed_time(ev[i + 1]) * 1e3 for i in range(reps)]


def rest(sw: LabelledSweep, idle_s: float, label: str) -> None:
    """Nothing queued and the host asleep for ``idle_s`` (the samples labelled ``label``)."""
    if sw.cuda:
        import torch
        torch.cuda.synchronize()
    sw.sampler.label = label
    time.sleep(idle_s)


def run_cold_gemm(sw: LabelledSweep, shapes, idle_s: float, burst: float) -> None:
    import torch
    import torch.nn.functional as F
    for (m, n, k) in shapes:
        flops = 2.0 * m * n * k
        est = flops / 6e8 + 10
        try:
            x = torch.randn(m, k, device=sw.device, dtype=sw.dtype)
            w = torch.randn(n, k, device=sw.device, dtype=sw.dtype)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        fn = lambda x=x, w=w: F.linear(x, w)  # noqa: E731
        reps = int(max(2, min(50, round(burst / est))))
        fn()
        n_row = len(sw.rows)
        rest(sw, idle_s, f"cold idle {n_row}")
        sw.sampler.label = f"row {n_row}"
        t0 = sw.now()
        ts = burst_us(sw.cuda, fn, reps)
        sw.rows.append({"group": "gemm", "op": "linear", "phase": "fwd", "m": m, "n": n,
                        "k": k, "flops": f"{flops:.6g}", "bytes": 2 * (m * k + n * k + m * n),
                        "dtype": "bfloat16", "dev_us": round(statistics.median(ts[1:]), 3),
                        "first_us": round(ts[0], 3), "reps": reps, "status": "ok",
                        "note": "cold", "row": n_row, "t0_s": t0, "t1_s": sw.now()})
        sw.sampler.label = ""
    sw.flush()


def attention_fns(qkv, do):
    """(forward, forward + backward, clear) of causal SDPA over a fused QKV, as the sweep
    times it."""
    import torch.nn.functional as F

    def f():
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def clear():
        qkv.grad = None
    return f, lambda: f().backward(do), clear


def run_cold_attention(sw: LabelledSweep, cases, idle_s: float) -> None:
    import torch
    for (b, s, nh, hd) in cases:
        flops = 4.0 * b * s * s * nh * hd * 0.5
        qkv = torch.randn(b, s, 3, nh, hd, device=sw.device, dtype=sw.dtype, requires_grad=True)
        do = torch.randn(b, nh, s, hd, device=sw.device, dtype=sw.dtype)
        f, fb, clear = attention_fns(qkv, do)
        for phase, fn in (("fwd", f), ("fwdbwd", fb)):
            n_row = len(sw.rows)
            rest(sw, idle_s, f"cold idle {n_row}")
            sw.sampler.label = f"row {n_row}"
            t0 = sw.now()
            d, c, wall = kernels._profiled_us(fn, 2, sw.cuda, before=clear)
            sw.rows.append({"group": "attention_prof", "op": "sdpa_causal", "phase": phase,
                            "batch": b, "seq": s, "heads": nh, "head_dim": hd,
                            "flops": f"{flops:.6g}", "reps": 2, "dev_us": round(d, 3),
                            "host_us": round(wall, 3), "tensors": c, "status": "profiler",
                            "note": "cold", "row": n_row, "t0_s": t0, "t1_s": sw.now()})
            sw.sampler.label = ""
    sw.flush()


def _step_ops(device, dtype, size, T, h, b, nh, s, params, vocab, tiny):
    """(op, size, numel, fn) of one step size's memory-bound kernels."""
    import torch
    import torch.nn.functional as F
    x = torch.randn(T, h, device=device, dtype=dtype, requires_grad=True)
    x4 = torch.randn(T, 4 * h, device=device, dtype=dtype, requires_grad=True)
    y2 = torch.randn(T, h, device=device, dtype=dtype)
    dy = torch.randn(T, h, device=device, dtype=dtype)
    dy4 = torch.randn(T, 4 * h, device=device, dtype=dtype)
    w = torch.ones(h, device=device, dtype=dtype, requires_grad=True)
    bb = torch.zeros(h, device=device, dtype=dtype, requires_grad=True)
    g32 = torch.zeros(T, h, device=device, dtype=torch.float32)
    xd = x.detach()
    ce_t = min(T, 8192)
    logits = torch.randn(ce_t, vocab, device=device, dtype=dtype, requires_grad=True)
    labels = torch.randint(0, vocab, (ce_t,), device=device)
    sm_b = 1 if tiny else max(1, b // 4)      # a quarter of the micro-batch's scores: memory
    scores = torch.randn(sm_b * nh, s, s, device=device, dtype=dtype, requires_grad=True)
    dsc = torch.randn_like(scores)

    def clear():
        x.grad = x4.grad = w.grad = bb.grad = logits.grad = scores.grad = None
    ops = [
        ("layer_norm.fwd", T * h, lambda: F.layer_norm(x, (h,), w, bb, 1e-5)),
        ("layer_norm.fwdbwd", T * h,
         lambda: (clear(), F.layer_norm(x, (h,), w, bb, 1e-5).backward(dy))),
        ("gelu.fwd", 4 * T * h, lambda: F.gelu(x4, approximate="tanh")),
        ("gelu.fwdbwd", 4 * T * h,
         lambda: (clear(), F.gelu(x4, approximate="tanh").backward(dy4))),
        ("dropout.fwd", T * h, lambda: F.dropout(x, 0.1, training=True)),
        ("dropout.fwdbwd", T * h,
         lambda: (clear(), F.dropout(x, 0.1, training=True).backward(dy))),
        ("add.fwd", T * h, lambda: xd + y2),
        ("accum_fp32", T * h, lambda: g32.add_(xd)),
        ("zero_fp32", T * h, lambda: g32.zero_()),
        ("float.fwd", T * h, lambda: xd.float()),
        ("bias_grad", 4 * T * h, lambda: dy4.sum(0)),
        ("softmax.fwd", scores.numel(), lambda: torch.softmax(scores, -1)),
        ("softmax.fwdbwd", scores.numel(),
         lambda: (clear(), torch.softmax(scores, -1).backward(dsc))),
        ("cross_entropy.fwdbwd", ce_t * vocab,
         lambda: (clear(), F.cross_entropy(logits.float(), labels).backward())),
    ]
    return [(op, size, numel, fn) for op, numel, fn in ops]


def _adam(device, size, params, tiny):
    """Fused AdamW over ``params`` fp32 parameters in 64 tensors (Megatron's main params)."""
    import torch
    n_t = 4 if tiny else 64
    ps = [torch.zeros(params // n_t, device=device, dtype=torch.float32, requires_grad=True)
          for _ in range(n_t)]
    for p in ps:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.AdamW(ps, lr=1e-4, fused=device.type == "cuda")
    return [("adamw_fused", size, params, opt.step)]


def _copy_and_attention(device, dtype, tiny):
    import torch
    import torch.nn.functional as F
    n = 2 ** 12 if tiny else 2 ** 27
    a = torch.randn(n, device=device, dtype=dtype)
    c = torch.empty_like(a)
    bq, sq, hq, dq = (1, 64, 2, 32) if tiny else (8, 2048, 32, 80)
    qkv = torch.randn(bq, sq, 3, hq, dq, device=device, dtype=dtype)
    q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
    return [("copy_256MiB", "copy", n, lambda: c.copy_(a)),
            ("sdpa_causal.fwd", "2.7b-b8", bq * sq * hq * dq,
             lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))]


def eltwise_ops(device, dtype, tiny: bool):
    """(op, size, numel, fn) of a GPT step's memory-bound kernels at two step sizes: a 2.7B
    layer at micro-batch 8 (16384 tokens, hidden 2560) and a 1.3B one at micro-batch 2 (4096
    tokens, hidden 2048); the unfused softmax over (batch x heads, s, s) scores, the cross
    entropy over the padded vocabulary, AdamW over 1.34B / 0.34B fp32 parameters; then a
    256 MiB copy and the 2.7B's fused attention. Each size's tensors live while its ops run."""
    import torch
    sizes = ([("tiny", 64, 32, 2, 2, 64, 4096)] if tiny else
             [("2.7b-b8", 16384, 2560, 8, 32, 2048, 2 ** 30 + 2 ** 28),
              ("1.3b-b2", 4096, 2048, 2, 16, 2048, 2 ** 28 + 2 ** 26)])
    vocab = 512 if tiny else 50304
    for size, T, h, b, nh, s, params in sizes:
        yield from _step_ops(device, dtype, size, T, h, b, nh, s, params, vocab, tiny)
        yield from _adam(device, size, params, tiny)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    yield from _copy_and_attention(device, dtype, tiny)


def run_eltwise(sw: LabelledSweep, idle_s: float, seconds: float, tiny: bool,
                rows: list[dict]) -> None:
    import torch
    for op, size, numel, fn in eltwise_ops(sw.device, sw.dtype, tiny):
        timer = kernels.Timer(sw.cuda)
        for _ in range(2):
            fn()
        dev1, _, _ = timer(fn, reps=10, warmup=1)
        calls = max(4, round(seconds * 1e6 / max(dev1, 1.0)))
        label = f"eltwise {op} {size}"
        rest(sw, idle_s, f"idle {label}")
        sw.sampler.label = label
        t_start = time.monotonic()
        marks = []
        e0 = timer_event(sw.cuda)
        chunk = max(1, calls // 100)
        for i in range(calls):
            fn()
            if (i + 1) % chunk == 0:
                marks.append(timer_event(sw.cuda))
                if sw.cuda and len(marks) > 20:
                    marks[-20].synchronize()   # keep the host within ~20 chunks of the GPU
        e1 = timer_event(sw.cuda)
        if sw.cuda:
            torch.cuda.synchronize()
        t_end = time.monotonic()
        sw.sampler.label = ""
        span = (e0.elapsed_time(e1) * 1e3 if sw.cuda else (t_end - t_start) * 1e6)
        mid = (t_start + t_end) / 2 - sw.sampler.t0
        samples = [r for r in sw.sampler.rows if r["label"] == label and r["t_s"] >= mid
                   and r["power_instant_w"] != ""]
        pw = [float(r["power_instant_w"]) for r in samples]
        mhz = [float(r["sm_mhz"]) for r in samples]
        row = {"op": op, "size": size, "numel": numel, "calls": calls,
               "dev_us": round(dev1, 3), "span_us": round(span / calls, 3),
               "busy_share": round(min(1.0, dev1 * calls / span), 3) if span > 0 else "",
               "samples": len(pw)}
        if pw:
            q = statistics.quantiles(pw, n=10) if len(pw) > 1 else [pw[0]] * 9
            row.update(power_w=round(statistics.median(pw), 1), power_p10_w=round(q[0], 1),
                       power_p90_w=round(q[-1], 1), sm_mhz=round(statistics.median(mhz)))
        rows.append(row)
        _log(f"eltwise {op} {size}: {dev1:.1f} us a call, busy {row['busy_share']}, "
             f"{row.get('power_w', '-')} W, {row.get('sm_mhz', '-')} MHz")


def run_mix(sw: LabelledSweep, idle_s: float, seconds: float, tiny: bool,
            rows: list[dict]) -> None:
    """2 ms periods: 4096^3 GEMMs for a share ``d``, then element-wise kernels (GPT's, in turn,
    or copies) until the period is full, issued back to back (the host stays ahead)."""
    import torch
    import torch.nn.functional as F
    dev, dt = sw.device, sw.dtype
    g = 64 if tiny else 4096
    a = torch.randn(g, g, device=dev, dtype=dt)
    bm = torch.randn(g, g, device=dev, dtype=dt)
    T, h = (64, 32) if tiny else (16384, 2560)
    x = torch.randn(T, h, device=dev, dtype=dt)
    x4 = torch.randn(T, 4 * h, device=dev, dtype=dt)
    y2 = torch.randn(T, h, device=dev, dtype=dt)
    w = torch.ones(h, device=dev, dtype=dt)
    bb = torch.zeros(h, device=dev, dtype=dt)
    n = 2 ** 12 if tiny else 2 ** 27
    ca, cb = torch.randn(n, device=dev, dtype=dt), torch.empty(n, device=dev, dtype=dt)
    gpt_ops = [lambda: F.layer_norm(x, (h,), w, bb, 1e-5),
               lambda: F.gelu(x4, approximate="tanh"),
               lambda: F.dropout(x, 0.1, training=True), lambda: x + y2]
    gemm = lambda: torch.mm(a, bm)  # noqa: E731
    timer = kernels.Timer(sw.cuda)
    g_us = timer(gemm, reps=20)[0]
    op_us = [timer(f, reps=20)[0] for f in gpt_ops]
    copy_us = timer(lambda: cb.copy_(ca), reps=10)[0]
    _log(f"mix: GEMM {g_us:.1f} us, GPT element-wise {[round(u, 1) for u in op_us]} us, "
         f"copy {copy_us:.1f} us (warm)")
    period_ms = 2.0
    for gap, d in (("gpt", 0.5), ("gpt", 0.7), ("gpt", 0.85), ("copy", 0.7)):
        n_g = max(1, round(d * period_ms * 1e3 / g_us))
        gap_us = (1 - d) * period_ms * 1e3
        if gap == "gpt":
            seq, acc, i = [], 0.0, 0
            while acc < gap_us:
                seq.append(gpt_ops[i % 4])
                acc += op_us[i % 4]
                i += 1
        else:
            seq = [lambda: cb.copy_(ca)] * max(1, round(gap_us / copy_us))
        periods = max(2, round(seconds * 1e3 / period_ms))
        case = f"{gap} P{period_ms:g} d{d:g}"
        rest(sw, idle_s, f"mix idle {case}")
        sw.sampler.label = f"mix {case}"
        marks = []
        for i in range(periods):
            s0 = timer_event(sw.cuda)
            for _ in range(n_g):
                gemm()
            s1 = timer_event(sw.cuda)
            marks.append((s0, s1))
            for f in seq:
                f()
            if sw.cuda and i >= 40:
                marks[i - 40][1].synchronize()
        end = timer_event(sw.cuda)
        if sw.cuda:
            torch.cuda.synchronize()
        sw.sampler.label = ""
        group = 5
        t = 0.0
        for j in range(0, periods, group):
            gu = pu = 0.0
            cnt = 0
            for i in range(j, min(periods, j + group)):
                nxt = marks[i + 1][0] if i + 1 < periods else end
                gu += elapsed_us(marks[i][0], marks[i][1])
                pu += elapsed_us(marks[i][1], nxt)
                cnt += 1
            rows.append({"case": f"{g}^3 bf16", "gap": gap, "period_ms": period_ms,
                         "duty_set": d, "t_ms": round(t / 1e3, 3), "periods": cnt,
                         "gemms": cnt * n_g, "gap_calls": cnt * len(seq),
                         "gemm_us": round(gu, 1), "gap_us": round(pu, 1),
                         "per_gemm_us": round(gu / (cnt * n_g), 3)})
            t += gu + pu
        _log(f"mix {case}: {periods} periods, {n_g} GEMMs + {len(seq)} kernels each, last "
             f"{rows[-1]['per_gemm_us']} us a GEMM")


def main(argv=None) -> int:
    ap = parser("powerref", __doc__)
    ap.add_argument("--phases", default="sweep,cold,attention,eltwise,mix")
    ap.add_argument("--idle-s", type=float, default=0.2)
    ap.add_argument("--burst-us", type=float, default=3000.0)
    ap.add_argument("--eltwise-s", type=float, default=0.5)
    ap.add_argument("--mix-s", type=float, default=1.2)
    ap.add_argument("--sample-ms", type=float, default=5.0)
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "powerref")
    sampler = Sampler(args.sample_ms / 1e3)
    with open(os.path.join(args.out, "nvml_env.txt"), "w") as fh:
        fh.write("\n".join(sampler.info) + "\n")
    sw = LabelledSweep(args.out, device, dtype, cuda, sampler)
    tiny = args.tiny
    models = [(64, 256, 512)] if tiny else [(h, 4 * h, 50304) for _, h, _ in MODELS.values()]
    tokens = [64, 256] if tiny else [1024, 2048, 4096, 8192, 16384, 32768]
    shapes = kernels.gemm_shapes(models, tokens, grid=not tiny)
    att = [(1, 64, 2, 32), (2, 128, 4, 32)] if tiny else sorted(
        {(b, s, nh, h // nh) for _, h, nh in MODELS.values() for s in (1024, 2048)
         for b in (1, 4, 16)})
    power_rows: list[dict] = []
    period_rows: list[dict] = []

    def run_phase(name: str) -> None:
        if name == "sweep":
            sw.note = "sweep"
            kernels.run_gemm(sw, shapes)
        elif name == "cold":
            run_cold_gemm(sw, shapes, args.idle_s, args.burst_us)
        elif name == "attention":
            sampler.label = "attention sweep"
            n0 = len(sw.rows)
            kernels.run_profiled_attention(sw, att)
            for r in sw.rows[n0:]:
                r["note"] = "sweep"
            sampler.label = ""
            run_cold_attention(sw, att, args.idle_s)
        elif name == "eltwise":
            run_eltwise(sw, args.idle_s, args.eltwise_s, tiny, power_rows)
        elif name == "mix":
            run_mix(sw, args.idle_s, args.mix_s, tiny, period_rows)

    def flush() -> None:
        sw.flush()
        write_csv(os.path.join(args.out, "power.csv"), POWER_COLUMNS, power_rows)
        write_csv(os.path.join(args.out, "periods.csv"), PERIOD_COLUMNS, period_rows)
        write_csv(os.path.join(args.out, "clocks.csv"), CLOCK_COLUMNS, list(sampler.rows))
    failed: list[str] = []
    try:
        for name in (p.strip() for p in args.phases.split(",") if p.strip()):
            t1 = time.monotonic()
            if not attempt(name, failed, run_phase, name):
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
