"""NCCL's multi-node algorithms (PAT, NVLS-tree, CollNet/SHARP, the tree's channel ceiling)
and the choice among them by size and node count: times derived by hand.

Hand topologies: NVLink 100 GB/s (= 100 bytes/ns) through an NVSwitch, one 80 Gbit/s NIC
(= 10 bytes/ns) per GPU behind a PCIe link fast enough never to bind (1000 GB/s),
efficiency 1, no wire latency, rail-optimized, and latency tables
whose ring Simple base (3 us) is below NCCL's 8.4 us, so the algorithms priced with NCCL's
own latency formulas get no launch term on top. Their NCCL latencies (Simple only, us):

    PAT        8 + floor(log2 n) x 14 / 3.5 + 2.8 n
    NVLS-tree  25 + 2 floor(log2 servers) x 20.9
    CollNet    2 (3.7 + 0.4 (m - 1)) + 31        (m GPUs per server)
"""
import pytest

from simulator.costmodel.nccl import NcclCostModel
from simulator.costmodel.nccl_algorithms import gpu_architecture
from simulator.errors import InputError
from simulator.topology import read_spec
from simulator.workload import Op


def hand(tmp_path, gps, servers, *, nvls=None, sharp=False, gpu=None, nic="80Gbit/s",
         nvlink="100GB/s", net_ring="[1, 2, 4]", per_leaf=None, net_efficiency=None):
    text = (f"name: hand\ngpus_per_server: {gps}\nservers: {servers}\n"
            + (f"gpu: {gpu}\n" if gpu else "")
            + f"scale_up: {{type: nvswitch, bandwidth: {nvlink}, efficiency: 1"
            + (f", nvls_efficiency: {nvls}" if nvls else "") + "}\n"
            f"nics: {{per: gpu, count: 1, bandwidth: {nic}, efficiency: 1, "
            "pcie_bandwidth: 1000GB/s}\n"
            f"fabric: {{type: rail-optimized, servers_per_leaf: {per_leaf or servers}, "
            f"sharp: {'true' if sharp else 'false'}}}\n"
            "nccl:\n"
            "  base_latency: {ring: [1, 2, 3], tree: [1, 2, 3], p2p: [1, 1, 3]}\n"
            "  hop_latency:\n"
            "    nvlink: {ring: [0.1, 0.2, 0.5], tree: [0.1, 0.2, 0.5], p2p: [0.1, 0.1, 0.5]}\n"
            f"    net: {{ring: {net_ring}, tree: [1, 2, 4], p2p: [1, 1, 4]}}\n"
            "  protocol_bandwidth: {LL: 0.5, LL128: 0.9, Simple: 1}\n"
            "  buffer_size: 0\n"
            + (f"  net_efficiency: {net_efficiency}\n" if net_efficiency is not None else ""))
    path = tmp_path / f"hand{gps}x{servers}.yaml"
    path.write_text(text)
    return NcclCostModel(read_spec(path))


def est(m, op, size, gpus, algorithm=None, protocol=None):
    return m.estimate(op, size, tuple(gpus), algorithm, protocol)


# -- PAT ------------------------------------------------------------------------------------
def test_pat_all_gather_one_gpu_per_server_by_hand(tmp_path):
    m = hand(tmp_path, 1, 4)
    S = 400_000_000
    # steps of distance 1 (one block of S/4 to the next rank) and 2 (two blocks, S/2): every
    # NIC sends 3/4 S = 3e8 B at 10 B/ns = 3e7 ns, at PAT's kernel share 0.75: 4e7 ns.
    # Latency 8 + 2 x 14 / 3.5 + 2.8 x 4 = 27.2 us. busbw = (n-1)/n S / t = 7.5 GB/s
    e = est(m, Op.ALLGATHER, S, range(4), "pat")
    assert (e.protocol, e.bandwidth_ns, e.latency_ns) == ("Simple", pytest.approx(4e7),
                                                         pytest.approx(27_200))
    assert 0.75 * S / e.gpu_ns == pytest.approx(7.5, rel=1e-3)
    # reduce-scatter is the mirror: the same time
    assert est(m, Op.REDUCESCATTER, S, range(4), "pat").gpu_ns == pytest.approx(4e7 + 27_200)
    # the ring moves the same bytes at full pace: 3e7 + 3 + 3 x 4 us; NCCL's ring wins there
    assert est(m, Op.ALLGATHER, S, range(4), "ring", "Simple").gpu_ns == pytest.approx(
        3e7 + 15_000)
    assert est(m, Op.ALLGATHER, S, range(4)).algorithm == "ring"


