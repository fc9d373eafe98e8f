"""NcclCostModel: times derived by hand on small topologies, protocol choice, floors, plateaus.

The hand topologies use round numbers: NVLink 100 GB/s (= 100 bytes/ns), NICs 80 Gbit/s
(= 10 bytes/ns), efficiency 1, no wire latency, no pipeline fill (buffer_size 0) and
latency tables (microseconds, LL / LL128 / Simple):

    base      ring/tree 1 / 2 / 3        p2p 1 / - / 3
    NVLink    ring/tree 0.1 / 0.2 / 0.5  p2p 0.1 / - / 0.5
    network   ring/tree 1 / 2 / 4        p2p 1 / - / 4
    protocol bandwidth share: LL 0.5, LL128 0.9, Simple 1
"""
import statistics

import pytest

from repo_paths import ROOT
from simulator.costmodel.bench import group_placement
from simulator.costmodel.analytical import AnalyticalCostModel
from simulator.costmodel.nccl import NcclCostModel
from simulator.errors import InputError
from simulator.parallel import GroupPlacement
from simulator.topology import load_spec, read_spec
from simulator.topology.overrides import apply_overrides, cluster_for
from simulator.workload import Op

NCCL = """\
nccl:
  call_overhead: {overhead}
  base_latency: {{ring: [1, 2, 3], tree: [1, 2, 3], p2p: [1, 1, 3]}}
  hop_latency:
    nvlink: {{ring: [0.1, 0.2, 0.5], tree: [0.1, 0.2, 0.5], p2p: [0.1, 0.1, 0.5]}}
    net: {{ring: [1, 2, 4], tree: [1, 2, 4], p2p: [1, 1, 4]}}
  protocol_bandwidth: {{LL: 0.5, LL128: 0.9, Simple: 1}}
  buffer_size: 0
"""


def topo_yaml(gps, servers, efficiency="1", overhead="0", per_leaf=None):
    text = (f"name: hand\ngpus_per_server: {gps}\nservers: {servers}\n"
            f"scale_up: {{type: nvswitch, bandwidth: 100GB/s, efficiency: {efficiency}}}\n")
    if servers > 1:
        text += ("nics: {per: gpu, count: 1, bandwidth: 80Gbit/s, efficiency: 1}\n"
                 f"fabric: {{type: rail-optimized, servers_per_leaf: {per_leaf or servers}}}\n")
    return text + NCCL.format(overhead=overhead)


@pytest.fixture
def model(tmp_path):
    def make(gps, servers, **kw):
        path = tmp_path / f"hand{gps}x{servers}.yaml"
        path.write_text(topo_yaml(gps, servers, **kw))
        return NcclCostModel(read_spec(path))
    return make


def ns(m, op, size, gpus, algorithm=None, protocol=None):
    return m.estimate(op, size, tuple(gpus), algorithm, protocol).time_ns


# -- one server of 4 GPUs on an NVSwitch ----------------------------------------------------
def test_ring_all_gather_and_all_reduce_by_hand(model):
    m = model(4, 1)
    S = 400_000_000
    # all-gather, ring, Simple: base 3 us + 3 steps x 0.5 us; every GPU sends 3/4 of S over
    # its NVLink port: 3e8 B / 100 B/ns = 3e6 ns
    assert ns(m, Op.ALLGATHER, S, range(4), "ring", "Simple") == pytest.approx(3e6 + 4_500)
    assert ns(m, Op.REDUCESCATTER, S, range(4), "ring", "Simple") == pytest.approx(3e6 + 4_500)
    # all-reduce: 2(n-1) = 6 steps, 2(n-1)/n = 1.5 of S per port: 6e6 ns + 3 + 6 x 0.5 us
    assert ns(m, Op.ALLREDUCE, S, range(4), "ring", "Simple") == pytest.approx(6e6 + 6_000)
    # LL: half the bandwidth, 0.1 us per step: 12e6 + 1 + 0.6 us
    assert ns(m, Op.ALLREDUCE, S, range(4), "ring", "LL") == pytest.approx(12e6 + 1_600)
    # LL128: 0.9 of the bandwidth: 6e6 / 0.9 + 2 + 6 x 0.2 us
    assert ns(m, Op.ALLREDUCE, S, range(4), "ring", "LL128") == pytest.approx(6e6 / 0.9 + 3_200)


