"""GPU-bound training steps on one GPU: what their kernels take inside a step, and the kernels
that price them (GEMMs by layout and dtype, fp16's kernels, a sustained load).

    python -m simulator.measure.gpubound --out DIR              # a GPU (cuda:0)
    python -m simulator.measure.gpubound --out DIR --device cpu --tiny   # a dry run

Phases (``--phases``, in this order):

* ``steps``: GPT steps of :mod:`simulator.measure.gpt` (bf16, and fp16 with dynamic loss
  scaling as :class:`simulator.measure.hostcause.FP16Step`): warm-up, timed steps
  (``steps.csv``, with the GPU's clocks and power sampled: ``clocks.csv``), then one step
  under ``torch.profiler`` with shapes: ``ops.csv`` (every op by input shapes: count, its own
  kernels' device time) and ``profile.csv`` (every kernel by name); then the optimizer step
  alone, from a GPU just spun (``torch.cuda._sleep``) and right behind a burst of GEMMs
  (``kernels.csv`` group ``opt_context``). ``--cases`` can also name the
  :data:`RECOMPUTE_CASES` (``...-rc-bf16``: every layer checkpointed, beside the same step
  without it; traces/h200/compute/recompute1).
* ``gemm``: GEMMs in the three layouts autograd issues for ``F.linear`` (forward ``x W^T``,
  dgrad ``dy W``, wgrad ``dy^T x``), bf16 and fp16 one after the other per shape, each
  operand set rotated over enough copies to exceed the L2 cache (group ``gemm_layout``;
  ``m, n, k`` are the forward's, as in :func:`simulator.measure.kernels.run_gemm`).
* ``sustain``: one GEMM back to back for seconds, timed in windows, clocks sampled (group
  ``sustain``): whether a long GPU-bound stretch runs at the short sweep's rate.
* ``unscale``: fp16's loss-scaler pass (``torch._amp_foreach_non_finite_check_and_unscale_``)
  and the bf16 / fp16 gradients' fp32 accumulation over the models' parameter tensors
  (group ``fp16_opt``).
* ``eltwise16``, ``attention16``: the element-wise kernels and causal SDPA in fp16 beside
  bf16 (groups ``eltwise``, ``attention``; ``dtype`` says which).

Device times use :class:`simulator.measure.kernels.Timer` (a spin kernel, then the calls back
to back between CUDA events). Torch is imported inside functions only.
"""
from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from typing import Any

from .powercap import Sampler
from .runstart import finish, free_gpu, parser, start_run
from .runstart import log as _log
from .train import vocab_positions, write_csv

OP_COLUMNS = ["case", "op", "input_shapes", "count", "device_us", "device_total_us", "cpu_us"]
STEP_COLUMNS = ["case", "dtype", "layers", "hidden", "heads", "seq", "mbs", "ga", "recompute",
                "params",
                "step_ms", "step_min_ms", "step_max_ms", "fwdbwd_ms", "optimizer_ms",
                "steps", "warmup", "max_mem_gib", "loss_first", "loss_last", "status"]
CLOCK_COLUMNS = ["label", "t_s", "sm_mhz", "mem_mhz", "power_w", "temp_c", "reasons"]
L2_BYTES = 60 * 2 ** 20   # H200: 50 MiB of L2; rotate over more than that

# model, seq, mbs, ga, dtype[, full recompute]
STEP_CASES = [("gpt-1.3b", 2048, 4, 1, "bf16"), ("gpt-1.3b", 2048, 4, 1, "fp16"),
              ("gpt-760m", 2048, 4, 1, "bf16"), ("gpt-760m", 2048, 4, 1, "fp16"),
              ("gpt-2.7b", 2048, 1, 1, "bf16"), ("gpt-4b", 2048, 1, 1, "bf16"),
              ("gpt-6.7b", 2048, 1, 1, "bf16")]
