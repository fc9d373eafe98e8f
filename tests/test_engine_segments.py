"""A rank class's steps that nothing else can touch, run at once (the detailed engine's
segments: _ClassStage._segment, _Chain, FlowNetwork.alone_wait, FabricFlows.link_users).

A segment's queue entries are placeholders made where the process would have made its
timeouts and flow ends, so that every other entry keeps its place: the orders below are
what plain timeouts give (derived by hand from "same time: scheduled first, runs first").
Whole runs against simpy (which runs no segment) are in test_fabric_speed.py.
"""
from dataclasses import replace

from simulator.costmodel.nccl import NcclCostModel
from simulator.engine.detailed import _Chain
from simulator.engine.loop import Environment
from simulator.network import FlowNetwork
from simulator.network.fabric import FabricFlows
from simulator.network.flows import Demand
from simulator.topology import load_spec
from simulator.workload import Op

from repo_paths import WORKLOADS


def _order(a_waits, b_delays):
    """Process A waits through a chain of ``a_waits``, B through plain timeouts of
    ``b_delays``; who resumes when, in order."""
    env = Environment()
    log = []

    def a():
        done = env.event()
        _Chain(env, 0, a_waits, 0, done)
        yield done
        log.append(("A", env.now))

    def b():
        for d in b_delays:
            yield env.timeout(d)
        log.append(("B", env.now))

    env.process(a())
    env.process(b())
    env.run()
    return log


def test_a_chain_keeps_its_place_among_entries_of_the_same_time():
    # A waits 3 then 2 (to 5): its entry at 5 is made at 3, before B's (made at 4): A first
    assert _order([(3, False), (5, False)], [4, 1]) == [("A", 5), ("B", 5)]
    # B's entry at 5 made at 2, before A's (made at 3): B first
    assert _order([(3, False), (5, False)], [2, 3]) == [("B", 5), ("A", 5)]


def test_a_flows_end_with_no_update_time_is_two_entries():
    # a flow's end at 3 (made at 0) and then its event, made at 3: after B's entry at 3
    # (made at 1); with one entry A would come first
    assert _order([(3, True)], [1, 2]) == [("B", 3), ("A", 3)]
    assert _order([(3, False)], [1, 2]) == [("A", 3), ("B", 3)]


def test_a_chain_runs_ahead_when_nothing_is_queued_before_its_next_wait():
    env = Environment()
    seen = []

    def a():
        done = env.event()
        _Chain(env, 0, [(3, False), (5, False), (9, False)], 0, done)
        yield done
        seen.append(env.now)

    env.process(a())
    env.run()
    assert seen == [9] and not env._queue


def test_alone_wait_is_a_seen_demands_time_alone_while_its_links_are_unclaimed():
    # link a: 2 B/ns, 100 B: 50 ns alone (ceil(100 / 2)); unknown before its first transfer
    env = Environment()
    net = FlowNetwork(env, {"a": 2.0, "b": 1.0}, integer_time=True, closed_form=True)
    demand = Demand({"a": 100.0})
    got = []

    def proc():
        got.append(net.alone_wait(demand))                          # never transferred
        net.transfer(demand, 0, on_done=lambda f: None)             # claims a over [0, 50]
        got.append(net.alone_wait(demand))                          # claimed now
        yield env.timeout(60)
        got.append(net.alone_wait(demand))                          # ended at 50
        net.count_alone(demand, 3)

    env.process(proc())
    env.run()
    assert got == [None, None, 50]
    # the transferred one and the three counted: finished, two changes each, bytes carried
    assert net.finished == 4 and net.solves == 8 and net.carried["a"] == 400.0


def test_link_users_name_who_loads_each_link_class():
    # one server's TP all-reduce over its 8 GPUs (NVLink only) and a send from GPU 0 to
    # GPU 8 on the next server (PCIe, NIC, leaf: no NVLink): no link class is both's
    model = NcclCostModel(replace(load_spec("dgx-h100"), servers=2))
    fabric = FabricFlows(model)
    tp, send = (0, "TP", ((0, 8),)), (0, "send", 0)
    fabric.add_groups(tp, [list(range(8))])
    fabric.add_collective(tp, Op.ALLREDUCE, 1 << 20, tuple(range(8)))
    fabric.add_send(send, [[0, 8]], 1 << 20, (0, 8))
    fabric.finish()
    users = fabric.link_users()
    assert set(users) == set(fabric.link_classes)
    kinds = [frozenset(u) for u in users.values()]
    assert set(kinds) == {frozenset({tp}), frozenset({send})}


def test_a_contended_run_puts_most_steps_in_segments(monkeypatch):
    # seed 004 with contention: TP collectives inside a server between compute phases
    from simulator.cli import main
    from simulator.engine import detailed

    steps = []
    plain = detailed._ClassStage._segment

    def counted(self, program, i):
        j, t0, waits = plain(self, program, i)
        steps.append(j - i)
        return j, t0, waits

    monkeypatch.setattr(detailed._ClassStage, "_segment", counted)
    assert main(["simulate", str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt"),
                 "--contention", "--quiet"]) == 0
    assert sum(steps) > 100 and max(steps) > 1
