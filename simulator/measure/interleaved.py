"""One GPU, one call: each training case beside the host floor of its own layers, in rounds.

    python -m simulator.measure.interleaved --out DIR                   # a GPU (cuda:0)
    python -m simulator.measure.interleaved --out DIR --device cpu --tiny    # a dry run

Host (CPU) time on the lent VMs moves by 10-40% within seconds (simulator.measure.paired
measured the host floor and the steps in rounds a minute apart, and one round's floor still
missed its own steps by up to 20%). Here every case is measured on its own, its host floor
seconds from its steps: the case's model (its variant: default, FP8 GEMMs or the unfused
attention) is built once, and so are two host-floor GPTs of the same variant and width at
``--floor-seq`` tokens (64: every kernel takes microseconds, the loop's wall time is the
host's), one of 1 layer and one of the case's layer count. Then ``--rounds`` rounds, each:

* the host floor (``kernels.csv``, group ``hostfloor``, ``note`` ``round R; case C[;
  variant V]``): per floor GPT the forward, forward + backward + fp32 accumulation, the same
  with every layer checkpointed (recompute cases only) and the optimizer step,
  ``--floor-reps`` calls each after one untimed call, the host clock around the loop;
* ``--steps`` timed training steps (``train.csv``, one row per round: median, p10, p90 of the
  round's steps, columns ``round``, ``variant`` and ``steal_ms``, the CPU time the hypervisor
  took from this VM during the round, from /proc/stat).

A round thus pairs a case's steps with a floor measured a second earlier; the case's
measured value is the median over its rounds and its spread is that of the rounds. Some
cases are then profiled for one step (``profile.csv``: every CUDA kernel and CPU op by
name, count and time), to see which kernels the FP8 and unfused layers launch.

Torch is imported inside functions only.
"""
# ruff: noqa: B023 - every closure made in a loop here is called before the loop moves on
from __future__ import annotations

import os
import statistics
import sys
import time

from . import kernels, train
from .gpt import GPTModel, MegatronLikeOptimizer, param_count
from .paired import PAIRED_CASES, VARIANT_CASES, VariantGPT
from .runstart import attempt, budget_spent, finish, free_gpu, parser, start_run
from .runstart import log as _log

TRAIN_EXTRA = ["round", "variant", "steal_ms"]
#: (case, variant) profiled for one step after its rounds
PROFILED = [("gpt-125m-s1024-b4", "default"), ("gpt-125m-s1024-b4", "fp8"),
            ("gpt-760m-s2048-b1", "default"), ("gpt-350m-s1024-b1", "default"),
            ("gpt-125m-s1024-b4", "unfused"), ("gpt-1.3b-s2048-b4", "fp8"),
            ("gpt-1.3b-s2048-b4", "unfused"), ("gpt-1.3b-s2048-b1", "fp8")]


def steal_ms() -> float | None:
    """CPU time stolen by the hypervisor so far, all CPUs (ms; /proc/stat's 8th field)."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        hz = os.sysconf("SC_CLK_TCK")
        return int(fields[8]) * 1e3 / hz
    except (OSError, ValueError, IndexError):
        return None


def model_class(variant: str):
    if variant == "default":
        return GPTModel
    return type("GPT", (VariantGPT,), {"attention": "unfused" if variant == "unfused"
                                       else "sdpa", "fp8": variant == "fp8"})


class Floor:
    """A host-floor GPT of ``layers`` layers: its timed calls."""

    def __init__(self, cls, layers, hidden, heads, vocab, max_position, seq, device, dtype):
        import torch
        self.layers, self.hidden, self.heads, self.seq = layers, hidden, heads, seq
        self.model = cls(layers, hidden, 4 * hidden, heads, vocab, max_position, device, dtype,
                         seed=3)
        self.opt = MegatronLikeOptimizer(self.model)
        self.ids = torch.randint(0, vocab, (1, seq), device=device)
        self.tgt = torch.randint(0, vocab, (1, seq), device=device)
        self.vocab = vocab

    def fwd_bwd(self) -> None:
        """The floor GPT's forward + backward + fp32 accumulation (``fwdbwd_accumulate``)."""
        self.model.loss(self.ids, self.tgt).backward()
        self.opt.accumulate()

    def ops(self, recompute: bool):
        import torch
        m, opt = self.model, self.opt

        def fwd():
            m.loss(self.ids, self.tgt)

        def step():
            with torch.no_grad():
                opt.step()
        out = [("forward", fwd, False), ("fwdbwd_accumulate", self.fwd_bwd, False)]
        if recompute:
            out.append(("fwdbwd_accumulate_recompute", self.fwd_bwd, True))
        return out + [("optimizer_step", step, False)]

    def measure(self, reps: int, recompute: bool, cuda: bool, base: dict) -> list[dict]:
        import torch
        rows = []
        for op, fn, rc in self.ops(recompute):
            self.model.recompute = rc
            fn()
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            if cuda:
                torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) * 1e6 / reps
            rows.append({**base, "op": op, "rows": self.layers, "cols": self.hidden,
                         "seq": self.seq, "heads": self.heads, "numel": self.model.numel,
                         "m": self.vocab, "tensors": len(self.model.names), "reps": reps,
                         "status": "host_wall", "host_us": kernels._r(wall),
                         "dev_us": kernels._r(wall)})
        self.model.recompute = False
        return rows


