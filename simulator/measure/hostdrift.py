"""One GPU, one call: what a host-bound step's enqueue time follows when it drifts.

    python -m simulator.measure.hostdrift --out DIR                   # a GPU (cuda:0)
    python -m simulator.measure.hostdrift --out DIR --device cpu --tiny    # a dry run

Why: the host-bound steps' enqueue over a floor GPT call made just before it moves
0.77-1.31 step to step (traces/h200/compute/steptail1), and on run10 the 350M FP8 step at
micro-batch 4 enqueued in two speeds (65 ms in 2 of 12 rounds, 89-112 ms in the others,
its floor GPT's forward 0.9 ms a layer in some rounds and 1.4-2.4 in others): the one
validated case beyond 10%. This run asks what the drift follows, with each call's own
counters, and whether pinning the process to one CPU removes it.

Per case (``--cases`` model:SEQxMBS, each in ``--variants``) the case's model and its floor
GPT (:class:`simulator.measure.interleaved.Floor`: same variant, width and layers at
``--floor-seq`` tokens) are built once, 3 warm-up steps, then ``--rounds`` rounds; a round
runs each mode of ``--modes`` (the order alternating round by round): ``free`` (the
process's threads on every CPU, as the runs measured) or ``pinned`` (every thread of the
process on one CPU, the one the main thread was on when the case started); in each mode
one floor call (forward + backward + fp32 accumulation from an idle GPU) and one step (the
enqueue of :func:`simulator.measure.interleaved.enqueue`, then the optimizer step and a
synchronize). ``calls.csv``, one row a call (``kind`` floor / step):

* ``host_ms``: the host's enqueue (the floor call's return; the step's zeroing, forward,
  backward and accumulation, as ``host_fwdbwd_ms``); ``wall_ms`` to the synchronize after
  it (the step's: after the optimizer);
* ``main_cpu_ms`` the main thread's CPU time over the enqueue (``time.thread_time``),
  ``proc_cpu_ms`` the process's (every thread: the backward runs on autograd's device
  thread); ``main_run_ms`` / ``main_wait_ms`` and ``other_run_ms`` / ``other_wait_ms``: the
  scheduler's time on a CPU and waiting for one (``/proc/self/task/*/schedstat``) of the
  main thread and of all other threads together; ``nvcsw`` / ``nivcsw`` the main thread's
  voluntary and involuntary context switches, ``proc_nvcsw`` / ``proc_nivcsw`` the
  process's (``getrusage``); ``cpu_start`` / ``cpu_end`` the CPU the main thread ran on
  (``/proc/thread-self/stat``); ``gc_n`` / ``gc_gen2`` / ``gc_ms`` Python's collections
  and their time (``gc.callbacks``); ``steal_ms`` the hypervisor's (``/proc/stat``,
  10 ms ticks);
* ``probe_py_us``: a fixed pure-Python loop (``--probe-n`` iterations) timed right before
  the call, and ``probe_torch_us`` 200 tiny CPU tensor adds (the dispatcher's path with no
  GPU), so each call has the host's speed at that moment beside it; ``mhz``: the
  ``cpu MHz`` /proc/cpuinfo gives for ``cpu_end`` after the call.

``cpus.csv``: once a round, the pure-Python probe on each CPU in turn (the main thread
pinned there), so a call's CPU can be matched with that CPU's speed in the same round.

Torch is imported inside functions only.
"""
from __future__ import annotations

import gc
import os
import resource
import sys
import threading
import time

from . import train
from .gpt import MegatronLikeOptimizer, param_count
from .interleaved import Floor, enqueue, model_class, steal_ms
from .runstart import attempt, budget_spent, finish, free_gpu, parser, start_run
from .runstart import log as _log
from .steptail import parse_cases

COUNTERS = ("main_cpu_ms", "proc_cpu_ms", "main_run_ms", "main_wait_ms", "other_run_ms",
            "other_wait_ms", "nvcsw", "nivcsw", "proc_nvcsw", "proc_nivcsw", "gc_n",
            "gc_gen2", "gc_ms", "steal_ms")
COLUMNS = (["case", "variant", "layers", "hidden", "seq", "mbs", "params", "round", "mode",
            "kind", "host_ms", "wall_ms"] + list(COUNTERS)
           + ["cpu_start", "cpu_end", "probe_py_us", "probe_torch_us", "mhz", "status"])
CPU_COLUMNS = ["case", "variant", "round", "cpu", "probe_py_us"]


