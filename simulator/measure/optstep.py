"""One GPU, one call: the optimizer step of a GPT as a training step runs it, in its parts.

    python -m simulator.measure.optstep --out DIR                  # a GPU (cuda:0)
    python -m simulator.measure.optstep --out DIR --device cpu --tiny   # a dry run

The step of :class:`simulator.measure.gpt.MegatronLikeOptimizer` has a host read in the
middle: the gradient norm (``_foreach_norm``, ``stack``, ``vector_norm``) is read with
``.item()`` before clipping, then clipping's ``_foreach_mul_``, fused Adam and the bf16 copy
are enqueued. The kernel sweep and the floor GPTs time it back to back (``reps`` calls
under one host clock), where each call's norm is enqueued while the call before still runs
its Adam kernels; in a training step it runs once, after the backward. Per model of
``--models`` (the 64-token floor GPT of :class:`simulator.measure.interleaved.Floor`: the
model's layers, width, vocabulary 50257 and 4096 positions, so its parameters and tensors
are the model's), in ``--rounds`` rounds seconds apart, ``optstep.csv`` gets one row per
round and mode, the median over ``--reps`` calls:

* ``after_backward``: the floor's forward + backward + fp32 accumulation (host-bound: its
  kernels take microseconds, so the GPU is all but idle when the host returns), then the
  step, the host clock read between its parts: ``norm_us`` (enqueue of the norm kernels),
  ``read_us`` (the ``.item()``: the wait for the GPU and the read), ``mul_us``, ``adam_us``,
  ``copy_us`` (their enqueue), ``tail_us`` (from the copy's enqueue to the synchronize: the
  device work still queued), ``total_us`` (the step from the accumulation's return to the
  synchronize);
* ``idle``: the same parts from an idle GPU (a synchronize before the step);
* ``loop``: ``reps`` steps back to back, one host clock around them, per call (how the
  floor GPTs and the kernel sweep time it: ``total_us``);
* ``device``: the device time of the two halves with no host gaps, each enqueued behind a
  spin kernel of ``--spin-ms`` and timed by CUDA events: ``dev_norm_us`` (norm kernels up to
  the read) and ``dev_post_us`` (clipping's scale, Adam, the copy); ``host_ok`` 1 where the
  host had enqueued the half before the spin ended;
* ``floor``: the floor's forward + backward + accumulation back to back (``total_us`` per
  call, as ``hostfloor`` ``fwdbwd_accumulate``): this machine's host speed, by which the
  host parts are carried to other machines.

Torch is imported inside functions only.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

from . import train
from .gpt import GPTModel
from .interleaved import Floor
from .runstart import attempt, budget_spent, finish, free_gpu, parser, start_run
from .runstart import log as _log

COLUMNS = ["model", "layers", "hidden", "heads", "params", "tensors", "round", "mode", "reps",
           "norm_us", "read_us", "mul_us", "adam_us", "copy_us", "tail_us", "total_us",
           "dev_norm_us", "dev_post_us", "host_ok", "clipped"]
PARTS = ("norm_us", "read_us", "mul_us", "adam_us", "copy_us", "tail_us", "total_us")


def _sync(cuda: bool) -> None:
    if cuda:
        import torch
        torch.cuda.synchronize()


def timed_parts(opt, cuda: bool) -> dict:
    """One optimizer step (as ``MegatronLikeOptimizer.step``), the host clock read between
    its parts; the synchronize at the end is the step's end."""
    import torch
    t = [time.perf_counter()]
    with torch.no_grad():
        norms = torch._foreach_norm(opt.grads)
        total_t = torch.linalg.vector_norm(torch.stack(norms))
        t.append(time.perf_counter())
        total = total_t.item()
        t.append(time.perf_counter())
        coef = opt.clip / (total + 1e-6)
        if coef < 1.0:
            torch._foreach_mul_(opt.grads, coef)
        t.append(time.perf_counter())
        opt.adam.step()
        t.append(time.perf_counter())
        opt.model.flat.copy_(opt.model.master_flat)
        t.append(time.perf_counter())
    _sync(cuda)
    t.append(time.perf_counter())
    d = [(b - a) * 1e6 for a, b in zip(t, t[1:])]
    return {"norm_us": d[0], "read_us": d[1], "mul_us": d[2], "adam_us": d[3],
            "copy_us": d[4], "tail_us": d[5], "total_us": (t[-1] - t[0]) * 1e6,
            "clipped": int(coef < 1.0)}


