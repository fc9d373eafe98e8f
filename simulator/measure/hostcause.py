"""One GPU, one call: why a host-bound step's enqueue exceeds its floor GPT's, and host syncs.

    python -m simulator.measure.hostcause --out DIR                  # a GPU (cuda:0)
    python -m simulator.measure.hostcause --out DIR --device cpu --tiny   # a dry run

``--tiny`` gives the models of the same names a few layers of width 64-128 and the phases
cases of sequences within the tiny models' 128 positions (``TINY``). A phase that fails is
logged and the run ends with status 1 after the others; a case whose sequence does not fit
the model's positions stops the run before it starts (status 2).

Two phases (``--phases``):

* ``shapes`` -> ``shapes.csv`` and ``profile.csv``: one model of each ``--shape-models``
  entry (``model:variant``) is built once and its forward + backward + fp32 accumulation is
  called at several token shapes (micro-batch x sequence, ``--shapes``; the host floor GPT
  of :mod:`simulator.measure.interleaved` is ``1x64``), in ``--rounds`` rounds that visit
  every shape seconds apart. Per call: the host's enqueue time (host clock from an idle GPU
  to the return of the accumulation; ``host_us``) and the call's wall time to the
  synchronize (``wall_us``); per shape and round the median over ``--reps`` calls, and the
  same with Python's garbage collector off (``mode`` ``nogc``), the garbage collector's own
  time during the calls (``gc_us``, from ``gc.callbacks``), the caching allocator's counts
  per call (``allocs``, ``large_allocs``, ``segments``: deltas of
  ``torch.cuda.memory_stats()``) and, at the smallest shape, the enqueue behind a spin
  kernel of ``--spin-ms`` on the same stream (``mode`` ``spin``: is a launch dearer while
  the GPU has queued work?). Then one profiled call per shape (``profile.csv``: every CPU op
  and CUDA API call by name and count, ``case`` ``MODEL VARIANT bBsS``).
* ``sync`` -> ``train.csv`` and ``kernels.csv``: GPT training steps (:mod:`.gpt`) of
  ``--sync-cases`` in three modes measured in interleaved rounds: ``plain`` (bf16, as
  :mod:`simulator.measure.interleaved`), ``hostsync`` (the same, plus at the start of each
  micro-batch a small CUDA tensor made from host values and read back with ``.cpu()``, as
  legacy Megatron-LM's ``broadcast_data`` does in ``get_batch``) and ``fp16`` (fp16
  parameters, the loss multiplied by a CUDA scale tensor, after the micro-batches the fp32
  main gradients unscaled with an inf/NaN check, ``.item()`` of ``found_inf``, the scale
  updated, the step skipped on overflow: dynamic loss scaling). Each round also measures
  the host floor GPTs of the case (:class:`simulator.measure.interleaved.Floor`:
  ``hostfloor`` rows in ``kernels.csv``, ``note`` ``round R; case C``).

* ``method`` -> ``method.csv``: for each of ``--method-cases`` (model:seq:micro-batch) the
  case's model and its 64-token floor GPT of the same layers, in ``--rounds`` rounds, each
  timed ``--reps`` times: the floor's forward + backward + accumulation back to back as
  :class:`simulator.measure.interleaved.Floor` times it (``floor_loop``: one host clock
  around the calls, per call), the same from an idle GPU each (``floor_synced``: a
  synchronize before each call, the host clock around the call), the floor as a training
  step's host part from an idle GPU (``floor_step``: zero the main gradients, the loss over
  1, backward, accumulation), the case's step (``step``: its host enqueue and wall time, as
  :func:`simulator.measure.interleaved.timed_steps`), and the case's step without the fp32
  accumulation (``step_noacc``: the bf16 gradients dropped instead; what the accumulation
  adds to a step is ``step`` - ``step_noacc``).

Torch is imported inside functions only.
"""
# ruff: noqa: B023 - every closure made in a loop here is called before the loop moves on
from __future__ import annotations

import functools
import gc
import os
import statistics
import sys
import time
from typing import Any, NoReturn

from . import kernels, train
from .gpt import GPTModel, MegatronLikeOptimizer, param_count
from .interleaved import Floor, model_class, steal_ms, timed_calls
from .runstart import attempt, budget_spent, finish, free_gpu, parser, start_run
from .runstart import log as _log

