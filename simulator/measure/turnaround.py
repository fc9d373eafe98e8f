"""The device's turnaround between back-to-back kernels, without the profiler, and a
GPU-bound step's idle time unprofiled.

    python -m simulator.measure.turnaround --out DIR                      # a GPU (cuda:0)
    python -m simulator.measure.turnaround --out DIR --device cpu --tiny  # a dry run

idle1 (traces/h200/compute/idle1) found ~1.55 us between consecutive kernels that were
launched in time, but under ``torch.profiler``, whose activity records may lengthen it. Here
the same question without it:

* *chains*: for each kernel kind and size, ``--chain`` identical kernels launched while the
  GPU is held busy by ``torch.cuda._sleep`` long enough that every launch is queued before
  the first one runs (checked: the host's launch time against the sleep); CUDA events around
  the chain (after the sleep) give its period per kernel. The same chain once under the
  profiler (CUDA activity only) gives each kernel's CUPTI duration. turnaround = period -
  mean CUPTI duration (the kernels' durations are taken to be the same with and without the
  profiler; the profiled chain's own gaps are written beside it).
* *steps*: gpubound's bf16 1.3B micro-batch 4 step (``simulator.measure.gpubound``), timed
  unprofiled (synchronize to synchronize), then under the profiler (CUDA activity only):
  wall unprofiled - the profiled step's kernel sum = the step's idle without the profiler's
  host cost.

Files: ``chains.csv`` (per kind, size, repeat: period, host launch time, sleep, CUPTI mean
duration, profiled gap), ``steps.csv`` (per step: unprofiled wall, profiled wall, kernel
sum, kernel count). Torch is imported inside functions only.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

from .runstart import finish, free_gpu, parser, start_run
from .runstart import log as _log
from .train import write_csv

CHAIN_COLUMNS = ["kind", "size", "repeat", "kernels", "period_us", "host_launch_us",
                 "sleep_us", "cupti_mean_us", "cupti_gap_us", "turnaround_us"]
STEP_COLUMNS = ["case", "step", "unprofiled_wall_us", "profiled_wall_us", "kernel_sum_us",
                "kernels"]


def kernel_cases(tiny: bool) -> list[tuple[str, str, Any]]:
    """(kind, size label, maker) of the chains: element-wise adds from L2-resident to HBM
    sizes, a layer norm and GEMMs of GPT shapes. ``maker(device)`` returns a callable that
    launches exactly one kernel."""
    import torch
    import torch.nn.functional as F

    def add(n):
        def make(dev):
            x = torch.randn(n, device=dev, dtype=torch.bfloat16)
            y = torch.randn(n, device=dev, dtype=torch.bfloat16)
            o = torch.empty_like(x)
            return lambda: torch.add(x, y, out=o)
        return make

    def layer_norm(t, h):
        def make(dev):
            x = torch.randn(t, h, device=dev, dtype=torch.bfloat16)
            w = torch.ones(h, device=dev, dtype=torch.bfloat16)
            b = torch.zeros(h, device=dev, dtype=torch.bfloat16)
            return lambda: F.layer_norm(x, (h,), w, b)
        return make

    def gemm(m, n, k):
        def make(dev):
            a = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            b = torch.randn(k, n, device=dev, dtype=torch.bfloat16)
            o = torch.empty(m, n, device=dev, dtype=torch.bfloat16)
            return lambda: torch.mm(a, b, out=o)
        return make

    if tiny:
        return [("add", "4096", add(4096)), ("gemm", "64x64x64", gemm(64, 64, 64))]
    return [("add", "64K", add(1 << 16)), ("add", "1M", add(1 << 20)),
            ("add", "16M", add(1 << 24)), ("add", "64M", add(1 << 26)),
            ("layer_norm", "8192x2048", layer_norm(8192, 2048)),
            ("gemm", "2048^3", gemm(2048, 2048, 2048)),
            ("gemm", "8192x2048x2048", gemm(8192, 2048, 2048)),
            ("gemm", "8192x8192x2048", gemm(8192, 8192, 2048))]


def _cupti_kernels(prof, out: str) -> list[tuple[float, float]]:
    """(start us, duration us) of the device kernels in a profile, by start."""
    path = os.path.join(out, "trace.json")
    prof.export_chrome_trace(path)
    with open(path) as fh:
        trace = json.load(fh)
    os.remove(path)
    ks = [(float(e["ts"]), float(e["dur"])) for e in trace.get("traceEvents", [])
          if e.get("ph") == "X" and e.get("cat") == "kernel"]
    return sorted(ks)


def sleep_cycles_per_us(cuda: bool) -> float:
    """``torch.cuda._sleep``'s cycles per microsecond, timed with CUDA events."""
    if not cuda:
        return 1.0
    import torch
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    cycles = 20_000_000
    torch.cuda._sleep(cycles // 10)
    e0.record()
    torch.cuda._sleep(cycles)
    e1.record()
    torch.cuda.synchronize()
    return cycles / (e0.elapsed_time(e1) * 1e3)


def chain_case(kind, size, make, device, cuda: bool, chain: int, repeats: int, out: str,
               cyc_per_us: float) -> list[dict]:
    import torch
    from torch.profiler import ProfilerActivity, profile
    fn = make(device)
    for _ in range(20):
        fn()
    if cuda:
        torch.cuda.synchronize()
    # the host's launch time for the chain, then a sleep twice that (plus 2 ms) before it
    t = time.perf_counter()
    for _ in range(chain):
        fn()
    host_us = (time.perf_counter() - t) * 1e6
    if cuda:
        torch.cuda.synchronize()
    sleep_us = 2 * host_us + 2000.0
    rows = []
    for r in range(repeats):
        if cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            torch.cuda._sleep(int(sleep_us * cyc_per_us))
            e0.record()
        t = time.perf_counter()
        for _ in range(chain):
            fn()
        launch_us = (time.perf_counter() - t) * 1e6
        if cuda:
            e1.record()
            torch.cuda.synchronize()
            period = e0.elapsed_time(e1) * 1e3 / chain
        else:
            period = launch_us / chain
        rows.append({"kind": kind, "size": size, "repeat": r, "kernels": chain,
                     "period_us": round(period, 4), "host_launch_us": round(launch_us, 1),
                     "sleep_us": round(sleep_us, 1)})
    # the same chain under the profiler (CUDA activity only): CUPTI durations and gaps
    acts = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=acts) as prof:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda._sleep(int(sleep_us * cyc_per_us))
        for _ in range(chain):
            fn()
        if cuda:
            torch.cuda.synchronize()
    ks = [k for k in _cupti_kernels(prof, out) if k[1] > 0]
    ks = ks[-chain:] if len(ks) >= chain else ks   # the sleep kernel comes first
    mean_d = statistics.fmean(d for _, d in ks) if ks else 0.0
    gaps = [ks[i + 1][0] - (ks[i][0] + ks[i][1]) for i in range(len(ks) - 1)]
    gap = statistics.median(gaps) if gaps else 0.0
    for row in rows:
        row.update(cupti_mean_us=round(mean_d, 4), cupti_gap_us=round(gap, 4),
                   turnaround_us=round(row["period_us"] - mean_d, 4))
    del fn
    free_gpu(cuda)
    return rows


