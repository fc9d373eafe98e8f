"""A minimal discrete-event loop with simpy's semantics, for the fast pipeline engine.

The fast engine (:mod:`.pipeline`) needs only timeouts, one-shot events and generator
processes. This loop implements exactly that subset of simpy's behaviour: events fire in
(time, priority, scheduling order); a process starts at once (before other events of the same
time), resumes when the event it yielded is processed, and continues at once when it yields
an event already processed. It runs a pipeline point 2-3x faster than simpy (no per-event
class hierarchy, no simpy import), which is what sweeps spend their time on; the row-level
engine and its flows run on it too.

Running ahead. A process resumed as the only waiter of what the loop is dispatching, with
nothing left to run after it in that dispatch (``ahead``), may move the clock itself to a
time earlier than every queued entry (:meth:`Environment.can_skip_to`) instead of waiting
for a timeout there: the loop would have popped that timeout next and resumed it, in the
same state, so skipping it changes nothing but the work (the detailed engine's compute
phases and closed-form flows of a rank class that nothing else can touch in between).
"""
from __future__ import annotations

from collections.abc import Callable
from bisect import bisect_left
from heapq import heappop, heappush
from operator import itemgetter

_URGENT, _NORMAL = 0, 1
_PENDING = object()
_EVENT = object()      # a queue entry's last field when it is an event, not a plain call
_offset = itemgetter(0)   # a wait's time from its start, in Environment.run_ahead's waits


class Event:
    __slots__ = ("env", "callbacks", "_value")

    def __init__(self, env: Environment):
        self.env = env
        # None once processed (typed as simpy types it: callers append to a pending event's)
        self.callbacks: list = []
        self._value = _PENDING

    @property
    def triggered(self) -> bool:
        return self._value is not _PENDING

    @property
    def value(self):
        return self._value

    def succeed(self, value=None) -> Event:
        if self._value is not _PENDING:
            raise RuntimeError(f"{self} has already been triggered")
        self._value = value
        self.env._schedule(self, _NORMAL, 0)
        return self


class Process(Event):
    __slots__ = ("_generator", "_resume_cb")

    def __init__(self, env: Environment, generator):
        super().__init__(env)
        self._generator = generator
        # one bound method, not one per wait
        self._resume_cb: Callable[[Event], None] | None = self._resume
        start = Event(env)
        start._value = None
        start.callbacks = [self._resume_cb]
        env._schedule(start, _URGENT, 0)

    def _resume(self, event: Event) -> None:
        while True:
            try:
                event = self._generator.send(event._value)
            except StopIteration as stop:
                self._value = stop.value
                self._resume_cb = None              # no cycle left: freed by reference count
                self.env._schedule(self, _NORMAL, 0)
                return
            if event.callbacks is not None:
                event.callbacks.append(self._resume_cb)
                return


def fire(event, value) -> None:
    """Trigger ``event`` with ``value`` and run its callbacks now, as the loop runs them
    when it processes the event (here: at once, before the rest of this instant). Call it
    only last in what the loop dispatches (a tail call): its one waiter may run ahead."""
    if event._value is not _PENDING:
        raise RuntimeError(f"{event} has already been triggered")
    event._value = value
    callbacks, event.callbacks = event.callbacks, None
    env = event.env
    if len(callbacks) != 1:
        env.ahead = False       # an earlier waiter must not move the clock under a later one
    for callback in callbacks:
        callback(event)


