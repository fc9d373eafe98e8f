"""Training steps of GPT-like models on one GPU (see :mod:`simulator.measure.gpt`).

Each case: build the model (fp32 master weights, bf16 parameters), run ``warmup`` steps,
then ``steps`` timed steps. A step is timed on the host clock from its start (GPU idle) to a
``torch.cuda.synchronize()`` after the optimizer, as Megatron-LM's iteration timer does;
CUDA events inside split it into the forward+backward of all micro-batches and the optimizer.
``train.csv`` gets one row per case (median, p10, p90 of the timed steps) and ``status``
``oom`` where the case did not fit. A few cases are profiled for one more step
(``torch.profiler``): ``profile.csv`` lists their CUDA kernels by name (count, device time).

Torch is imported inside functions only.
"""
from __future__ import annotations

import csv
import os
import statistics
import time
from typing import Any

from .gpt import GPTModel, MegatronLikeOptimizer, param_count, train_step

COLUMNS = ["case", "layers", "hidden", "ffn", "heads", "vocab", "max_position", "seq", "mbs",
           "ga", "recompute", "hidden_dropout", "params", "step_ms", "step_p10_ms",
           "step_p90_ms", "fwdbwd_ms", "optimizer_ms", "host_fwdbwd_ms", "steps", "warmup",
           "tokens_per_s",
           "tflops_model", "max_mem_gib", "loss_first", "loss_last", "attn_backend",
           "status"]
PROFILE_COLUMNS = ["case", "kernel", "count", "device_us", "device_type", "cpu_us"]

# name:layers:hidden:heads (ffn = 4 hidden; GPT-3 paper sizes, 1.3B with 16 heads of 128)
MODELS = {"gpt-125m": (12, 768, 12), "gpt-350m": (24, 1024, 16), "gpt-760m": (24, 1536, 16),
          "gpt-1.3b": (24, 2048, 16), "gpt-2.7b": (32, 2560, 32), "gpt-4b": (36, 3072, 24),
          "gpt-6.7b": (32, 4096, 32)}

# model, seq, mbs, ga, recompute
DEFAULT_CASES = [
    ("gpt-125m", 1024, 1, 1, False), ("gpt-125m", 1024, 4, 1, False),
    ("gpt-125m", 1024, 16, 1, False), ("gpt-125m", 2048, 8, 1, False),
    ("gpt-125m", 1024, 4, 1, True), ("gpt-125m", 1024, 4, 4, False),
    ("gpt-350m", 1024, 1, 1, False), ("gpt-350m", 1024, 4, 1, False),
    ("gpt-350m", 1024, 16, 1, False), ("gpt-350m", 2048, 4, 1, True),
    ("gpt-760m", 2048, 1, 1, False), ("gpt-760m", 2048, 4, 1, False),
    ("gpt-760m", 2048, 8, 1, True),
    ("gpt-1.3b", 2048, 1, 1, False), ("gpt-1.3b", 2048, 4, 1, False),
    ("gpt-1.3b", 2048, 8, 1, False), ("gpt-1.3b", 2048, 16, 1, True),
    ("gpt-1.3b", 2048, 2, 4, False),
    ("gpt-2.7b", 2048, 1, 1, False), ("gpt-2.7b", 2048, 4, 1, False),
    ("gpt-2.7b", 2048, 8, 1, True),
    ("gpt-4b", 2048, 1, 1, False), ("gpt-4b", 2048, 4, 1, True),
    ("gpt-6.7b", 2048, 1, 1, True), ("gpt-6.7b", 2048, 2, 1, True),
    ("gpt-6.7b", 2048, 1, 1, False),
]
PROFILED = {("gpt-125m", 1024, 1, 1, False), ("gpt-1.3b", 2048, 4, 1, False),
            ("gpt-350m", 2048, 4, 1, True)}


def vocab_positions(tiny: bool) -> tuple[int, int]:
    """(vocabulary, positions) of the GPTs the scripts build: GPT-2's 50257 tokens and 4096
    positions, or 512 and 128 in a ``--tiny`` dry run (its sequences must fit in those)."""
    return (512, 128) if tiny else (50257, 4096)


def case_name(model, seq, mbs, ga, rc) -> str:
    return f"{model}-s{seq}-b{mbs}" + (f"-ga{ga}" if ga > 1 else "") + ("-rc" if rc else "")


def model_flops(L, h, ffn, vocab, seq, tokens) -> float:
    """Model FLOPs of a step (3x forward: GEMMs, causal attention, output layer)."""
    per_token = L * (2 * (4 * h * h + 2 * h * ffn) + 2 * 2 * seq * h * 0.5) + 2 * h * vocab
    return 3.0 * per_token * tokens


def _q(xs, q):
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def token_batches(vocab: int, mbs: int, seq: int, ga: int, device) -> list:
    """``ga`` (ids, targets) micro-batches of ``mbs`` x ``seq`` random tokens, seeded (7) so
    that every script trains a case on the same tokens."""
    import torch
    gen = torch.Generator(device=device)
    gen.manual_seed(7)
    return [(torch.randint(0, vocab, (mbs, seq), device=device, generator=gen),
             torch.randint(0, vocab, (mbs, seq), device=device, generator=gen))
            for _ in range(ga)]


