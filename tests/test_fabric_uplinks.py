"""A degraded leaf uplink inside the fabric (``--degrade leaf=P,uplink=F[,rail=R]``): the
links between that leaf and the spine lose bandwidth, both ways, shared max-min by whatever
crosses them. Topologies without latencies or call floor: every time below is bytes over a
bandwidth, derived by hand."""
from __future__ import annotations

import pytest

from simulator.costmodel.nccl import NcclCostModel
from simulator.engine import SimulationOptions, simulate
from simulator.errors import InputError
from simulator.readers.workload import read_workload
from simulator.scenario import parse_degrade, resolve_degrades, resolve_uplinks
from simulator.topology import read_spec
from simulator.topology.overrides import cluster_for
from fabric_helpers import ZERO_NCCL

S = 100_000_000   # bytes: 1e8 B at 10 GB/s (10 B/ns) is 1e7 ns



def topo(tmp_path, name, gps, fabric="rail-optimized", extra=""):
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""name: {name}
gpus_per_server: {gps}
servers: auto
scale_up: {{type: nvswitch, bandwidth: 100GB/s, latency: 0us, efficiency: 1.0}}
nics: {{per: gpu, count: 1, bandwidth: 10GB/s, latency: 0us, efficiency: 1.0,
        pcie_bandwidth: 100GB/s}}
fabric: {{type: {fabric}, servers_per_leaf: 2, oversubscription: 1, leaf_latency: 0us,
          spine_latency: 0us{extra}}}
