"""Pipeline stages as event-loop processes exchanging activations and gradients.

One process per stage simulates one representative rank of that stage (all ranks of a stage
replay identically on a symmetric cluster), so the event count grows with stages and
micro-batches, never with the GPU count. Each pass is one timed event (see :mod:`.replay`);
a stage waits for the activation or gradient it needs, which arrives ``pp_comm`` transfer
time after its producer finished. While waiting, time the transfer was in flight counts as
exposed PP communication and the rest as pipeline bubble.
"""
from __future__ import annotations

from typing import Any

from ..result import StageResult, TraceSlice
from .loop import Environment
from .messages import Direction, Mailbox
from .replay import STREAMS, PassOutcome, StageSetup
from .stage import StagePass, drive, queue_send, split_wait, stage_passes


def flow_id(phase, mb: int, chunk: int, sender: int | None) -> str:
    """One pipeline message: what a send slice and the receiving pass share in the trace."""
    return f"{getattr(phase, 'name', phase)}:{mb}:{chunk}:{sender}"


_STREAM_NAMES = tuple(g.value for g in STREAMS)  # Enum .value is a slow property


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
               label: str, args: dict | None) -> None:
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
                                             {**(args or {}), **extra} if extra else args))

    def _stage(self, s: int):
        passes = stage_passes(self.schedule[s], s, self.pp, self.chunks, self.mb_variant,
                              self.stages[s].head, self.stages[s].tail)
        return drive(passes, _FastStage(self, s))

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


_PART_ARGS = {"head": "iteration start", "tail": "iteration end"}


class _FastStage:
    """The fast engine's executor of a stage's passes (:func:`.stage.drive`): one
    representative rank, a pass one memoized busy-until evaluation and one timeout."""

    __slots__ = ("sim", "s", "env", "rep", "res", "free", "wg_done", "send_free", "cost",
                 "blocking")

    def __init__(self, sim: PipelineSim, s: int):
        self.sim = sim
        self.s = s
        self.env = sim.env
        setup = sim.stages[s]
        self.rep = setup.replayer
        self.res = sim.results[s]
        self.free = [0] * len(STREAMS)
        self.wg_done: dict = {}
        self.send_free = {Direction.NEXT: 0, Direction.PREV: 0}
        self.cost = {Direction.NEXT: setup.send_next_ns, Direction.PREV: setup.send_prev_ns}
        self.blocking = setup.blocking_send

    def receive(self, p: StagePass):
        sim, env, r = self.sim, self.env, p.receive
        assert r is not None   # the driver calls receive only for a pass that has one
        ev = sim.mail.box((r.phase, r.mb, r.chunk, r.sender_stage))
        if not ev.triggered:
            w0 = env.now
            sent_at, arrived = yield ev
            bubble, pp_ns = split_wait(w0, sent_at, arrived)
            self.res.exposed_ns["PP"] += pp_ns
            self.res.bubble_ns += bubble
            if sim.trace is not None:
                if bubble:
                    sim.trace.append(TraceSlice(self.s, "wait", "bubble", w0, bubble))
                if pp_ns:
                    sim.trace.append(TraceSlice(self.s, "wait", "PP receive", w0 + bubble,
                                                pp_ns))

    def run_pass(self, p: StagePass):
        sim, env = self.sim, self.env
        label = ""
        args: dict[str, Any] | None = None
        if sim.trace is not None:
            if p.part != "pipeline":
                args = {"part": _PART_ARGS[p.part]}
            else:
                label = f"{p.tag}{p.mb}" + (f".{p.chunk}" if sim.chunks > 1 else "") + " "
                args = {"micro_batch": p.mb, "chunk": p.chunk}
                r = p.receive
                if r is not None:
                    # the trace joins the pipeline send this pass waited for to the pass
                    args["flow_in"] = flow_id(r.phase, r.mb, r.chunk, r.sender_stage)
        out = self.rep.run(p.phase, p.seq, env.now, self.free, self.wg_done)
        sim._apply(self.s, out, env.now, self.free, self.wg_done, label, args)
        sim.events += 1
        if out.duration_ns:
            yield env.timeout(out.duration_ns)

    def send(self, p: StagePass):
        sim, direction, s = self.sim, p.send, self.s
        assert direction is not None   # the driver calls send only for a pass that sends
        cost = self.cost[direction]
        start, arrive = queue_send(self.env.now, self.send_free[direction], cost)
        self.send_free[direction] = arrive
        if sim.trace is not None and cost:
            sim.trace.append(TraceSlice(
                s, f"PP send {direction.value}", f"{p.tag}{p.mb} send", start, cost,
                {"micro_batch": p.mb, "chunk": p.chunk,
                 "flow_out": flow_id(p.phase, p.mb, p.chunk, s),
                 "to_stage": direction.of(s, sim.pp)}))
        sim.mail.deliver((p.phase, p.mb, p.chunk, s), start, arrive)
        if self.blocking and arrive > self.env.now:
            return self._blocked(arrive)
        return None

    def _blocked(self, arrive: int):
        now = self.env.now
        self.res.exposed_ns["PP"] += arrive - now
        if self.sim.trace is not None:
            self.sim.trace.append(TraceSlice(self.s, "wait", "PP send wait", now, arrive - now))
        yield self.env.timeout(arrive - now)

    def drain(self):
        # the iteration ends when every stream is idle; the wait is charged to the stream
        # that finishes last (the one on the critical path)
        env, free, res = self.env, self.free, self.res
        last = max(range(len(STREAMS)), key=lambda i: free[i])
        if free[last] > env.now:
            res.exposed_ns[STREAMS[last].value] += free[last] - env.now
            yield env.timeout(free[last] - env.now)
        res.end_ns = env.now
        self.sim.finished[self.s] = True
