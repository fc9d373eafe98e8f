"""Flow-level contention: transfers that share links split their bandwidth max-min fairly.

A *flow* is one collective (or one transfer) aggregated over the links it crosses: a mapping
``{link_id: bytes}`` of what it moves over each directed link, and a latency paid before its
data moves. While several flows are active, each link's capacity (bytes per ns) is shared
max-min fairly: every flow gets the same bandwidth on its busiest link unless a link it
crosses is saturated by others, in which case it gets its fair share there and the rest goes
to the others (progressive filling, weighted by how much of the flow crosses each link). A
flow alone finishes after ``latency + max(bytes_l / capacity_l)``, exactly as the cost
models price it.

Incremental: rates are re-solved only when the set of active flows changes (a flow starts or
ends), and only for the flows connected to it through shared links (max-min rates split by
connected component, so the others cannot move); a flow that shares no link with another
takes its own rate without a solve. Each flow keeps its completion timer until its own rate
changes (a change makes a new one, and the old one finds it stale); in between, every flow
progresses linearly and nothing is touched::

    net = FlowNetwork(env, {"nvl0": 370.0, "nic0": 48.5})        # capacities in bytes/ns
    done = net.transfer({"nic0": 64e6, "nvl0": 8e6}, latency_ns=20_000)
    yield done                                                     # fires at completion
    done.value.end_ns, done.value.start_ns

A :class:`Demand` is a mapping of loads checked and normalised once, for callers that issue
the same transfer many times (the fabric's collectives).

:meth:`NcclCostModel.flow <simulator.costmodel.nccl.NcclCostModel.flow>` gives the loads and
latency of a collective on a topology, and ``Topology.capacities()`` the links.
"""
from __future__ import annotations

import math
from functools import partial
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # any environment with simpy's now, event() and timeout(): simpy or
    from .._simpy import simpy          # simulator.engine.loop (the detailed engine's)

_EPS = 1e-9


def completion_wait(remaining_share: float, peak: float, rate: float,
                    integer_time: bool) -> float:
    """Time for a flow's remaining share to drain at ``rate``: the one rounding rule that the
    solver's timers and the closed-form ends share (integer time rounds up, forgiving 1e-6
    of float noise), so both paths give the same nanosecond."""
    wait = max(remaining_share * peak / rate, 0.0)
    if integer_time:
        wait = max(math.ceil(wait - 1e-6), 0)
    return wait


class Demand:
    """Loads of a transfer (link -> bytes), checked and normalised once: reusable."""

    __slots__ = ("loads", "peak", "weights")

    def __init__(self, loads: Mapping[Hashable, float]):
        if any(b < 0 for b in loads.values()):
            raise ValueError("latency and bytes must not be negative")
        self.loads = {link: float(b) for link, b in loads.items() if b > 0}
        self.peak = max(self.loads.values()) if self.loads else 0.0
        self.weights = {link: b / self.peak for link, b in self.loads.items()}


@dataclass(eq=False, slots=True)
class Flow:
    """One active or finished transfer; ``value`` of the event ``transfer`` returns."""

    loads: dict                      # link -> bytes
    latency_ns: float
    name: str = ""
    submit_ns: float = 0.0           # when transfer() was called
    start_ns: float | None = None    # when its data began to move (after the latency)
    end_ns: float | None = None
    peak: float = 0.0                # bytes on its busiest link
    weights: dict = field(default_factory=dict)   # link -> share of the peak
    remaining: float = 1.0           # share of the data still to move, at time ``at_ns``
    rate: float = 0.0                # bytes/ns on its busiest link, now
    event: simpy.Event | None = None
    on_done: Callable[[Flow], None] | None = None
    at_ns: float = 0.0               # when ``remaining`` was last brought up to date
    order: int = 0                   # join order
    version: int = 0                 # bumped when its rate changes (older timers are stale)
    tail_ns: float = 0               # on_done runs this long after the end
    # closed form: its end when provably alone from start to end (None: in the solver)
    alone_end_ns: float | None = None

    @property
    def bytes(self) -> float:
        return sum(self.loads.values())

    @property
    def duration_ns(self) -> float | None:
        return None if self.end_ns is None else self.end_ns - self.submit_ns


