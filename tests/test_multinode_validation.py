"""The multi-node section of `collsim validate`: published nccl-tests rows predicted."""
import pytest

from simulator.errors import InputError
from simulator.validation import multinode


def test_tuned_b200_ring_is_eight_nic_line_rates():
    rows = [r for r in multinode.run()
            if (r.source, r.op, r.algorithm) == ("T2", "all_reduce", "ring")]
    assert len(rows) == 1
    # 4 DGX B200 on 8 x 400 Gbit/s rails: the ring crosses each NIC once per channel, so
    # busbw = 8 NICs x 50 GB/s x 0.97 = 388 GB/s, less NCCL's per-step latency (62 steps of
    # a few us against ~44 ms at 8 GiB: under 1%)
    assert rows[0].predicted_gbps == pytest.approx(388.0, rel=0.01)
    assert rows[0].counted


def test_set_rows_are_not_counted_and_summary_counts_the_rest():
    rows = multinode.run()
    # the published file, read here line by line: each row's role and measured busbw are the
    # file's; the summary counts the predicted rows only
    lines = [ln.split(",") for ln in multinode.DATA.read_text().splitlines()[1:] if ln.strip()]
    # busbw and role are the last two columns
    assert len(rows) == len(lines)
    assert [r.counted for r in rows] == [ln[-1] == "predicted" for ln in lines]
    assert [r.measured_gbps for r in rows] == [float(ln[-2]) for ln in lines]
    # the rows that set a parameter: T1's one-server ring all-reduce, all-gather and NVLS
    # (the dgx-b200 preset's NVLink and NVLS efficiencies); T1's and T3's 2-node ring
    # all-reduce (the cluster's network transport share) and the send/recv where NCCL gives
    # a network peer one channel (16 nodes on T1's NCCL 2.29, 8 on T3's 2.28)
    assert sorted((r.source, r.op, r.algorithm, r.nodes) for r in rows if not r.counted) == [
        ("T1", "all_gather", "ring", 1), ("T1", "all_reduce", "nvls", 1),
        ("T1", "all_reduce", "ring", 1), ("T1", "all_reduce", "ring", 2),
        ("T1", "sendrecv", "", 16), ("T3", "all_reduce", "ring", 2), ("T3", "sendrecv", "", 8)]
    st = multinode.summary(rows)
    errs = sorted(abs(r.predicted_gbps / float(ln[-2]) - 1)
                  for r, ln in zip(rows, lines) if ln[-1] == "predicted")
    assert st["n"] == len(errs) == len(rows) - 7
    mid = len(errs) // 2
    median = errs[mid] if len(errs) % 2 else (errs[mid - 1] + errs[mid]) / 2
    assert st["max_abs"] == pytest.approx(errs[-1]) and st["median_abs"] == pytest.approx(
        median)


def _row(source, op, algorithm, nodes):
    hits = [r for r in multinode.run() if (r.source, r.op, r.algorithm, r.nodes)
            == (source, op, algorithm, nodes)]
    assert len(hits) == 1
    return hits[0]


def test_tree_rows_are_the_tree_kernels_ceiling():
    # 46 DGX B200: 8 channels (one per GPU of a server) x NCCL's 24 GB/s per Blackwell tree
    # channel beyond 2 nodes / 2 = 96 GB/s algbw; busbw = 96 x 2 x 367/368 = 191.5 GB/s
    # (the links alone would allow twice that); at 16 GiB the latency is < 0.1%
    assert _row("T1", "all_reduce", "tree", 46).predicted_gbps == pytest.approx(191.5, rel=2e-3)
    # 2 nodes: 42.8 GB/s per channel: 171.2 algbw x 2 x 15/16 = 321.0
    assert _row("T1", "all_reduce", "tree", 2).predicted_gbps == pytest.approx(321.0, rel=2e-3)


def test_collnet_and_sendrecv_rows_by_hand():
    # CollNet all-gather on 46 nodes: each NIC receives its rail's S/8 from the switches:
    # algbw 8 x 48.5 = 388 GB/s, busbw 388 x 367/368 = 386.9 (latency under 0.2%)
    # (T1's CollNet runs left the choice to NCCL, CollNet on and NVLS off: the model picks
    # CollNet here over T1's ring at 0.890 x 388 = 345 GB/s)
    assert _row("T1", "all_gather", "auto-collnet", 46).predicted_gbps == pytest.approx(
        386.9, rel=2e-3)
    # CollNet-Direct all-reduce on 2 nodes: NVLink binds: 2 x 7/8 S per GPU at 900 x 0.75
    # = 675 GB/s -> 385.7 algbw, at NCCL's 0.85 on Blackwell: 327.9 x 2 x 15/16 = 614.8
    assert _row("T3", "all_reduce", "collnet", 2).predicted_gbps == pytest.approx(
        614.8, rel=3e-3)
    # CollNet-Chain, forced (T3), and as NCCL's own pick with CollNet on and NVLS off (T1:
    # NCCL's tuner ranks the chain above Direct at 16 GiB, test_nccl_multinode_algorithms)
    # on 46 nodes: 8 channels x Blackwell's 70 GB/s one-node tree channel / 2 = 280 algbw,
    # busbw 280 x 2 x 367/368 = 558.5 less NCCL's 2 x 7 x 2.8 + 30 us and the launch
    # against ~61 ms (about 0.15%); Direct would give ~653 (its 0.85 of the NVLink bound)
    assert _row("T1", "all_reduce", "auto-collnet", 46).predicted_gbps == pytest.approx(
        558.5 * 0.9985, rel=2e-3)
    assert _row("T3", "all_reduce", "collnet_chain", 2).predicted_gbps == pytest.approx(
        _row("T1", "all_reduce", "auto-collnet", 2).predicted_gbps, rel=1e-3)
    # send/recv, T1 (NCCL 2.29.7): one channel per network peer from 128 ranks, whose 16-node
    # row sets a channel at 15.1 GB/s. 8 nodes (64 ranks): 2 channels = 30.2 GB/s; 4 nodes:
    # 4 channels = 60.4, above the NIC at T1's share, 0.890 x 48.5 = 43.2 GB/s
    assert _row("T1", "sendrecv", "", 8).predicted_gbps == pytest.approx(30.2, rel=2e-3)
    assert _row("T1", "sendrecv", "", 4).predicted_gbps == pytest.approx(
        344.7 / 387.3 * 48.5, rel=3e-3)
    # T3 (NCCL 2.28.9): 2 channels up to 32 ranks, 1 from 64, whose 8-node row sets a
    # channel at 17.16 GB/s: 2 nodes 2 x 17.16 = 34.32 GB/s, 64 nodes 17.16
    assert _row("T3", "sendrecv", "", 2).predicted_gbps == pytest.approx(34.32, rel=2e-3)
    assert _row("T3", "sendrecv", "", 64).predicted_gbps == pytest.approx(17.16, rel=2e-3)


