"""simulator/engine/loop.py keeps simpy's semantics: the same program, the same trace.

Random processes wait on timeouts, on shared one-shot events (some triggered long before,
some at the same instant) and on each other; every resume is logged with its time and the
value received. simpy and the loop must log the same sequence, order within an instant
included.
"""
import random

import pytest
import simpy

from simulator.engine.loop import Environment


def _program(env, log, seed):
    rng = random.Random(seed)
    boxes = [env.event() for _ in range(6)]
    procs = []

    def worker(k):
        for step in range(8):
            choice = rng.random()
            if choice < 0.4:
                value = yield env.timeout(rng.choice([0, 0, 1, 3, 5]), value=(k, step))
            elif choice < 0.7:
                box = boxes[rng.randrange(len(boxes))]
                if not box.triggered and rng.random() < 0.5:
                    box.succeed((k, step, env.now))
                value = yield box if box.triggered or rng.random() < 0.3 else env.timeout(1)
            elif procs and choice < 0.8:
                value = yield procs[rng.randrange(len(procs))]
            else:
                value = yield env.timeout(0)
            log.append((env.now, k, step, value))
        return k

    for k in range(5):
        procs.append(env.process(worker(k)))
    _run_releasing(env, boxes, 50)


def _run_releasing(env, boxes, at):
    """Run ``env`` to the end, the boxes still waiting at ``at`` succeeded then ("late"),
    so that nobody waits forever."""
    def closer():
        yield env.timeout(at)
        for box in boxes:
            if not box.triggered:
                box.succeed("late")
    env.process(closer())
    env.run()


def _traces(program, seed):
    """The logs of ``program`` run on simpy (the reference) and on the loop."""
    a, b = [], []
    program(simpy.Environment(), a, seed)
    program(Environment(), b, seed)
    return a, b


@pytest.mark.parametrize("seed", range(40))
def test_same_trace_as_simpy(seed):
    a, b = _traces(_program, seed)
    assert a == b and len(a) > 0


def _later(env, delay, fn, arg):
    """call_later on the loop; on simpy what it stands for: a timeout whose one callback
    passes its value on."""
    if isinstance(env, Environment):
        env.call_later(delay, fn, arg)
    else:
        env.timeout(delay, arg).callbacks.append(lambda event: fn(event.value))


def _calls_program(env, log, seed):
    # processes on timeouts and plain calls that schedule more calls and succeed events the
    # processes wait on, at the same instants: the calls must run where the timeouts would
    rng = random.Random(seed)
    boxes = [env.event() for _ in range(8)]

    def call(arg):
        log.append(("call", env.now, arg))
        k, depth = arg
        if depth < 3:
            _later(env, rng.choice([0, 0, 1, 2]), call, (k, depth + 1))
        box = boxes[rng.randrange(len(boxes))]
        if not box.triggered:
            box.succeed(arg)

    def worker(k):
        for step in range(6):
            if rng.random() < 0.5:
                _later(env, rng.choice([0, 1, 2]), call, (k, 0))
            value = yield (env.timeout(rng.choice([0, 1, 2]), (k, step)) if rng.random() < 0.6
                           else boxes[rng.randrange(len(boxes))])
            log.append(("resume", env.now, k, step, value))

    for k in range(4):
        env.process(worker(k))
    _run_releasing(env, boxes, 40)


@pytest.mark.parametrize("seed", range(40))
def test_plain_calls_run_where_simpys_timeouts_would(seed):
    a, b = _traces(_calls_program, seed)
    assert a == b and any(e[0] == "call" for e in a)


def test_a_process_may_skip_to_a_time_before_everything_queued():
    # can_skip_to(t): the running process is the last thing of this dispatch (``ahead``)
    # and every queued entry is later than t (a timeout at t, scheduled now, would come
    # after an entry already queued at t: not next)
    env = Environment()
    seen = []

    def other():
        yield env.timeout(10)

    def runner():
        yield env.timeout(2)                 # resumed by its own timeout: the only waiter
        seen.append((env.now, env.ahead, env.can_skip_to(9), env.can_skip_to(10)))
        env.now = 7                          # skipped: as if it had waited 5 more
        yield env.timeout(1)
        seen.append(env.now)

    env.process(other())
    env.process(runner())
    env.run()
    assert seen == [(2, True, True, False), 8]


