"""The incremental max-min solver (simulator.network.flows) against a from-scratch solve.

FlowNetwork re-solves only the flows connected to a change and lets a flow that shares no
link take its own rate; here every rate it gives is compared, at every change, with
progressive filling over *all* active flows written out below, and completion times with a
plain fluid simulation that re-solves everything at every event. Rates are also checked
against the definition of max-min fairness (feasible, and every flow has a saturated link
on which no other flow is faster), which does not depend on how they were found.
"""
import random

import pytest
import simpy

from simulator.network import FlowNetwork

from flow_helpers import run_flows


def scratch_rates(flows: dict, caps: dict) -> dict:
    """Max-min fair rates of ``flows`` ({name: {link: weight}}, weights <= 1, the busiest
    link of each flow at 1): every unfrozen flow rises at the same pace until a link fills;
    the flows on it freeze."""
    rate = {f: 0.0 for f in flows}
    left = dict(caps)
    active = set(flows)
    while active:
        load = {}
        for f in active:
            for link, w in flows[f].items():
                load[link] = load.get(link, 0.0) + w
        step = min(left[link] / w for link, w in load.items() if w > 0)
        for f in active:
            rate[f] += step
        for link, w in load.items():
            left[link] -= step * w
        full = {link for link, w in load.items() if w > 0 and left[link] <= 1e-9 * caps[link]}
        active = {f for f in active if not full & set(flows[f])}
    return rate


def assert_max_min(flows: dict, caps: dict, rates: dict) -> None:
    """Feasible, and each flow has a saturated link where it is the fastest (the definition)."""
    used = {link: 0.0 for link in caps}
    for f, ws in flows.items():
        for link, w in ws.items():
            used[link] += rates[f] * w
    for link, u in used.items():
        assert u <= caps[link] * (1 + 1e-9)
    for f, ws in flows.items():
        assert any(used[link] >= caps[link] * (1 - 1e-9)
                   and all(rates[f] >= rates[g] * (1 - 1e-9)
                           for g, other in flows.items() if link in other)
                   for link in ws), f"flow {f} has no bottleneck"


def weights(loads: dict) -> dict:
    peak = max(loads.values())
    return {link: b / peak for link, b in loads.items()}


def fluid_end_times(caps: dict, specs: list) -> dict:
    """Completion time of every flow (name, start, loads, latency), re-solving all rates
    from scratch at every arrival and completion."""
    arrivals = sorted((start + lat, name, loads) for name, start, loads, lat in specs)
    left, ws, end = {}, {}, {}
    now = 0.0
    while arrivals or left:
        rates = scratch_rates(ws, caps) if ws else {}
        # time to the next completion: the share of data left over the rate on the busiest
        finish = min(((left[f] / rates[f], f) for f in left), default=(float("inf"), None))
        nxt = arrivals[0][0] - now if arrivals else float("inf")
        dt = min(finish[0], nxt)
        for f in left:
            left[f] -= rates[f] * dt
        now += dt
        for f in [f for f in left if left[f] <= 1e-9 * max(1.0, now)]:
            end[f] = now
            del left[f], ws[f]
        while arrivals and arrivals[0][0] <= now + 1e-12:
            _, name, loads = arrivals.pop(0)
            if loads:
                left[name] = max(loads.values())           # bytes on its busiest link
                ws[name] = weights(loads)
            else:
                end[name] = now
    return end


def random_case(rng: random.Random, n_links: int, n_flows: int):
    caps = {f"l{i}": rng.choice([1.0, 2.5, 4.0, 10.0, 37.0]) for i in range(n_links)}
    specs = []
    for i in range(n_flows):
        links = rng.sample(sorted(caps), k=rng.randint(1, min(4, n_links)))
        loads = {link: float(rng.randint(1, 200)) for link in links}
        specs.append((f"f{i}", rng.choice([0, 0, 3, 17, 40, 90]) + rng.random() * 10, loads,
                      rng.choice([0.0, 0.0, 5.0, 12.5])))
    return caps, specs