class GCClock:
    """Python's garbage collections and their time since it was installed (gc.callbacks)."""

    def __init__(self) -> None:
        self.n = self.gen2 = 0
        self.ms = 0.0
        self._t = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter()
        else:
            self.n += 1
            self.gen2 += int(info.get("generation") == 2)
            self.ms += (time.perf_counter() - self._t) * 1e3

    def remove(self) -> None:
        gc.callbacks.remove(self._cb)


def _schedstat(tid: int) -> tuple[float, float]:
    """(ms on a CPU, ms waiting for one) of thread ``tid`` (0, 0 where the kernel has none)."""
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as fh:
            run, wait = fh.read().split()[:2]
        return int(run) / 1e6, int(wait) / 1e6
    except (OSError, ValueError):
        return 0.0, 0.0


def current_cpu() -> int:
    """The CPU the calling thread last ran on (-1 where /proc does not say)."""
    try:
        with open("/proc/thread-self/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return -1


def cpu_mhz(cpu: int) -> float | None:
    """``cpu MHz`` of ``cpu`` in /proc/cpuinfo (None where it is not listed)."""
    try:
        with open("/proc/cpuinfo") as fh:
            blocks = fh.read().split("\n\n")
    except OSError:
        return None
    for b in blocks:
        fields = {k.strip(): v.strip() for k, _, v in
                  (line.partition(":") for line in b.splitlines())}
        if fields.get("processor") == str(cpu) and "cpu MHz" in fields:
            return float(fields["cpu MHz"])
    return None


def counters(gcc: GCClock) -> dict:
    """The counters of :data:`COUNTERS` now (cumulative values; rows hold differences)."""
    me = threading.get_native_id()
    main_run, main_wait = _schedstat(me)
    other_run = other_wait = 0.0
    for tid in os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []:
        if int(tid) != me:
            r, w = _schedstat(int(tid))
            other_run, other_wait = other_run + r, other_wait + w
    th = resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF))
    pr = resource.getrusage(resource.RUSAGE_SELF)
    return {"main_cpu_ms": time.thread_time() * 1e3, "proc_cpu_ms": time.process_time() * 1e3,
            "main_run_ms": main_run, "main_wait_ms": main_wait, "other_run_ms": other_run,
            "other_wait_ms": other_wait, "nvcsw": th.ru_nvcsw, "nivcsw": th.ru_nivcsw,
            "proc_nvcsw": pr.ru_nvcsw, "proc_nivcsw": pr.ru_nivcsw, "gc_n": gcc.n,
            "gc_gen2": gcc.gen2, "gc_ms": gcc.ms, "steal_ms": steal_ms() or 0.0}


def probe_py(n: int) -> float:
    """Microseconds of a fixed pure-Python loop: the interpreter's speed on this CPU now."""
    t = time.perf_counter()
    s = 0
    for i in range(n):
        s += i * i
    return (time.perf_counter() - t) * 1e6


def probe_torch(a, calls: int = 200) -> float:
    """Microseconds of ``calls`` in-place adds on a one-element CPU tensor ``a``: PyTorch's
    dispatcher with no GPU in the way."""
    t = time.perf_counter()
    for _ in range(calls):
        a.add_(1.0)
    return (time.perf_counter() - t) * 1e6