def test_only_the_last_thing_of_a_dispatch_runs_ahead():
    env = Environment()
    seen = []
    shared = env.event()

    def waiter(k):
        yield shared                         # two waiters on one event: neither may skip
        seen.append(("event", k, env.ahead))

    def call(tail):
        seen.append(("call", tail, env.ahead))

    env.process(waiter(0))
    env.process(waiter(1))
    env.call_later(1, lambda _: shared.succeed(), None)
    env.call_later(2, call, True, tail=True)
    env.call_later(3, call, False)
    env.run()
    assert seen == [("event", 0, False), ("event", 1, False), ("call", True, True),
                    ("call", False, False)]


def test_fire_lets_only_a_single_waiter_run_ahead():
    from simulator.engine.loop import fire

    env = Environment()
    seen = []
    one, two = env.event(), env.event()

    def waiter(ev, k):
        yield ev
        seen.append((k, env.ahead))

    env.process(waiter(one, "one"))
    env.process(waiter(two, "two-a"))
    env.process(waiter(two, "two-b"))
    env.call_later(1, lambda ev: fire(ev, None), one, tail=True)
    env.call_later(2, lambda ev: fire(ev, None), two, tail=True)
    env.run()
    assert seen == [("one", True), ("two-a", False), ("two-b", False)]


def test_run_ahead_passes_the_waits_before_the_queues_head():
    # run_ahead(t0, waits, k): the first wait from k on that can_skip_to would refuse, the
    # clock at the last one passed. Waits at 3, 5, 9 from t0 = 10 (13, 15, 19); the queue's
    # head at 15: 13 < 15 passes, 15 is not before it (an entry already queued at 15 comes
    # first), so it stops at index 1 with the clock at 13
    env = Environment()
    waits = [(3, False), (5, True), (9, False)]
    seen = []

    def runner():
        yield env.timeout(10)                # the only waiter of its own timeout: ahead
        seen.append((env.run_ahead(10, waits, 0), env.now))
        seen.append((env.run_ahead(10, waits, 1), env.now))   # 15 still not before 15

    env.process(runner())
    env.call_later(15, lambda _: None, None)
    env.run()
    assert seen == [(1, 13), (1, 13)]


def test_run_ahead_stops_where_a_process_may_not_run_ahead():
    # not ahead (two waiters on one event): nothing passed, the clock unchanged; ahead with
    # an empty queue: every wait passed, the clock at the last (t0 4 + 9 = 13)
    env = Environment()
    shared = env.event()
    seen = []
    waits = [(3, False), (5, False), (9, False)]

    def waiter(k):
        yield shared
        seen.append((k, env.run_ahead(4, waits, 0), env.now))

    def alone():
        yield env.timeout(4)
        seen.append(("alone", env.run_ahead(4, waits, 0), env.now))

    env.process(waiter(0))
    env.process(waiter(1))
    env.call_later(1, lambda _: shared.succeed(), None)
    env.process(alone())
    env.run()
    assert seen == [(0, 0, 1), (1, 0, 1), ("alone", 3, 13)]


@pytest.mark.parametrize("seed", range(20))
def test_run_ahead_answers_as_can_skip_to_wait_by_wait(seed):
    # the loop it replaces, on random queues and waits
    rng = random.Random(seed)
    env = Environment()
    results = []

    def runner():
        yield env.timeout(rng.randrange(0, 5))
        t0 = env.now
        offsets = sorted(rng.randrange(0, 30) for _ in range(rng.randrange(1, 8)))
        waits = [(o, rng.random() < 0.3) for o in offsets]
        k0 = rng.randrange(len(waits))
        k, now = k0, env.now
        while k < len(waits) and env.can_skip_to(t0 + waits[k][0]):
            now = t0 + waits[k][0]
            k += 1
        results.append((env.run_ahead(t0, waits, k0), env.now, k, now))

    for _ in range(rng.randrange(0, 4)):
        env.call_later(rng.randrange(0, 40), lambda _: None, None)
    env.process(runner())
    env.run()
    (got_k, got_now, want_k, want_now), = results
    assert (got_k, got_now) == (want_k, want_now)