# run only when ``--cases`` names them: full recompute (every layer checkpointed) beside the
# same model and micro-batch without it, and the recompute steps collsim validate compares
RECOMPUTE_CASES = [("gpt-2.7b", 2048, 4, 1, "bf16", False), ("gpt-2.7b", 2048, 4, 1, "bf16", True),
                   ("gpt-2.7b", 2048, 8, 1, "bf16", True), ("gpt-6.7b", 2048, 1, 1, "bf16", True),
                   ("gpt-6.7b", 2048, 2, 1, "bf16", True), ("gpt-4b", 2048, 4, 1, "bf16", True),
                   ("gpt-1.3b", 2048, 8, 1, "bf16", True)]


def _step_case_name(c: tuple) -> str:
    """``gpt-2.7b-s2048-b4-bf16``, ``...-b4-rc-bf16`` with full recompute."""
    from .train import case_name
    rc = bool(c[5]) if len(c) > 5 else False
    return f"{case_name(c[0], c[1], c[2], c[3], rc)}-{c[4]}"


def _dtype(name: str):
    import torch
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[name]


# ------------------------------------------------------------------------- steps

def _one_step(model, opt, fp16, batches, mark=None):
    """One training step; ``mark()`` (if given) runs between the last backward and the
    optimizer, where the timed loop records its middle event."""
    import torch
    opt.zero_grad()
    loss = None
    for ids, tgt in batches:
        loss = model.loss(ids, tgt) / len(batches)
        if fp16 is not None:
            loss = loss * fp16.scale
        loss.backward()
        opt.accumulate()
    if mark is not None:
        mark()
    with torch.no_grad():
        if fp16 is not None:
            fp16.finish()
        else:
            opt.step()
    return loss


def _profile_rows(case: str, prof) -> tuple[list[dict], list[dict]]:
    """(ops rows by input shapes, kernel rows by name) of a finished profiler."""
    def dev(e, total=False):
        name = "device_time_total" if total else "self_device_time_total"
        v = getattr(e, name, None)
        if v is None:
            v = getattr(e, name.replace("device", "cuda"), 0)
        return float(v or 0)
    ops, kern = [], []
    for e in prof.key_averages(group_by_input_shape=True):
        d = dev(e)
        cpu_type = "CPU" in str(getattr(e, "device_type", "CPU"))
        if cpu_type and (d > 0 or dev(e, True) > 0):
            ops.append({"case": case, "op": e.key[:120], "input_shapes": str(e.input_shapes)[:300],
                        "count": e.count, "device_us": round(d, 3),
                        "device_total_us": round(dev(e, True), 3),
                        "cpu_us": round(float(getattr(e, "self_cpu_time_total", 0) or 0), 3)})
    for e in prof.key_averages():
        d = dev(e)
        if d > 0 and "CPU" not in str(getattr(e, "device_type", "")):
            kern.append({"case": case, "kernel": e.key[:200], "count": e.count,
                         "device_us": round(d, 3), "device_type": "CUDA", "cpu_us": 0.0})
    return ops, kern


def _opt_context(case: str, opt, fp16, sw, cuda: bool, reps: int = 3) -> list[dict]:
    """The optimizer step alone: after a 100 ms spin, and right behind 150 ms of GEMMs."""
    import torch
    if not cuda:
        return []
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    rows = []
    t_mm = None
    for mode in ("spin", "gemm") * reps:
        torch.cuda.synchronize()
        if mode == "spin":
            torch.cuda._sleep(int(100_000 * sw.timer.clock_hz / 1e6))
        else:
            if t_mm is None:   # time one 4096^3 GEMM to size the burst
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                for _ in range(10):
                    a @ a
                e1.record()
                torch.cuda.synchronize()
                t_mm = max(1.0, e0.elapsed_time(e1) * 1e3 / 10)
            for _ in range(int(150_000 / t_mm)):
                a @ a
        s0, s1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s0.record()
        with torch.no_grad():
            if fp16 is not None:
                fp16.finish()
            else:
                opt.step()
        s1.record()
        torch.cuda.synchronize()
        rows.append({"group": "opt_context", "op": "step", "phase": mode,
                     "numel": opt.model.numel, "tensors": len(opt.model.names),
                     "dev_us": round(s0.elapsed_time(s1) * 1e3, 3), "reps": 1,
                     "status": "ok", "note": f"case {case}; after a {mode}"})
    del a
    return rows


