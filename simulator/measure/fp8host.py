"""One GPU, one call: the host dispatch of an FP8 layer's ops at the floor's and the steps' tokens.

    python -m simulator.measure.fp8host --out DIR                  # a GPU (cuda:0)
    python -m simulator.measure.fp8host --out DIR --device cpu --tiny   # a dry run

The host floor that prices a host-bound step is a 64-token GPT of the same layers
(:mod:`simulator.measure.interleaved`); the FP8 steps (``paired.VariantGPT``:
``torch._scaled_mm``, unit scales) enqueued their forward + backward further above that
floor than the bf16 ones did. Three phases (``--phases``) ask which host work grows with the
token count:

* ``ops`` -> ``ops.csv``: every op of an FP8 and of a bf16 linear layer (the GEMMs in the
  forward, dgrad and wgrad layouts, the casts to e4m3 / e5m2, the transposes, the bias
  gradient, and the whole layer's forward + backward through autograd) for the four GEMM
  shapes of a layer of each ``--widths`` model, at each ``--tokens`` count. Per round the
  token counts of one (shape, op) are visited back to back (milliseconds apart, so the
  host's drift cancels in their ratio); per point ``--reps`` calls from an idle GPU, the host
  clock around each (``host_us``: their median).
* ``model`` -> ``model.csv``: the FP8 and the bf16 GPT of each ``--models`` entry
  (``model:BxS``), forward + backward + fp32 accumulation at the floor's 1x64 and at the
  step's BxS, the four visited in turn in ``--rounds`` rounds; per point the median over
  ``--model-reps`` calls of the host's enqueue from an idle GPU.
* ``profile`` -> ``profile.csv``: under ``torch.profiler``, ``--prof-calls`` calls of each op
  of ``ops`` at the smallest and largest token count (the 350M-wide shapes) and one call of
  each ``model`` point: every CPU op and CUDA API call by name, count and self CPU time
  (``case`` names the op or model, shape and tokens; ``calls`` the calls profiled).

Torch is imported inside functions only.
"""
# ruff: noqa: B023 - every closure made in a loop here is called before the loop moves on
from __future__ import annotations

import os
import statistics
import sys
import time

from . import train
from .gpt import MegatronLikeOptimizer
from .interleaved import model_class, timed_calls
from .runstart import attempt, budget_spent, finish, free_gpu, parser, start_run
from .runstart import log as _log

OPS_COLUMNS = ["model", "hidden", "ffn", "shape", "n", "k", "tokens", "op", "round", "reps",
               "host_us", "wall_us"]
MODEL_COLUMNS = ["model", "variant", "layers", "hidden", "heads", "mbs", "seq", "tokens",
                 "round", "reps", "host_us", "wall_us"]
PROFILE_COLUMNS = ["case", "calls", "kernel", "count", "device_us", "device_type", "cpu_us"]
OPS = ("fp8_fwd", "fp8_dgrad", "fp8_wgrad", "cast_e4m3", "cast_e5m2", "transpose_fp8",
       "bias_grad", "fp8_linear_fb", "bf16_fwd", "bf16_dgrad", "bf16_wgrad", "bf16_linear_fb")


def layer_shapes(hidden: int, ffn: int) -> list[tuple[str, int, int]]:
    """(name, n, k) of a GPT layer's GEMMs ``y[T, n] = x[T, k] W[n, k]^T``."""
    return [("qkv", 3 * hidden, hidden), ("proj", hidden, hidden), ("fc1", ffn, hidden),
            ("fc2", hidden, ffn)]