def run_case(spec, device, dtype, cuda: bool, steps: int, warmup: int, vocab: int = 50257,
             max_position: int = 4096, hidden_dropout: float = 0.1, profile_rows=None,
             log=print) -> dict:
    import torch
    model_name, seq, mbs, ga, rc = spec
    L, h, heads = MODELS[model_name]
    ffn = 4 * h
    name = case_name(*spec)
    row = {"case": name, "layers": L, "hidden": h, "ffn": ffn, "heads": heads, "vocab": vocab,
           "max_position": max_position, "seq": seq, "mbs": mbs, "ga": ga,
           "recompute": int(rc), "hidden_dropout": hidden_dropout,
           "params": param_count(L, h, ffn, vocab, max_position), "steps": steps,
           "warmup": warmup}
    model = opt = batches = None
    try:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        model = GPTModel(L, h, ffn, heads, vocab, max_position, device, dtype,
                         hidden_dropout=hidden_dropout, recompute=rc)
        opt = MegatronLikeOptimizer(model)
        batches = token_batches(vocab, mbs, seq, ga, device)
        try:
            from .layer import default_backend
            qkv = torch.randn(mbs, seq, 3, heads, h // heads, device=device, dtype=dtype)
            q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
            row["attn_backend"] = default_backend(q, k, v, False)
            del qkv, q, k, v
        except Exception:  # noqa: BLE001 - informative only
            row["attn_backend"] = "unknown"
        losses = []
        for _ in range(warmup):
            losses.append(float(train_step(model, opt, batches).detach()) * ga)
        times, fb, op, host_fb = [], [], [], []
        for _ in range(steps):
            if cuda:
                torch.cuda.synchronize()
                e0, e1, e2 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
            t0 = time.perf_counter()
            if cuda:
                e0.record()
            opt.zero_grad()
            loss = None
            for ids, tgt in batches:
                loss = model.loss(ids, tgt) / len(batches)
                loss.backward()
                opt.accumulate()
            if cuda:
                e1.record()
            host_fb.append((time.perf_counter() - t0) * 1e3)
            with torch.no_grad():
                opt.step()
            if cuda:
                e2.record()
                torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
            if cuda:
                fb.append(e0.elapsed_time(e1))
                op.append(e1.elapsed_time(e2))
            assert loss is not None   # a case has at least one micro-batch
            losses.append(float(loss.detach()) * ga)
        med = statistics.median(times)
        tokens = mbs * seq * ga
        row.update(step_ms=round(med, 4), step_p10_ms=round(_q(times, 0.1), 4),
                   step_p90_ms=round(_q(times, 0.9), 4),
                   fwdbwd_ms=round(statistics.median(fb), 4) if fb else "",
                   optimizer_ms=round(statistics.median(op), 4) if op else "",
                   host_fwdbwd_ms=round(statistics.median(host_fb), 4),
                   tokens_per_s=round(tokens / med * 1e3),
                   tflops_model=round(model_flops(L, h, ffn, vocab, seq, tokens) / med / 1e9, 1),
                   loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4),
                   max_mem_gib=round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
                   if cuda else "", status="ok")
        if profile_rows is not None:
            profile_rows.extend(_profile(name, model, opt, batches, cuda))
    except torch.cuda.OutOfMemoryError as exc:
        row["status"] = "oom"
        log(f"{name}: out of memory ({str(exc).splitlines()[0][:120]})")
    finally:
        del model, opt, batches
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    return row


def _profile(name, model, opt, batches, cuda) -> list[dict]:
    rows = profiled(name, lambda: train_step(model, opt, batches), cuda)
    rows.sort(key=lambda r: -r["device_us"])
    return rows


def profiled(case: str, fn, cuda: bool, calls: int = 1) -> list[dict]:
    """:data:`PROFILE_COLUMNS` rows of ``calls`` calls of ``fn`` under ``torch.profiler``,
    from an idle GPU to its synchronize: every CPU op and API call (and on a GPU every kernel)
    that took time of its own, by name (self device time; self CPU time)."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    with profile(activities=acts) as prof:
        for _ in range(calls):
            fn()
        if cuda:
            torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        dev: Any = getattr(e, "self_device_time_total", None)
        if dev is None:   # older torch names it for CUDA
            dev = getattr(e, "self_cuda_time_total", 0)
        cpu = getattr(e, "self_cpu_time_total", 0) or 0
        if not dev and not cpu > 0:
            continue
        rows.append({"case": case, "kernel": e.key[:200], "count": e.count,
                     "device_us": round(float(dev or 0), 3),
                     "device_type": str(getattr(e, "device_type", "")).split(".")[-1],
                     "cpu_us": round(float(cpu), 3)})
    return rows


def write_csv(path, columns, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