class FlowNetwork:
    """Links with capacities (bytes per ns, i.e. GB/s) shared max-min fairly by flows."""

    def __init__(self, env: simpy.Environment, links: Mapping[Hashable, float],
                 on_change: Callable[[FlowNetwork], None] | None = None,
                 integer_time: bool = False, closed_form: bool = False):
        bad = [link for link, c in links.items() if not c > 0]
        if bad:
            raise ValueError(f"link capacities must be positive: {bad[:5]}")
        self.env = env
        self.capacity = dict(links)
        self.active: dict[Flow, None] = {}                      # active flows, join order
        self._on_link: dict = {}                                 # link -> {its active flows}
        self.finished = 0
        self._carried_done: dict = {link: 0.0 for link in self.capacity}   # by finished flows
        self.solves = 0                                         # rate re-solves (for tests)
        self.shared_solves = 0                                  # ... of several flows at once
        self.on_change = on_change
        self._joined = 0
        self._checked: set = set()            # Demands whose links were checked here
        self._done_loads: dict = {}           # id(loads) -> [loads, flows finished with it]
        # id(weights) -> (weights, rate alone, time alone: a whole flow's wait at that rate)
        self._alone: dict = {}
        # the engine keeps time in whole nanoseconds: completions are rounded up to the next
        # one (never early; at most 1 ns late per rate change)
        self.integer_time = integer_time
        # fn(arg) after a delay: the detailed engine's loop does it without an event; on
        # simpy it is a timeout whose callback passes its value on (the same order)
        later = getattr(env, "call_later", None)
        if later is None:
            def later(delay, fn, arg, timeout=env.timeout):
                timeout(delay, arg).callbacks.append(lambda event: fn(event.value))
        self._later = later
        at = getattr(env, "call_at", None)
        if at is None:
            def at(when, fn, arg, later=later):
                later(when - env.now, fn, arg)
        self._at = at
        # the same, for a call that does nothing after what it resumes (the loop lets that
        # process run ahead: simulator.engine.loop); simpy has no such thing
        self._at_tail: Callable = at
        self._later_tail: Callable = later
        if hasattr(env, "can_skip_to"):
            self._at_tail = getattr(env, "call_at_tail", None) or partial(env.call_at, tail=True)
            self._later_tail = partial(env.call_later, tail=True)
        # closed form (not with on_change, which wants every change): a flow that no other
        # flow can meet on any of its links from its start to its end moves at its rate
        # alone, so its end is known when it is submitted and it needs no events but its
        # end; link -> {flows that claim it: closed-form ones until their end, the solver's
        # until they end} (possibly empty: a link's dict is made once)
        self.closed_form = closed_form and on_change is None
        self._claims: dict = {}
        self._lazy: dict[Flow, None] = {}                  # closed-form flows not yet done

    # -- public ---------------------------------------------------------------------------
    def transfer(self, loads: Mapping[Hashable, float] | Demand, latency_ns: float = 0.0,
                 name: str = "", on_done: Callable[[Flow], None] | None = None,
                 tail_ns: float = 0) -> simpy.Event | None:
        """Start a flow now; the returned event fires (value: the Flow) when it is done, or,
        given ``on_done``, that is called with the Flow ``tail_ns`` after its end instead
        (no event: one simpy step less per flow)."""
        demand = loads if loads.__class__ is Demand else None
        if demand is None or demand not in self._checked:           # once per Demand
            links = loads.loads if isinstance(loads, Demand) else loads
            unknown = [link for link in links if link not in self.capacity]
            if unknown:
                raise KeyError(f"unknown link(s) {unknown[:5]}")
            if demand is None:
                demand = Demand(links)
            else:
                self._checked.add(demand)
        if latency_ns < 0:
            raise ValueError("latency and bytes must not be negative")
        flow = Flow(demand.loads, float(latency_ns), name, submit_ns=self.env.now,
                    peak=demand.peak, weights=demand.weights, on_done=on_done,
                    tail_ns=tail_ns)
        event = None
        if on_done is None:
            event = flow.event = self.env.event()
        if self.closed_form and flow.loads:
            self._submit(flow, latency_ns)
        elif latency_ns > 0:
            self._later(latency_ns, self._join, flow)      # its data moves after the latency
        else:
            self._join(flow)
        return event

    def transfer_again(self, demand: Demand, latency_ns: float, on_done: Callable[[Flow], None],
                       tail_ns: float) -> None:
        """``transfer(demand, latency_ns, on_done=on_done, tail_ns=tail_ns)`` of a Demand
        transferred here before (checked, its latency checked then: the same one again) on a
        closed-form network: the detailed engine's flows of a class alone in its group, one
        per collective (the Flow made positionally, in its fields' order)."""
        flow = Flow(demand.loads, float(latency_ns), "", self.env.now, None, None, demand.peak,
                    demand.weights, 1.0, 0.0, None, on_done, 0.0, 0, 0, tail_ns, None)
        if self.closed_form and flow.loads:
            self._submit(flow, latency_ns)
        elif latency_ns > 0:
            self._later(latency_ns, self._join, flow)
        else:
            self._join(flow)

    def alone_now(self, demand: Demand, latency_ns: float, tail_ns: float) -> float | None:
        """A whole closed-form flow at once, for a process allowed to run ahead: if
        ``transfer(demand, latency_ns, on_done=..., tail_ns=tail_ns)`` now would end in
        closed form (the same test as :meth:`_submit`) and nothing is queued before its end
        plus ``tail_ns`` (``env.can_skip_to``), its bookkeeping is done here and the time its
        ``on_done`` would run is returned: nothing can claim its links before it ends, so
        the flow would leave the claims as it found them. Else None, and nothing is
        changed (the caller transfers it as usual). Only for a Demand transferred here
        before (checked, its rate alone known)."""
        hit = self._alone.get(id(demand.weights))
        if hit is None or not self.closed_form or demand not in self._checked:
            return None
        if hit[1] <= 0:
            return None
        env = self.env
        now = env.now
        start = now + latency_ns
        end = start + hit[2]
        # env.can_skip_to(end + tail_ns), inline
        if not env.ahead:
            return None
        queue = env._queue
        if queue and queue[0][0] <= end + tail_ns:
            return None
        for users in hit[3]:
            if users:
                for other in users:
                    o_end = other.alone_end_ns
                    if o_end is None or (o_end >= start and other.start_ns <= end
                                         and o_end >= now):
                        return None
        # _lazy_end's bookkeeping
        found = self._done_loads.get(id(demand.loads))
        if found is None:
            self._done_loads[id(demand.loads)] = [demand.loads, 1]
        else:
            found[1] += 1
        self.solves += 2
        self.finished += 1
        return end + tail_ns

    def alone_ns(self, demand: Demand) -> float | None:
        """A flow of ``demand``'s whole time alone after its latency, as :meth:`alone_now`
        adds it to the start (None: it cannot end in closed form, or is not known here)."""
        hit = self._alone.get(id(demand.weights))
        if hit is None or hit[1] <= 0 or not self.closed_form or demand not in self._checked:
            return None
        return hit[2]

    def alone_wait(self, demand: Demand) -> float | None:
        """A flow of ``demand``'s time alone (after its latency), for a caller that knows
        nothing else can load its links while it moves: None unless it ends in closed form
        (the network is, the Demand was transferred here before, it moves at all) and none
        of its links is claimed now."""
        hit = self._alone.get(id(demand.weights))
        if (hit is None or hit[1] <= 0 or not self.closed_form or demand not in self._checked
                or id(demand.loads) not in self._done_loads):
            return None
        for users in hit[3]:
            if users:
                return None
        return hit[2]

    def count_alone(self, demand: Demand, count: int = 1) -> None:
        """``count`` flows of ``demand`` that ended alone, counted as their closed-form ends
        count them (:meth:`alone_wait` said they would; its loads were counted before)."""
        self._done_loads[id(demand.loads)][1] += count
        self.solves += 2 * count
        self.finished += count

    def _moving(self) -> list[Flow]:
        """The flows moving data now: the solver's and the closed-form ones between their
        start and end."""
        now = self.env.now
        return [*self.active, *(f for f in self._lazy
                                if f.start_ns <= now < f.alone_end_ns)]

    def rates(self) -> dict[str, float]:
        """Current bytes/ns of every active flow on its busiest link (by name)."""
        return {f.name: f.rate for f in self._moving()}

    def link_rate(self, link) -> float:
        """Bytes/ns crossing ``link`` now."""
        return sum(f.rate * f.weights.get(link, 0.0) for f in self._moving())

    @property
    def carried(self) -> dict:
        """Bytes moved over every link so far (finished flows and the active ones' share)."""
        out = dict(self._carried_done)
        for loads, count in self._done_loads.values():
            for link, b in loads.items():
                out[link] += count * b
        now = self.env.now
        for f in self.active:
            done = 1.0 - max(0.0, f.remaining - f.rate * (now - f.at_ns) / f.peak)
            for link, b in f.loads.items():
                out[link] += done * b
        for f in self._lazy:
            if now > f.start_ns:
                done = min(1.0, f.rate * (now - f.start_ns) / f.peak)
                for link, b in f.loads.items():
                    out[link] += done * b
        return out

    # -- internals -------------------------------------------------------------------------
    def _submit(self, flow: Flow, latency_ns: float) -> None:
        """Closed form: the flow's end if it moves alone; kept when no flow claims one of its
        links over that span (touching ends count as meeting), else it and every
        closed-form flow it could meet go to the solver."""
        now = self.env.now
        start = now + latency_ns
        hit = self._alone.get(id(flow.weights))
        if hit is None:
            hit = self._alone_entry(flow)
        rate = hit[1]
        end = None
        if rate > 0:
            # exactly the solver's completion of a flow alone from its start (_join): a new
            # flow has all its data to move (remaining 1)
            end = start + hit[2]
        meets = False
        for users in hit[3]:            # claims[link] of each of its links, in order
            for other in users:
                o_end = other.alone_end_ns
                # the solver's flows until they end; closed-form ones over [start, end]
                # (ended ones are past: their end fires before any later start)
                if o_end is None or end is None or (o_end >= start and other.start_ns <= end
                                                    and o_end >= now):
                    meets = True
            users[flow] = None
        flow.start_ns = start
        if end is not None and not meets:
            flow.alone_end_ns = end
            flow.rate = rate
            self._lazy[flow] = None
            self._at_tail(end + flow.tail_ns, self._lazy_end, (flow, flow.version))
            return
        # to the solver, which claims its links until it ends: every closed-form flow on
        # them that has not ended before its start joins it, and so on through their links
        self._release(flow, now)
        if latency_ns > 0:
            self._later(latency_ns, self._join, flow)
        else:
            self._join(flow)

    def _release(self, flow: Flow, now: float) -> None:
        """Hand to the solver the closed-form flows that ``flow`` (the solver's) could meet,
        and those they could meet."""
        claims = self._claims
        todo = [flow]
        while todo:
            f = todo.pop()
            for link in f.weights:
                for other in claims[link]:
                    o_end = other.alone_end_ns
                    if o_end is not None and o_end >= f.start_ns and o_end >= now:
                        self._to_solver(other, now)
                        todo.append(other)

    def _to_solver(self, f: Flow, now: float) -> None:
        """A closed-form flow handed to the solver, in the state the solver would have it in
        now: joined at its start (or to join then), alone since, its end timer as set."""
        end = f.alone_end_ns
        f.alone_end_ns = None
        del self._lazy[f]
        f.version += 1                      # its closed-form end is stale
        start = f.start_ns
        if start > now:                     # type: ignore[operator]
            f.rate = 0.0                    # not moving yet: joins as a new flow
            self._at(start, self._join, f)
            return
        f.at_ns = start                     # type: ignore[assignment]
        f.order = self._joined              # joined now, as the solver counts joins
        self._joined += 1
        self.active[f] = None
        on_link = self._on_link
        for link in f.weights:
            users = on_link.get(link)
            if users is None:
                on_link[link] = {f: None}
            else:
                users[f] = None
        self.solves += 1
        self._at(end, self._wake, (f, f.version))

    def _lazy_end(self, stamp: tuple) -> None:
        """A closed-form flow's end (``tail_ns`` after it): release its links, count it."""
        f, version = stamp
        if version != f.version:
            return                          # handed to the solver since
        del self._lazy[f]
        for users in self._alone[id(f.weights)][3]:
            del users[f]                # an emptied link's dict stays, for the next flow
        hit = self._done_loads.get(id(f.loads))
        if hit is None:
            self._done_loads[id(f.loads)] = [f.loads, 1]
        else:
            hit[1] += 1
        self.solves += 2                    # its start and end, as the solver counts them
        f.remaining = 0.0
        f.at_ns = f.end_ns = f.alone_end_ns
        self.finished += 1
        if f.on_done is not None:
            f.on_done(f)
        else:
            assert f.event is not None
            f.event.succeed(f)

    def _join(self, flow: Flow) -> None:
        now = self.env.now
        flow.start_ns = now
        if not flow.loads:
            self._finish(flow, now)
            return
        flow.at_ns = now
        flow.order = self._joined
        self._joined += 1
        self.active[flow] = None
        on_link = self._on_link
        alone = True
        for link in flow.weights:
            users = on_link.get(link)
            if users is None:
                on_link[link] = {flow: None}
            else:
                users[flow] = None
                alone = False
        self.solves += 1
        if alone:
            # flows of one Demand share their weights: the rate alone is solved once
            hit = self._alone.get(id(flow.weights))
            if hit is None:
                hit = self._alone_entry(flow)
            # _set_rate on a flow that has not moved yet (rate 0, at_ns now), inline
            rate = flow.rate = hit[1]
            flow.version += 1
            if rate > 0:
                self._later(completion_wait(flow.remaining, flow.peak, rate, self.integer_time),
                            self._wake, (flow, flow.version))
        else:
            self._solve(self._component(flow.weights), now)
        if self.on_change is not None:
            self.on_change(self)

    def _alone_entry(self, f: Flow) -> tuple:
        """(weights, rate alone, a whole flow's wait alone, the claims of its links in its
        weights' order) of ``f``'s weights, kept (the weights too, so that their id stays
        theirs). A link's claims dict is made once and stays when it empties: the
        closed-form checks read the dicts of a flow's links without looking them up."""
        rate = self._alone_rate(f)
        wait = completion_wait(1.0, f.peak, rate, self.integer_time) if rate > 0 else 0.0
        claims = self._claims
        dicts = tuple(claims.setdefault(link, {}) for link in f.weights)
        entry = self._alone[id(f.weights)] = (f.weights, rate, wait, dicts)
        return entry

    def _alone_rate(self, f: Flow) -> float:
        """Progressive filling of one flow: its tightest link (first of near-equal ones)."""
        cap = self.capacity
        step = None
        for link, w in f.weights.items():
            if w <= 1e-12:
                continue
            inc = cap[link] / w
            if step is None or inc < step * (1 - _EPS):
                step = inc
        return 0.0 if step is None else step

    def _set_rate(self, f: Flow, rate: float, now: float) -> None:
        """Bring ``f`` up to ``now`` at its old rate, then give it ``rate`` and its new
        completion time."""
        if f.rate > 0 and now > f.at_ns:
            moved = f.rate * (now - f.at_ns) / f.peak          # share of the flow's data
            f.remaining -= min(moved, f.remaining)
        f.at_ns = now
        f.rate = rate
        f.version += 1
        if rate > 0:
            wait = completion_wait(f.remaining, f.peak, rate, self.integer_time)
            # its own timer; one made stale by a later rate change finds another version
            self._later(wait, self._wake, (f, f.version))

    def _component(self, links) -> list[Flow]:
        """Active flows connected to ``links`` through shared links: the only ones whose
        max-min rates a change on those links can move (max-min splits by component)."""
        seen_links = set()
        flows: dict = {}
        stack = list(links)
        on_link = self._on_link
        while stack:
            link = stack.pop()
            if link in seen_links:
                continue
            seen_links.add(link)
            for f in on_link.get(link, ()):
                if f not in flows:
                    flows[f] = None
                    stack.extend(x for x in f.weights if x not in seen_links)
        return list(flows)

    def _solve(self, flows: list[Flow], now: float) -> None:
        """Max-min fair rates of a connected set of flows (progressive filling)."""
        if len(flows) == 1:
            self._set_rate(flows[0], self._alone_rate(flows[0]), now)
            return
        self.shared_solves += 1
        rate = {f: 0.0 for f in flows}
        left: dict = {}
        weight: dict = {}            # link -> weight of its flows not yet frozen
        cap = self.capacity
        for f in flows:
            for link, w in f.weights.items():
                weight[link] = weight.get(link, 0.0) + w
                left[link] = cap[link]
        unfrozen = dict(rate)
        on_link = self._on_link
        while unfrozen:
            step, tight = None, []
            for link, w in weight.items():
                if w <= 1e-12:
                    continue
                inc = left[link] / w
                if step is None or inc < step * (1 - _EPS):
                    step, tight = inc, [link]
                elif inc <= step * (1 + _EPS):
                    tight.append(link)
            if step is None:
                break
            for link, w in weight.items():
                if w > 1e-12:
                    left[link] -= step * w
            for f in unfrozen:
                rate[f] += step
            for link in tight:
                for f in on_link[link]:
                    if f in unfrozen:
                        del unfrozen[f]
                        for x, w in f.weights.items():
                            weight[x] -= w
                weight[link] = 0.0
        for f, r in rate.items():
            if r != f.rate:
                self._set_rate(f, r, now)

    def _wake(self, stamp: tuple) -> None:
        f, version = stamp                          # a completion timer: (flow, its version)
        if version != f.version:
            return                                  # its rate changed since: stale
        now = self.env.now
        del self.active[f]
        # bytes carried, counted per loads mapping (Demands share theirs)
        hit = self._done_loads.get(id(f.loads))
        if hit is None:
            self._done_loads[id(f.loads)] = [f.loads, 1]
        else:
            hit[1] += 1
        touched: dict = {}
        on_link = self._on_link
        if self.closed_form:
            claims = self._claims
            for link in f.weights:
                del claims[link][f]
        for link in f.loads:
            users = on_link[link]
            del users[f]
            if not users:
                del on_link[link]
            else:
                touched[link] = None
        f.remaining = 0.0
        f.rate = 0.0
        f.at_ns = now
        f.version += 1
        self._finish(f, now)
        self.solves += 1
        if touched:
            self._solve(self._component(touched), now)
        if self.on_change is not None:
            self.on_change(self)

    def _finish(self, flow: Flow, now: float) -> None:
        flow.end_ns = now
        self.finished += 1
        if flow.on_done is not None:
            if flow.tail_ns:
                self._later_tail(flow.tail_ns, flow.on_done, flow)
            else:
                flow.on_done(flow)
        else:
            assert flow.event is not None   # transfer() gives every other flow its event
            flow.event.succeed(flow)
