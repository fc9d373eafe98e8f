"""Flow-level contention: transfers that share links split their bandwidth max-min fairly.

A *flow* is one collective (or one transfer) aggregated over the links it crosses: a mapping
``{link_id: bytes}`` of what it moves over each directed link, and a latency paid before its
data moves. While several flows are active, each link's capacity (bytes per ns) is shared
max-min fairly: every flow gets the same bandwidth on its busiest link unless a link it
crosses is saturated by others, in which case it gets its fair share there and the rest goes
to the others (progressive filling, weighted by how much of the flow crosses each link). A
flow alone finishes after ``latency + max(bytes_l / capacity_l)``, exactly as the cost
models price it.

Rates are re-solved only when the set of active flows changes (a flow starts or ends), and
only for the flows connected to it through shared links (max-min rates split by connected
component, so the others cannot move); in between, every flow progresses linearly. One simpy
event per change, whatever the number of links::

    net = FlowNetwork(env, {"nvl0": 370.0, "nic0": 48.5})        # capacities in bytes/ns
    done = net.transfer({"nic0": 64e6, "nvl0": 8e6}, latency_ns=20_000)
    yield done                                                     # fires at completion
    done.value.end_ns, done.value.start_ns

:meth:`NcclCostModel.flow <simulator.costmodel.nccl.NcclCostModel.flow>` gives the loads and
latency of a collective on a topology, and ``Topology.capacities()`` the links.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable, Hashable, Mapping

import math

import simpy

_EPS = 1e-9


@dataclass(eq=False)
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
    remaining: float = 1.0           # share of the data still to move
    rate: float = 0.0                # bytes/ns on its busiest link, now
    event: simpy.Event | None = None

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
                 integer_time: bool = False):
        bad = [link for link, c in links.items() if not c > 0]
        if bad:
            raise ValueError(f"link capacities must be positive: {bad[:5]}")
        self.env = env
        self.capacity = dict(links)
        self.active: list[Flow] = []
        self._on_link: dict = {}                                 # link -> its active flows
        self.finished = 0
        self._carried_done: dict = {link: 0.0 for link in self.capacity}   # by finished flows
        self.solves = 0                                         # rate re-solves (for tests)
        self.on_change = on_change
        self._last = env.now
        self._generation = 0
        # the engine keeps time in whole nanoseconds: completions are rounded up to the next
        # one (never early; at most 1 ns late per rate change)
        self.integer_time = integer_time

    # -- public ---------------------------------------------------------------------------
    def transfer(self, loads: Mapping[Hashable, float], latency_ns: float = 0.0,
                 name: str = "") -> simpy.Event:
        """Start a flow now; the returned event fires (value: the Flow) when it is done."""
        unknown = [link for link in loads if link not in self.capacity]
        if unknown:
            raise KeyError(f"unknown link(s) {unknown[:5]}")
        if latency_ns < 0 or any(b < 0 for b in loads.values()):
            raise ValueError("latency and bytes must not be negative")
        flow = Flow({link: float(b) for link, b in loads.items() if b > 0}, float(latency_ns), name,
                    submit_ns=self.env.now)
        flow.event = self.env.event()
        if latency_ns > 0:
            self.env.timeout(latency_ns).callbacks.append(lambda _e: self._join(flow))
        else:
            self._join(flow)
        return flow.event

    def rates(self) -> dict[str, float]:
        """Current bytes/ns of every active flow on its busiest link (by name)."""
        return {f.name: f.rate for f in self.active}

    def link_rate(self, link) -> float:
        """Bytes/ns crossing ``link`` now."""
        return sum(f.rate * f.weights.get(link, 0.0) for f in self.active)

    # -- internals -------------------------------------------------------------------------
    def _join(self, flow: Flow) -> None:
        now = self.env.now
        flow.start_ns = now
        if not flow.loads:
            self._finish(flow, now)
            return
        flow.peak = max(flow.loads.values())
        flow.weights = {link: b / flow.peak for link, b in flow.loads.items()}
        self._advance(now)
        self.active.append(flow)
        for link in flow.weights:
            self._on_link.setdefault(link, set()).add(flow)
        self._resolve(flow.weights)

    def _advance(self, now: float) -> None:
        """Move every active flow forward at its current rate up to ``now``."""
        dt = now - self._last
        if dt > 0:
            for f in self.active:
                moved = f.rate * dt / f.peak          # share of the flow's data
                f.remaining -= min(moved, f.remaining)
        self._last = now

    @property
    def carried(self) -> dict:
        """Bytes moved over every link so far (finished flows, and the share of the active
        ones moved by the last change)."""
        out = dict(self._carried_done)
        for f in self.active:
            done = 1.0 - f.remaining
            for link, b in f.loads.items():
                out[link] += done * b
        return out

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

    def _resolve(self, touched) -> None:
        """Max-min fair rates of the flows connected to the links ``touched`` (progressive
        filling), then wake up at the next completion of any flow."""
        self.solves += 1
        flows = self._component(touched)
        for f in flows:
            f.rate = 0.0
        left: dict = {}
        weight: dict = {}            # link -> weight of its flows not yet frozen
        for f in flows:
            for link, w in f.weights.items():
                weight[link] = weight.get(link, 0.0) + w
                left[link] = self.capacity[link]
        unfrozen = set(flows)
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
                f.rate += step
            for link in tight:
                for f in self._on_link[link]:
                    if f in unfrozen:
                        unfrozen.discard(f)
                        for x, w in f.weights.items():
                            weight[x] -= w
                weight[link] = 0.0
        self._generation += 1
        gen = self._generation
        if self.active:
            wait = max(min(f.remaining * f.peak / f.rate for f in self.active if f.rate > 0),
                       0.0)
            if self.integer_time:
                wait = math.ceil(wait - 1e-6)
            self.env.timeout(wait).callbacks.append(lambda _e: self._wake(gen))
        if self.on_change is not None:
            self.on_change(self)

    def _wake(self, gen: int) -> None:
        if gen != self._generation:
            return                                  # rates changed since: a stale wake-up
        now = self.env.now
        self._advance(now)
        done = [f for f in self.active if f.remaining * f.peak <= 1e-6 + 1e-12 * f.peak]
        if not done:                                # rounding: finish the nearest one
            done = [min(self.active, key=lambda f: f.remaining * f.peak / f.rate)]
        touched = set()
        for f in done:
            self.active.remove(f)
            for link, b in f.loads.items():
                self._carried_done[link] += b
                users = self._on_link[link]
                users.discard(f)
                if not users:
                    del self._on_link[link]
                touched.add(link)
            f.remaining = 0.0
            f.rate = 0.0
            self._finish(f, now)
        self._resolve(touched)

    def _finish(self, flow: Flow, now: float) -> None:
        flow.end_ns = now
        self.finished += 1
        assert flow.event is not None   # transfer() gives every flow its event
        flow.event.succeed(flow)