def op_calls(T: int, n: int, k: int, device, dtype, cuda: bool) -> dict:
    """op name -> a call of that op on tensors made here (the FP8 layer of
    ``paired.VariantGPT`` and the bf16 ``F.linear``), each with what it needs untimed."""
    import torch
    import torch.nn.functional as F

    from .paired import _fp8_function
    g = torch.Generator(device=device)
    g.manual_seed(T * 7 + n * 3 + k)
    x = torch.randn(T, k, device=device, dtype=dtype, generator=g)
    w = torch.randn(n, k, device=device, dtype=dtype, generator=g) * 0.02
    b = torch.zeros(n, device=device, dtype=dtype)
    dy = torch.randn(T, n, device=device, dtype=dtype, generator=g)
    calls = {"bf16_fwd": lambda: F.linear(x, w, b), "bf16_dgrad": lambda: dy @ w,
             "bf16_wgrad": lambda: dy.t() @ x, "bias_grad": lambda: dy.sum(0)}
    xl, wl, bl = (t.detach().clone().requires_grad_() for t in (x, w, b))

    def bf16_fb():
        F.linear(xl, wl, bl).backward(dy)
        xl.grad = wl.grad = bl.grad = None
    calls["bf16_linear_fb"] = bf16_fb
    if cuda:   # torch._scaled_mm and the float8 dtypes: a GPU (a CPU build may lack them)
        e4, e5 = torch.float8_e4m3fn, torch.float8_e5m2
        one = torch.ones((), device=device, dtype=torch.float32)
        xq, wq, gq = x.to(e4), w.to(e4), dy.to(e5)
        wq_t, gq_t, xq_t = wq.t().contiguous().t(), gq.t().contiguous(), xq.t().contiguous().t()
        fp8 = _fp8_function()

        def fp8_fb():
            fp8.apply(xl, wl, bl).backward(dy)
            xl.grad = wl.grad = bl.grad = None
        calls.update({
            "fp8_fwd": lambda: torch._scaled_mm(xq, wq.t(), scale_a=one, scale_b=one, bias=b,
                                                out_dtype=dtype),
            "fp8_dgrad": lambda: torch._scaled_mm(gq, wq_t, scale_a=one, scale_b=one,
                                                  out_dtype=dtype),
            "fp8_wgrad": lambda: torch._scaled_mm(gq_t, xq_t, scale_a=one, scale_b=one,
                                                  out_dtype=dtype),
            "cast_e4m3": lambda: x.to(e4), "cast_e5m2": lambda: dy.to(e5),
            "transpose_fp8": lambda: gq.t().contiguous(), "fp8_linear_fb": fp8_fb})
    return calls


def _prof_rows(case: str, calls: int, fn, cuda: bool) -> list[dict]:
    """The rows of :func:`train.profiled`, with the number of ``calls`` profiled."""
    return [{**r, "calls": calls} for r in train.profiled(case, fn, cuda, calls)]


def ops_phase(args, device, dtype, cuda, rows, prof_rows, t0) -> None:
    import torch
    tokens = [int(t) for t in args.tokens.split(",")]
    points = []   # (model, hidden, ffn, shape, n, k, T, calls)
    for name in args.widths.split(","):
        _, h, _ = train.MODELS[name]
        for shape, n, k in layer_shapes(h, 4 * h):
            for T in tokens:
                calls = op_calls(T, n, k, device, dtype, cuda)
                for fn in calls.values():   # warm-up: algorithms chosen, blocks cached
                    fn()
                    fn()
                points.append((name, h, 4 * h, shape, n, k, T, calls))
    if cuda:
        torch.cuda.synchronize()
    _log(f"ops: {len(points)} points built")
    for rno in range(1, args.rounds + 1):
        if budget_spent(t0, args.budget_s, f"ops round {rno}"):
            break
        by_key: dict = {}
        for p in points:
            by_key.setdefault(p[:6], []).append(p)
        for group in by_key.values():
            for op in OPS:
                for name, h, f, shape, n, k, T, calls in group:
                    if op not in calls:
                        continue
                    host, wall = timed_calls(calls[op], args.reps, cuda)
                    rows.append({"model": name, "hidden": h, "ffn": f, "shape": shape, "n": n,
                                 "k": k, "tokens": T, "op": op, "round": rno,
                                 "reps": args.reps, "host_us": round(host, 2),
                                 "wall_us": round(wall, 2)})
        _log(f"ops round {rno}: " + ", ".join(
            f"{op} {statistics.median(r['host_us'] for r in rows if r['round'] == rno and r['op'] == op and r['tokens'] == tokens[-1]):.1f}"  # noqa: E501
            for op in OPS if any(r["op"] == op for r in rows)) + f" us host at {tokens[-1]}")
    if cuda and prof_rows is not None:
        mid = args.widths.split(",")[min(1, len(args.widths.split(",")) - 1)]
        for name, _h, _f, shape, _n, _k, T, calls in points:
            if name != mid or T not in (tokens[0], tokens[-1]):
                continue
            for op, fn in calls.items():
                prof_rows.extend(_prof_rows(f"{op} {name} {shape} T{T}", args.prof_calls, fn,
                                            cuda))
    del points
    free_gpu(cuda)