class Environment:
    def __init__(self):
        self.now = 0
        # entries: (time, priority, scheduling order, event or fn, _EVENT or arg, tail)
        self._queue: list = []
        self._eid = 0
        # whether what runs now is the only thing left of the loop's dispatch: the one
        # callback of an event, or a plain call scheduled as a tail (call_*(tail=True))
        self.ahead = False

    def _schedule(self, event: Event, priority: int, delay) -> None:
        self._eid += 1
        heappush(self._queue, (self.now + delay, priority, self._eid, event, _EVENT, False))

    def call_later(self, delay, fn, arg, tail: bool = False) -> None:
        """``fn(arg)`` ``delay`` from now, where a timeout with ``arg`` as its value and
        ``fn`` on its value as its only callback would run it (same time, priority and order),
        without making the event. ``tail``: ``fn`` does nothing after what it resumes (it may
        resume a process that runs ahead)."""
        self._eid += 1
        heappush(self._queue, (self.now + delay, _NORMAL, self._eid, fn, arg, tail))

    def call_at(self, when, fn, arg, tail: bool = False) -> None:
        """``fn(arg)`` at time ``when`` (not before now), as :meth:`call_later` would."""
        self._eid += 1
        heappush(self._queue, (when, _NORMAL, self._eid, fn, arg, tail))

    def call_at_tail(self, when, fn, arg) -> None:
        """``call_at(when, fn, arg, tail=True)`` (a flow's closed-form end: one per flow)."""
        self._eid += 1
        heappush(self._queue, (when, _NORMAL, self._eid, fn, arg, True))

    def can_skip_to(self, when) -> bool:
        """Whether the running process may set the clock to ``when`` itself, where a
        timeout it waited on would resume it: it runs as the last thing of this dispatch
        (``ahead``) and every queued entry is later (a timeout at ``when`` would be popped
        next, before anything scheduled after it; the same order)."""
        if not self.ahead:
            return False
        queue = self._queue
        return not queue or queue[0][0] > when

    def run_ahead(self, t0, waits, k: int) -> int:
        """Run ahead through ``waits[k:]`` (times from ``t0``, each ``(offset, ...)``, in
        order) as far as :meth:`can_skip_to` allows each, and return the first it does not
        allow (``len(waits)``: all); the clock is left at the last one passed. The queue
        does not change while a process runs ahead, so its head is read once instead of
        once per wait, and the first wait not before it is found by bisection (the offsets
        never decrease): the same answers as asking ``can_skip_to`` wait by wait."""
        if not self.ahead:
            return k
        queue = self._queue
        j = bisect_left(waits, queue[0][0] - t0, k, key=_offset) if queue else len(waits)
        if j > k:
            self.now = t0 + waits[j - 1][0]
        return j

    def event(self) -> Event:
        return Event(self)

    def timeout(self, delay, value=None) -> Event:
        if delay < 0:
            raise ValueError(f"negative delay {delay}")
        ev = Event(self)
        ev._value = value
        self._eid += 1
        heappush(self._queue, (self.now + delay, _NORMAL, self._eid, ev, _EVENT, False))
        return ev

    def process(self, generator) -> Process:
        return Process(self, generator)

    def run(self) -> None:
        queue = self._queue
        while queue:
            self.now, _, _, target, arg, tail = heappop(queue)
            if arg is _EVENT:
                callbacks, target.callbacks = target.callbacks, None
                self.ahead = len(callbacks) == 1
                for callback in callbacks:
                    callback(target)
            else:
                self.ahead = tail
                target(arg)


class Chain(Event):
    """The queue entries a run of waits of one process would make (its timeouts and flow
    ends), as plain tail calls, each scheduling the next where the process would: the same
    entries, times and order for everyone else. ``waits``: (time from ``t0``, whether two
    entries: a flow's end and then its event, scheduled at once), from the ``k``-th on. At
    the last the process resumes (``done`` fires); at each it could have run ahead
    (:meth:`Environment.run_ahead`), so may the chain. The detailed engine's segments
    (simulator/engine/detailed.py) make one per run of waits that the queue stops; its
    steps are a third of that engine's loop, so :meth:`step` runs ahead and schedules
    inline (the queue's entries as :meth:`Environment.call_at` makes them). Without
    ``done`` the chain is itself the event that fires at the last (one object less)."""

    __slots__ = ("t0", "waits", "k", "done", "second", "_step")

    def __init__(self, env: Environment, t0, waits: list, k: int, done: Event | None = None):
        self.env, self.t0, self.waits, self.k = env, t0, waits, k
        self.callbacks = []
        self._value = _PENDING
        self.done = done                # None: itself (not kept in a slot: no cycle)
        self.second = False
        self._step: Callable | None = self.step     # one bound method for every entry
        env.call_at(t0 + waits[k][0], self._step, None, tail=True)

    def step(self, _arg) -> None:
        env, waits = self.env, self.waits
        k = self.k
        if waits[k][1] and not self.second:
            # a flow's end with no update time: its event is scheduled now, at once
            self.second = True
            env._eid += 1
            heappush(env._queue, (env.now, _NORMAL, env._eid, self._step, None, True))
            return
        self.second = False
        # Environment.run_ahead(t0, waits, k + 1) inline: a chain's step is a tail call, so
        # the loop has set ``ahead``; the waits from k + 1 before the queue's head pass
        k += 1
        n = len(waits)
        t0 = self.t0
        queue = env._queue
        if k < n:
            if not queue:
                env.now = t0 + waits[n - 1][0]
                k = n
            else:
                head = queue[0][0] - t0
                if waits[k][0] < head:
                    k = bisect_left(waits, head, k + 1, key=_offset)
                    env.now = t0 + waits[k - 1][0]
        if k == n:
            self._step = None               # no cycle left: freed by reference count
            done = self.done
            fire(self if done is None else done, None)
            return
        self.k = k
        env._eid += 1
        heappush(queue, (t0 + waits[k][0], _NORMAL, env._eid, self._step, None, True))
