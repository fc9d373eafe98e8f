"""Where a GPU-bound step's GPU idles: the gaps between its kernels, by the host's phase.

    python -m simulator.measure.idle --out DIR                      # a GPU (cuda:0)
    python -m simulator.measure.idle --out DIR --device cpu --tiny  # a dry run

Each case (the GPT steps of :mod:`simulator.measure.gpubound`, bf16, same configs): 2
warm-up steps, then ``--steps`` steps under ``torch.profiler`` (CPU + CUDA), each started as
gpubound times one: ``torch.cuda.synchronize()``, the step, ``synchronize()``. The step's
calls are those of :func:`simulator.measure.gpubound._one_step`, each wrapped in a
``record_function`` range (``zero_grad``, ``forward``, ``backward``, ``accumulate``,
``optimizer``). From the exported Chrome trace: every kernel, memset and memcpy on the
device (its start, end, correlation id), every CUDA runtime call (launch time by the same
id), every CPU op and every range. :func:`gaps` finds the device's idle intervals between
consecutive device activities inside each step's wall (step start -> first activity and last
activity -> step end included); :func:`attribute` names each gap by the next activity's
launch: ``host`` when the host launched it after the device went idle (the host was behind),
else ``queued`` (launched in time; the device's own turnaround between kernels), with the
range and the innermost CPU op the launch ran in.

Files: ``idle_steps.csv`` (per case and step: wall, kernel sum, busy union, idle),
``idle_phases.csv`` (per case, phase, op, kind: gaps count and us per step),
``idle_gaps.csv`` (every gap of 20 us or more). Torch is imported inside functions only.
"""
from __future__ import annotations

import bisect
import json
import os
import sys
import time
from collections import defaultdict
from typing import Any

from .runstart import finish, free_gpu, parser, start_run
from .runstart import log as _log
from .train import write_csv

# model, seq, mbs, ga, dtype: gpubound1's 1.3B b4 and 4B b1, recompute1's 2.7B b4
CASES = [("gpt-1.3b", 2048, 4, 1, "bf16"), ("gpt-4b", 2048, 1, 1, "bf16"),
         ("gpt-2.7b", 2048, 4, 1, "bf16")]
PHASES = ("zero_grad", "forward", "backward", "accumulate", "optimizer")
STEP_COLUMNS = ["case", "step", "wall_us", "kernel_sum_us", "busy_us", "idle_us",
                "activities", "gaps"]
PHASE_COLUMNS = ["case", "phase", "op", "kind", "gaps_per_step", "us_per_step", "max_us"]
GAP_COLUMNS = ["case", "step", "start_us", "us", "phase", "op", "kind", "next"]
BIG_GAP_US = 20.0
DEVICE_CATS = ("kernel", "gpu_memset", "gpu_memcpy")


# ----------------------------------------------------------------- analysis (pure python)

def gaps(busy: list[tuple[float, float]], t0: float, t1: float
         ) -> list[tuple[float, float, int]]:
    """The device's idle intervals in the window ``[t0, t1]``: (start, end, index of the
    activity that ends the gap, or -1 for the tail gap up to ``t1``). ``busy`` are
    (start, end) of device activities, sorted by start; overlapping ones (two streams)
    count as one busy stretch."""
    out = []
    edge = t0
    for i, (s, e) in enumerate(busy):
        if s > edge:
            out.append((edge, s, i))
        edge = max(edge, e)
    if t1 > edge:
        out.append((edge, t1, -1))
    return out