""" + ZERO_NCCL)
    return read_spec(path)


def dp_workload(tmp_path, tp, world):
    # one weight-gradient all-reduce of S on the DP groups
    path = tmp_path / f"w{world}.txt"
    path.write_text(
        f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: {tp} ep: 1 pp: 1 vpp: 1 "
        f"ga: 1 all_gpus: {world} checkpoints: 0 checkpoint_initiates: 0\n1\n"
        f"layer -1 1 NONE 0 1 NONE 0 1 ALLREDUCE {S} 1\n")
    return read_workload(str(path))


def comm_ns(spec, wl, uplinks=(), contention=None):
    r = simulate(wl, cluster_for(spec), NcclCostModel(spec),
                 SimulationOptions(degraded_uplinks=uplinks, contention=contention))
    return r.iteration_ns - 3          # the row's 3 x 1 ns of compute


@pytest.mark.parametrize("fabric,extra", [("rail-optimized", ""), ("fat-tree", ""),
                                          ("rail-optimized", ", ecmp: hash, ecmp_seed: 4")])
def test_a_slower_leaf_uplink_slows_the_traffic_across_it(tmp_path, fabric, extra):
    # 4 servers x 1 GPU, 2 per leaf (pods {0, 1} and {2, 3}), non-blocking: each leaf has 2
    # uplinks of 10 GB/s (the bandwidth of its 2 NICs). TP 2 = {0, 1}, {2, 3} (inside a
    # pod); DP {0, 2} and {1, 3}: 2-rank ring all-reduces of S, 1 byte per byte each way.
    # Out of pod 0 go 0 -> 2 and 1 -> 3 (S each), into it 2 -> 0 and 3 -> 1.
    # Healthy: every NIC carries S each way at 10 GB/s: S/10; the leaf's 20 GB/s of uplinks
    # carry 2S each way: S/10 too (ideal spread; hashed, the test seed puts the two
    # connections of each direction on different uplinks: each S on 10 GB/s).
    spec = topo(tmp_path, "t", gps=1, fabric=fabric, extra=extra)
    if extra:
        from simulator.topology import Topology
        t = Topology(spec, 4)
        assert len({t.ecmp_uplink(0, 2, 0), t.ecmp_uplink(1, 3, 0)}) == 2
        assert len({t.ecmp_uplink(2, 0, 0), t.ecmp_uplink(3, 1, 0)}) == 2
    wl = dp_workload(tmp_path, tp=2, world=4)
    assert comm_ns(spec, wl) == pytest.approx(S / 10, rel=1e-6)
    # pod 0's uplinks at half: 10 GB/s for the 2S out (and the 2S in): 2S/10
    assert comm_ns(spec, wl, ((0, None, 0.5),)) == pytest.approx(2 * S / 10, rel=1e-6)
    # at 3/4: 15 GB/s for 2S: 2S/15
    assert comm_ns(spec, wl, ((1, None, 0.75),)) == pytest.approx(2 * S / 15, rel=1e-6)
    # priced alone (no sharing) the cost model prices the slow uplinks itself: one group's
    # S crosses pod 0's uplinks each way. Ideal spread: at half they give 10 GB/s, as fast
    # as the NIC: S/10 still; at a quarter 5 GB/s: S/5. Hashed: the connection rides one
    # uplink of 10 GB/s: at half S/5, at a quarter S/2.5
    hashed = bool(extra)
    assert comm_ns(spec, wl, ((0, None, 0.5),), contention=False) == pytest.approx(
        S / (5 if hashed else 10), rel=1e-6)
    assert comm_ns(spec, wl, ((0, None, 0.25),), contention=False) == pytest.approx(
        S / (2.5 if hashed else 5), rel=1e-6)
    assert comm_ns(spec, wl, contention=False) == pytest.approx(S / 10, rel=1e-6)
    with pytest.raises(InputError, match="leaves"):
        comm_ns(spec, wl, ((2, None, 0.5),))


def test_one_rails_uplinks_slow_the_class_only_where_they_bind(tmp_path):
    # 4 servers x 2 GPUs, a NIC per GPU, rail-optimized, 2 servers per leaf: rail r's leaf of
    # a pod has the 2 NICs of local GPU r below it and 2 uplinks of 10 GB/s (20 GB/s). TP 2
    # inside a server; DP {0, 2, 4, 6} (rail 0) and {1, 3, 5, 7} (rail 1): 4-rank ring
    # all-reduces, 2(n-1)/n = 1.5 S per ring edge. Ring 0 -> 2 -> 4 -> 6 -> 0 crosses pods on
    # 2 -> 4 and 6 -> 0: 1.5 S each way through each pod's rail leaf. Healthy: NIC-bound,
    # 1.5 S at 10 GB/s = 1.5e7 ns (uplinks: 1.5 S at 20 GB/s).
    spec = topo(tmp_path, "r", gps=2)
    wl = dp_workload(tmp_path, tp=2, world=8)
    assert comm_ns(spec, wl) == pytest.approx(1.5 * S / 10, rel=1e-6)
    # rail 0's uplinks of pod 0 at half (10 GB/s): as fast as the NICs, still 1.5e7
    assert comm_ns(spec, wl, ((0, 0, 0.5),)) == pytest.approx(1.5 * S / 10, rel=1e-6)
    # at a quarter (5 GB/s): 1.5 S / 5 = 3e7 for rail 0's group; the class's collective
    # stands for both rails' groups and ends with the slower; rail 1 alone the same
    assert comm_ns(spec, wl, ((0, 0, 0.25),)) == pytest.approx(1.5 * S / 5, rel=1e-6)
    assert comm_ns(spec, wl, ((1, 1, 0.25),)) == pytest.approx(1.5 * S / 5, rel=1e-6)
    with pytest.raises(InputError, match="rails are 0-1"):
        comm_ns(spec, wl, ((0, 2, 0.5),))
    # priced alone: rail 0's group (the DP class's representative) at a quarter: 1.5 S over
    # 20 x 0.25 = 5 GB/s of uplinks = 3e7 ns; at half the NICs still bind
    assert comm_ns(spec, wl, ((0, 0, 0.25),), contention=False) == pytest.approx(
        1.5 * S / 5, rel=1e-6)
    assert comm_ns(spec, wl, ((0, 0, 0.5),), contention=False) == pytest.approx(
        1.5 * S / 10, rel=1e-6)
    with pytest.raises(InputError, match="rails are 0-1"):
        comm_ns(spec, wl, ((0, 2, 0.5),), contention=False)


def test_the_cost_model_keeps_the_healthy_choice_and_prices_the_slow_uplink(tmp_path):
    # 4 servers x 2 GPUs as above; one ring all-reduce of S over all 8 GPUs priced alone.
    # Two channels, each an 8-rank ring with half the buffer: every ring edge carries
    # 2 x 7/8 S / 2 = 0.875 S. Each channel leaves a server through one rail's NIC and
    # crosses the pods on that rail twice (out of each pod once): every NIC and each rail's
    # pod uplinks carry 0.875 S each way. Healthy: 0.875 S / 10 GB/s (uplinks 20 GB/s).
    # Rail 1's uplinks of pod 1 at 0.2 (4 GB/s): that channel takes 0.875 S / 4, and the
    # collective (both channels, one kernel) with it; the algorithm is still the healthy one
    spec = topo(tmp_path, "c", gps=2)
    model = NcclCostModel(spec)
    from simulator.workload import Op
    gpus = tuple(range(8))
    healthy = model.estimate(Op.ALLREDUCE, S, gpus, "ring")
    assert healthy.bandwidth_ns == pytest.approx(0.875 * S / 10, rel=1e-6)
    slow = model.with_degraded_uplinks(((1, 1, 0.2),))
    e = slow.estimate(Op.ALLREDUCE, S, gpus)
    assert e.algorithm == model.estimate(Op.ALLREDUCE, S, gpus).algorithm
    assert slow.estimate(Op.ALLREDUCE, S, gpus, "ring").bandwidth_ns == pytest.approx(
        0.875 * S / 4, rel=1e-6)
    # a group inside one pod crosses no uplink: its price does not move
    assert slow.estimate(Op.ALLREDUCE, S, (0, 1, 2, 3), "ring").bandwidth_ns == (
        model.estimate(Op.ALLREDUCE, S, (0, 1, 2, 3), "ring").bandwidth_ns)


def test_parse_uplink_degrades():
    d = parse_degrade("leaf=3,uplink=0.5")
    assert (d.leaf, d.rail, d.uplink) == (3, None, 0.5)
    d2 = parse_degrade("leaf=3,rail=1,uplink=0.25")
    assert (d2.leaf, d2.rail, d2.uplink) == (3, 1, 0.25)
    # the same leaf twice compounds: 0.5 x 0.5
    assert resolve_uplinks([d, d, d2]) == ((3, None, 0.25), (3, 1, 0.25))
    # a leaf is no rank's NIC
    assert resolve_degrades([d], world=16, gpus_per_server=8) == ()
    for bad, msg in (("leaf=1", "needs uplink"), ("leaf=1,uplink=1", r"\(0, 1\)"),
                     ("leaf=1,uplink=0.5,nic=0.5", "unknown key"),
                     ("leaf=-1,uplink=0.5", "leaf")):
        with pytest.raises(InputError, match=msg):
            parse_degrade(bad)


def test_the_cli_refuses_an_uplink_degrade_where_there_is_no_uplink():
    # one line naming the key, exit 2, no traceback (no --topology: the preset the cluster
    # flags imply, whose 16 servers sit under one leaf: no uplink to degrade)
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-m", "simulator", "simulate",
                        os.path.join(root, "workloads", "seed004_moe_tp8_ep4_pp4_128gpus.txt"),
                        "--degrade", "leaf=0,uplink=0.5", "--quiet"],
                       capture_output=True, text=True, cwd=root)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    errors = [line for line in p.stderr.splitlines() if not line.startswith("warning:")]
    assert len(errors) == 1 and errors[0].startswith("collsim: error: --degrade: ")
    assert "under one leaf" in errors[0]