def test_pat_only_with_one_gpu_per_server(tmp_path):
    m = hand(tmp_path, 2, 2)
    with pytest.raises(InputError, match="does not apply"):
        est(m, Op.ALLGATHER, 1 << 20, range(4), "pat")
    # one GPU of each server is a PAT group
    assert est(m, Op.ALLGATHER, 1 << 20, (0, 2), "pat").algorithm == "pat"
    # PAT is no all-reduce algorithm
    with pytest.raises(InputError, match="cannot run"):
        est(m, Op.ALLREDUCE, 1 << 20, (0, 2), "pat")


def test_choice_by_size_and_node_count_pat_against_ring(tmp_path):
    # network ring hops of 5 us for every protocol; 64 servers of one GPU, S = 64 kB:
    #   ring LL: 63/64 S / 10 / 0.5 = 12,600 ns + 1 + 63 x 5 = 316 us -> 328.6 us
    #   PAT:     63/64 S / 10 / 0.75 = 8,400 ns + 8 + 6 x 4 + 2.8 x 64 = 211.2 us -> 219.6 us
    m = hand(tmp_path, 1, 64, net_ring="[5, 5, 5]")
    g = range(64)
    S = 64_000
    assert est(m, Op.ALLGATHER, S, g, "ring", "LL").gpu_ns == pytest.approx(328_600)
    assert est(m, Op.ALLGATHER, S, g, "pat").gpu_ns == pytest.approx(219_600)
    assert est(m, Op.ALLGATHER, S, g).algorithm == "pat"
    # 640 MB: ring Simple 6.3e7 + 318 us against PAT 8.4e7 + 211.2 us: the ring
    assert est(m, Op.ALLGATHER, 640_000_000, g).algorithm == "ring"
    # 4 servers at 64 kB: ring LL 3/4 S / 10 / 0.5 = 9,600 ns + 1 + 3 x 5 us = 25.6 us
    # against PAT 3/4 S / 10 / 0.75 = 6,400 ns + 27.2 us = 33.6 us: the ring
    m4 = hand(tmp_path, 1, 4, net_ring="[5, 5, 5]")
    assert est(m4, Op.ALLGATHER, S, range(4), "ring", "LL").gpu_ns == pytest.approx(25_600)
    assert est(m4, Op.ALLGATHER, S, range(4), "pat").gpu_ns == pytest.approx(33_600)
    assert est(m4, Op.ALLGATHER, S, range(4)).algorithm == "ring"


# -- NVLS-tree ------------------------------------------------------------------------------
def test_nvls_tree_by_hand(tmp_path):
    S = 100_000_000
    # B200 label (the tree's channel ceiling applies), NICs 800 Gbit/s = 100 B/ns, NVLink
    # 1000 B/ns with NVLS at 0.5 = 500 B/ns. 2 servers of 2 GPUs: every GPU's switch port
    # carries S up and S down: 2e5 ns. GPU j of each server holds S/2 and joins the tree
    # pair with GPU j of the other: each tree S/4 each way, both trees: S/2 per NIC and
    # direction = 5e5 ns (the NIC binds). Latency 25 + 2 x 1 x 20.9 = 66.8 us
    kw = dict(nvls=0.5, gpu="B200", nic="800Gbit/s", nvlink="1000GB/s")
    m = hand(tmp_path, 2, 2, **kw)
    e = est(m, Op.ALLREDUCE, S, range(4), "nvls_tree")
    assert (e.bandwidth_ns, e.latency_ns) == (pytest.approx(5e5), pytest.approx(66_800))
    # the ring: two channels of S/2, 2(n-1)/n = 1.5 of it over every edge: 0.75 S per NIC
    # = 7.5e5 ns; the tree's two channels at 42.8 GB/s each: algbw 42.8 -> 2.34e6 ns.
    # NVLS-tree halves the ring's NIC bytes with two servers: NCCL's pick
    assert est(m, Op.ALLREDUCE, S, range(4), "ring", "Simple").bandwidth_ns == (
        pytest.approx(7.5e5))
    assert est(m, Op.ALLREDUCE, S, range(4), "tree", "Simple").bandwidth_ns == (
        pytest.approx(S / 42.8))
    assert est(m, Op.ALLREDUCE, S, range(4)).algorithm == "nvls_tree"
    # 4 servers: server 2 is inner in tree A (S/4 up, S/4 to each of two children) and a
    # leaf in B (S/4 up): S per NIC = 1e6 ns; latency 25 + 2 x 2 x 20.9 = 108.6 us. The
    # ring's 2 x 7/8 x S/2 = 0.875 S per NIC (8.75e5 ns) is faster now
    m4 = hand(tmp_path, 2, 4, **kw)
    e4 = est(m4, Op.ALLREDUCE, S, range(8), "nvls_tree")
    assert (e4.bandwidth_ns, e4.latency_ns) == (pytest.approx(1e6), pytest.approx(108_600))
    assert est(m4, Op.ALLREDUCE, S, range(8), "ring", "Simple").bandwidth_ns == (
        pytest.approx(8.75e5))
    assert est(m4, Op.ALLREDUCE, S, range(8)).algorithm == "ring"


