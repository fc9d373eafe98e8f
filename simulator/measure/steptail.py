"""One GPU, one call: a host-bound step in its parts, bf16 and FP8, each step beside a floor call.

    python -m simulator.measure.steptail --out DIR                   # a GPU (cuda:0)
    python -m simulator.measure.steptail --out DIR --device cpu --tiny    # a dry run

Why: ``collsim validate`` prices the host-bound FP8 steps of runs 7-10 too fast more often
than the bf16 ones. Split at the host's enqueue of the last backward + accumulation
(``host_fwdbwd_ms``), the time after it (the tail: what the GPU still has queued, the
optimizer step) is short in the prediction on every FP8 case (0.1-4 ms, more at 1.3B),
within +-1 ms on the bf16 ones; and the profiled FP8 steps of runs 8-10 launch no clipping
scale and run fused Adam 15-18% longer than the bf16 steps do. This run times the step's
parts directly, and each step right after a call of its 64-token floor GPT, so that the
enqueue is compared with a floor milliseconds away rather than seconds.

Per case (``--cases``: model:SEQxMBS, each in ``--variants``), the case's model
(:func:`simulator.measure.interleaved.model_class`) and its floor GPT (the same variant,
width and layers at ``--floor-seq`` tokens: :class:`simulator.measure.interleaved.Floor`)
are built once, then 3 warm-up steps (and one floor call), then ``--rounds`` rounds of: one
floor call (forward + backward + fp32 accumulation from an idle GPU; the host clock to its
return, ``floor_host_ms``, and to its synchronize), then one step timed in its parts, the
measuring loop's step (:mod:`simulator.measure.train`, ``MegatronLikeOptimizer.step``) line
by line with a host clock stamp and a CUDA event after each part:

* ``enq``: the zeroing, forward, backward and accumulation of every micro-batch enqueued
  (``host_enq_ms``, as ``host_fwdbwd_ms`` of train.csv);
* ``norm``: the gradient norm's kernels (``_foreach_norm``, ``stack``, ``vector_norm``);
* ``read``: its ``.item()`` returned (the host waited for the GPU here);
* ``clip``: clipping's ``_foreach_mul_`` when the norm was above ``--clip`` (``clipped``);
* ``adam``: fused Adam's ``step()`` returned; ``copy``: the bf16 copy of the weights;
* ``end``: the synchronize after it (``step_ms``).

``host_X_ms`` is the host clock at each point from the step's start; ``gpu_X_ms`` the GPU's
(the event's time from the step's first event, recorded on an idle GPU; the GPU's last work
is the copy, so ``step_ms - gpu_copy_ms`` is the synchronize's return). ``steps.csv``: one
row a step, with the norm's value. The events cost the host a few us each.

Torch is imported inside functions only.
"""
from __future__ import annotations

import os
import sys
import time

from . import train
from .gpt import MegatronLikeOptimizer, param_count
from .interleaved import Floor, enqueue, model_class
from .runstart import attempt, budget_spent, finish, free_gpu, parser, start_run
from .runstart import log as _log

PARTS = ("enq", "norm", "read", "clip", "adam", "copy")
COLUMNS = (["case", "variant", "layers", "hidden", "heads", "seq", "mbs", "params", "round",
            "floor_host_ms", "floor_wall_ms", "step_ms"]
           + [f"host_{p}_ms" for p in PARTS] + [f"gpu_{p}_ms" for p in PARTS]
           + ["grad_norm", "clipped", "status"])


def parse_cases(text: str) -> list[tuple[str, int, int]]:
    """``model:SEQxMBS,...`` -> [(model, seq, mbs)]."""
    out = []
    for item in text.split(","):
        name, _, shape = item.strip().partition(":")
        seq, _, mbs = shape.partition("x")
        out.append((name, int(seq), int(mbs)))
    return out