def pin(cpus) -> None:
    """Every thread of this process onto ``cpus``."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:   # a thread that ended meanwhile
            pass


def timed_call(fn, gcc: GCClock, cuda: bool, after=None) -> dict:
    """``fn`` (the part the host enqueues) from an idle GPU, its counters' differences, the
    host clock to its return (``host_ms``) and to the synchronize after ``after`` (the step's
    optimizer) or after ``fn`` (``wall_ms``)."""
    import torch
    if cuda:
        torch.cuda.synchronize()
    c0, cpu0 = counters(gcc), current_cpu()
    t0 = time.perf_counter()
    fn()
    t1 = time.perf_counter()
    c1, cpu1 = counters(gcc), current_cpu()
    if after is not None:
        after()
    if cuda:
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    row = {k: round(c1[k] - c0[k], 4) for k in COUNTERS}
    row.update(host_ms=round((t1 - t0) * 1e3, 4), wall_ms=round((t2 - t0) * 1e3, 4),
               cpu_start=cpu0, cpu_end=cpu1, mhz=cpu_mhz(cpu1))
    return row


def run_case(spec, variant: str, args, device, dtype, cuda: bool, rows: list,
             cpu_rows: list) -> None:
    import torch
    name, seq, mbs = spec
    L, h, heads = train.MODELS[name]
    vocab, maxpos = train.vocab_positions(args.tiny)
    case = train.case_name(name, seq, mbs, 1, False) + ("" if variant == "default"
                                                        else f"-{variant}")
    meta = {"case": case, "variant": variant, "layers": L, "hidden": h, "seq": seq,
            "mbs": mbs, "params": param_count(L, h, 4 * h, vocab, maxpos)}
    cls = model_class(variant)
    everyone = set(range(os.cpu_count() or 1))
    model = opt = batches = floor = None
    gcc = GCClock()
    try:
        model = cls(L, h, 4 * h, heads, vocab, maxpos, device, dtype, hidden_dropout=0.1)
        opt = MegatronLikeOptimizer(model)
        batches = train.token_batches(vocab, mbs, seq, 1, device)
        floor = Floor(cls, L, h, heads, vocab, maxpos, args.floor_seq, device, dtype)
        for _ in range(args.warmup):
            train.train_step(model, opt, batches)
        floor.fwd_bwd()
        home = {current_cpu() if current_cpu() >= 0 else 0}
        one = torch.zeros(1)
        modes = args.modes.split(",")

        def step_tail(opt=opt):
            with torch.no_grad():
                opt.step()

        def step(model=model, opt=opt, batches=batches):
            enqueue(model, opt, batches)
        for rno in range(1, args.rounds + 1):
            for mode in (modes if rno % 2 else modes[::-1]):
                pin(home if mode == "pinned" else everyone)
                for kind, fn, after in (("floor", floor.fwd_bwd, None),
                                        ("step", step, step_tail)):
                    py, pt = probe_py(args.probe_n), probe_torch(one)
                    row = {**meta, "round": rno, "mode": mode, "kind": kind,
                           "probe_py_us": round(py, 2), "probe_torch_us": round(pt, 2),
                           "status": "ok"}
                    row.update(timed_call(fn, gcc, cuda, after))
                    rows.append(row)
            pin(everyone)
            me = threading.get_native_id()
            for c in sorted(everyone):
                os.sched_setaffinity(me, {c})
                cpu_rows.append({"case": case, "variant": variant, "round": rno, "cpu": c,
                                 "probe_py_us": round(probe_py(args.probe_n), 2)})
            os.sched_setaffinity(me, everyone)
        last = [r for r in rows if r["case"] == case and r["kind"] == "step"]
        _log(f"{case}: " + "; ".join(
            f"{m} step enqueue {min(r['host_ms'] for r in last if r['mode'] == m):.1f}-"
            f"{max(r['host_ms'] for r in last if r['mode'] == m):.1f} ms" for m in modes))
    except torch.cuda.OutOfMemoryError as exc:
        rows.append({**meta, "status": "oom"})
        _log(f"{case}: out of memory ({str(exc).splitlines()[0][:120]})")
    finally:
        gcc.remove()
        pin(everyone)
        del model, opt, batches, floor
        free_gpu(cuda)


def main(argv=None) -> int:
    ap = parser("hostdrift", __doc__)
    ap.add_argument("--cases", default="gpt-350m:1024x4,gpt-125m:1024x4")
    ap.add_argument("--variants", default="fp8,default")
    ap.add_argument("--modes", default="free,pinned")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--floor-seq", type=int, default=64)
    ap.add_argument("--probe-n", type=int, default=20000,
                    help="iterations of the pure-Python probe (about 1 ms)")
    ap.add_argument("--budget-s", type=float, default=150.0,
                    help="start no new case after this many seconds")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "hostdrift")
    cases = parse_cases(args.cases)
    if args.tiny:
        train.MODELS.update({"tiny": (2, 64, 4)})
        cases, args.rounds, args.floor_seq, args.probe_n = [("tiny", 32, 2)], 2, 16, 2000
    rows: list[dict] = []
    cpu_rows: list[dict] = []
    failed: list[str] = []
    for spec in cases:
        for variant in args.variants.split(","):
            if budget_spent(t0, args.budget_s, f"{spec[0]} {variant}"):
                break
            attempt(f"{spec[0]}:{spec[1]}x{spec[2]} {variant}", failed, run_case, spec,
                    variant, args, device, dtype, cuda, rows, cpu_rows)
            train.write_csv(os.path.join(args.out, "calls.csv"), COLUMNS, rows)
            train.write_csv(os.path.join(args.out, "cpus.csv"), CPU_COLUMNS, cpu_rows)
    return finish(t0, failed)


if __name__ == "__main__":
    sys.exit(main())