def device_halves(opt, spin_ms: float, cuda: bool) -> dict:
    """Device microseconds of the norm half and the post-read half, each behind a spin."""
    import torch
    if not cuda:
        return {}
    out = {"host_ok": 1}
    clock_hz = 1.98e9    # the H200's SM clock (kernels.Sweep spins the same way)
    with torch.no_grad():
        for key in ("dev_norm_us", "dev_post_us"):
            torch.cuda.synchronize()
            e0, e1 = (torch.cuda.Event(enable_timing=True) for _ in range(2))
            torch.cuda._sleep(int(spin_ms * 1e-3 * clock_hz))
            h0 = time.perf_counter()
            e0.record()
            if key == "dev_norm_us":
                torch.linalg.vector_norm(torch.stack(torch._foreach_norm(opt.grads)))
            else:
                torch._foreach_mul_(opt.grads, 0.999999)
                opt.adam.step()
                opt.model.flat.copy_(opt.model.master_flat)
            e1.record()
            host_ms = (time.perf_counter() - h0) * 1e3
            spin_left = not e0.query()          # the spin still runs: no host gap
            torch.cuda.synchronize()
            out[key] = e0.elapsed_time(e1) * 1e3
            if not spin_left or host_ms > spin_ms:
                out["host_ok"] = 0
    return out


def measure_model(name: str, args, device, dtype, cuda: bool, rows: list, t0: float) -> None:
    import torch
    vocab, maxpos = train.vocab_positions(args.tiny)
    L, h, heads = train.MODELS[name]
    fl = Floor(GPTModel, L, h, heads, vocab, maxpos, args.floor_seq, device, dtype)
    opt = fl.opt
    fb = fl.fwd_bwd

    for _ in range(2):   # warm-up: allocator, Adam's state, cuBLAS handles
        opt.zero_grad()
        fb()
        timed_parts(opt, cuda)
    base = {"model": name, "layers": L, "hidden": h, "heads": heads,
            "params": fl.model.numel, "tensors": len(fl.model.names), "reps": args.reps}
    for rno in range(1, args.rounds + 1):
        if budget_spent(t0, args.budget_s, f"{name} round {rno}"):
            return
        res: dict[str, dict] = {}
        for mode in ("after_backward", "idle"):
            parts = []
            for _ in range(args.reps):
                _sync(cuda)
                if mode == "after_backward":
                    opt.zero_grad()
                    fb()
                parts.append(timed_parts(opt, cuda))
            res[mode] = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
        # the floor's way: back to back under one host clock, per call
        _sync(cuda)
        s = time.perf_counter()
        for _ in range(args.reps):
            with torch.no_grad():
                opt.step()
        _sync(cuda)
        res["loop"] = {"total_us": (time.perf_counter() - s) * 1e6 / args.reps}
        _sync(cuda)
        s = time.perf_counter()
        for _ in range(args.reps):
            fb()
        _sync(cuda)
        res["floor"] = {"total_us": (time.perf_counter() - s) * 1e6 / args.reps}
        devs = [device_halves(opt, args.spin_ms, cuda) for _ in range(args.reps)]
        if devs and devs[0]:
            res["device"] = {k: statistics.median(d[k] for d in devs) for k in devs[0]}
            res["device"]["host_ok"] = min(d["host_ok"] for d in devs)
        for mode, vals in res.items():
            rows.append({**base, "round": rno, "mode": mode,
                         **{k: round(v, 1) for k, v in vals.items()}})
        ab = res["after_backward"]
        _log(f"{name} r{rno}: after_backward " + " ".join(
            f"{k[:-3]} {ab[k]:.0f}" for k in PARTS) + f" us; idle {res['idle']['total_us']:.0f}"
            f", loop {res['loop']['total_us']:.0f}, floor {res['floor']['total_us']:.0f}"
            + (f", device {res['device']['dev_norm_us']:.0f}+{res['device']['dev_post_us']:.0f}"
               if "device" in res else ""))


def main(argv=None) -> int:
    ap = parser("optstep", __doc__)
    ap.add_argument("--models", default="gpt-125m,gpt-350m,gpt-760m,gpt-1.3b,gpt-2.7b")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--spin-ms", type=float, default=40.0)
    ap.add_argument("--floor-seq", type=int, default=64)
    ap.add_argument("--budget-s", type=float, default=300.0)
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "optstep")
    if args.tiny:
        train.MODELS.update({"gpt-125m": (2, 64, 4), "gpt-350m": (2, 64, 4),
                             "gpt-760m": (2, 128, 4), "gpt-1.3b": (3, 128, 4),
                             "gpt-2.7b": (3, 128, 4)})
    rows: list[dict] = []
    failed: list[str] = []
    for name in args.models.split(","):
        attempt(name, failed, measure_model, name, args, device, dtype, cuda, rows, t0)
        free_gpu(cuda)   # the model is gone with measure_model's frame: free its memory
        train.write_csv(os.path.join(args.out, "optstep.csv"), COLUMNS, rows)
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