def run_steps(args, device, cuda, sw, clocks, out_rows, ops_rows, kern_rows, t_end) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from . import train
    from .gpt import GPTModel, MegatronLikeOptimizer, param_count
    from .hostcause import FP16Step
    vocab, maxpos = train.vocab_positions(args.tiny)
    cases: list[tuple] = list(STEP_CASES)
    if args.tiny:
        train.MODELS.update({"tiny": (2, 64, 4)})
        cases = [("tiny", 64, 2, 1, "bf16"), ("tiny", 64, 2, 1, "fp16"),
                 ("tiny", 64, 2, 1, "bf16", True)]
    if args.cases:
        want = args.cases.split(",")
        pool = cases + ([] if args.tiny else RECOMPUTE_CASES)
        named = {_step_case_name(c): c for c in pool}
        cases = [named[w] for w in want if w in named]   # in the order asked
    for c in cases:
        name, seq, mbs, ga, dt = c[:5]
        rc = bool(c[5]) if len(c) > 5 else False
        if time.monotonic() > t_end:
            _log(f"steps: budget spent before {name} {dt}")
            return
        L, h, heads = train.MODELS[name]
        case = _step_case_name(c)
        row: dict[str, Any] = {"case": case, "dtype": dt, "layers": L, "hidden": h,
                               "heads": heads, "seq": seq, "mbs": mbs, "ga": ga,
                               "recompute": int(rc),
                               "params": param_count(L, h, 4 * h, vocab, maxpos),
                               "steps": args.steps, "warmup": 2}
        model = opt = fp16 = batches = None
        try:
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            model = GPTModel(L, h, 4 * h, heads, vocab, maxpos, device, _dtype(dt),
                             hidden_dropout=0.1, recompute=rc)
            opt = MegatronLikeOptimizer(model)
            fp16 = FP16Step(opt, device) if dt == "fp16" else None
            batches = train.token_batches(vocab, mbs, seq, ga, device)
            losses = [float(_one_step(model, opt, fp16, batches).detach())
                      / (float(fp16.scale) if fp16 else 1.0) for _ in range(2)]
            times, fb, op = [], [], []
            clocks.label = case
            for _ in range(args.steps):
                if cuda:
                    torch.cuda.synchronize()
                    e = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
                t0 = time.perf_counter()
                if cuda:
                    e[0].record()
                loss = _one_step(model, opt, fp16, batches,
                                 mark=e[1].record if cuda else None)
                if cuda:
                    e[2].record()
                    torch.cuda.synchronize()
                    fb.append(e[0].elapsed_time(e[1]))
                    op.append(e[1].elapsed_time(e[2]))
                times.append((time.perf_counter() - t0) * 1e3)
                assert loss is not None
                losses.append(float(loss.detach()) / (float(fp16.scale) if fp16 else 1.0))
            clocks.label = ""
            row.update(step_ms=round(statistics.median(times), 4),
                       step_min_ms=round(min(times), 4), step_max_ms=round(max(times), 4),
                       fwdbwd_ms=round(statistics.median(fb), 4) if fb else "",
                       optimizer_ms=round(statistics.median(op), 4) if op else "",
                       loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4),
                       status="ok")
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            with profile(activities=acts, record_shapes=True) as prof:
                _one_step(model, opt, fp16, batches)
                if cuda:
                    torch.cuda.synchronize()
            o, k = _profile_rows(case, prof)
            ops_rows.extend(o)
            kern_rows.extend(k)
            sw.rows.extend(_opt_context(case, opt, fp16, sw, cuda))
            if cuda:
                row["max_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
            _log(f"steps {case}: {row['step_ms']} ms (fwd+bwd {row.get('fwdbwd_ms')}, "
                 f"optimizer {row.get('optimizer_ms')}), {len(o)} op rows")
        except torch.cuda.OutOfMemoryError as exc:
            row["status"] = "oom"
            _log(f"steps {case}: out of memory ({str(exc).splitlines()[0][:100]})")
        finally:
            clocks.label = ""
            del model, opt, fp16, batches
            free_gpu(cuda)
        out_rows.append(row)
        write_csv(os.path.join(args.out, "steps.csv"), STEP_COLUMNS, out_rows)
        write_csv(os.path.join(args.out, "ops.csv"), OP_COLUMNS, ops_rows)
        from .train import PROFILE_COLUMNS
        write_csv(os.path.join(args.out, "profile.csv"), PROFILE_COLUMNS, kern_rows)
        sw.flush()


# ------------------------------------------------------------------------- kernels

def layout_shapes(tiny: bool) -> list[tuple[int, int, int]]:
    """Forward (m, n, k) = (tokens, out, in) of the layouts phase: the dense GPTs' layers and
    output layer at 2048-8192 tokens (hidden 1536-4096), Mixtral-like experts (hidden 4096,
    ffn 14336) at 256-8192 tokens, and a grid of few tokens (the wgrad's short reduction)."""
    if tiny:
        return [(64, 128, 64), (32, 256, 128)]
    shapes = set()
    for h in (1536, 2048, 2560, 3072, 4096):
        for T in (2048, 4096, 8192):
            shapes.update({(T, 3 * h, h), (T, h, h), (T, 4 * h, h), (T, h, 4 * h)})
        shapes.add((2048, 50304, h))
    for T in (256, 512, 1024, 2048, 4096, 8192):
        shapes.update({(T, 14336, 4096), (T, 4096, 14336)})
    for T in (128, 256, 512, 1024):
        for n in (4096, 16384):
            for k in (1024, 4096):
                shapes.add((T, n, k))
    return sorted(shapes)


def run_gemm_layouts(sw, shapes) -> None:
    import torch
    import torch.nn.functional as F
    dev = sw.device
    for (m, n, k) in shapes:
        if sw.over():
            sw.log(f"gemm: time budget spent at {m}x{n}x{k}")
            break
        flops = 2.0 * m * n * k
        est = flops / 6e8 + 10
        per_set = 2 * (m * k + n * k + m * n)
        sets_n = max(1, min(8, -(-L2_BYTES // per_set))) if sw.cuda else 1
        for dt in ("bf16", "fp16"):
            try:
                sets = [(torch.randn(m, k, device=dev, dtype=_dtype(dt)),
                         torch.randn(n, k, device=dev, dtype=_dtype(dt)),
                         torch.randn(m, n, device=dev, dtype=_dtype(dt)))
                        for _ in range(sets_n)]
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                continue
            base = {"group": "gemm_layout", "op": "linear", "m": m, "n": n, "k": k,
                    "dtype": dt, "flops": f"{flops:.6g}", "bytes": per_set,
                    "note": f"{sets_n} operand sets rotated"}
            layouts = {"fwd": lambda s: F.linear(s[0], s[1]),
                       "dgrad": lambda s: s[2] @ s[1],
                       "wgrad": lambda s: s[2].t() @ s[0]}
            for phase, f in layouts.items():
                it = itertools.cycle(sets)
                sw.add({**base, "phase": phase}, lambda f=f, it=it: f(next(it)), est)
            if sets_n > 1 and dt == "bf16":   # as the kernel sweep timed them: one set
                for phase, f in layouts.items():
                    sw.add({**base, "phase": phase, "note": "1 operand set"},
                           lambda f=f, s0=sets[0]: f(s0), est)
            del sets
    if sw.cuda:
        torch.cuda.empty_cache()
    sw.flush()


def run_sustain(sw, clocks, seconds: float, tiny: bool) -> None:
    """One forward GEMM (4096 x 16384 x 4096: a 6.7B fc1 at 4096 tokens) back to back for
    ``seconds`` after a second idle, timed in windows of ``per`` GEMMs, bf16 then fp16."""
    import torch
    if not sw.cuda:
        return
    m, n, k = (64, 64, 64) if tiny else (4096, 16384, 4096)
    for dt in ("bf16", "fp16"):
        x = torch.randn(m, k, device=sw.device, dtype=_dtype(dt))
        w = torch.randn(n, k, device=sw.device, dtype=_dtype(dt))
        torch.cuda.synchronize()
        clocks.label = f"sustain idle {dt}"
        time.sleep(1.0)
        per = 50
        # a GEMM's time from its FLOPs at ~700 TFLOP/s, but no less than a launch (~5 us): the
        # tiny GEMM's 0.7 ns would make millions of windows
        windows = max(2, int(seconds * 1e6 / (per * max(5.0, 2 * m * n * k / 7e8))))
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(windows + 1)]
        clocks.label = f"sustain {dt}"
        t0 = time.perf_counter()
        ev[0].record()
        for i in range(windows):
            for _ in range(per):
                torch.nn.functional.linear(x, w)
            ev[i + 1].record()
        torch.cuda.synchronize()
        clocks.label = ""
        wall = time.perf_counter() - t0
        t = 0.0
        for i in range(windows):
            us = ev[i].elapsed_time(ev[i + 1]) * 1e3
            sw.rows.append({"group": "sustain", "op": "linear", "phase": "fwd", "m": m, "n": n,
                            "k": k, "dtype": dt, "dev_us": round(us / per, 3), "reps": per,
                            "flops": f"{2.0 * m * n * k:.6g}", "status": "ok",
                            "note": f"window {i}; start {t / 1e3:.1f} ms; wall {wall:.2f} s"})
            t += us
        del x, w
    sw.flush()


def run_fp16_opt(sw, models, tiny: bool) -> None:
    """The loss scaler's unscale + inf check over the fp32 main gradients of each model, and
    the fp32 accumulation of bf16 and of fp16 gradients (one kernel per tensor)."""
    import torch

    from .gpt import param_shapes
    dev = sw.device
    for (L, h) in models:
        if sw.over():
            sw.log("unscale: time budget spent")
            break
        shapes = [s for _, s in param_shapes(L, h, 4 * h, *vocab_positions(tiny))]
        try:
            main = [torch.zeros(s, device=dev, dtype=torch.float32) for s in shapes]
            n = sum(t.numel() for t in main)
            found = torch.zeros(1, device=dev, dtype=torch.float32)
            inv = torch.full((1,), 1.0 / 4096, device=dev, dtype=torch.float32)
            base = {"group": "fp16_opt", "rows": L, "cols": h, "numel": n,
                    "tensors": len(main), "note": f"GPT L{L} h{h}"}
            sw.add({**base, "op": "unscale_fp32", "phase": "fwd", "bytes": 8 * n,
                    "dtype": "float32"},
                   lambda main=main, found=found, inv=inv:
                   torch._amp_foreach_non_finite_check_and_unscale_(main, found, inv),
                   8 * n / 3.5e6 + 10 * len(main), warmup=1)
            for dt in ("bf16", "fp16"):
                g = [torch.randn(s, device=dev, dtype=_dtype(dt)) for s in shapes]
                sw.add({**base, "op": "accumulate_fp32", "phase": "fwd", "bytes": 10 * n,
                        "dtype": dt}, lambda g=g, main=main: torch._foreach_add_(main, g),
                       10 * n / 3.5e6 + 10 * len(main), warmup=1)
                del g
            del main
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
        if sw.cuda:
            torch.cuda.empty_cache()
    sw.flush()


def run_attention_dtypes(sw, cases) -> None:
    """Causal SDPA forward and forward + backward, bf16 then fp16 per shape."""
    import torch
    import torch.nn.functional as F
    dev = sw.device
    for (b, s, nh, hd) in cases:
        if sw.over():
            sw.log("attention16: time budget spent")
            break
        flops = 4.0 * b * s * s * nh * hd * 0.5
        for dt in ("bf16", "fp16"):
            qkv = torch.randn(b, s, 3, nh, hd, device=dev, dtype=_dtype(dt), requires_grad=True)
            do = torch.randn(b, nh, s, hd, device=dev, dtype=_dtype(dt))

            def f(qkv=qkv):
                q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)

            def clear(qkv=qkv):
                qkv.grad = None
            base = {"group": "attention", "op": "sdpa_causal", "batch": b, "seq": s,
                    "heads": nh, "head_dim": hd, "flops": f"{flops:.6g}", "dtype": dt}
            est = flops / 3e8 + 20
            sw.add({**base, "phase": "fwd"}, f, est, before=clear)
            sw.add({**base, "phase": "fwdbwd"}, lambda f=f, do=do: f().backward(do), 4 * est,
                   before=clear)
            del qkv, do
    if sw.cuda:
        torch.cuda.empty_cache()
    sw.flush()


def main(argv=None) -> int:
    ap = parser("gpubound", __doc__)
    ap.add_argument("--phases", default="steps,gemm,sustain,unscale,eltwise16,attention16")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per case")
    ap.add_argument("--cases", default="", help="step cases (names; default all)")
    ap.add_argument("--budget-s", type=float, default=330.0,
                    help="stop starting new work after this many seconds")
    ap.add_argument("--sustain-s", type=float, default=3.0)
    args = ap.parse_args(argv)
    import torch

    from . import kernels
    t0 = time.monotonic()
    device, _, cuda = start_run(args, "gpubound")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    shares = {"steps": 0.45, "gemm": 0.5, "sustain": 0.3, "unscale": 0.3, "eltwise16": 0.5,
              "attention16": 1.0}
    left = lambda: args.budget_s - (time.monotonic() - t0)  # noqa: E731
    sw = kernels.Sweep(args.out, device, torch.bfloat16, cuda, log=_log)
    clocks = Sampler(0.025)   # clocks.csv keeps its columns: no instantaneous power
    steps_rows: list[dict] = []
    ops_rows: list[dict] = []
    kern_rows: list[dict] = []
    tiny = args.tiny

    def run_phase(name):
        if name == "steps":
            run_steps(args, device, cuda, sw, clocks, steps_rows, ops_rows, kern_rows,
                      time.monotonic() + sw.budget_s)
        elif name == "gemm":
            run_gemm_layouts(sw, layout_shapes(tiny))
        elif name == "sustain":
            run_sustain(sw, clocks, args.sustain_s, tiny)
        elif name == "unscale":
            run_fp16_opt(sw, [(2, 64)] if tiny else
                         [(24, 1536), (24, 2048), (32, 2560), (32, 4096)], tiny)
        elif name in ("eltwise16", "attention16"):
            for dt in ("bf16", "fp16"):
                sw.dtype = _dtype(dt)
                if name == "eltwise16":
                    kernels.run_eltwise(sw, [2 ** 12] if tiny else
                                        [2 ** 20, 2 ** 22, 2 ** 24, 2 ** 26],
                                        (64,) if tiny else (2048, 4096))
                elif dt == "bf16":   # attention16 pairs the dtypes itself
                    run_attention_dtypes(sw, [(1, 64, 2, 32)] if tiny else
                                         [(b, 2048, nh, hd) for b in (1, 4)
                                          for nh, hd in ((16, 96), (16, 128),
                                                         (32, 80), (32, 128))])
            sw.dtype = torch.bfloat16

    try:
        for name in phases:
            if left() <= 5:
                _log(f"{name}: skipped, budget spent")
                continue
            sw.phase(name, lambda name=name: run_phase(name),
                     max(5.0, shares.get(name, 0.3) * left()))
            write_csv(os.path.join(args.out, "clocks.csv"), CLOCK_COLUMNS, clocks.rows)
            _log(f"{name}: done, {len(sw.rows)} kernel rows, {left():.0f} s left")
    finally:
        clocks.stop()
        write_csv(os.path.join(args.out, "clocks.csv"), CLOCK_COLUMNS, clocks.rows)
    return finish(t0, sw.failed)


if __name__ == "__main__":
    sys.exit(main())