@pytest.mark.parametrize("seed", range(40))
def test_incremental_rates_equal_a_from_scratch_solve_at_every_change(seed):
    rng = random.Random(seed)
    caps, specs = random_case(rng, n_links=rng.randint(1, 8), n_flows=rng.randint(1, 14))
    checked = []

    def check(net):
        active = {f.name: f.weights for f in net.active}
        expected = scratch_rates(active, caps)
        got = net.rates()
        assert got == pytest.approx(expected, rel=1e-9)
        assert_max_min(active, caps, got)
        checked.append(len(active))

    net, done = run_flows(caps, specs, check)
    assert len(done) == len(specs) and checked
    expected_end = fluid_end_times(caps, specs)
    for name, flow in done.items():
        assert flow.end_ns == pytest.approx(expected_end[name], rel=1e-9, abs=1e-6), name
    # every byte arrived on every link
    total = {link: 0.0 for link in caps}
    for _, _, loads, _ in specs:
        for link, b in loads.items():
            total[link] += b
    assert net.carried == pytest.approx(total)


@pytest.mark.parametrize("seed", range(10))
def test_whole_nanosecond_completions_stay_within_a_ns_per_change_of_the_fluid_ones(seed):
    # the engine's networks keep integer time: a completion is rounded up to the next whole
    # ns, so each flow ends under 1 ns late per change, and a flow that others delay by
    # such rounding can gain as much (max-min is not monotone in the competitors): within
    # one ns per event of the exact fluid time either way
    rng = random.Random(100 + seed)
    caps, specs = random_case(rng, n_links=4, n_flows=8)
    specs = [(n, float(round(s)), loads, float(round(lat))) for n, s, loads, lat in specs]
    _, done = run_flows(caps, specs, integer_time=True)
    fluid = fluid_end_times(caps, specs)
    for name, flow in done.items():
        assert flow.end_ns == int(flow.end_ns)
        assert abs(flow.end_ns - fluid[name]) <= 2 * len(specs)


def test_a_change_reaches_flows_two_links_away():
    # p on L1; q on L1, L2; r on L2, L3; s on L3 (one byte per byte on every link it
    # crosses). Capacities L1 4, L2 8, L3 10 B/ns. Progressive filling:
    #   p = q = 2 (L1 full); r and s rise to 5 (L3 full; L2 carries 2 + 5 = 7 < 8).
    # p (20 B) ends at 10. Then q = 4 (L1), so r <= 8 - 4 = 4 (L2 full) and s = 10 - 4 = 6:
    # ending p moved s, two links away. At 10: q has 80 B left, r 50, s 50.
    # s ends at 10 + 50/6 = 18.333; r then still 4 (L2: q 4 + r 4), 50 - 4 x 8.333 = 16.667
    # left: ends at 18.333 + 4.1667 = 22.5; q has 80 - 4 x 12.5 = 30 left at 4 B/ns: 30.
    caps = {"L1": 4.0, "L2": 8.0, "L3": 10.0}
    env = simpy.Environment()
    seen = []
    net = FlowNetwork(env, caps, on_change=lambda n: seen.append((env.now, n.rates())))
    done = {}

    def proc(name, loads):
        done[name] = yield net.transfer(loads, 0, name)

    for name, loads in (("p", {"L1": 20}), ("q", {"L1": 100, "L2": 100}),
                        ("r", {"L2": 100, "L3": 100}), ("s", {"L3": 100})):
        env.process(proc(name, loads))
    env.run()
    assert seen[3][1] == pytest.approx({"p": 2, "q": 2, "r": 5, "s": 5})
    at_10 = [r for t, r in seen if t == pytest.approx(10)][-1]
    assert at_10 == pytest.approx({"q": 4, "r": 4, "s": 6})
    ends = {k: f.end_ns for k, f in done.items()}
    assert ends == pytest.approx({"p": 10, "s": 10 + 50 / 6, "r": 22.5, "q": 30})


def test_flows_that_share_no_link_take_their_rate_without_a_solve():
    # five flows on five links, overlapping in time: each alone on its link, so none of the
    # ten changes needs progressive filling over several flows
    caps = {f"l{i}": 10.0 for i in range(5)}
    env = simpy.Environment()
    net = FlowNetwork(env, caps)
    done = {}

    def proc(i):
        yield env.timeout(i)
        done[i] = yield net.transfer({f"l{i}": 100.0}, 0, str(i))

    for i in range(5):
        env.process(proc(i))
    env.run()
    assert [done[i].end_ns for i in range(5)] == pytest.approx([10, 11, 12, 13, 14])
    assert net.solves == 10 and net.shared_solves == 0