def timed_step(model, opt: MegatronLikeOptimizer, batches, cuda: bool) -> dict:
    """One training step from an idle GPU, in its parts (host clock and CUDA events at each;
    the parts of MegatronLikeOptimizer.step, inlined to put the stamps between them)."""
    import torch
    # the step's start, then enq, norm, clip, adam, copy (the read has no event of its own:
    # the GPU reaches it with the norm's kernels)
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(len(PARTS))] if cuda else []
    host = {}
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()

    def mark(i: int, name: str) -> None:
        host[name] = (time.perf_counter() - t0) * 1e3
        if cuda:
            ev[i].record()
    if cuda:
        ev[0].record()
    enqueue(model, opt, batches)
    mark(1, "enq")
    with torch.no_grad():
        norms = torch._foreach_norm(opt.grads)
        total = torch.linalg.vector_norm(torch.stack(norms))
        mark(2, "norm")
        norm = total.item()              # host sync, as Megatron's clip_grad_norm_fp32
        host["read"] = (time.perf_counter() - t0) * 1e3
        coef = opt.clip / (norm + 1e-6)
        if coef < 1.0:
            torch._foreach_mul_(opt.grads, coef)
        mark(3, "clip")
        opt.adam.step()
        mark(4, "adam")
        opt.model.flat.copy_(opt.model.master_flat)
        mark(5, "copy")
    if cuda:
        torch.cuda.synchronize()
    row = {"step_ms": round((time.perf_counter() - t0) * 1e3, 4),
           "grad_norm": round(norm, 6), "clipped": int(coef < 1.0)}
    row.update({f"host_{p}_ms": round(host[p], 4) for p in PARTS})
    if cuda:
        gpu = [ev[0].elapsed_time(e) for e in ev[1:]]
        gpu.insert(2, gpu[1])
        row.update({f"gpu_{p}_ms": round(v, 4) for p, v in zip(PARTS, gpu)})
    return row


def floor_call(floor: Floor, cuda: bool) -> tuple[float, float]:
    """(host ms to return, ms to the synchronize after it) of one floor forward + backward +
    accumulation from an idle GPU."""
    import torch
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    floor.fwd_bwd()
    h = (time.perf_counter() - t) * 1e3
    if cuda:
        torch.cuda.synchronize()
    return h, (time.perf_counter() - t) * 1e3


def run_case(spec, variant: str, args, device, dtype, cuda: bool, rows: list) -> None:
    import torch
    name, seq, mbs = spec
    L, h, heads = train.MODELS[name]
    vocab, maxpos = train.vocab_positions(args.tiny)
    case = train.case_name(name, seq, mbs, 1, False) + ("" if variant == "default"
                                                        else f"-{variant}")
    meta = {"case": case, "variant": variant, "layers": L, "hidden": h, "heads": heads,
            "seq": seq, "mbs": mbs, "params": param_count(L, h, 4 * h, vocab, maxpos)}
    cls = model_class(variant)
    model = opt = batches = floor = None
    try:
        model = cls(L, h, 4 * h, heads, vocab, maxpos, device, dtype, hidden_dropout=0.1)
        opt = MegatronLikeOptimizer(model, clip=args.clip)
        batches = train.token_batches(vocab, mbs, seq, 1, device)
        floor = Floor(cls, L, h, heads, vocab, maxpos, args.floor_seq, device, dtype)
        for _ in range(args.warmup):
            train.train_step(model, opt, batches)
        floor_call(floor, cuda)
        for rno in range(1, args.rounds + 1):
            fh, fw = floor_call(floor, cuda)
            row = {**meta, "round": rno, "floor_host_ms": round(fh, 4),
                   "floor_wall_ms": round(fw, 4), "status": "ok"}
            row.update(timed_step(model, opt, batches, cuda))
            rows.append(row)
        last = rows[-args.rounds:]
        _log(f"{case}: step " + ", ".join(f"{r['step_ms']:.1f}" for r in last)
             + "; enqueue / floor " + ", ".join(f"{r['host_enq_ms'] / r['floor_host_ms']:.3f}"
                                                for r in last)
             + f"; clipped {sum(r['clipped'] for r in last)} of {len(last)}")
    except torch.cuda.OutOfMemoryError as exc:
        rows.append({**meta, "status": "oom"})
        _log(f"{case}: out of memory ({str(exc).splitlines()[0][:120]})")
    finally:
        del model, opt, batches, floor
        free_gpu(cuda)


def main(argv=None) -> int:
    ap = parser("steptail", __doc__)
    ap.add_argument("--cases", default="gpt-125m:1024x4,gpt-350m:1024x4,gpt-760m:2048x1,"
                                       "gpt-1.3b:2048x1")
    ap.add_argument("--variants", default="default,fp8")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--floor-seq", type=int, default=64)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--budget-s", type=float, default=200.0,
                    help="start no new case after this many seconds")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "steptail")
    cases = parse_cases(args.cases)
    if args.tiny:
        train.MODELS.update({"tiny": (2, 64, 4)})
        cases, args.rounds, args.floor_seq = [("tiny", 32, 2)], 2, 16
    rows: list[dict] = []
    failed: list[str] = []
    for spec in cases:
        for variant in args.variants.split(","):
            if budget_spent(t0, args.budget_s, f"{spec[0]} {variant}"):
                break
            attempt(f"{spec[0]}:{spec[1]}x{spec[2]} {variant}", failed, run_case, spec,
                    variant, args, device, dtype, cuda, rows)
            train.write_csv(os.path.join(args.out, "steps.csv"), COLUMNS, rows)
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