def test_network_transport_share_is_set_by_the_two_node_ring():
    rows = multinode.read_rows()
    shares = multinode.net_shares(rows)
    # T1: 344.7 GB/s busbw against 8 NICs x 48.5 = 388 less the ring's latency at 16 GiB
    # (the model's 387.3): 0.890; T3: 388.41 / 387.6 = 1.002 (run at 1, the NICs' rate)
    assert shares[("T1", "DGX B200 8x CX7 NDR IB (use3a-ss)")] == pytest.approx(
        344.7 / 388.0, rel=3e-3)
    assert len(shares) == 2 and all(0.85 < v < 1.01 for v in shares.values())
    # T1's 46-node ring then runs its NICs at 0.890 x 48.5 = 43.2 GB/s: bus bytes / 345.3
    # GB/s plus the same latency as at the NICs' full rate, where it ran at 372.9 of 388
    # (latency per bus byte 1/372.9 - 1/388): 1 / (1/345.3 + 1/372.9 - 1/388) = 333.3
    assert _row("T1", "all_reduce", "ring", 46).predicted_gbps == pytest.approx(
        1 / (1 / 345.3 + 1 / 372.9 - 1 / 388.0), rel=3e-3)
    # T2's tuned cluster has no 2-node ring row: the preset's rate (test above)
    assert _row("T2", "all_reduce", "ring", 4).counted


def test_bad_nccl_release_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("source,system,preset,op,algorithm,nodes,gpus_per_node,size_bytes,nccl,"
                    "busbw_gbps,role\nX,s,dgx-h100,all_reduce,ring,2,8,1024,two,1.0,predicted\n")
    with pytest.raises(InputError) as exc:
        multinode.read_rows(path)
    assert exc.value.line == 2 and exc.value.field == "nccl"


def test_bad_role_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("source,system,preset,op,algorithm,nodes,gpus_per_node,size_bytes,"
                    "busbw_gbps,role\nX,s,dgx-h100,all_reduce,ring,2,8,1024,1.0,fitted\n")
    with pytest.raises(InputError) as exc:
        multinode.read_rows(path)
    assert exc.value.line == 2 and exc.value.field == "role"


def test_nvls_tree_rows_at_two_s_per_nic():
    # 64 DGX B200 of T3 (share 1): every GPU's NIC carries 2S each way (a server is inner in
    # one of the two trees): algbw 8 x 48.5 / 2 = 194 GB/s, busbw 2 x 194 x 511/512 = 387.2
    # less latency (25 + 2 x 6 x 20.9 us against ~180 ms: 0.15%)
    assert _row("T3", "all_reduce", "nvls_tree", 64).predicted_gbps == pytest.approx(
        387.2, rel=3e-3)
    # 2 nodes: S per NIC each way: algbw 388, busbw 2 x 388 x 15/16 = 727.5
    assert _row("T3", "all_reduce", "nvls_tree", 2).predicted_gbps == pytest.approx(
        727.5, rel=3e-3)


def test_auto_algorithm_rows_take_the_models_choice():
    # V1: 4 HGX H100 (dgx-h100 preset), NCCL's own choice. All-gather: the ring, every GPU's
    # NVLink port carrying (n-1)/n of the gathered S at 450 x 0.82 = 369 GB/s: busbw 369
    # less latency (~0.7%). All-reduce: NVLS-tree, 2S per NIC: algbw 8 x 48.5 / 2 = 194,
    # busbw 2 x 194 x 31/32 = 375.9 less latency (~0.3%), above the ring's ~366
    ag, ar = _row("V1", "all_gather", "", 4), _row("V1", "all_reduce", "", 4)
    assert ag.counted and ag.predicted_gbps == pytest.approx(369 * 0.993, rel=5e-3)
    assert ar.counted and ar.predicted_gbps == pytest.approx(375.9 * 0.997, rel=3e-3)
    assert "all_reduce auto" in "\n".join(multinode.render_text(multinode.run()))