def test_nvls_tree_needs_multicast_servers_and_two_gpus_each(tmp_path):
    with pytest.raises(InputError, match="does not apply"):       # no nvls_efficiency
        est(hand(tmp_path, 2, 2), Op.ALLREDUCE, 1 << 20, range(4), "nvls_tree")
    m = hand(tmp_path, 2, 2, nvls=0.5)
    with pytest.raises(InputError, match="does not apply"):       # one server
        est(m, Op.ALLREDUCE, 1 << 20, (0, 1), "nvls_tree")
    with pytest.raises(InputError, match="does not apply"):       # one GPU per server
        est(m, Op.ALLREDUCE, 1 << 20, (0, 2), "nvls_tree")


# -- CollNet (SHARP) ------------------------------------------------------------------------
def test_collnet_all_reduce_by_hand_flat_in_node_count(tmp_path):
    S = 100_000_000
    # 2 servers of 2 GPUs: reduce-scatter + all-gather inside: each GPU sends 2 x S/2 = S to
    # its peer over NVLink (1e6 ns); through its NIC S/2 up to the switch and S/2 back:
    # 5e6 ns. Latency 2 x (3.7 + 0.4) + 31 = 39.2 us
    m = hand(tmp_path, 2, 2, sharp=True)
    e = est(m, Op.ALLREDUCE, S, range(4), "collnet")
    assert (e.protocol, e.bandwidth_ns, e.latency_ns) == ("Simple", pytest.approx(5e6),
                                                         pytest.approx(39_200))
    # with 8 servers the NICs carry the same S/2: the reduction happens in the switches
    m8 = hand(tmp_path, 2, 8, sharp=True)
    assert est(m8, Op.ALLREDUCE, S, range(16), "collnet").bandwidth_ns == pytest.approx(5e6)
    # and across two pods of 4 servers the leaf uplinks (4 x 10 B/ns per rail) carry S/2
    # per rail each way: 1.25e6 ns, below the NICs' 5e6
    pods = hand(tmp_path, 2, 8, sharp=True, per_leaf=4)
    assert est(pods, Op.ALLREDUCE, S, range(16), "collnet").bandwidth_ns == pytest.approx(5e6)
    # NCCL picks CollNet over the ring (2 x 15/16 x S/2 per NIC = 9.375e6 ns) at 8 servers;
    # of its two forms the chain, whose bytes per link are the same and whose latency is
    # lower (2 x 2.8 + 30 = 35.6 us against 39.2 us) where no GPU label caps its kernels
    assert est(m8, Op.ALLREDUCE, S, range(16)).algorithm == "collnet_chain"
    # on Hopper and later NCCL's CollNet-Direct kernels reach 0.85: 5e6 / 0.85 ns; the
    # all-gather (below) keeps the links' pace
    b200 = hand(tmp_path, 2, 2, sharp=True, gpu="B200")
    assert est(b200, Op.ALLREDUCE, S, range(4), "collnet").bandwidth_ns == (
        pytest.approx(5e6 / 0.85))
    assert est(b200, Op.ALLGATHER, S, range(4), "collnet").bandwidth_ns == pytest.approx(5e6)