def test_broadcast_and_sendrecv_by_hand(model):
    m = model(4, 1)
    S = 400_000_000
    # broadcast: a chain 0 -> 1 -> 2 -> 3, the whole buffer over each link: 4e6 ns,
    # 3 steps: 3 + 1.5 us
    assert ns(m, Op.BROADCAST, S, range(4), "ring", "Simple") == pytest.approx(4e6 + 4_500)
    # sendrecv of a pair: each sends S to the other: 4e6 ns + p2p base 3 + one hop 0.5 us
    assert ns(m, Op.SENDRECV, S, (0, 1), protocol="Simple") == pytest.approx(4e6 + 3_500)


def test_latency_floor_and_bandwidth_plateau(model):
    m = model(4, 1)
    # small: the fastest protocol is LL; time = base + hops, the bytes hardly count
    small = m.estimate(Op.ALLREDUCE, 1024, (0, 1, 2, 3))
    assert small.protocol == "LL" and small.algorithm in ("ring", "tree")
    assert small.time_ns == pytest.approx(1_600 + 1.5 * 1024 / 50)     # 1.63 us
    assert m.estimate(Op.ALLREDUCE, 8, (0, 1, 2, 3)).time_ns == pytest.approx(1_600, abs=1)
    # large: Simple wins and busbw approaches the link rate (100 GB/s)
    big = m.estimate(Op.ALLGATHER, 1 << 30, (0, 1, 2, 3))
    assert big.protocol == "Simple"
    busbw = (1 << 30) / big.time_ns * 3 / 4
    assert 99.5 < busbw <= 100
    # the choice moves from LL to LL128/Simple as the size grows, never back
    order = {"LL": 0, "LL128": 1, "Simple": 2}
    chosen = [order[m.estimate(Op.ALLREDUCE, 1 << k, tuple(range(4))).protocol]
              for k in range(10, 31)]
    assert chosen == sorted(chosen) and chosen[0] == 0 and chosen[-1] == 2


def test_call_overhead_is_a_floor(model):
    m = model(4, 1, overhead="20us")
    assert ns(m, Op.ALLREDUCE, 1024, range(4)) == pytest.approx(20_000)
    big = m.estimate(Op.ALLREDUCE, 400_000_000, (0, 1, 2, 3))
    assert big.time_ns == big.gpu_ns == pytest.approx(6e6 + 6_000)   # larger than the floor
    m0 = NcclCostModel(m.spec, call_overhead_ns=0)
    assert ns(m0, Op.ALLREDUCE, 1024, range(4)) < 2_000


def test_per_operation_efficiency(model):
    m = model(4, 1, efficiency="{default: 1, all_gather: 0.5}")
    S = 400_000_000
    assert ns(m, Op.ALLGATHER, S, range(4), "ring", "Simple") == pytest.approx(6e6 + 4_500)
    assert ns(m, Op.REDUCESCATTER, S, range(4), "ring", "Simple") == pytest.approx(3e6 + 4_500)


# -- two servers of 2 GPUs, one 10 GB/s NIC per GPU, one leaf per rail -----------------------
def test_ring_across_servers_by_hand(model):
    m = model(2, 2)
    S = 100_000_000
    # two rings (one per NIC): ring 0 = 0 1 | 2 3 leaves server 0 through GPU 1's NIC, ring 1
    # = 1 0 | 3 2 through GPU 0's. Each carries half of 2(n-1)/n x S = 1.5 S, so every NIC
    # sends 0.75 S = 7.5e7 B at 10 B/ns = 7.5e6 ns. Half the ring edges cross servers: of the
    # 6 steps, 3 are network hops (4 us) and 3 NVLink hops (0.5 us), plus the 3 us base.
    assert ns(m, Op.ALLREDUCE, S, range(4), "ring", "Simple") == pytest.approx(7.5e6 + 16_500)
    est = m.estimate(Op.ALLREDUCE, S, (0, 1, 2, 3), "ring", "Simple")
    assert "nic" in est.bottleneck[0]


def test_ring_bandwidth_matches_the_analytical_formula():
    # dgx-h100, 2 servers x 8 GPUs: ring busbw = min(NVLink, 8 NICs) as in the analytical model
    spec = load_spec("dgx-h100:16")
    m = NcclCostModel(spec)
    a = AnalyticalCostModel(cluster_for(spec))
    p = group_placement(16, 8)
    est = m.estimate(Op.ALLREDUCE, 1 << 30, p, "ring", "Simple")
    analytical_bw_ns = a.price_ns(Op.ALLREDUCE, 1 << 30, p) - a.cluster.base_latency_ns - (
        2 * 15 * a.cluster.nic_hop_ns)
    assert est.bandwidth_ns == pytest.approx(analytical_bw_ns, rel=1e-9)