def busy_us(busy: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Device-busy time in ``[t0, t1]``: the window minus its gaps."""
    return (t1 - t0) - sum(e - s for s, e, _ in gaps(busy, t0, t1))


def innermost(ranges: list[tuple[float, float, str]], t: float) -> str:
    """Name of the shortest range (start, end, name) that contains ``t``, or ``""``."""
    best, width = "", float("inf")
    for s, e, name in ranges:
        if s <= t <= e and e - s < width:
            best, width = name, e - s
    return best


def attribute(gap_start: float, launch_t: float | None, phases, ops) -> tuple[str, str, str]:
    """(phase, op, kind) of a gap that ends with an activity launched at ``launch_t``: the
    host ``phases`` range and innermost ``ops`` range the launch ran in; ``host`` when the
    launch came after the gap had begun (the device waited for the host), else ``queued``.
    The tail gap (no next activity: ``launch_t`` None) is ``step_end``."""
    if launch_t is None:
        return "step_end", innermost(ops, gap_start), "host"
    kind = "host" if launch_t > gap_start else "queued"
    return innermost(phases, launch_t) or "between", innermost(ops, launch_t), kind


def summarize(case: str, trace: dict, steps: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(step rows, phase rows, big-gap rows) of one case's Chrome trace (``traceEvents``) with
    ``steps`` ranges named ``idle_step``."""
    ev = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]
    dev = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)),
                  e.get("args", {}).get("correlation"), str(e.get("name", ""))[:60])
                 for e in ev if e.get("cat") in DEVICE_CATS)
    launch = {e.get("args", {}).get("correlation"): float(e["ts"]) for e in ev
              if e.get("cat") in ("cuda_runtime", "cuda_driver")}
    rngs = [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)), str(e["name"]))
            for e in ev if e.get("cat") == "user_annotation"]
    step_r = sorted(r for r in rngs if r[2] == "idle_step")
    phases = [r for r in rngs if r[2] in PHASES]
    ops = [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)), str(e["name"])[:60])
           for e in ev if e.get("cat") == "cpu_op"]
    starts = [d[0] for d in dev]
    steps_rows, big = [], []
    agg: dict[tuple, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for k, (t0, t1, _) in enumerate(step_r):
        lo, hi = bisect.bisect_left(starts, t0), bisect.bisect_right(starts, t1)
        inside = [(max(s, t0), min(e, t1)) for s, e, _, _ in dev[lo:hi]]
        gs = gaps(inside, t0, t1)
        idle = sum(b - a for a, b, _ in gs)
        steps_rows.append({"case": case, "step": k, "wall_us": round(t1 - t0, 1),
                           "kernel_sum_us": round(sum(e - s for s, e in inside), 1),
                           "busy_us": round(t1 - t0 - idle, 1), "idle_us": round(idle, 1),
                           "activities": len(inside), "gaps": len(gs)})
        for a, b, i in gs:
            nxt = dev[lo + i] if i >= 0 else None
            lt = launch.get(nxt[2]) if nxt is not None else None
            if nxt is not None and lt is None:
                lt = a   # launch not found: counted as queued
            phase, op, kind = attribute(a, lt, phases, ops)
            if nxt is not None and a == t0:
                phase = "step_start:" + phase
            row = agg[(phase, op, kind)]
            row[0] += 1
            row[1] += b - a
            row[2] = max(row[2], b - a)
            if b - a >= BIG_GAP_US:
                big.append({"case": case, "step": k, "start_us": round(a - t0, 1),
                            "us": round(b - a, 1), "phase": phase, "op": op, "kind": kind,
                            "next": nxt[3] if nxt else ""})
    n = max(1, len(step_r))
    phase_rows = [{"case": case, "phase": p, "op": o, "kind": kd,
                   "gaps_per_step": round(v[0] / n, 2), "us_per_step": round(v[1] / n, 2),
                   "max_us": round(v[2], 1)}
                  for (p, o, kd), v in sorted(agg.items(), key=lambda kv: -kv[1][1])]
    return steps_rows, phase_rows, big


# ----------------------------------------------------------------- measuring (torch)

def _annotated_step(model, opt, batches):
    """gpubound's bf16 step (:func:`simulator.measure.gpubound._one_step`), its calls in
    ``record_function`` ranges."""
    import torch
    from torch.profiler import record_function
    with record_function("zero_grad"):
        opt.zero_grad()
    for ids, tgt in batches:
        with record_function("forward"):
            loss = model.loss(ids, tgt) / len(batches)
        with record_function("backward"):
            loss.backward()
        with record_function("accumulate"):
            opt.accumulate()
    with record_function("optimizer"), torch.no_grad():
        opt.step()


def profile_case(c, device, cuda: bool, steps: int, out: str, tiny: bool):
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from . import train
    from .gpt import GPTModel, MegatronLikeOptimizer
    from .gpubound import _dtype, _step_case_name
    name, seq, mbs, ga, dt = c
    L, h, heads = train.MODELS[name]
    vocab, maxpos = train.vocab_positions(tiny)
    model = GPTModel(L, h, 4 * h, heads, vocab, maxpos, device, _dtype(dt), hidden_dropout=0.1)
    opt = MegatronLikeOptimizer(model)
    batches = train.token_batches(vocab, mbs, seq, ga, device)
    for _ in range(2):
        _annotated_step(model, opt, batches)
    if cuda:
        torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            if cuda:
                torch.cuda.synchronize()
            with record_function("idle_step"):
                _annotated_step(model, opt, batches)
                if cuda:
                    torch.cuda.synchronize()
    path = os.path.join(out, "trace.json")
    prof.export_chrome_trace(path)
    with open(path) as fh:
        trace = json.load(fh)
    os.remove(path)
    del model, opt, batches
    free_gpu(cuda)
    return summarize(_step_case_name(c), trace, steps)


def main(argv=None) -> int:
    ap = parser("idle", __doc__)
    ap.add_argument("--steps", type=int, default=3, help="profiled steps per case")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    device, _, cuda = start_run(args, "idle")
    cases = CASES
    if args.tiny:
        from . import train
        train.MODELS.update({"tiny": (2, 64, 4)})
        cases = [("tiny", 64, 2, 1, "bf16")]
    failed: list[str] = []
    rows: dict[str, list[Any]] = {"s": [], "p": [], "g": []}
    for c in cases:
        try:
            s, p, g = profile_case(c, device, cuda, args.steps, args.out, args.tiny)
        except Exception as exc:  # noqa: BLE001 - keep the other cases; finish() reports it
            _log(f"{c[0]} b{c[2]}: failed: {exc!r}"[:300])
            failed.append(f"{c[0]}-b{c[2]}")
            free_gpu(cuda)
            continue
        rows["s"] += s
        rows["p"] += p
        rows["g"] += g
        for r in s:
            _log(f"{r['case']} step {r['step']}: wall {r['wall_us'] / 1e3:.2f} ms, kernels "
                 f"{r['kernel_sum_us'] / 1e3:.2f} ms, idle {r['idle_us'] / 1e3:.2f} ms "
                 f"in {r['gaps']} gaps")
        write_csv(os.path.join(args.out, "idle_steps.csv"), STEP_COLUMNS, rows["s"])
        write_csv(os.path.join(args.out, "idle_phases.csv"), PHASE_COLUMNS, rows["p"])
        write_csv(os.path.join(args.out, "idle_gaps.csv"), GAP_COLUMNS, rows["g"])
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