def test_collnet_all_gather_and_reduce_scatter_by_hand(tmp_path):
    S = 100_000_000
    # all-gather, 2 servers of 2 GPUs (n = 4): each GPU sends its S/4 shard to the rail's
    # switch and receives the rail's S/2 (both servers' shards), then gives its S/2 to its
    # local peer over NVLink (5e5 ns): the NIC's S/2 in = 5e6 ns; reduce-scatter the mirror
    m = hand(tmp_path, 2, 2, sharp=True)
    for op in (Op.ALLGATHER, Op.REDUCESCATTER):
        e = est(m, op, S, range(4), "collnet")
        assert (e.bandwidth_ns, e.latency_ns) == (pytest.approx(5e6), pytest.approx(39_200))


def test_collnet_chain_all_reduce_by_hand(tmp_path):
    S = 100_000_000
    # 2 servers of 2 GPUs: a chain per channel (2), headed by the channel's GPU; each chain
    # edge carries the channel's S/2 each way, so each GPU sends S/2 in one chain and S/2 in
    # the other: S over NVLink = 1e6 ns; through its NIC (the head of one channel) S/2 up
    # and S/2 back: 5e6 ns. NCCL's latency 2 (m-1) x 2.8 + 30 = 35.6 us
    m = hand(tmp_path, 2, 2, sharp=True)
    e = est(m, Op.ALLREDUCE, S, range(4), "collnet_chain")
    assert (e.protocol, e.bandwidth_ns, e.latency_ns) == ("Simple", pytest.approx(5e6),
                                                         pytest.approx(35_600))
    # on a known GPU the chain's kernels are a one-server tree's: with NICs fast enough never
    # to bind (8000 Gbit/s: S/2 in 5e4 ns), 2 channels x Blackwell's 70 GB/s one-node tree
    # channel / 2 = 70 B/ns algbw: S / 70 ns, above NVLink's 1e6 ns
    fast = hand(tmp_path, 2, 2, sharp=True, gpu="B200", nic="8000Gbit/s")
    assert est(fast, Op.ALLREDUCE, S, range(4), "collnet_chain").bandwidth_ns == (
        pytest.approx(S / 70))
    # all-reduce only, and only with SHARP
    with pytest.raises(InputError, match="cannot run"):
        est(m, Op.ALLGATHER, S, range(4), "collnet_chain")
    with pytest.raises(InputError, match="does not apply"):
        est(hand(tmp_path, 2, 2), Op.ALLREDUCE, S, range(4), "collnet_chain")


def test_auto_choice_ranks_collnet_direct_and_chain_as_nccls_tuner(tmp_path):
    S = 100_000_000
    # 2 servers of 2 B200 with NICs fast enough never to bind (8000 Gbit/s): the chain is
    # capped at 2 channels x 70 GB/s / 2 = 70 B/ns (S/70 = 1.4286e6 ns); Direct is NVLink
    # bound, S over NVLink at 100 B/ns at Blackwell's 0.85: S/85 = 1.1765e6 ns, faster by
    # the model's estimate. NCCL's tuner gives both the same bandwidth (the chain's, 70) and
    # Direct 0.85 of it (f = 2 GPUs / 2 NIC heads = 1): Direct 39.2 us + S/59.5 against
    # the chain 35.6 us + S/70, so NCCL runs the chain, and so does the automatic choice
    fast = hand(tmp_path, 2, 2, sharp=True, gpu="B200", nic="8000Gbit/s")
    direct = est(fast, Op.ALLREDUCE, S, range(4), "collnet")
    assert direct.bandwidth_ns == pytest.approx(S / 85)
    auto = est(fast, Op.ALLREDUCE, S, range(4))
    assert (auto.algorithm, auto.bandwidth_ns, auto.latency_ns) == (
        "collnet_chain", pytest.approx(S / 70), pytest.approx(35_600))
    # 8 GPUs a server: Direct starts sooner, 2 (3.7 + 7 x 0.4) + 31 = 44.0 us against the
    # chain's 2 x 7 x 2.8 + 30 = 69.2 us, and its bandwidth term is 1/0.85 of the chain's:
    # with the chain at B bytes/ns NCCL runs Direct below S* = 25.2 us x 0.85 B / 0.15 and
    # the chain above. The chain here: every NVLink port 2 x 7/8 S at 100 B/ns, B = 100/1.75
    # = 57.14 B/ns (the 8 x 70 / 2 = 280 cap does not bind): S* = 8.16 MB
    from simulator.costmodel.nccl_algorithms import collnet_tuner_pick
    m8 = hand(tmp_path, 8, 2, sharp=True, gpu="B200", nic="8000Gbit/s")
    gpus = tuple(range(16))
    for size, pick in ((4_000_000, "collnet"), (8_100_000, "collnet"),
                       (8_250_000, "collnet_chain"), (16_000_000, "collnet_chain")):
        d = est(m8, Op.ALLREDUCE, size, gpus, "collnet")
        c = est(m8, Op.ALLREDUCE, size, gpus, "collnet_chain")
        assert (d.latency_ns, c.latency_ns) == (pytest.approx(44_000), pytest.approx(69_200))
        assert c.bandwidth_ns == pytest.approx(size * 1.75 / 100)
        assert collnet_tuner_pick(d, c, size, 8, 8, "blackwell") == pick
    # 4 MB: one NIC for 8 GPUs gives Direct the factor 8 - 7/2 = 4.5 (44 us + 4e6 x 4.5 /
    # (0.85 x 57.14) = 415 us against the chain's 139 us); before Hopper (no 0.85) both
    # have the same bandwidth term and Direct's earlier start keeps it first at any size
    d, c = (est(m8, Op.ALLREDUCE, 4_000_000, gpus, a) for a in ("collnet", "collnet_chain"))
    assert collnet_tuner_pick(d, c, 4_000_000, 8, 1, "blackwell") == "collnet_chain"
    assert collnet_tuner_pick(d, c, 4_000_000, 8, 8, "ampere") == "collnet"
    # forcing an algorithm still runs it
    assert est(fast, Op.ALLREDUCE, S, range(4), "collnet").algorithm == "collnet"


