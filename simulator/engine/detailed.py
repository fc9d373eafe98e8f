"""Row-level replay with one process per rank class: the straightforward engine.

Every compute phase is a timeout and every collective a rendezvous of the classes in its
group: it starts when every member has reached it and has its stream free, and ends for all
of them together. Weight-gradient collectives run in their own small processes so they
overlap the compute that follows. With one class per stage this gives exactly what the fast
pass-level engine (:mod:`.pipeline`) computes, and tests hold the two to that; with several
classes (a straggler, a degraded link) it is what makes ranks wait for each other.

The processes run on :mod:`.loop`'s event loop (simpy's semantics and event order, without
its per-event class hierarchy); ``tests/test_fabric_speed.py`` checks that simpy's own
environment gives the same results.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from .loop import Chain as _Chain, Environment, Event, fire

from ..result import StageResult, TraceSlice
from ..workload import Group, Phase
from .messages import Direction, Mailbox
from .policy import COMM_OF_TAG
from .pipeline import flow_id
from .replay import STREAMS, PricedRow, comm_args
from .stage import StagePass, drive, queue_send, split_wait, stage_passes

if TYPE_CHECKING:  # classes needs numpy, which a detailed run may not
    from ..network.flows import FlowNetwork
    from .classes import RankClass
    from .policy import PolicyRules

_KIND_OF_STREAM = {i: g for i, g in enumerate(STREAMS)}
_STREAM_NAMES = tuple(g.value for g in STREAMS)   # Enum .value is a slow property


@dataclass
class JobRun:
    """What the classes of one job share: its schedule and micro-batches."""

    job: int
    schedule: list
    pp: int
    chunks: int
    mb_variant: tuple[int, ...]
    # the policy's replay (shared with the fast engine: .policy.pass_program)
    rules: PolicyRules | None = None
    dlrm_lbl: int | None = None
    seq_first: dict = field(default_factory=dict)


@dataclass
class ClassSetup:
    cls: RankClass
    cid: int                   # global id (classes of all jobs numbered together)
    job: JobRun
    sequences: dict            # sequence id -> list[PricedRow], compute already scaled
    send_next_ns: int
    send_prev_ns: int
    head: list
    tail: list
    next_class: int | None     # global id of the same pipeline column's class in the next stage
    prev_class: int | None
    label: str = ""
    blocking_send: bool = False   # the sender waits for its send (see pipeline.StageSetup)
    # for contention: group kind or send Direction -> the LinkShare it loads
    links: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Jitter:
    """Random compute times: each phase's time times a mean-1 lognormal factor.

    ``cv`` is the coefficient of variation per phase kind (fwd, ig, wg). A class stands for
    ``n`` ranks that wait for each other at their next collective, so its factor is the
    largest of ``n`` independent draws (sampled directly: u^(1/n) through the inverse CDF).
    That is exact for ranks that synchronise after every phase (TP and EP collectives in
    every layer) and an upper bound for ranks that synchronise less often.
    """

    cv: dict                 # phase kind -> coefficient of variation
    seed: int = 0

    def rng_for(self, cid: int):
        import random
        return random.Random(f"{self.seed}:{cid}")

    def draw(self, rng, what: str, ns: int, n: int) -> int:
        import math
        from statistics import NormalDist

        cv = self.cv.get(what, 0.0)
        if cv <= 0:
            return ns
        sigma = math.sqrt(math.log(1 + cv * cv))
        u = rng.random() or 1e-12
        q = math.exp(math.log(u) / max(1, n))          # the max of n uniforms
        z = NormalDist().inv_cdf(min(q, 1 - 1e-16))
        return max(0, round(ns * math.exp(sigma * z - sigma * sigma / 2)))


def scale_rows(rows: list[PricedRow], factor: float) -> list[PricedRow]:
    if factor == 1:
        return rows
    return [replace(r, fwd_ns=round(r.fwd_ns * factor), ig_ns=round(r.ig_ns * factor),
                    wg_ns=round(r.wg_ns * factor)) for r in rows]


class _Meeting:
    __slots__ = ("remaining", "ready", "event", "duration", "update")

    def __init__(self, expected: int, event, duration: int, update: int):
        self.remaining = expected
        self.ready = 0
        self.event = event
        self.duration = duration
        self.update = update


class DetailedSim:
    # the event loop: any environment with simpy's now, event(), timeout() and process()
    environment = Environment

    def __init__(self, setups: list[ClassSetup], trace: bool, contention: bool = False,
                 jitter: Jitter | None = None, fabric=None):
        self.env = self.environment()
        self.jitter = jitter
        self.setups = setups
        self.trace: list[TraceSlice] | None = [] if trace else None
        self.results = [StageResult(stage=s.cls.stage) for s in setups]
        self.finished = [False] * len(setups)
        self._meetings: dict[tuple, _Meeting] = {}
        self.mail = Mailbox(self.env)
        self.events = 0
        self.row_exposed: list[dict] = [dict() for _ in setups]  # per class: row key -> ns
        self.net: FlowNetwork | None = None   # the shared links, in contention runs
        # with a topology: flows over its links (simulator.network.fabric), else per class
        self.fabric = fabric
        if fabric is not None:
            from ..network.flows import FlowNetwork
            self.net = FlowNetwork(self.env, fabric.capacity, integer_time=True,
                                   on_change=self._record_links if trace else None,
                                   closed_form=True)
        elif contention:
            # links are shared by whoever names them: a NIC by every class whose GPUs use it
            from ..network.flows import FlowNetwork
            links = {link: 1.0 for s in setups for link, _ in s.links.values()}
            self.net = FlowNetwork(self.env, links, integer_time=True,
                                   on_change=self._record_links if trace else None,
                                   closed_form=True)
        # a flow's end fires its collective's event at once on this loop (where the event
        # succeeded at the flow's end would fire); simpy's is scheduled
        self._fire = fire if isinstance(self.env, Environment) else None
        # a class's process may run ahead of the queue (loop.Environment.can_skip_to); the
        # plain call a flow's end is fits simpy only as a scheduled event
        self._ahead = isinstance(self.env, Environment)
        # steps of a class that nothing else can touch run as one (_ClassStage._segment):
        # on the fabric's closed-form flows, on this loop
        self._segments = (self._ahead and fabric is not None and self.net is not None
                          and self.net.closed_form)
        self._users: dict | None = None       # link class -> who can load it (fabric)
        self._owned_cache: dict = {}
        # link utilisation over time, for the timeline: (link, time ns, share of capacity)
        self.link_samples: list[tuple] = []
        self._last_rate: dict = {}
        # (class, ids of the group kind and the collective, duration) -> (the collective, its
        # flow's loads and latency); the collective is kept so that its id stays its own
        self._fabric_flows: dict = {}

    def _record_links(self, net) -> None:
        """After each re-solve of the flow rates: every link whose load changed."""
        now = int(self.env.now)
        rates: dict = {}
        for f in net.active:
            for link, w in f.weights.items():
                rates[link] = rates.get(link, 0.0) + f.rate * w
        # in a fixed order (a set of links would follow the process's hash seed)
        for link in {**rates, **self._last_rate}:
            value = round(rates.get(link, 0.0) / net.capacity[link], 6)
            if value != self._last_rate.get(link, 0.0):
                self.link_samples.append((link, now, value))
                if value:
                    self._last_rate[link] = value
                else:
                    self._last_rate.pop(link, None)

    def _meet(self, cid: int, kind: Group, instance: tuple, ready: int, comm_ns: int,
              update_ns: int, comm=None):
        """Arrive at a collective; returns the event that fires (value: (start, end)) at its
        end, or, for a class alone whose flow ran ahead to its end (the clock is there now),
        that value itself (a tuple)."""
        setup = self.setups[cid]
        members = setup.cls.group_members[kind]
        if len(members) == 1:
            # a class alone in its group: nobody to wait for
            if self.fabric is not None and comm_ns:
                # its flow at once (below, without the meeting record)
                fkey = (cid, id(kind), id(comm), comm_ns)
                hit = self._fabric_flows.get(fkey)
                if hit is None:
                    hit = self._fabric_flows[fkey] = (comm, self.fabric.collective(
                        (setup.job.job, kind, members), comm.op, comm.size_bytes, comm_ns))
                loads, latency = hit[1]
                net = self.net
                assert net is not None      # a fabric run builds its network in __init__
                if self._ahead and self.env.ahead:
                    # nothing can happen before its end: the flow now, and the process on
                    # from its end (no event; the caller gets (start, end) itself)
                    when = net.alone_now(loads, latency, update_ns)
                    if when is not None:
                        self.env.now = when     # type: ignore[assignment]  # as the loop's
                        return (ready, when)
                ev = Event(self.env) if self._fire is not None else self.env.event()
                net.transfer(loads, latency, on_done=partial(self._flow_done, ev, ready),
                             tail_ns=update_ns)
                return ev
            m = _Meeting(0, self.env.event(), comm_ns, update_ns)
            m.ready = ready
        else:
            key = (setup.job.job, kind, members, instance)
            found = self._meetings.get(key)
            if found is None:
                found = self._meetings[key] = _Meeting(len(members), self.env.event(),
                                                       comm_ns, update_ns)
            m = found
            if ready > m.ready:
                m.ready = ready
            m.remaining -= 1
            if m.remaining:
                return m.event
            del self._meetings[key]
        ev = m.event
        start = m.ready
        if self.fabric is not None and m.duration:
            # every group the member classes stand for moves its data over the fabric
            # (looked up once per class, collective and duration: keys of plain ints)
            fkey = (cid, id(kind), id(comm), m.duration)
            hit = self._fabric_flows.get(fkey)
            if hit is None:
                hit = self._fabric_flows[fkey] = (comm, self.fabric.collective(
                    (setup.job.job, kind, members), comm.op, comm.size_bytes, m.duration))
            loads, latency = hit[1]
            self._flows().transfer(loads, latency, on_done=partial(self._flow_done, ev, start),
                                   tail_ns=m.update)
        elif self.net is not None and m.duration:
            # every member's ranks move the data over their links of this kind
            base = setup.cid - setup.cls.cid
            link_loads: dict = {}
            for c, _ in members:
                link, share = self.setups[base + c].links[kind]
                link_loads[link] = link_loads.get(link, 0.0) + m.duration * share
            self.net.transfer(link_loads, on_done=partial(self._flow_done, ev, start),
                              tail_ns=m.update)
        else:
            end = start + m.duration + m.update
            if end <= self.env.now:
                ev.succeed((start, end))
            else:
                self.env.timeout(end - self.env.now).callbacks.append(
                    lambda _e: ev.succeed((start, end)))
        return m.event

    def _owned(self, cid: int, demand) -> bool:
        """Whether only collectives of class ``cid`` alone in their groups can load
        ``demand``'s links (no other class, job or pipeline send)."""
        key = (cid, id(demand))
        hit = self._owned_cache.get(key)
        if hit is None:
            if self._users is None:
                self._users = self.fabric.link_users()
            setup = self.setups[cid]
            job, mine = setup.job.job, setup.cls.cid
            hit = self._owned_cache[key] = all(
                isinstance(u[1], Group) and u[0] == job and len(u[2]) == 1
                and u[2][0][0] == mine
                for link in demand.weights for u in self._users.get(link, ()))
        return hit

    def _flows(self) -> FlowNetwork:
        assert self.net is not None   # a contention run builds its network in __init__
        return self.net

    def _flow_done(self, ev, start: int, flow) -> None:
        """What a flow calls its ``tail_ns`` (the row's update time) after its end: ``ev``
        fires with (start, now). After a tail it fires at once, where an event the flow's
        end had scheduled would (the same order); without one it is scheduled, as then."""
        if flow.tail_ns and self._fire is not None:
            self._fire(ev, (start, self.env.now))
        else:
            ev.succeed((start, self.env.now))

    # -- one class ---------------------------------------------------------------------
    def _class(self, idx: int):
        """The process of one rank class: the stage driver over its passes."""
        setup = self.setups[idx]
        job = setup.job
        passes = stage_passes(job.schedule[setup.cls.stage], setup.cls.stage, job.pp,
                              job.chunks, job.mb_variant, setup.head, setup.tail)
        return drive(passes, _ClassStage(self, idx))

    def _contended_send(self, setup: ClassSetup, receiver: int | None, direction: Direction,
                        cost: int, key: tuple, previous):
        """A pipeline send as a flow on the sender's and receiver's links, after the last one."""
        if previous is not None and not previous.triggered:
            yield previous
        start = self.env.now
        if self.fabric is not None:
            loads, latency = self.fabric.send((setup.job.job, direction, setup.cid),
                                              self.fabric.pp_bytes[setup.job.job], cost)
            yield self._flows().transfer(loads, latency)
        else:
            yield from self._class_link_send(setup, receiver, direction, cost)
        if self.trace is not None:
            tag = "F" if key[0] is Phase.FWD else "B"
            self.trace.append(TraceSlice(self.setups.index(setup), f"PP send {direction.value}",
                                         f"{tag}{key[1]} send", start, self.env.now - start,
                                         _send_args(key, receiver)))
        self.mail.deliver(key, start, self.env.now)

    def _class_link_send(self, setup: ClassSetup, receiver: int | None, direction: Direction,
                         cost: int):
        link, share = setup.links[direction]
        loads = {link: cost * share}
        if receiver is not None:
            rlink, rshare = self.setups[receiver].links[direction.reverse]
            loads[rlink] = loads.get(rlink, 0.0) + cost * rshare
        yield self._flows().transfer(loads)

    def run(self) -> None:
        for i in range(len(self.setups)):
            self.env.process(self._class(i))
        self.env.run()
        stuck = [self.setups[i].cid for i in range(len(self.setups)) if not self.finished[i]]
        if stuck:
            raise RuntimeError(f"detailed replay deadlock: classes {stuck} never finished")