def model_phase(args, device, dtype, cuda, rows, prof_rows, t0) -> None:
    import torch
    vocab, maxpos = train.vocab_positions(args.tiny)
    variants = ("default", "fp8") if cuda else ("default",)
    for entry in args.models.split(","):
        if budget_spent(t0, args.budget_s, f"model {entry}"):
            return
        name, shape = entry.split(":")
        L, h, heads = train.MODELS[name]
        big = tuple(int(v) for v in shape.split("x"))
        shapes = [(1, args.floor_seq), big]
        built = {}
        for v in variants:
            model = model_class(v)(L, h, 4 * h, heads, vocab, maxpos, device, dtype,
                                   hidden_dropout=0.1, seed=3)
            opt = MegatronLikeOptimizer(model)
            data = {}
            for b, s in shapes:
                data[(b, s)] = (torch.randint(0, vocab, (b, s), device=device),
                                torch.randint(0, vocab, (b, s), device=device))

            def fb(model=model, opt=opt, data=data, bs=None):
                model.loss(*data[bs]).backward()
                opt.accumulate()
            for bs in shapes:
                for _ in range(2):
                    fb(bs=bs)
            built[v] = fb
        if cuda:
            torch.cuda.synchronize()
        for rno in range(1, args.rounds + 1):
            if budget_spent(t0, args.budget_s, f"model {entry} round {rno}"):
                break
            for v, fb in built.items():
                for b, s in shapes:
                    host, wall = timed_calls(lambda: fb(bs=(b, s)), args.model_reps, cuda)
                    rows.append({"model": name, "variant": v, "layers": L, "hidden": h,
                                 "heads": heads, "mbs": b, "seq": s, "tokens": b * s,
                                 "round": rno, "reps": args.model_reps,
                                 "host_us": round(host, 1), "wall_us": round(wall, 1)})
            _log(f"model {entry} round {rno}: " + ", ".join(
                f"{r['variant']} {r['mbs']}x{r['seq']} {r['host_us'] / 1e3:.2f}"
                for r in rows if r["round"] == rno and r["model"] == name) + " ms host")
        if cuda and prof_rows is not None:
            for v, fb in built.items():
                for bs in shapes:
                    prof_rows.extend(_prof_rows(f"{name} {v} b{bs[0]}s{bs[1]}", 1,
                                                lambda: fb(bs=bs), cuda))
        del built
        free_gpu(cuda)


def main(argv=None) -> int:
    ap = parser("fp8host", __doc__)
    ap.add_argument("--phases", default="ops,model,profile")
    ap.add_argument("--widths", default="gpt-125m,gpt-350m,gpt-760m")
    ap.add_argument("--tokens", default="64,1024,4096")
    ap.add_argument("--models", default="gpt-125m:4x1024,gpt-350m:4x1024,gpt-760m:1x2048")
    ap.add_argument("--floor-seq", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--reps", type=int, default=10, help="calls per op point")
    ap.add_argument("--model-reps", type=int, default=3, help="calls per model point")
    ap.add_argument("--prof-calls", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=300.0,
                    help="start no new round after this many seconds")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "fp8host")
    if args.tiny:
        train.MODELS.update({"tiny": (2, 64, 4)})
        args.widths, args.tokens, args.models = "tiny", "16,64", "tiny:2x32"
        args.floor_seq = 16
    phases = args.phases.split(",")
    prof_rows: list[dict] | None = [] if "profile" in phases else None
    failed: list[str] = []
    for phase, fn, path, cols in (("ops", ops_phase, "ops.csv", OPS_COLUMNS),
                                  ("model", model_phase, "model.csv", MODEL_COLUMNS)):
        if phase not in phases:
            continue
        rows: list[dict] = []
        attempt(phase, failed, fn, args, device, dtype, cuda, rows, prof_rows, t0)
        train.write_csv(os.path.join(args.out, path), cols, rows)
        if prof_rows:
            train.write_csv(os.path.join(args.out, "profile.csv"), PROFILE_COLUMNS, prof_rows)
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