def test_collnet_needs_sharp(tmp_path):
    m = hand(tmp_path, 2, 2)
    with pytest.raises(InputError, match="does not apply"):
        est(m, Op.ALLREDUCE, 1 << 20, range(4), "collnet")
    # and without SHARP the automatic choice never considers it
    assert {e.algorithm for e in m.candidates(Op.ALLREDUCE, 1 << 30, tuple(range(4)))} == {
        "ring", "tree"}


def test_sharp_key_is_checked(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ngpus_per_server: 1\nservers: 2\n"
                    "scale_up: {type: nvswitch, bandwidth: 100GB/s}\n"
                    "nics: {bandwidth: 100Gbit/s}\nfabric: {sharp: 'yes'}\n")
    with pytest.raises(InputError, match="sharp: expected true or false"):
        read_spec(path)


# -- NCCL's network transport share ----------------------------------------------------------
def test_net_transport_share_slows_rings_and_send_recv_not_sharp(tmp_path):
    S = 100_000_000
    # 2 servers of 2 GPUs, NICs 10 B/ns, NCCL's transport at 0.8 of them: 8 B/ns.
    # ring all-reduce: 2 channels, each NIC carries 2 x 3/4 x S / 2 = 0.75 S = 7.5e7 bytes
    # -> 7.5e6 ns at 10 B/ns, 9.375e6 ns at 8 B/ns (NVLink: 100 B/ns, far from binding)
    full = hand(tmp_path, 2, 2)
    slow = hand(tmp_path, 2, 2, net_efficiency=0.8, sharp=True)
    assert est(full, Op.ALLREDUCE, S, range(4), "ring", "Simple").bandwidth_ns == (
        pytest.approx(7.5e6))
    assert est(slow, Op.ALLREDUCE, S, range(4), "ring", "Simple").bandwidth_ns == (
        pytest.approx(9.375e6))
    # send/recv GPU 1 -> GPU 2 (the cross-server pair of 0 -> 1 -> 2 -> 3 -> 0): S through
    # one NIC: 1e7 ns at 10 B/ns, 1.25e7 ns at 8 B/ns
    assert est(slow, Op.SENDRECV, S, range(4)).bandwidth_ns == pytest.approx(1.25e7)
    # CollNet's data goes through SHARP's transport, not NCCL's: the NIC's S/2 in = 5e6 ns
    assert est(slow, Op.ALLGATHER, S, range(4), "collnet").bandwidth_ns == pytest.approx(5e6)
    # the engine's flow (bytes scaled to each link's plain capacity) carries the same pace:
    # alone on the network it takes the estimate's time
    from simulator.parallel import GroupPlacement
    placement = GroupPlacement(4, 2, 2, False, (0, 1, 2, 3))
    loads, latency = slow.flow(Op.ALLREDUCE, S, placement, "ring", "Simple")
    links = slow.topology.links
    alone = max(b / links[k].capacity for k, b in loads.items())
    assert alone + latency == pytest.approx(
        est(slow, Op.ALLREDUCE, S, range(4), "ring", "Simple").gpu_ns)
    assert alone == pytest.approx(9.375e6)