def test_direct_and_hierarchical_all_to_all_by_hand(model):
    m = model(2, 2)
    S = 100_000_000
    # direct: every GPU sends S/4 to each of 3 peers; 2 of them are remote, through its own
    # NIC: 0.5 S = 5e7 B / 10 B/ns = 5e6 ns. Latency: p2p base 3 + one NVLink message round
    # (0.5) + one network round (4) = 7.5 us.
    assert ns(m, Op.ALLTOALL, S, range(4), "direct", "Simple") == pytest.approx(5e6 + 7_500)
    # hierarchical: (1) to the local peer everything for that peer's index on both servers,
    # k/n S = 0.5 S over NVLink: 5e5 ns + 3 + 0.5 us; (2) to the same index on the other
    # server m/n S = 0.5 S over the NIC: 5e6 ns + 3 + 4 us
    assert ns(m, Op.ALLTOALL, S, range(4), "hierarchical", "Simple") == pytest.approx(
        5.5e6 + 10_500)
    # NCCL never picks hierarchical by itself
    assert m.estimate(Op.ALLTOALL, S, (0, 1, 2, 3)).algorithm == "direct"
    # and it needs the same number of GPUs on every server
    with pytest.raises(InputError, match="does not apply"):
        m.estimate(Op.ALLTOALL, S, (0, 1, 2), "hierarchical")


def test_one_nic_per_gpu_for_all_to_all(model):
    m = model(2, 2)
    S = 100_000_000
    # a group of one GPU per server (same rail) gets one NIC: S/2 over 10 B/ns
    assert ns(m, Op.ALLTOALL, S, (0, 2), "direct", "Simple") == pytest.approx(5e6 + 7_000)


# -- four servers of one GPU -----------------------------------------------------------------
def test_tree_beats_ring_on_latency_by_hand(model):
    m = model(1, 4)
    S = 100_000_000
    # NCCL's double binary tree over 4 servers, S/2 per tree: tree A 0 - 2 - (1, 3); tree B
    # its mirror 3 - 1 - (2, 0). Server 2 is inner in A (S/2 up to 0, S/2 down to each of 1
    # and 3) and a leaf in B (S/2 up): its NIC sends 2 S = 2e8 / 10 = 2e7 ns (so does 1).
    # Latency 2 x depth 2 network hops x 4 us + 3 us = 19 us.
    # (Was 1.5e7 with a heap-shaped tree whose inner nodes are not leaves of the other.)
    assert ns(m, Op.ALLREDUCE, S, range(4), "tree", "Simple") == pytest.approx(2e7 + 19_000)
    # ring: every edge crosses servers, 1.5 S each: 1.5e7 ns, 6 x 4 + 3 = 27 us
    assert ns(m, Op.ALLREDUCE, S, range(4), "ring", "Simple") == pytest.approx(1.5e7 + 27_000)
    assert m.estimate(Op.ALLREDUCE, S, (0, 1, 2, 3)).algorithm == "ring"
    # at 10 kB latency decides: tree LL 2e4 / 10 / 0.5 = 4000 ns + 1 + 2 x 2 x 1 us = 9000 ns
    # against ring LL 1.5e4 / 10 / 0.5 = 3000 ns + 1 + 6 x 1 us = 10000 ns
    small = 10_000
    assert ns(m, Op.ALLREDUCE, small, range(4), "tree", "LL") == pytest.approx(9_000)
    assert ns(m, Op.ALLREDUCE, small, range(4), "ring", "LL") == pytest.approx(10_000)
    e = m.estimate(Op.ALLREDUCE, small, (0, 1, 2, 3))
    assert (e.algorithm, e.protocol) == ("tree", "LL")


# -- the engine's interface ------------------------------------------------------------------
def test_collective_ns_prices_placements_and_memoizes(model):
    m = model(2, 2)
    p = GroupPlacement(size=4, servers=2, max_per_server=2, same_local_index=False,
                       ranks=(0, 1, 2, 3))
    t = m.collective_ns(Op.ALLREDUCE, 1 << 20, p)
    assert t == round(m.estimate(Op.ALLREDUCE, 1 << 20, p).time_ns)
    assert m.collective_ns(Op.ALLREDUCE, 1 << 20, p) == t
    assert m.collective_ns(Op.ALLREDUCE, 0, p) == 0
    # ALLREDUCEALLTOALL: both
    assert m.collective_ns(Op.ALLREDUCEALLTOALL, 1 << 20, p) == t + m.collective_ns(
        Op.ALLTOALL, 1 << 20, p)
    # a placement without ranks gets representative ones
    bare = GroupPlacement(size=2, servers=2, max_per_server=1, same_local_index=True)
    assert m.group_gpus(bare) == (0, 2)


