"""The flow network's closed form (FlowNetwork(closed_form=True)): a flow that no other flow
can meet on its links from its start to its end gets its end when it is submitted, with no
events but that end; any flow that could meet it puts both in the solver. Against the solver
alone (closed_form=False, the reference), on random flow sets in whole nanoseconds: the
same end and callback time for every flow."""
import random

import pytest

from simulator.engine.loop import Environment
from simulator.network import FlowNetwork


def _run(closed_form: bool, caps: dict, specs: list) -> tuple[dict, FlowNetwork]:
    env = Environment()
    net = FlowNetwork(env, caps, integer_time=True, closed_form=closed_form)
    seen: dict = {}

    def submit(spec):
        name, loads, latency, tail = spec
        net.transfer(loads, latency, name=name, tail_ns=tail,
                     on_done=lambda f: seen.__setitem__(f.name, (f.start_ns, f.end_ns,
                                                                 env.now)))

    for start, *spec in specs:
        env.call_later(start, submit, spec)
    env.run()
    return seen, net


def _case(rng: random.Random):
    caps = {f"l{i}": rng.choice([1.0, 2.5, 4.0, 10.0]) for i in range(6)}
    specs = []
    for i in range(rng.randint(2, 30)):
        links = rng.sample(sorted(caps), k=rng.randint(1, 3))
        loads = {link: float(rng.randint(1, 400)) for link in links}
        specs.append((rng.randint(0, 3000), f"f{i}", loads, rng.choice([0, 0, 5, 40]),
                      rng.choice([0, 0, 7])))
    return caps, specs


@pytest.mark.parametrize("seed", range(60))
def test_closed_form_ends_equal_the_solvers(seed):
    caps, specs = _case(random.Random(seed))
    mine, net = _run(True, caps, specs)
    ref, _ = _run(False, caps, specs)
    assert mine == ref
    assert net.finished == len(specs) and not net._lazy
    assert not any(net._claims.values())        # no flow claims a link any more


def test_the_closed_form_takes_most_sparse_flows_and_the_solver_the_meeting_ones():
    # flows spread out in time mostly meet no other: they end in closed form
    caps, specs = _case(random.Random(5))
    rng = random.Random(1)
    specs = [(rng.randint(0, 300000), *s[1:]) for s in specs]
    mine, net = _run(True, caps, specs)
    assert mine == _run(False, caps, specs)[0]
    assert net.active == {}
    # a 100-byte flow at 10 B/ns after 5 ns of latency: ends at 15, its callback 7 ns later;
    # a second one starting at 10 on the same link meets it (both in the solver): the first
    # has 50 bytes left at 10, both move at 5 B/ns, so the first ends at 20; the second has
    # 50 bytes left then, alone at 10 B/ns: 25
    one = [(0, "a", {"x": 100.0}, 5, 7)]
    got, net = _run(True, {"x": 10.0}, one)
    assert got == {"a": (5, 15, 22)}
    two = one + [(10, "b", {"x": 100.0}, 0, 0)]
    got, net = _run(True, {"x": 10.0}, two)
    assert got == {"a": (5, 20, 27), "b": (10, 25, 25)}
    # touching ends count as meeting, and still end as the solver has them
    touch = one + [(10, "b", {"x": 100.0}, 5, 0), (25, "c", {"x": 30.0}, 0, 0)]
    assert _run(True, {"x": 10.0}, touch)[0] == _run(False, {"x": 10.0}, touch)[0]


def test_a_flow_alone_now_is_its_closed_form_end_with_no_event():
    # links a (2 B/ns) and b (4 B/ns), 100 bytes on each: peak 100, rate alone 2 (link a),
    # so a flow takes its latency 10 + ceil(100 / 2) = 60 ns and its callback 5 ns later
    from simulator.network.flows import Demand

    env = Environment()
    net = FlowNetwork(env, {"a": 2.0, "b": 4.0, "c": 1.0}, integer_time=True,
                      closed_form=True)
    demand = Demand({"a": 100.0, "b": 100.0})
    got = []

    def proc():
        assert net.alone_now(demand, 10, 5) is None      # never transferred: not checked
        net.transfer(demand, 10, on_done=lambda f: got.append(("first", env.now)), tail_ns=5)
        yield env.timeout(100)                 # the first ended at 60, its callback at 65
        got.append(("alone", net.alone_now(demand, 10, 5)))        # 100 + 65
        # a flow on a alone: 2000 B at 2 B/ns claims a over [100, 1100]
        net.transfer({"a": 2000.0}, 0, on_done=lambda f: None)
        yield env.timeout(1)
        # ours would move over [111, 161], its callback at 166: before anything queued
        # (the claim's end at 1100), but it meets the claim on a
        got.append(("claimed", net.alone_now(demand, 10, 5)))
        yield env.timeout(1099)                # at 1200: the claim ended at 1100
        env.call_later(65, lambda _: None, None)                   # something at 1265
        yield env.timeout(0)
        got.append(("queued", net.alone_now(demand, 10, 5)))       # 1200 + 65: not before
        got.append(("before", net.alone_now(demand, 10, 4)))       # 1200 + 64: before it
        got.append(("unchecked", net.alone_now(Demand({"c": 4.0}), 0, 0)))

    env.process(proc())
    env.run()
    assert got == [("first", 65), ("alone", 165), ("claimed", None), ("queued", None),
                   ("before", 1264), ("unchecked", None)]
    # the two alone_now that succeeded counted their flows as finished, like the other two
    assert net.finished == 4 and not any(net._claims.values())