def test_p2p_channels_per_network_peer_follow_nccls_rules():
    from simulator.costmodel.nccl import p2p_net_channels_per_peer
    # 8 NICs of 400 Gbit/s (50 GB/s) per server: 16 p2p channels.
    # before 2.29: 2 channels per peer while 2 x ranks <= 4 x 16 = 64
    old = (2, 28, 9)
    assert [p2p_net_channels_per_peer(r, 8, 50, old) for r in (2, 16, 32, 64, 512)] == [
        2, 2, 2, 1, 1]
    # 2 NICs: 4 p2p channels: 2 x 8 = 16 <= 16 keeps 2, 2 x 16 = 32 > 16 halves to 1
    assert [p2p_net_channels_per_peer(r, 2, 50, old) for r in (8, 16)] == [2, 1]
    # 2.29 on (and no release given): ceil(50 / 14) = 4 channels, halved while 4 x
    # ceil(ranks / 8) > 16: 32 ranks (4 batches) keep 4, 64 (8) get 2, 128 (16) get 1
    for version in ((2, 29, 7), None):
        assert [p2p_net_channels_per_peer(r, 8, 50, version) for r in (16, 32, 64, 128)] == [
            4, 4, 2, 1]
    # a 200 Gbit/s NIC (25 GB/s): ceil(25 / 14) = 2
    assert p2p_net_channels_per_peer(16, 8, 25, None) == 2


def test_send_recv_across_servers_at_its_channels_pace(tmp_path):
    S = 100_000_000
    # 2 servers of 2 GPUs, 1 NIC of 10 GB/s per GPU (4 p2p channels), a p2p channel across
    # servers at 2 GB/s. NCCL 2.28: 2 channels per peer at 4 ranks (2 x 4 <= 16): the pair
    # at 4 B/ns, S / 4 = 2.5e7 ns. Newest rule: ceil(10 / 14) = 1 channel: 5e7 ns. Without
    # the key the NIC's 10 B/ns: 1e7 ns
    path = tmp_path / "hand2x2.yaml"
    hand(tmp_path, 2, 2)
    base = path.read_text() + "  p2p_net_channel_bandwidth: 2GB/s\n"
    path.write_text(base)
    newest = NcclCostModel(read_spec(path))
    assert est(newest, Op.SENDRECV, S, range(4)).bandwidth_ns == pytest.approx(5e7)
    path.write_text(base + "  version: '2.28.9'\n")
    old = NcclCostModel(read_spec(path))
    assert est(old, Op.SENDRECV, S, range(4)).bandwidth_ns == pytest.approx(2.5e7)
    assert est(hand(tmp_path, 2, 2), Op.SENDRECV, S, range(4)).bandwidth_ns == (
        pytest.approx(1e7))
    # inside one server there is no network peer: the cap does not apply (NVLink: S/100)
    assert est(old, Op.SENDRECV, S, range(2)).bandwidth_ns == pytest.approx(1e6)
    # a release that is not one names the key
    path.write_text(base + "  version: two\n")
    with pytest.raises(InputError, match="version: expected an NCCL release"):
        read_spec(path)
    path.write_text(base + "  version: 2.30\n")       # a number: 2.3, not 2.30
    with pytest.raises(InputError, match="version: write the release quoted"):
        read_spec(path)


def test_net_efficiency_key_is_checked(tmp_path):
    with pytest.raises(InputError, match="net_efficiency: must be in"):
        hand(tmp_path, 2, 2, net_efficiency=1.5)