def step_case(device, cuda: bool, steps: int, out: str, tiny: bool) -> list[dict]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from . import train
    from .gpt import GPTModel, MegatronLikeOptimizer
    from .gpubound import _dtype, _one_step
    name, seq, mbs = ("tiny", 64, 2) if tiny else ("gpt-1.3b", 2048, 4)
    if tiny:
        train.MODELS.update({"tiny": (2, 64, 4)})
    L, h, heads = train.MODELS[name]
    vocab, maxpos = train.vocab_positions(tiny)
    model = GPTModel(L, h, 4 * h, heads, vocab, maxpos, device, _dtype("bf16"),
                     hidden_dropout=0.1)
    opt = MegatronLikeOptimizer(model)
    batches = train.token_batches(vocab, mbs, seq, 1, device)
    for _ in range(3):
        _one_step(model, opt, None, batches)
    rows = []
    for s in range(steps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        _one_step(model, opt, None, batches)
        if cuda:
            torch.cuda.synchronize()
        wall = (time.perf_counter() - t) * 1e6
        acts = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
        with profile(activities=acts) as prof:
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            _one_step(model, opt, None, batches)
            if cuda:
                torch.cuda.synchronize()
            pwall = (time.perf_counter() - t) * 1e6
        ks = _cupti_kernels(prof, out)
        rows.append({"case": f"{name}-b{mbs}", "step": s, "unprofiled_wall_us": round(wall, 1),
                     "profiled_wall_us": round(pwall, 1),
                     "kernel_sum_us": round(sum(d for _, d in ks), 1), "kernels": len(ks)})
    del model, opt, batches
    free_gpu(cuda)
    return rows


def main(argv=None) -> int:
    ap = parser("turnaround", __doc__)
    ap.add_argument("--chain", type=int, default=1000, help="kernels per chain")
    ap.add_argument("--repeats", type=int, default=5, help="timed chains per case")
    ap.add_argument("--steps", type=int, default=5, help="steps timed (each unprofiled, then "
                                                         "profiled)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    device, _, cuda = start_run(args, "turnaround")
    cyc = sleep_cycles_per_us(cuda)
    _log(f"torch.cuda._sleep: {cyc:.1f} cycles per us")
    failed: list[str] = []
    chains: list[dict] = []
    for kind, size, make in kernel_cases(args.tiny):
        n = min(args.chain, 200) if kind == "gemm" else args.chain
        try:
            rows = chain_case(kind, size, make, device, cuda, n, args.repeats, args.out, cyc)
        except Exception as exc:  # noqa: BLE001 - keep the other cases; finish() reports it
            _log(f"{kind} {size}: failed: {exc!r}"[:300])
            failed.append(f"{kind}-{size}")
            free_gpu(cuda)
            continue
        chains += rows
        per = statistics.median(r["period_us"] for r in rows)
        _log(f"{kind} {size}: period {per:.3f} us, CUPTI {rows[0]['cupti_mean_us']:.3f} us, "
             f"turnaround {per - rows[0]['cupti_mean_us']:.3f} us (profiled gap "
             f"{rows[0]['cupti_gap_us']:.3f}); launch {rows[0]['host_launch_us']:.0f} us "
             f"under a {rows[0]['sleep_us']:.0f} us sleep")
        write_csv(os.path.join(args.out, "chains.csv"), CHAIN_COLUMNS, chains)
    try:
        steps = step_case(device, cuda, args.steps, args.out, args.tiny)
        for r in steps:
            _log(f"{r['case']} step {r['step']}: unprofiled {r['unprofiled_wall_us'] / 1e3:.2f}"
                 f" ms, profiled {r['profiled_wall_us'] / 1e3:.2f} ms, kernels "
                 f"{r['kernel_sum_us'] / 1e3:.2f} ms ({r['kernels']})")
        write_csv(os.path.join(args.out, "steps.csv"), STEP_COLUMNS, steps)
    except Exception as exc:  # noqa: BLE001
        _log(f"steps: failed: {exc!r}"[:300])
        failed.append("steps")
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