class _ClassStage:
    """The row-level engine's executor of one rank class's passes (:func:`.stage.drive`):
    compute phases are timeouts, collectives rendezvous with the other classes of the group."""

    def __init__(self, sim: DetailedSim, idx: int):
        self.sim = sim
        self.env = sim.env
        self.idx = idx
        self.setup = setup = sim.setups[idx]
        self.res = sim.results[idx]
        self.trace = sim.trace
        self.stream_last: list = [None] * len(STREAMS)   # last collective process per stream
        # asynchronous collectives issued and not ended: none iff every stream_last entry is
        # triggered (each waits for the one before it on its stream)
        self.in_flight = 0
        self.stream_end = [0] * len(STREAMS)
        self.wg_done: dict = {}
        self.row_exposed = sim.row_exposed[idx]
        self.send_free = {Direction.NEXT: 0, Direction.PREV: 0}
        self.send_chain: dict = {Direction.NEXT: None, Direction.PREV: None}
        self.cost = {Direction.NEXT: setup.send_next_ns, Direction.PREV: setup.send_prev_ns}
        self.partner = {Direction.NEXT: setup.next_class, Direction.PREV: setup.prev_class}
        self.jitter = sim.jitter
        self.rng = sim.jitter.rng_for(setup.cid) if sim.jitter is not None else None
        self.programs: dict = {}
        self.segments: dict = {}        # (program, step) -> its segment's plan (_plan)
        self.flow_steps: dict = {}      # id(program) -> per step, its flow (run_pass)
        self.seg_plans: dict = {}       # id(program) -> per step, its kept plan (run_pass)
        members = setup.cls.group_members
        # per stream: whether this class is alone in its group of that kind
        self.alone = tuple(len(members[g]) == 1 for g in STREAMS)
        self.uses: dict = {}            # ... -> times it ran, not yet added (_segment)
        # while tracing a pipeline pass: its micro-batch, chunk and the message it received
        # (flow_in), for the slices the pass itself issues (not its asynchronous collectives,
        # which may end during a later pass)
        self.pass_args: dict | None = None

    def slice_(self, lane: str, name: str, start: int, dur: int,
               args: dict | None = None) -> None:
        if self.trace is not None and dur:
            self.trace.append(TraceSlice(self.idx, lane, name, start, dur, args))

    def _comm_args(self, row: PricedRow, tag: str, blocking: bool, own: bool) -> dict | None:
        """The fast engine's collective args (type, bytes, group, phase, blocking), with the
        pass's when the pass issues the slice itself."""
        if self.trace is None:
            return None
        args = comm_args(row, tag, blocking)
        if own and self.pass_args:
            args = {**self.pass_args, **(args or {})}
        return args

    # -- collectives and compute -----------------------------------------------------------
    def blocking(self, stream: int, comm_ns: int, update_ns: int, instance: tuple, name: str,
                 row_key: tuple, comm=None, args: dict | None = None):
        env = self.env
        issued = env.now
        last = self.stream_last[stream]
        if last is not None and not last.triggered:
            yield last
        ready = max(env.now, self.stream_end[stream])
        ev = self.sim._meet(self.idx, _KIND_OF_STREAM[stream], instance, ready, comm_ns,
                            update_ns, comm)
        start, end = ev if type(ev) is tuple else (yield ev)
        self.stream_end[stream] = end
        self.res.exposed_ns[_STREAM_NAMES[stream]] += end - issued
        self.row_exposed[row_key] = self.row_exposed.get(row_key, 0) + end - issued
        if self.trace is not None:
            self.slice_(_STREAM_NAMES[stream], name, start, end - start, args)
        self.sim.events += 1

    def asynchronous(self, stream: int, comm_ns: int, update_ns: int, instance: tuple,
                     name: str, previous, comm=None, args: dict | None = None):
        if previous is not None and not previous.triggered:
            yield previous
        ready = max(self.env.now, self.stream_end[stream])
        ev = self.sim._meet(self.idx, _KIND_OF_STREAM[stream], instance, ready, comm_ns,
                            update_ns, comm)
        start, end = ev if type(ev) is tuple else (yield ev)
        self.stream_end[stream] = end
        if self.trace is not None:
            self.slice_(_STREAM_NAMES[stream], name, start, end - start, args)
        self.sim.events += 1
        self.in_flight -= 1             # this process ends (is triggered) now

    def compute(self, ns: int, what: str, name: str, recompute: bool = False):
        """One compute phase: a timeout, jittered when asked; accounted as compute."""
        if ns and self.rng is not None:
            assert self.jitter is not None   # rng comes from it
            ns = self.jitter.draw(self.rng, what, ns, self.setup.cls.ranks)
        if ns:
            self.slice_("compute", name, self.env.now, ns, self.pass_args)
            self.res.compute_ns += ns
            if recompute:
                self.res.recompute_ns += ns
            yield self.env.timeout(ns)

    def program(self, phase: Phase, seq) -> tuple:
        prog = self.programs.get((phase, seq))
        if prog is None:
            from .policy import pass_program, rules_for
            job = self.setup.job
            prog = self.programs[(phase, seq)] = pass_program(
                self.setup.sequences[seq], phase,
                job.rules or rules_for(), job.dlrm_lbl,
                job.seq_first.get(seq, -1))
        return prog

    def wait_for(self, proc, stream: int, row: PricedRow):
        if proc is not None and not proc.triggered:
            t0 = self.env.now
            yield proc
            self.res.exposed_ns[STREAMS[stream].value] += self.env.now - t0
            self.row_exposed[row.key] = self.row_exposed.get(row.key, 0) + self.env.now - t0

    def idle(self, stream: int, row: PricedRow):
        """Wait until the stream has run everything queued on it (PolicyRules.grad_sync)."""
        t0 = self.env.now
        last = self.stream_last[stream]
        if last is not None and not last.triggered:
            yield last
        if self.stream_end[stream] > self.env.now:
            yield self.env.timeout(self.stream_end[stream] - self.env.now)
        if self.env.now > t0:
            self.res.exposed_ns[STREAMS[stream].value] += self.env.now - t0
            self.row_exposed[row.key] = self.row_exposed.get(row.key, 0) + self.env.now - t0

    # -- the stage driver's steps ----------------------------------------------------------
    def run_pass(self, p: StagePass):
        from .policy import BLOCK, COMPUTE, ISSUE, SYNC, WAIT, WAIT_WG

        seq, mb = p.seq, p.mb
        stream_last = self.stream_last
        local: dict = {}
        self.pass_args = None
        traced = self.trace is not None
        rng, res, env, ahead = self.rng, self.res, self.env, self.sim._ahead
        sim, idx, stream_end, row_exposed = self.sim, self.idx, self.stream_end, self.row_exposed
        if self.trace is not None and p.part == "pipeline":
            self.pass_args = {"micro_batch": p.mb, "chunk": p.chunk}
            r = p.receive
            if r is not None:
                # the trace joins the pipeline send this pass waited for to the pass
                self.pass_args["flow_in"] = flow_id(r.phase, r.mb, r.chunk,
                                                    self.partner[r.sender])
        program = self.program(p.phase, seq)
        segments = sim._segments and rng is None and not traced
        # per blocking step of this program, the (Demand, latency) of its flow where its
        # class is alone in the group (alone[stream]) on the fabric and this loop: made by
        # _meet the first time, then transferred here without it
        flow_steps = seg_plans = None
        # used only with segments, which run on the fabric's flows (never None there)
        net: FlowNetwork = sim.net  # type: ignore[assignment]
        uses = self.uses
        if segments:
            flow_steps = self.flow_steps.get(id(program))
            if flow_steps is None:
                flow_steps = self.flow_steps[id(program)] = [None] * len(program)
            # per step, the kept plan of the segment from it and its key (_segment)
            seg_plans = self.seg_plans.get(id(program))
            if seg_plans is None:
                seg_plans = self.seg_plans[id(program)] = [None] * len(program)
        alone = self.alone
        i, n = 0, len(program)
        after = -1                  # where the last segment stopped: a step it could not take
        while i < n:
            step = program[i]
            kind, row = step[0], step[1]
            if segments and i != after and (kind == COMPUTE or kind == BLOCK):
                if not self.in_flight:          # none of its collectives in flight
                    # steps nothing else can touch, at once (_segment); their queue entries
                    # are placeholders (_Chain), so that everything else keeps its place in
                    # the order
                    kept = seg_plans[i]             # type: ignore[index]  # with segments
                    if kept is None:
                        j, t0, waits = self._segment(program, i)
                        plan = self.segments.get((id(program), i))
                        if plan is not None:
                            seg_plans[i] = (plan, (id(program), i))  # type: ignore[index]
                    else:
                        # _segment of a kept plan, inline
                        plan, key = kept
                        j, waits, t0 = plan[0], plan[1], env.now
                        if j > i:
                            for s, offset in plan[6]:
                                stream_end[s] = t0 + offset
                            uses[key] = uses.get(key, 0) + 1
                    if j > i:
                        k = env.run_ahead(t0, waits, 0)     # as each step could run ahead
                        if k < len(waits):
                            yield _Chain(env, t0, waits, k)
                        i = after = j
                        continue
            i += 1
            if kind == COMPUTE:
                ns = step[2]
                if rng is not None or traced:
                    yield from self.compute(ns, step[3], step[4], step[5])
                elif ns:            # compute() inline: no generator per phase
                    res.compute_ns += ns
                    if step[5]:
                        res.recompute_ns += ns
                    if ahead and env.can_skip_to(env.now + ns):
                        env.now += ns       # the timeout would resume us next: skipped
                    else:
                        yield env.timeout(ns)
            elif kind == BLOCK and not traced:
                # blocking() inline (no generator per collective): the same waits and yields
                s = step[2]
                issued = env.now
                last = stream_last[s]
                if last is not None and not last.triggered:
                    yield last
                ready = env.now
                if stream_end[s] > ready:
                    ready = stream_end[s]
                hit = flow_steps[i - 1] if flow_steps is not None and alone[s] else None
                if hit is not None:
                    # _meet's flow of a class alone in its group, its loads found before
                    demand, latency, alone_ns = hit
                    # alone_now's first test (nothing queued before the flow's end and its
                    # update), the same sums, before the call
                    # (a whole number of ns on this loop's integer-time network)
                    when: int | None = (
                        net.alone_now(demand, latency, step[4])  # type: ignore[assignment]
                        if alone_ns is not None
                        and env.can_skip_to(env.now + latency + alone_ns + step[4])
                        else None)
                    if when is not None:
                        env.now = when
                        start, end = ready, when
                    else:
                        ev = Event(env)
                        net.transfer_again(demand, latency, partial(sim._flow_done, ev, ready),
                                           step[4])
                        start, end = yield ev
                else:
                    comm = row.comms[COMM_OF_TAG.get(step[5], 0)]
                    ev = sim._meet(idx, _KIND_OF_STREAM[s], (seq, mb, i - 1), ready, step[3],
                                   step[4], comm)
                    if flow_steps is not None and alone[s] and step[3]:
                        demand, latency = sim._fabric_flows[
                            (idx, id(_KIND_OF_STREAM[s]), id(comm), step[3])][1]
                        flow_steps[i - 1] = (demand, latency, net.alone_ns(demand))
                    start, end = ev if type(ev) is tuple else (yield ev)
                stream_end[s] = end
                res.exposed_ns[_STREAM_NAMES[s]] += end - issued
                row_exposed[row.key] = row_exposed.get(row.key, 0) + end - issued
                sim.events += 1
            elif kind == BLOCK:
                yield from self.blocking(step[2], step[3], step[4], (seq, mb, i - 1),
                                         f"{row.name} {step[5]}" if traced else "", row.key,
                                         row.comms[COMM_OF_TAG.get(step[5], 0)],
                                         self._comm_args(row, step[5], True, True)
                                         if traced else None)
            elif kind == ISSUE:
                s = step[2]
                proc = self.env.process(self.asynchronous(
                    s, step[3], step[4], (seq, mb, i - 1),
                    f"{row.name} {step[5]}" if traced else "",
                    stream_last[s], row.comms[COMM_OF_TAG.get(step[5], 0)],
                    self._comm_args(row, step[5], False, False) if traced else None))
                stream_last[s] = proc
                self.in_flight += 1
                if step[6][0] == "wg":
                    self.wg_done[row.key] = proc
                else:
                    local[step[6]] = proc
            elif kind == WAIT:
                yield from self.wait_for(local.get(step[2]), step[3], row)
            elif kind == WAIT_WG:
                yield from self.wait_for(self.wg_done.get(row.key), row.wg_stream, row)
            elif kind == SYNC:
                yield from self.idle(step[2], row)
        self.pass_args = None
        self.sim.events += 1

    def _segment(self, program: tuple, i: int) -> tuple[int, int, list]:
        """Steps ``program[i:j]`` that nothing but this process can touch, done at once
        (their plan: :meth:`_plan`); returns ``j``, the start and, per step that waits,
        (the time from the start the loop would resume this process at, whether the wait is
        a flow's end with no update time: two queue entries, its end and its event)."""
        key = (id(program), i)
        plan = self.segments.get(key)
        if plan is None:
            plan = self._plan(program, i)
            if plan[-1]:
                self.segments[key] = plan
        j, offsets = plan[0], plan[1]
        t = self.env.now
        if j == i:
            return j, t, offsets
        stream_end = self.stream_end
        for s, offset in plan[6]:
            stream_end[s] = t + offset
        if plan[-1]:
            # its sums (whole nanoseconds and counts, read only when the run is over) are
            # added once per plan, times its uses, when the class ends (drain)
            uses = self.uses
            uses[key] = uses.get(key, 0) + 1
        else:
            self._add(plan, 1)
        return j, t, offsets

    def _add(self, plan: tuple, n: int) -> None:
        """``n`` uses of a segment's plan: its compute, exposed times and flows counted."""
        _, _, compute, recompute, exposed, rows, _, flows, _ = plan
        res = self.res
        res.compute_ns += compute * n
        res.recompute_ns += recompute * n
        for name, ns in exposed:
            res.exposed_ns[name] += ns * n
        row_exposed = self.row_exposed
        for row_key, ns in rows:
            row_exposed[row_key] = row_exposed.get(row_key, 0) + ns * n
        if flows:
            sim = self.sim
            net = sim.net
            assert net is not None          # segments run on the fabric's flows
            for demand, count in flows:
                net.count_alone(demand, count * n)
                sim.events += count * n

    def _plan(self, program: tuple, i: int) -> tuple:
        """What ``program[i:j]`` does from any start (every time relative to it): compute
        phases, waits on collectives that have ended (the caller checks that none is in
        flight) and blocking collectives of this class alone whose flows cross only links no
        other class, send or collective of its own can load, so that each ends in closed
        form before the next starts. (j, wait offsets, compute, recompute, exposed per
        stream, per row, stream ends, flows per Demand, whether it may be kept: not cut
        short by a flow's first time.)"""
        from .policy import BLOCK, COMPUTE, WAIT, WAIT_WG

        sim = self.sim
        net = sim.net
        assert net is not None
        flows, members = sim._fabric_flows, self.setup.cls.group_members
        t = 0
        offsets: list = []
        compute = recompute = 0
        exposed: dict = {}
        rows: dict = {}
        ends: dict = {}
        demands: dict = {}
        keep = True
        n = len(program)
        j = i
        while j < n:
            step = program[j]
            kind = step[0]
            if kind == COMPUTE:
                ns = step[2]
                if ns:
                    compute += ns
                    if step[5]:
                        recompute += ns
                    t += ns
                    offsets.append((t, False))
            elif kind == WAIT or kind == WAIT_WG:
                pass                            # on collectives that have ended: no wait
            elif kind == BLOCK:
                s, comm_ns, update_ns = step[2], step[3], step[4]
                group = _KIND_OF_STREAM[s]
                if not comm_ns or len(members[group]) != 1:
                    break
                comm = step[1].comms[COMM_OF_TAG.get(step[5], 0)]
                hit = flows.get((self.idx, id(group), id(comm), comm_ns))
                if hit is None:
                    keep = False                # its first time: the plain way makes it
                    break
                demand, latency = hit[1]
                if not sim._owned(self.idx, demand):
                    break
                wait = net.alone_wait(demand)
                if wait is None:
                    keep = False
                    break
                end = t + latency + wait + update_ns
                name = _STREAM_NAMES[s]
                exposed[name] = exposed.get(name, 0) + end - t
                rows[step[1].key] = rows.get(step[1].key, 0) + end - t
                ends[s] = end
                demands[demand] = demands.get(demand, 0) + 1
                t = end
                offsets.append((t, not update_ns))
            else:
                break
            j += 1
        return (j, offsets, compute, recompute, list(exposed.items()), list(rows.items()),
                list(ends.items()), list(demands.items()), keep)

    def receive(self, p: StagePass):
        r, env, res = p.receive, self.env, self.res
        assert r is not None   # the driver calls receive only for a pass that has one
        ev = self.sim.mail.box((r.phase, r.mb, r.chunk, self.partner[r.sender]))
        if not ev.triggered:
            w0 = env.now
            sent_at, arrived = yield ev
            bubble, pp_ns = split_wait(w0, sent_at, arrived)
            res.exposed_ns["PP"] += pp_ns
            res.bubble_ns += bubble
            self.slice_("wait", "bubble", w0, bubble)
            self.slice_("wait", "PP receive", w0 + bubble, pp_ns)

    def send(self, p: StagePass):
        sim, setup, direction = self.sim, self.setup, p.send
        assert direction is not None   # the driver calls send only for a pass that sends
        cost = self.cost[direction]
        key = (p.phase, p.mb, p.chunk, setup.cid)
        if sim.net is not None and cost:
            prev_send = self.send_chain[direction]
            self.send_chain[direction] = proc = self.env.process(sim._contended_send(
                setup, self.partner[direction], direction, cost, key, prev_send))
            return self._blocked_on(proc) if setup.blocking_send else None
        start, arrive = queue_send(self.env.now, self.send_free[direction], cost)
        self.send_free[direction] = arrive
        self.slice_(f"PP send {direction.value}", f"{p.tag}{p.mb} send", start, cost,
                    _send_args(key, self.partner[direction]) if self.trace is not None else None)
        sim.mail.deliver(key, start, arrive)
        if setup.blocking_send and arrive > self.env.now:
            return self._blocked_until(arrive)
        return None

    def _blocked_until(self, arrive: int):
        now = self.env.now
        self.res.exposed_ns["PP"] += arrive - now
        self.slice_("wait", "PP send wait", now, arrive - now)
        yield self.env.timeout(arrive - now)

    def _blocked_on(self, proc):
        now = self.env.now
        if not proc.triggered:
            yield proc
        if self.env.now > now:
            self.res.exposed_ns["PP"] += self.env.now - now
            self.slice_("wait", "PP send wait", now, self.env.now - now)

    def drain(self):
        # wait for every stream, charge the wait to the one that ends last
        env, res = self.env, self.res
        t_compute_end = env.now
        for last in self.stream_last:
            if last is not None and not last.triggered:
                yield last
        ends = [max(e, t_compute_end) for e in self.stream_end]
        latest = max(range(len(STREAMS)), key=lambda i: ends[i])
        if ends[latest] > t_compute_end:
            res.exposed_ns[STREAMS[latest].value] += ends[latest] - t_compute_end
        if env.now < ends[latest]:
            yield env.timeout(ends[latest] - env.now)
        res.end_ns = env.now
        segments = self.segments
        for key, n in self.uses.items():
            self._add(segments[key], n)
        self.uses.clear()
        self.sim.finished[self.idx] = True


def _send_args(key: tuple, receiver: int | None) -> dict:
    """A pipeline send's trace args: the message (the flow to the pass that receives it)."""
    phase, mb, chunk, sender = key
    return {"micro_batch": mb, "chunk": chunk, "flow_out": flow_id(phase, mb, chunk, sender),
            **({"to_class": receiver} if receiver is not None else {})}
