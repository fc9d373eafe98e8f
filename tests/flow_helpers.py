"""Shared by the FlowNetwork tests (test_flows.py, test_flows_incremental.py): transfers
started at given times on one network, run to the end."""
import simpy

from simulator.network import FlowNetwork


def run_flows(links, flows, check=None, **opts):
    """flows: (name, start_ns, loads, latency_ns) on a FlowNetwork of ``links`` (``check``
    its on_change, ``opts`` its other options); returns (the network, {name: Flow})."""
    env = simpy.Environment()
    net = FlowNetwork(env, links, on_change=check, **opts)
    done = {}

    def proc(name, start, loads, latency):
        yield env.timeout(start)
        done[name] = yield net.transfer(loads, latency, name)

    for f in flows:
        env.process(proc(*f))
    env.run()
    return net, done