def test_rank_permutation_changes_the_links_a_group_crosses(tmp_path):
    base = topo_yaml(2, 2)
    (tmp_path / "a.yaml").write_text(base)
    (tmp_path / "b.yaml").write_text(base + "placement: {ranks: [0, 2, 1, 3]}\n")
    plain = NcclCostModel(read_spec(tmp_path / "a.yaml"))
    swapped = NcclCostModel(read_spec(tmp_path / "b.yaml"))
    pair = GroupPlacement(size=2, servers=1, max_per_server=2, same_local_index=False,
                          ranks=(0, 1))
    # ranks 0 and 1 share a server normally, but sit on GPUs 0 and 2 (two servers) here
    assert swapped.collective_ns(Op.ALLREDUCE, 1 << 26, pair) > 5 * plain.collective_ns(
        Op.ALLREDUCE, 1 << 26, pair)


def test_auto_servers_grow_and_fixed_ones_refuse():
    m = NcclCostModel(load_spec("dgx-h100"))
    assert m.topology.num_gpus == 8
    m.estimate(Op.ALLREDUCE, 1 << 20, group_placement(64, 8))
    assert m.topology.num_gpus == 64
    with pytest.raises(InputError, match="h200x2 has 2 GPUs .* uses at least 4"):
        NcclCostModel(load_spec("h200x2")).estimate(Op.ALLREDUCE, 1024, group_placement(4, 2))


def test_forcing_errors(model):
    m = model(4, 1)
    with pytest.raises(InputError, match="all_gather cannot run algorithm 'tree'"):
        m.estimate(Op.ALLGATHER, 1024, (0, 1), "tree")
    with pytest.raises(InputError, match="does not run protocol LL128"):
        m.estimate(Op.ALLTOALL, 1024, (0, 1), protocol="LL128")
    with pytest.raises(InputError, match="unknown protocol"):
        NcclCostModel(m.spec, protocol="LL64")
    # a model-wide algorithm applies where it can and leaves other operations alone
    ring = NcclCostModel(m.spec, algorithm="ring")
    assert ring.estimate(Op.ALLREDUCE, 1 << 30, (0, 1, 2, 3)).algorithm == "ring"
    assert ring.estimate(Op.ALLTOALL, 1 << 30, (0, 1, 2, 3)).algorithm == "direct"


def test_cluster_flags_override_the_topology():
    spec = apply_overrides(load_spec("dgx-h100"), nic_gbps=25.0, nvlink_gbps=900.0,
                           nics_per_server=4, base_latency_ns=0)
    assert spec.nics.bandwidth_gbps == 25 and spec.scale_up.bandwidth_gbps == 900
    assert spec.nics.per_server(8) == 4 and spec.nccl.overhead_ns("sendrecv") == 0
    c = cluster_for(spec)
    assert (c.gpus_per_server, c.nics_per_server, c.nic_gbps) == (8, 4, 25)
    with pytest.raises(InputError, match="gpus_per_server"):
        apply_overrides(spec, gpus_per_server=4)
    with pytest.raises(InputError, match="nic_bw: topology h200x2 has no NICs"):
        apply_overrides(load_spec("h200x2"), nic_gbps=50)


# -- against the measurements ----------------------------------------------------------------
def test_h200x2_within_15_percent_of_measured_collectives():
    path = ROOT / "traces" / "h200x2" / "collectives.csv"
    if not path.exists():
        pytest.skip("traces/h200x2/collectives.csv is not in this checkout")
    import sys
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from accuracy_collectives import errors_for
    errs = errors_for("h200x2", "in-framework", str(path))
    assert {e["op"] for e in errs} == {"all_reduce", "all_gather", "reduce_scatter",
                                       "all_to_all", "broadcast", "sendrecv"}
    assert statistics.median(abs(e["err"]) for e in errs) <= 0.15
    for op in {e["op"] for e in errs}:
        big = [abs(e["err"]) for e in errs if e["op"] == op and e["bytes"] >= 16 << 20]
        assert statistics.median(big) <= 0.15, op
