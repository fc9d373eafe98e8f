"""The unit cluster of the hand-derived engine tests (1 byte/ns on NVLink and per GPU on the
NICs, no latency) and a one-call replay of a workload table on it (test_engine.py,
test_chunks.py)."""
import warnings

from simulator.cluster import Cluster
from simulator.engine import SimulationOptions, simulate
from simulator.errors import SimulationWarning
from simulator.readers.workload import read_workload_text

UNIT = Cluster(name="unit", gpus_per_server=8, nvlink_gbps=1.0, nic_gbps=1.0, nics_per_server=8,
               nvlink_efficiency=1.0, nic_efficiency=1.0, base_latency_ns=0, nvlink_hop_ns=0,
               nic_hop_ns=0)


def run(header: str, rows: list[str], cluster=UNIT, **opts):
    wl = read_workload_text(header + "\n" + str(len(rows)) + "\n" + "\n".join(rows) + "\n", "t.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        return simulate(wl, cluster, options=SimulationOptions(**opts))
