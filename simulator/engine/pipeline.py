"""Pipeline stages as event-loop processes exchanging activations and gradients.

One process per stage simulates one representative rank of that stage (all ranks of a stage
replay identically on a symmetric cluster), so the event count grows with stages and
micro-batches, never with the GPU count. Each pass is one timed event (see :mod:`.replay`);
a stage waits for the activation or gradient it needs, which arrives ``pp_comm`` transfer
time after its producer finished. While waiting, time the transfer was in flight counts as
exposed PP communication and the rest as pipeline bubble.
"""
from __future__ import annotations

from dataclasses import dataclass

from .loop import Environment

from ..result import StageResult, TraceSlice
from ..workload import Phase
from .messages import Mailbox, has_consumer, source, split_wait
from .replay import STREAMS, PassOutcome, PassReplayer


def flow_id(phase, mb: int, chunk: int, sender: int) -> str:
    """One pipeline message: what a send slice and the receiving pass share in the trace."""
    return f"{getattr(phase, 'name', phase)}:{mb}:{chunk}:{sender}"


_STREAM_NAMES = tuple(g.value for g in STREAMS)  # Enum .value is a slow property


@dataclass
class StageSetup:
    replayer: PassReplayer
    send_next_ns: int   # activation to the next stage (or, last stage, to stage 0: interleaved)
    send_prev_ns: int   # gradient to the previous stage (or, stage 0, to the last)
    head: list          # sequences replayed forward before the pipeline
    tail: list          # (phase, sequence) replayed after it


class PipelineSim:
    def __init__(self, stages: list[StageSetup], schedule: list[list], pp: int, chunks: int,
                 trace: bool, mb_variant: tuple[int, ...]):
        self.env = Environment()   # simpy semantics, a lighter loop (.loop)
        self.stages = stages
        self.schedule = schedule
        self.pp = pp
        self.chunks = chunks
        self.mb_variant = mb_variant  # which distinct micro-batch block each micro-batch replays
        self.trace: list[TraceSlice] | None = [] if trace else None
        self.results = [StageResult(stage=s) for s in range(pp)]
        self._outcomes: list[dict[int, list]] = [dict() for _ in range(pp)]
        self.mail = Mailbox(self.env)
        self.events = 0
        self.finished = [False] * pp

    # -- bookkeeping -------------------------------------------------------------------
    def _apply(self, s: int, out: PassOutcome, now: int, free: list[int], wg_done: dict,
               label: str, args: dict) -> None:
        res = self.results[s]
        res.compute_ns += out.compute_ns
        res.recompute_ns += out.recompute_ns
        exposed = res.exposed_ns
        for name, ns in zip(_STREAM_NAMES, out.exposed_ns):
            if ns:
                exposed[name] += ns
        for i, rel in enumerate(out.stream_free):
            if now + rel > free[i]:
                free[i] = now + rel
        for key, rel in out.wg_done:
            wg_done[key] = now + rel
        if out.row_exposed:
            # per-row detail is summed once at the end: count how often each outcome occurred
            seen = self._outcomes[s].get(id(out))
            if seen is None:
                self._outcomes[s][id(out)] = [out, 1]
            else:
                seen[1] += 1
        if self.trace is not None and out.slices:
            for lane, name, start, dur, extra in out.slices:
                self.trace.append(TraceSlice(s, lane, f"{label}{name}", now + start, dur,
                                             {**args, **extra} if extra else args))

    def _stage(self, s: int):
        env = self.env
        setup = self.stages[s]
        rep = setup.replayer
        res = self.results[s]
        free = [0] * len(STREAMS)
        wg_done: dict = {}
        send_free = {"next": 0, "prev": 0}

        def run_pass(phase: Phase, seq, label: str, args: dict):
            out = rep.run(phase, seq, env.now, free, wg_done)
            self._apply(s, out, env.now, free, wg_done, label, args)
            self.events += 1
            return out.duration_ns

        for seq in setup.head:
            d = run_pass(Phase.FWD, seq, "", {"part": "iteration start"})
            if d:
                yield env.timeout(d)

        for phase, mb, chunk in self.schedule[s]:
            src = source(phase, mb, chunk, s, self.pp, self.chunks)
            if src is not None:
                ev = self.mail.box(src[:3] + ((s - 1) % self.pp if src[3] == "prev"
                                               else (s + 1) % self.pp,))
                if not ev.triggered:
                    w0 = env.now
                    sent_at, arrived = yield ev
                    bubble, pp_ns = split_wait(w0, sent_at, arrived)
                    res.exposed_ns["PP"] += pp_ns
                    res.bubble_ns += bubble
                    if self.trace is not None:
                        if bubble:
                            self.trace.append(TraceSlice(s, "wait", "bubble", w0, bubble))
                        if pp_ns:
                            self.trace.append(TraceSlice(s, "wait", "PP receive", w0 + bubble,
                                                         pp_ns))
            tag = "F" if phase is Phase.FWD else "B"
            label = f"{tag}{mb}" + (f".{chunk}" if self.chunks > 1 else "") + " "
            pass_args = {"micro_batch": mb, "chunk": chunk}
            if src is not None:
                # the trace joins the pipeline send this pass waited for to the pass (a flow)
                sender = (s - 1) % self.pp if src[3] == "prev" else (s + 1) % self.pp
                pass_args["flow_in"] = flow_id(src[0], src[1], src[2], sender)
            d = run_pass(phase, ("mb", self.mb_variant[mb], chunk), label, pass_args)
            if d:
                yield env.timeout(d)
            if has_consumer(phase, chunk, s, self.pp, self.chunks):
                direction = "next" if phase is Phase.FWD else "prev"
                cost = setup.send_next_ns if phase is Phase.FWD else setup.send_prev_ns
                start = max(env.now, send_free[direction])
                arrive = start + cost
                send_free[direction] = arrive
                if self.trace is not None and cost:
                    self.trace.append(TraceSlice(
                        s, f"PP send {direction}", f"{tag}{mb} send", start, cost,
                        {"micro_batch": mb, "chunk": chunk, "flow_out": flow_id(phase, mb, chunk, s),
                         "to_stage": (s + 1) % self.pp if direction == "next"
                         else (s - 1) % self.pp}))
                self.mail.deliver((phase, mb, chunk, s), start, arrive)

        for phase, seq in setup.tail:
            d = run_pass(phase, seq, "", {"part": "iteration end"})
            if d:
                yield env.timeout(d)

        # drain: the iteration ends when every stream is idle; the wait is charged to the
        # stream that finishes last (the one on the critical path)
        last = max(range(len(STREAMS)), key=lambda i: free[i])
        if free[last] > env.now:
            res.exposed_ns[STREAMS[last].value] += free[last] - env.now
            yield env.timeout(free[last] - env.now)
        res.end_ns = env.now
        self.finished[s] = True

    def row_exposed(self, stage: int) -> dict:
        """Exposed communication per row key on one stage, over the whole iteration."""
        total: dict = {}
        for out, count in self._outcomes[stage].values():
            for key, ns in out.row_exposed:
                total[key] = total.get(key, 0) + ns * count
        return total

    def run(self) -> None:
        for s in range(self.pp):
            self.env.process(self._stage(s))
        self.env.run()
        stuck = [s for s in range(self.pp) if not self.finished[s]]
        if stuck:
            # a stage waited for a message nobody sent: a schedule bug, never bad input
            raise RuntimeError(f"pipeline deadlock: stages {stuck} never finished")