SHAPE_COLUMNS = ["model", "variant", "layers", "hidden", "heads", "mbs", "seq", "tokens",
                 "round", "mode", "reps", "host_us", "wall_us", "gc_us", "gc_collections",
                 "allocs", "large_allocs", "segments", "spin_ms"]
SYNC_EXTRA = ["round", "variant", "mode", "skipped_steps", "steal_ms"]
MODES = ("plain", "hostsync", "fp16")
PHASES = ("shapes", "sync", "method")
VARIANTS = ("default", "unfused", "fp8")   # interleaved.model_class's
SHAPES = "1x64,4x64,1x256,1x1024,4x256,4x1024"
SYNC_CASES = ("gpt-125m:1024:1:1,gpt-125m:1024:2:1,gpt-125m:1024:4:1,gpt-125m:1024:1:4,"
              "gpt-350m:1024:1:1,gpt-350m:1024:2:1,gpt-350m:1024:4:1,gpt-350m:1024:1:4,"
              "gpt-760m:2048:1:1,gpt-760m:2048:2:1,gpt-760m:2048:4:1,gpt-1.3b:2048:1:1,"
              "gpt-1.3b:2048:2:1,gpt-1.3b:2048:4:1,gpt-1.3b:2048:1:4")
METHOD_CASES = ("gpt-125m:1024:1,gpt-125m:1024:4,gpt-350m:1024:1,gpt-350m:1024:4,"
                "gpt-760m:2048:1,gpt-1.3b:2048:1,gpt-1.3b:2048:4,gpt-125m:1024:16")
#: --tiny: the models' names kept, their sizes a CPU runs in seconds; the same kinds of case
#: (micro-batches > 1, gradient accumulation) at sequences within the tiny 128 positions
TINY_MODELS = {"gpt-125m": (2, 64, 4), "gpt-350m": (2, 64, 4), "gpt-760m": (2, 128, 4),
               "gpt-1.3b": (3, 128, 4)}
TINY = {"shapes": "1x64,4x64,1x128,4x128",
        "sync_cases": "gpt-125m:128:1:1,gpt-125m:128:2:1,gpt-1.3b:64:1:2",
        "method_cases": "gpt-125m:128:1,gpt-1.3b:64:2"}
METHOD_COLUMNS = ["case", "layers", "hidden", "heads", "mbs", "seq", "round", "mode", "reps",
                  "host_us", "wall_us"]


class _GCTimer:
    """Time spent in Python's garbage collector while installed (``gc.callbacks``)."""

    def __init__(self):
        self.us, self.n, self._t = 0.0, 0, 0.0

    def __call__(self, phase, info):
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.us += (time.perf_counter() - self._t) * 1e6
            self.n += 1

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)


def _alloc_counts(cuda: bool) -> tuple[int, int, int]:
    import torch
    if not cuda:
        return 0, 0, 0
    s = torch.cuda.memory_stats()
    return (s.get("allocation.all.allocated", 0), s.get("allocation.large_pool.allocated", 0),
            s.get("segment.all.allocated", 0))


def _fb(model, opt, ids, tgt):
    model.loss(ids, tgt).backward()
    opt.accumulate()