def timed_calls(fn, reps: int, cuda: bool) -> tuple[float, float]:
    """(median host us, median wall us) of ``reps`` calls of ``fn``, each from an idle GPU: the
    host clock to its return (the enqueue) and to the synchronize after it."""
    import torch
    host, wall = [], []
    for _ in range(reps):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        host.append((time.perf_counter() - t) * 1e6)
        if cuda:
            torch.cuda.synchronize()
        wall.append((time.perf_counter() - t) * 1e6)
    return statistics.median(host), statistics.median(wall)


def enqueue(model, opt, batches) -> None:
    """A step's part up to the optimizer, as the host enqueues it (``host_fwdbwd_ms``): the
    main gradients zeroed, then each micro-batch's forward, backward and fp32 accumulation."""
    opt.zero_grad()
    for ids, tgt in batches:
        (model.loss(ids, tgt) / len(batches)).backward()
        opt.accumulate()


def timed_steps(model, opt, batches, steps: int, cuda: bool):
    """(step ms, host-enqueue ms of the forward+backward) of ``steps`` steps, each from an
    idle GPU to the synchronize after the optimizer (as :func:`train.run_case`)."""
    import torch
    times, host = [], []
    for _ in range(steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        enqueue(model, opt, batches)
        host.append((time.perf_counter() - t0) * 1e3)
        with torch.no_grad():
            opt.step()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, host


def run_case(spec, variant: str, args, device, dtype, cuda, sw: kernels.Sweep, rows: list,
             profile_rows: list, vocab: int, max_position: int) -> None:
    import torch
    model_name, seq, mbs, ga, rc = spec
    L, h, heads = train.MODELS[model_name]
    name = train.case_name(*spec)
    case = name if variant == "default" else f"{name}-{variant}"
    cls = model_class(variant)
    meta = {"case": case, "layers": L, "hidden": h, "ffn": 4 * h, "heads": heads,
            "vocab": vocab, "max_position": max_position, "seq": seq, "mbs": mbs, "ga": ga,
            "recompute": int(rc), "hidden_dropout": 0.1,
            "params": param_count(L, h, 4 * h, vocab, max_position), "steps": args.steps,
            "warmup": args.warmup, "variant": variant}
    model = opt = batches = floors = None
    try:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        model = cls(L, h, 4 * h, heads, vocab, max_position, device, dtype, hidden_dropout=0.1,
                    recompute=rc)
        opt = MegatronLikeOptimizer(model)
        batches = train.token_batches(vocab, mbs, seq, ga, device)
        # a floor GPT as large as the case would double its memory: the largest (GPU-bound)
        # cases get none and are priced with the run's other floors
        floors = [Floor(cls, n, h, heads, vocab, max_position, args.floor_seq, device, dtype)
                  for n in sorted({1, L})] if meta["params"] <= args.floor_max_params else []
        losses = []
        for _ in range(args.warmup):
            losses.append(float(train.train_step(model, opt, batches).detach()) * ga)
        for f in floors:
            f.measure(1, rc, cuda, {})
        for rno in range(1, args.rounds + 1):
            note = f"round {rno}; case {case}" + ("" if variant == "default"
                                                  else f"; variant {variant}")
            s0 = steal_ms()
            for f in floors:
                sw.rows.extend(f.measure(args.floor_reps, rc, cuda,
                                         {"group": "hostfloor", "phase": "fwd", "note": note}))
            times, host = timed_steps(model, opt, batches, args.steps, cuda)
            s1 = steal_ms()
            med = statistics.median(times)
            rows.append({**meta, "step_ms": round(med, 4),
                         "step_p10_ms": round(train._q(times, 0.1), 4),
                         "step_p90_ms": round(train._q(times, 0.9), 4),
                         "host_fwdbwd_ms": round(statistics.median(host), 4),
                         "tokens_per_s": round(mbs * seq * ga / med * 1e3),
                         "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
                         if cuda else "", "loss_first": round(losses[0], 4) if losses else "",
                         "attn_backend": "unfused" if variant == "unfused" else "sdpa",
                         "status": "ok", "round": rno,
                         "steal_ms": "" if s0 is None or s1 is None else round(s1 - s0, 1)})
            fl = [r for r in sw.rows[-8:] if r.get("note") == note
                  and r["op"] == "fwdbwd_accumulate"]
            _log(f"{case} r{rno}: step {med:.2f} ms (p10 {rows[-1]['step_p10_ms']}, p90 "
                 f"{rows[-1]['step_p90_ms']}), floor fwd+bwd "
                 + ", ".join(f"{r['rows']}L {r['host_us'] / 1e3:.2f} ms" for r in fl)
                 + f", steal {rows[-1]['steal_ms']} ms")
        if (name, variant) in PROFILED and cuda:
            profile_rows.extend(train._profile(case, model, opt, batches, cuda))
            for f in floors[-1:]:   # its floor GPT's forward + backward, for the launch costs
                profile_rows.extend(train.profiled(f"{case} floor {f.layers}L", f.fwd_bwd,
                                                   cuda))
    except torch.cuda.OutOfMemoryError as exc:
        rows.append({**meta, "status": "oom"})
        _log(f"{case}: out of memory ({str(exc).splitlines()[0][:120]})")
    finally:
        del model, opt, batches, floors
        free_gpu(cuda)


def main(argv=None) -> int:
    ap = parser("interleaved", __doc__)
    ap.add_argument("--variants", default="default,fp8,unfused")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per case and round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--floor-seq", type=int, default=64)
    ap.add_argument("--floor-reps", type=int, default=4)
    ap.add_argument("--floor-max-params", type=float, default=2e9,
                    help="no host floor beside cases of more parameters (GPU-bound; memory)")
    ap.add_argument("--cases", default="", help="only these case names (comma list)")
    ap.add_argument("--budget-s", type=float, default=500.0,
                    help="start no new case after this many seconds")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "interleaved")
    sw = kernels.Sweep(args.out, device, dtype, cuda, log=_log)
    vocab, maxpos = train.vocab_positions(args.tiny)
    plan = []
    for variant in args.variants.split(","):
        for spec in (PAIRED_CASES if variant == "default" else VARIANT_CASES):
            plan.append((spec, variant))
    if args.tiny:
        train.MODELS.update({"tiny": (2, 64, 4), "tiny2": (3, 128, 4)})
        plan = [(("tiny", 64, 1, 1, False), "default"), (("tiny2", 64, 2, 1, True), "default"),
                (("tiny", 64, 2, 1, False), "fp8"), (("tiny", 64, 2, 1, False), "unfused")]
    if args.cases:
        keep = set(args.cases.split(","))
        plan = [p for p in plan if train.case_name(*p[0]) in keep]
    rows: list[dict] = []
    profile_rows: list[dict] = []
    train_path = os.path.join(args.out, "train.csv")
    prof_path = os.path.join(args.out, "profile.csv")
    failed: list[str] = []
    for spec, variant in plan:
        if budget_spent(t0, args.budget_s, f"{train.case_name(*spec)} {variant}"):
            break
        attempt(f"{train.case_name(*spec)} {variant}", failed, run_case, spec, variant, args,
                device, dtype, cuda, sw, rows, profile_rows, vocab, maxpos)
        sw.flush()
        train.write_csv(train_path, train.COLUMNS + TRAIN_EXTRA, rows)
        if profile_rows:
            train.write_csv(prof_path, train.PROFILE_COLUMNS, profile_rows)
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
