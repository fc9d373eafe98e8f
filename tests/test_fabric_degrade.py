"""A degraded NIC under the fabric model: its own links lose bandwidth (shared with whatever
crosses them), its extra latency is paid once; priced alone, the group holding it runs at
its pace. Topologies without latencies or call floor: every time below is bytes over a
bandwidth, derived by hand."""
from __future__ import annotations

import pytest

from simulator.costmodel.nccl import NcclCostModel
from simulator.engine import SimulationOptions, simulate
from simulator.readers.workload import read_workload
from simulator.topology import read_spec
from simulator.topology.overrides import cluster_for

S = 100_000_000   # bytes: 1e8 B at 10 GB/s (10 B/ns) is 1e7 ns

TOPO = """name: {name}
gpus_per_server: 2
servers: auto
scale_up: {{type: nvswitch, bandwidth: 100GB/s, latency: 0us, efficiency: 1.0}}
nics: {{{nics}, bandwidth: 10GB/s, latency: 0us, efficiency: 1.0, pcie_bandwidth: 100GB/s}}
fabric: {{type: rail-optimized, servers_per_leaf: 2, oversubscription: 1, leaf_latency: 0us,
          spine_latency: 0us}}
nccl:
  call_overhead: 0us
  base_latency: {{ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}}
  hop_latency:
    nvlink: {{ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}}
    net: {{ring: [0, 0, 0], tree: [0, 0, 0], p2p: [0, 0, 0]}}
  protocol_bandwidth: {{LL: 0.5, LL128: 0.9, Simple: 1.0}}
  buffer_size: 0
"""


def spec(tmp_path, nics, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(TOPO.format(name=name, nics=nics))
    return read_spec(path)


def dp_workload(tmp_path):
    # 4 ranks, TP 2: DP groups {0, 2} and {1, 3}, each a 2-rank ring all-reduce of S across
    # the two servers: 2(n-1)/n = 1 byte per byte of buffer out of and into each NIC
    path = tmp_path / "w.txt"
    path.write_text(
        "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 2 ep: 1 pp: 1 vpp: 1 "
        "ga: 1 all_gpus: 4 checkpoints: 0 checkpoint_initiates: 0\n1\n"
        f"layer -1 1 NONE 0 1 NONE 0 1 ALLREDUCE {S} 1\n")
    return read_workload(str(path))


def comm_ns(sp, wl, degraded=(), contention=None):
    r = simulate(wl, cluster_for(sp), NcclCostModel(sp),
                 SimulationOptions(degraded=degraded, contention=contention))
    return r.iteration_ns - 3          # the row's 3 x 1 ns of compute


def test_a_degraded_shared_nic_loses_bandwidth_not_only_time(tmp_path):
    # one NIC per server, shared by both groups: 2S each way. Healthy: 2S / 10 = 2e7 ns.
    # Server 0's NIC at half speed (5 GB/s): 2S / 5 = 4e7 ns. Were the degradation only
    # extra time on each group (its alone price S/5 less its healthy S/10, paid as latency)
    # the shared healthy NIC would give 1e7 + 2S/10 = 3e7.
    sp = spec(tmp_path, "per: server, count: 1", "shared")
    wl = dp_workload(tmp_path)
    assert comm_ns(sp, wl) == pytest.approx(2 * S / 10, rel=1e-6)
    server0 = ((0, 0.5, 0), (1, 0.5, 0))
    assert comm_ns(sp, wl, server0) == pytest.approx(2 * S / 5, rel=1e-6)
    # priced alone, each group runs at the degraded NIC's pace and sharing is invisible
    assert comm_ns(sp, wl, server0, contention=False) == pytest.approx(S / 5, rel=1e-6)


def test_a_degraded_nic_slows_only_the_group_that_crosses_it(tmp_path):
    # a NIC per GPU: group {0, 2} crosses GPU 0's NIC, {1, 3} GPU 1's. GPU 0's NIC at a
    # quarter (2.5 GB/s): S / 2.5 = 4e7 ns for that group; the other keeps S/10 = 1e7, and
    # the iteration waits for the slow one. With 10 us more latency on it: + 1e4 ns.
    sp = spec(tmp_path, "per: gpu, count: 1", "own")
    wl = dp_workload(tmp_path)
    assert comm_ns(sp, wl) == pytest.approx(S / 10, rel=1e-6)
    assert comm_ns(sp, wl, ((0, 0.25, 0),)) == pytest.approx(S / 2.5, rel=1e-6)
    # a 2-rank ring crosses the degraded NIC's cable twice per step chain: 2(n-1) = 2 network
    # hops, each 10 us later
    assert comm_ns(sp, wl, ((0, 0.25, 10_000),)) == pytest.approx(S / 2.5 + 2e4, rel=1e-6)


def test_the_degraded_nccl_model_prices_with_slower_nics(tmp_path):
    from simulator.workload import Op

    sp = spec(tmp_path, "per: gpu, count: 1", "m")
    model = NcclCostModel(sp)
    slow = model.degraded(0.5, 0)
    # a 2-rank ring all-reduce over two servers: S on each NIC, 1e7 ns at 10 GB/s, 2e7 at 5
    assert model.estimate(Op.ALLREDUCE, S, (0, 2)).time_ns == pytest.approx(S / 10)
    assert slow.estimate(Op.ALLREDUCE, S, (0, 2)).time_ns == pytest.approx(S / 5)
    assert model.degraded(1.0, 0) is model


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.mark.filterwarnings("ignore::simulator.errors.SimulationWarning")
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(nics=st.sampled_from(["per: gpu, count: 1", "per: server, count: 1"]),
       tp=st.sampled_from([1, 2]),
       ops=st.lists(st.sampled_from(["ALLREDUCE", "ALLGATHER", "REDUCESCATTER", "ALLTOALL"]),
                    min_size=1, max_size=3),
       rank=st.integers(0, 7), slow=st.sampled_from([0.25, 0.5]),
       slower=st.sampled_from([0.1, 0.2]))
def test_each_nics_bandwidth_is_monotone_under_the_fabric(tmp_path, nics, tp, ops, rank, slow,
                                                          slower):
    # synchronous collectives of 8 ranks on 4 servers: lowering the bandwidth of any one
    # rank's NIC (its own links in the fabric) never speeds the iteration up, and lowering
    # it further never either (whole-ns rounding of flow completions: 2 ns)
    rows = "".join(f"r{i} -1 100 {op} 4000000 1 NONE 0 1 {ops[-1 - i]} 8000000 1\n"
                   for i, op in enumerate(ops))
    path = tmp_path / f"m{tp}{len(ops)}.txt"
    path.write_text(
        f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: {tp} ep: 1 pp: 1 vpp: 1 "
        f"ga: 1 all_gpus: 8 checkpoints: 0 checkpoint_initiates: 0\n{len(ops)}\n{rows}")
    wl = read_workload(str(path))
    sp = spec(tmp_path, nics, "mono-" + nics.split(",")[0].split()[-1])
    healthy = comm_ns(sp, wl)
    one = comm_ns(sp, wl, ((rank, slow, 0),))
    two = comm_ns(sp, wl, ((rank, slower, 0),))
    assert one >= healthy - 2 and two >= one - 2