def shapes_phase(args, device, dtype, cuda, out_rows, prof_rows, t0) -> None:
    import torch
    shapes = args.shape_list
    vocab, maxpos = train.vocab_positions(args.tiny)
    for name, variant in args.shape_model_list:
        if budget_spent(t0, args.budget_s, f"shapes {name}:{variant}"):
            return
        L, h, heads = train.MODELS[name]
        model = model_class(variant)(L, h, 4 * h, heads, vocab, maxpos, device, dtype,
                                     hidden_dropout=0.1, seed=3)
        opt = MegatronLikeOptimizer(model)
        data = {}
        for b, s in shapes:
            g = torch.Generator(device=device)
            g.manual_seed(b * 10007 + s)
            data[(b, s)] = (torch.randint(0, vocab, (b, s), device=device, generator=g),
                            torch.randint(0, vocab, (b, s), device=device, generator=g))
            for _ in range(2):   # warm-up: kernels chosen, allocator's blocks cached
                _fb(model, opt, *data[(b, s)])
        if cuda:
            torch.cuda.synchronize()
        base = {"model": name, "variant": variant, "layers": L, "hidden": h, "heads": heads}
        for rno in range(1, args.rounds + 1):
            for b, s in shapes:
                ids, tgt = data[(b, s)]
                row = {**base, "mbs": b, "seq": s, "tokens": b * s, "round": rno}
                for mode in ("gc", "nogc") + (("spin",) if (b, s) == shapes[0] else ()):
                    host, wall = [], []
                    a0 = _alloc_counts(cuda)
                    with _GCTimer() as gt:
                        if mode == "nogc":
                            gc.disable()
                        try:
                            for _ in range(args.reps):
                                if cuda:
                                    torch.cuda.synchronize()
                                    if mode == "spin":
                                        torch.cuda._sleep(int(args.spin_ms * 1.98e6))
                                t = time.perf_counter()
                                _fb(model, opt, ids, tgt)
                                host.append((time.perf_counter() - t) * 1e6)
                                if cuda:
                                    torch.cuda.synchronize()
                                wall.append((time.perf_counter() - t) * 1e6)
                        finally:
                            gc.enable()
                    a1 = _alloc_counts(cuda)
                    out_rows.append({**row, "mode": mode, "reps": args.reps,
                                     "host_us": round(statistics.median(host), 1),
                                     "wall_us": round(statistics.median(wall), 1),
                                     "gc_us": round(gt.us / args.reps, 1),
                                     "gc_collections": gt.n,
                                     "allocs": (a1[0] - a0[0]) / args.reps,
                                     "large_allocs": (a1[1] - a0[1]) / args.reps,
                                     "segments": (a1[2] - a0[2]) / args.reps,
                                     "spin_ms": args.spin_ms if mode == "spin" else ""})
            _log(f"shapes {name} {variant} round {rno}: " + ", ".join(
                f"{r['mbs']}x{r['seq']} {r['host_us'] / 1e3:.2f}"
                for r in out_rows if r["mode"] == "gc" and r["round"] == rno
                and r["model"] == name and r["variant"] == variant) + " ms host")
        if cuda:
            for b, s in shapes:
                prof_rows.extend(train.profiled(f"{name} {variant} b{b}s{s}",
                                                functools.partial(_fb, model, opt, *data[(b, s)]),
                                                cuda))
        del model, opt, data
        free_gpu(cuda)


class FP16Step:
    """Dynamic loss scaling over a :class:`MegatronLikeOptimizer` of an fp16 model."""

    def __init__(self, opt: MegatronLikeOptimizer, device, scale: float = 2.0 ** 12):
        import torch
        self.opt = opt
        self.scale = torch.full((1,), scale, device=device, dtype=torch.float32)
        self.growth = torch.zeros((1,), device=device, dtype=torch.int32)
        self.found_inf = torch.zeros((1,), device=device, dtype=torch.float32)
        self.skipped = 0

    def finish(self):
        """After the micro-batches: unscale + inf check, read found_inf, update the scale,
        step unless it overflowed."""
        import torch
        self.found_inf.zero_()
        torch._amp_foreach_non_finite_check_and_unscale_(self.opt.grads, self.found_inf,
                                                          1.0 / self.scale)
        overflow = self.found_inf.item() > 0      # host sync, as Megatron's fp16 optimizer
        torch._amp_update_scale_(self.scale, self.growth, self.found_inf, 2.0, 0.5, 1000)
        if overflow:
            self.skipped += 1
            return
        self.opt.step()