# -- the tree's channel ceiling ---------------------------------------------------------------
def test_tree_channel_ceiling_across_servers_by_hand(tmp_path):
    S = 1_000_000_000
    # NICs 800 Gbit/s (100 B/ns), NVLink 1000 B/ns: the links alone give the tree (2
    # channels, one per GPU of a server) S/2 per NIC with 2 servers = 5e6 ns. NCCL's tree
    # kernels reach 42.8 GB/s of bus bandwidth per channel on Blackwell with 2 servers:
    # algbw <= 2 x 42.8 / 2 = 42.8 B/ns -> 1e9 / 42.8 = 2.336e7 ns
    kw = dict(gpu="B200", nic="800Gbit/s", nvlink="1000GB/s")
    m = hand(tmp_path, 2, 2, **kw)
    assert est(m, Op.ALLREDUCE, S, range(4), "tree", "Simple").bandwidth_ns == (
        pytest.approx(S / 42.8))
    # more than 2 servers: 24 GB/s per channel: 2 x 24 / 2 = 24 B/ns
    m4 = hand(tmp_path, 2, 4, **kw)
    assert est(m4, Op.ALLREDUCE, S, range(8), "tree", "Simple").bandwidth_ns == (
        pytest.approx(S / 24))
    # an unknown GPU keeps the links' time: S/2 / 100 = 5e6 ns
    plain = hand(tmp_path, 2, 2, nic="800Gbit/s", nvlink="1000GB/s")
    assert est(plain, Op.ALLREDUCE, S, range(4), "tree", "Simple").bandwidth_ns == (
        pytest.approx(5e6))


def test_gpu_architecture_from_the_label():
    assert gpu_architecture("B200") == "blackwell"
    assert gpu_architecture("H100 SXM5 80GB") == "hopper"
    assert gpu_architecture("H800 SXM5 80GB") == "hopper"
    assert gpu_architecture("A100 SXM4 80GB") == "ampere"
    assert gpu_architecture("GB200") == "blackwell"
    assert gpu_architecture("MI300X") is None
    assert gpu_architecture("") is None


def test_a_job_wide_algorithm_falls_back_to_the_ring_where_it_cannot_run(tmp_path):
    # NCCL_ALGO for the whole job (simulate --algorithm): NCCL runs the ring for the groups
    # the forced algorithm does not apply to; an algorithm asked for one call still fails
    kw = dict(nvls=0.5, gpu="B200", nic="800Gbit/s", nvlink="1000GB/s")
    spec = hand(tmp_path, 2, 2, **kw).spec
    m = NcclCostModel(spec, algorithm="nvls_tree")
    assert est(m, Op.ALLREDUCE, 1 << 20, range(4)).algorithm == "nvls_tree"
    assert est(m, Op.ALLREDUCE, 1 << 20, (0, 1)).algorithm == "ring"      # one server
    pat = NcclCostModel(spec, algorithm="pat")
    assert est(pat, Op.ALLGATHER, 1 << 20, (0, 2)).algorithm == "pat"
    assert est(pat, Op.ALLGATHER, 1 << 20, range(4)).algorithm == "ring"  # 2 GPUs a server
    # all-reduce has no PAT: the setting does not touch it (the automatic choice)
    assert est(pat, Op.ALLREDUCE, 1 << 30, range(4)).algorithm == est(
        hand(tmp_path, 2, 2, **kw), Op.ALLREDUCE, 1 << 30, range(4)).algorithm
    with pytest.raises(InputError, match="does not apply"):
        est(m, Op.ALLREDUCE, 1 << 20, (0, 1), "nvls_tree")


# -- the ring's latency over many servers ----------------------------------------------------
def test_ring_latency_over_n_servers_by_hand(tmp_path):
    # 2 GPUs per server on k servers, n = 2k ranks: all-reduce takes 2(n-1) steps; half the
    # ring edges cross servers (each channel leaves every server once), so half the steps are
    # network hops (Simple 4 us) and half NVLink hops (0.5 us), plus the 3 us base:
    # k = 8: 30 steps -> 15 x 4 + 15 x 0.5 + 3 = 70.5 us; k = 32: 126 steps -> 286.5 us.
    # The term grows with n at a fixed size; per byte the bandwidth part does not.
    for k, want in ((8, 70_500), (32, 286_500)):
        e = est(hand(tmp_path, 2, k), Op.ALLREDUCE, 1 << 20, range(2 * k), "ring", "Simple")
        assert e.latency_ns == pytest.approx(want)
