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
