"""FlowNetwork: max-min fair sharing of links by overlapping transfers, solved per change."""
import pytest
import simpy

from simulator.costmodel.bench import group_placement
from simulator.costmodel.nccl import NcclCostModel
from simulator.network import FlowNetwork
from simulator.parallel import GroupPlacement
from simulator.topology import load_spec
from simulator.workload import Op

from flow_helpers import run_flows


def test_alone_a_flow_takes_latency_plus_its_busiest_link():
    # 1e6 B over a 10 B/ns link and 1e6 B over a 100 B/ns link: the first decides, 1e5 ns
    _, done = run_flows({"a": 10.0, "b": 100.0}, [("x", 0, {"a": 1e6, "b": 1e6}, 500)])
    f = done["x"]
    assert (f.start_ns, f.end_ns) == (500, pytest.approx(500 + 1e5))


def test_two_overlapping_transfers_share_a_link():
    alone = run_flows({"l": 10.0}, [("a", 0, {"l": 1e6}, 0)])[1]["a"].end_ns   # 1e5 ns
    peak = []

    def check(net):
        peak.append(net.link_rate("l"))

    net, done = run_flows({"l": 10.0}, [("a", 0, {"l": 1e6}, 0), ("b", 0, {"l": 1e6}, 0)],
                          check)
    # each gets 5 B/ns: both end at 2e5 ns, each slower than alone
    assert done["a"].end_ns == pytest.approx(2e5) and done["b"].end_ns == pytest.approx(2e5)
    assert done["a"].end_ns > alone and done["b"].end_ns > alone
    # the link never carries more than its rate, and all bytes arrive
    assert max(peak) <= 10.0 * (1 + 1e-9)
    assert net.carried["l"] == pytest.approx(2e6)
    assert net.carried["l"] / max(f.end_ns for f in done.values()) <= 10.0 * (1 + 1e-9)


def test_partial_overlap_by_hand():
    # x on a; y on a (1e2 B) and b (50 B); z joins b at t = 5. Capacities 10 B/ns.
    # 0-5: x and y split a (5 B/ns each; y uses 2.5 of b). At 5, 75 B left of x and y on a.
    # z joins b: a limits x and y to 5 each (10 / 2), b has 10 - 2.5 = 7.5 left for z.
    # z: 100 / 7.5 = 13.33 -> 18.33; x and y: 75 / 5 = 15 -> 20.
    net, done = run_flows({"a": 10.0, "b": 10.0},
                          [("x", 0, {"a": 100}, 0), ("y", 0, {"a": 100, "b": 50}, 0),
                           ("z", 5, {"b": 100}, 0)])
    assert done["z"].end_ns == pytest.approx(5 + 100 / 7.5)
    assert done["x"].end_ns == pytest.approx(20) and done["y"].end_ns == pytest.approx(20)
    assert net.carried == pytest.approx({"a": 200, "b": 150})


def test_max_min_gives_spare_capacity_to_the_unconstrained_flow():
    # x crosses a (cap 4) and b (cap 10); y crosses only b. x is held to 4 by a, so y gets
    # the remaining 6 on b, not a fair 5.
    net, done = run_flows({"a": 4.0, "b": 10.0},
                          [("x", 0, {"a": 400, "b": 400}, 0), ("y", 0, {"b": 600}, 0)])
    assert done["x"].end_ns == pytest.approx(100) and done["y"].end_ns == pytest.approx(100)


def test_rates_are_solved_only_when_the_set_of_flows_changes():
    flows = [(f"f{i}", 10 * i, {"l": 1000.0}, 0) for i in range(5)]
    net, done = run_flows({"l": 1.0}, flows)
    assert len(done) == 5
    # one solve per start and one per finish (no polling)
    assert net.solves == 10


def test_latency_only_and_bad_input():
    _, done = run_flows({"l": 1.0}, [("x", 0, {}, 700)])
    assert done["x"].end_ns == 700
    env = simpy.Environment()
    net = FlowNetwork(env, {"l": 1.0})
    with pytest.raises(KeyError):
        net.transfer({"m": 1.0})
    with pytest.raises(ValueError):
        FlowNetwork(env, {"l": 0.0})


def test_collectives_that_share_nics_slow_each_other():
    # dgx-h100, 4 servers: a DP-style all-reduce over GPU 0 of every server and an EP-style
    # all-to-all over the same GPUs both need those GPUs' NICs
    model = NcclCostModel(load_spec("dgx-h100:32"))
    group = GroupPlacement(size=4, servers=4, max_per_server=1, same_local_index=True,
                           ranks=(0, 8, 16, 24))
    ar_loads, ar_lat = model.flow(Op.ALLREDUCE, 256 << 20, group)
    a2a_loads, a2a_lat = model.flow(Op.ALLTOALL, 256 << 20, group)
    caps = model.topology.capacities()
    _, alone_ar = run_flows(caps, [("ar", 0, ar_loads, ar_lat)])
    _, alone_a2a = run_flows(caps, [("a2a", 0, a2a_loads, a2a_lat)])
    # alone, the flow network reproduces the cost model exactly
    assert alone_ar["ar"].end_ns == pytest.approx(model.estimate(
        Op.ALLREDUCE, 256 << 20, group).time_ns)
    assert alone_a2a["a2a"].end_ns == pytest.approx(model.estimate(
        Op.ALLTOALL, 256 << 20, group).time_ns)
    _, both = run_flows(caps, [("ar", 0, ar_loads, ar_lat), ("a2a", 0, a2a_loads, a2a_lat)])
    assert both["ar"].end_ns > 1.2 * alone_ar["ar"].end_ns
    assert both["a2a"].end_ns > 1.2 * alone_a2a["a2a"].end_ns
    # a collective on other GPUs (rail 1) does not disturb them
    other = GroupPlacement(size=4, servers=4, max_per_server=1, same_local_index=True,
                           ranks=(1, 9, 17, 25))
    o_loads, o_lat = model.flow(Op.ALLREDUCE, 256 << 20, other)
    _, apart = run_flows(caps, [("ar", 0, ar_loads, ar_lat), ("o", 0, o_loads, o_lat)])
    assert apart["ar"].end_ns == pytest.approx(alone_ar["ar"].end_ns)


def test_flow_of_an_intra_server_group():
    model = NcclCostModel(load_spec("h200x2"))
    loads, lat = model.flow(Op.ALLGATHER, 1 << 30, group_placement(2, 2))
    assert set(loads) == {("gpu0", "gpu1"), ("gpu1", "gpu0")}
    _, done = run_flows(model.topology.capacities(), [("ag", 0, loads, lat)])
    assert done["ag"].end_ns == pytest.approx(model.estimate(
        Op.ALLGATHER, 1 << 30, group_placement(2, 2)).time_ns)