def sync_steps(mode, model, opt, fp16, batches, steps, cuda, device):
    """(step ms, host-enqueue ms of the micro-batches) of ``steps`` steps from an idle GPU."""
    import torch
    times, host = [], []
    ga = len(batches)
    for _ in range(steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad()
        for ids, tgt in batches:
            if mode == "hostsync":   # get_batch's broadcast_data: sizes to the GPU and back
                torch.tensor([ids.shape[0], ids.shape[1]], dtype=torch.long,
                             device=device).cpu()
            loss = model.loss(ids, tgt) / ga
            if fp16 is not None:
                loss = loss * fp16.scale
            loss.backward()
            opt.accumulate()
        host.append((time.perf_counter() - t0) * 1e3)
        with torch.no_grad():
            if fp16 is not None:
                fp16.finish()
            else:
                opt.step()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, host


def sync_phase(args, device, dtype, cuda, sw, rows, t0) -> None:
    import torch
    vocab, maxpos = train.vocab_positions(args.tiny)
    for name, seq, mbs, ga in args.sync_list:
        if budget_spent(t0, args.budget_s, f"sync {name}:{seq}:{mbs}:{ga}"):
            return
        L, h, heads = train.MODELS[name]
        case = train.case_name(name, seq, mbs, ga, False)
        meta = {"layers": L, "hidden": h, "ffn": 4 * h, "heads": heads, "vocab": vocab,
                "max_position": maxpos, "seq": seq, "mbs": mbs, "ga": ga, "recompute": 0,
                "hidden_dropout": 0.1, "params": param_count(L, h, 4 * h, vocab, maxpos),
                "steps": args.steps, "warmup": args.warmup, "variant": "default",
                "attn_backend": "sdpa"}
        models: dict[str, Any] = {}
        bf: Any = None
        hf: Any = None
        bopt: Any = None
        hopt: Any = None
        batches: Any = None
        floors: Any = None
        try:
            bf = GPTModel(L, h, 4 * h, heads, vocab, maxpos, device, dtype, hidden_dropout=0.1)
            bopt = MegatronLikeOptimizer(bf)
            models["plain"] = models["hostsync"] = (bf, bopt, None)
            hf = GPTModel(L, h, 4 * h, heads, vocab, maxpos, device, torch.float16,
                          hidden_dropout=0.1)
            hopt = MegatronLikeOptimizer(hf)
            models["fp16"] = (hf, hopt, FP16Step(hopt, device))
            batches = train.token_batches(vocab, mbs, seq, ga, device)
            floors = [Floor(GPTModel, n, h, heads, vocab, maxpos, args.floor_seq, device,
                            dtype) for n in sorted({1, L})]
            for mode in MODES:
                m, o, f = models[mode]
                sync_steps(mode, m, o, f, batches, args.warmup, cuda, device)
            for f in floors:
                f.measure(1, False, cuda, {})
            for rno in range(1, args.rounds + 1):
                note = f"round {rno}; case {case}"
                for f in floors:
                    sw.rows.extend(f.measure(args.floor_reps, False, cuda,
                                             {"group": "hostfloor", "phase": "fwd",
                                              "note": note}))
                for mode in MODES:
                    m, o, f = models[mode]
                    skipped0 = f.skipped if f else 0
                    s0 = steal_ms()
                    times, host = sync_steps(mode, m, o, f, batches, args.steps, cuda, device)
                    s1 = steal_ms()
                    med = statistics.median(times)
                    rows.append({**meta, "case": case if mode == "plain" else f"{case}-{mode}",
                                 "mode": mode, "round": rno, "step_ms": round(med, 4),
                                 "step_p10_ms": round(train._q(times, 0.1), 4),
                                 "step_p90_ms": round(train._q(times, 0.9), 4),
                                 "host_fwdbwd_ms": round(statistics.median(host), 4),
                                 "tokens_per_s": round(mbs * seq * ga / med * 1e3),
                                 "skipped_steps": (f.skipped - skipped0) if f else 0,
                                 "status": "ok",
                                 "steal_ms": "" if s0 is None or s1 is None
                                 else round(s1 - s0, 1)})
                _log(f"sync {case} r{rno}: " + ", ".join(
                    f"{r['mode']} {r['step_ms']:.2f}" for r in rows[-3:]) + " ms")
        except torch.cuda.OutOfMemoryError as exc:
            rows.append({**meta, "case": case, "status": "oom"})
            _log(f"{case}: out of memory ({str(exc).splitlines()[0][:120]})")
        finally:
            models.clear()
            floors = batches = bf = hf = bopt = hopt = None
            free_gpu(cuda)


def method_phase(args, device, dtype, cuda, out_rows, t0) -> None:
    import torch
    vocab, maxpos = train.vocab_positions(args.tiny)
    for name, seq, mbs in args.method_list:
        if budget_spent(t0, args.budget_s, f"method {name}:{seq}:{mbs}"):
            return
        L, h, heads = train.MODELS[name]
        case = train.case_name(name, seq, mbs, 1, False)
        model: Any = GPTModel(L, h, 4 * h, heads, vocab, maxpos, device, dtype,
                              hidden_dropout=0.1)
        opt: Any = MegatronLikeOptimizer(model)
        g = torch.Generator(device=device)
        g.manual_seed(7)
        ids: Any = torch.randint(0, vocab, (mbs, seq), device=device, generator=g)
        tgt: Any = torch.randint(0, vocab, (mbs, seq), device=device, generator=g)
        fl: Any = Floor(GPTModel, L, h, heads, vocab, maxpos, args.floor_seq, device, dtype)

        def floor_step():
            fl.opt.zero_grad()
            (fl.model.loss(fl.ids, fl.tgt) / 1).backward()
            fl.opt.accumulate()

        def step(acc: bool):
            opt.zero_grad()
            (model.loss(ids, tgt) / 1).backward()
            if acc:
                opt.accumulate()
            else:
                for p in model.params():
                    p.grad = None
            t = time.perf_counter()
            with torch.no_grad():
                opt.step()
            return t

        def step_timed(acc: bool):
            host, wall = [], []
            for _ in range(args.reps):
                if cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                t1 = step(acc)
                if cuda:
                    torch.cuda.synchronize()
                host.append((t1 - t) * 1e6)
                wall.append((time.perf_counter() - t) * 1e6)
            return statistics.median(host), statistics.median(wall)
        for _ in range(2):
            fl.fwd_bwd()
            step(True)
            step(False)
        base = {"case": case, "layers": L, "hidden": h, "heads": heads, "mbs": mbs, "seq": seq,
                "reps": args.reps}
        for rno in range(1, args.rounds + 1):
            res = {}
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(args.reps):
                fl.fwd_bwd()
            if cuda:
                torch.cuda.synchronize()
            loop = (time.perf_counter() - t) * 1e6 / args.reps
            res["floor_loop"] = (loop, loop)
            res["floor_synced"] = timed_calls(fl.fwd_bwd, args.reps, cuda)
            res["floor_step"] = timed_calls(floor_step, args.reps, cuda)
            res["step"] = step_timed(True)
            res["step_noacc"] = step_timed(False)
            for mode, (hu, wu) in res.items():
                out_rows.append({**base, "round": rno, "mode": mode, "host_us": round(hu, 1),
                                 "wall_us": round(wu, 1)})
            _log(f"method {case} r{rno}: " + ", ".join(
                f"{k} {v[0] / 1e3:.2f}/{v[1] / 1e3:.2f}" for k, v in res.items()) + " ms")
        model = opt = fl = ids = tgt = None
        free_gpu(cuda)


def _bad(flag: str, spec: str, why: str) -> NoReturn:
    print(f"hostcause: error: {flag} {spec}: {why}", file=sys.stderr)
    raise SystemExit(2)


def _model(name: str) -> str:
    if name not in train.MODELS:
        raise ValueError(f"unknown model (known: {', '.join(train.MODELS)})")
    return name


def _variant(name: str) -> str:
    if name not in VARIANTS:
        raise ValueError(f"unknown variant (known: {', '.join(VARIANTS)})")
    return name


def _count(text: str) -> int:
    n = int(text)
    if n < 1:
        raise ValueError(f"{n} is not a positive count")
    return n


def _specs(flag: str, value: str, sep: str, kinds: tuple, maxpos: int,
           table: str) -> list[tuple]:
    """Each comma-separated spec of ``value`` split at ``sep`` into ``kinds``; a second field
    that is a count is a sequence (in every flag here) and must fit in ``maxpos``."""
    out = []
    for spec in value.split(","):
        parts = spec.split(sep)
        try:
            if len(parts) != len(kinds):
                raise ValueError(f"{len(kinds)} fields separated by {sep!r} expected")
            vals = tuple(kind(part) for kind, part in zip(kinds, parts))
        except ValueError as exc:
            _bad(flag, spec, str(exc))
        if kinds[1] is _count and vals[1] > maxpos:
            _bad(flag, spec, f"sequence {vals[1]} is longer than {table}")
        out.append(vals)
    return out


def plan(args) -> None:
    """The phases' cases from the flags (their ``--tiny`` defaults filled in) as
    ``args.shape_model_list``, ``shape_list``, ``sync_list``, ``method_list``. A spec that does
    not parse, names an unknown model, variant or phase, or has a sequence longer than the
    model's position table stops the run before it starts: one line, exit 2."""
    _, maxpos = train.vocab_positions(args.tiny)
    table = f"the model's {maxpos} positions" + (" (--tiny)" if args.tiny else "")
    for key, full in (("shapes", SHAPES), ("sync_cases", SYNC_CASES),
                      ("method_cases", METHOD_CASES)):
        if getattr(args, key) is None:
            setattr(args, key, TINY[key] if args.tiny else full)
    for phase in args.phases.split(","):
        if phase not in PHASES:
            _bad("--phases", phase, f"unknown phase (known: {', '.join(PHASES)})")
    if args.floor_seq > maxpos:
        _bad("--floor-seq", str(args.floor_seq), f"sequence longer than {table}")
    args.shape_model_list = _specs("--shape-models", args.shape_models, ":",
                                   (_model, _variant), maxpos, table)
    args.shape_list = _specs("--shapes", args.shapes, "x", (_count, _count), maxpos, table)
    args.sync_list = _specs("--sync-cases", args.sync_cases, ":",
                            (_model, _count, _count, _count), maxpos, table)
    args.method_list = _specs("--method-cases", args.method_cases, ":",
                              (_model, _count, _count), maxpos, table)


def main(argv=None) -> int:
    ap = parser("hostcause", __doc__)
    ap.add_argument("--phases", default="shapes,sync", help=f"of {', '.join(PHASES)}")
    ap.add_argument("--shape-models",
                    default="gpt-350m:default,gpt-350m:unfused,gpt-350m:fp8,gpt-125m:default,"
                            "gpt-760m:default")
    ap.add_argument("--shapes", help="micro-batch x sequence, the first the floor GPT's "
                                     f"(default {SHAPES}; --tiny {TINY['shapes']})")
    ap.add_argument("--spin-ms", type=float, default=10.0)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sync-cases", help="model:seq:micro-batch:micro-batches (default "
                                         f"{SYNC_CASES}; --tiny {TINY['sync_cases']})")
    ap.add_argument("--method-cases", help="model:seq:micro-batch (default "
                                           f"{METHOD_CASES}; --tiny {TINY['method_cases']})")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--floor-seq", type=int, default=64)
    ap.add_argument("--floor-reps", type=int, default=4)
    ap.add_argument("--budget-s", type=float, default=500.0)
    args = ap.parse_args(argv)
    if args.tiny:
        train.MODELS.update(TINY_MODELS)
    plan(args)

    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "hostcause")
    phases = args.phases.split(",")
    failed: list[str] = []
    if "method" in phases:
        mrows: list[dict] = []
        attempt("method", failed, method_phase, args, device, dtype, cuda, mrows, t0)
        train.write_csv(os.path.join(args.out, "method.csv"), METHOD_COLUMNS, mrows)
    if "shapes" in phases:
        shape_rows: list[dict] = []
        prof_rows: list[dict] = []
        attempt("shapes", failed, shapes_phase, args, device, dtype, cuda, shape_rows,
                prof_rows, t0)
        train.write_csv(os.path.join(args.out, "shapes.csv"), SHAPE_COLUMNS, shape_rows)
        if prof_rows:
            train.write_csv(os.path.join(args.out, "profile.csv"), train.PROFILE_COLUMNS,
                            prof_rows)
    if "sync" in phases:
        sw = kernels.Sweep(args.out, device, dtype, cuda, log=_log)
        rows: list[dict] = []
        attempt("sync", failed, sync_phase, args, device, dtype, cuda, sw, rows, t0)
        sw.flush()
        train.write_csv(os.path.join(args.out, "train.csv"), train.COLUMNS + SYNC_EXTRA, rows)
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
