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
    assert len(rows) == len(lines)
    assert [r.counted for r in rows] == [ln[-1] == "predicted" for ln in lines]
    assert [r.measured_gbps for r in rows] == [float(ln[-2]) for ln in lines]
    # the rows that set a parameter: T1's one-server ring all-reduce, all-gather and NVLS
    # (the dgx-b200 preset's NVLink and NVLS efficiencies) and its 2-node send/recv (the
    # cluster's network transport share)
    assert sorted((r.source, r.op, r.algorithm, r.nodes) for r in rows if not r.counted) == [
        ("T1", "all_gather", "ring", 1), ("T1", "all_reduce", "nvls", 1),
        ("T1", "all_reduce", "ring", 1), ("T1", "sendrecv", "", 2)]
    st = multinode.summary(rows)
    errs = sorted(abs(r.predicted_gbps / float(ln[-2]) - 1)
                  for r, ln in zip(rows, lines) if ln[-1] == "predicted")
    assert st["n"] == len(errs) == len(rows) - 4
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
    assert _row("T1", "all_gather", "collnet", 46).predicted_gbps == pytest.approx(
        386.9, rel=2e-3)
    # CollNet all-reduce on 2 nodes: NVLink binds: 2 x 7/8 S per GPU at 900 x 0.75 =
    # 675 GB/s -> 385.7 algbw, at NCCL's 0.85 on Blackwell: 327.9 x 2 x 15/16 = 614.8
    assert _row("T1", "all_reduce", "collnet", 2).predicted_gbps == pytest.approx(
        614.8, rel=3e-3)
    # send/recv across nodes: the cross-node pair's one NIC at T1's network transport share,
    # which T1's own 2-node send/recv set: 42.6 GB/s
    assert _row("T1", "sendrecv", "", 8).predicted_gbps == pytest.approx(42.6, rel=2e-3)


def test_t1_network_transport_share_is_set_by_its_two_node_send_recv():
    shares = multinode.net_shares(multinode.read_rows())
    # 42.6 GB/s measured through one NIC whose rate is 50 x 0.97 = 48.5 GB/s: 0.8784 (the
    # NIC-bound prediction's latency at 16 GiB is ~1e-5 of its time); no other source has
    # a set send/recv row, so the others keep the preset's rate
    assert shares == {("T1", "DGX B200 8x CX7 NDR IB (use3a-ss)"): pytest.approx(
        42.6 / 48.5, rel=1e-3)}
    # T1's 2-node ring then runs its 8 NICs at 42.6 GB/s each: busbw 8 x 42.6 = 340.8 less
    # NCCL's per-step latency (30 steps of ~10 us against ~100 ms: 0.2%)
    assert _row("T1", "all_reduce", "ring", 2).predicted_gbps == pytest.approx(340.8, rel=3e-3)
    # T2's tuned cluster is not touched by T1's share: still 8 x 48.5 (test above)
    assert _row("T2", "all_reduce", "ring", 4).counted


def test_bad_role_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("source,system,preset,op,algorithm,nodes,gpus_per_node,size_bytes,"
                    "busbw_gbps,role\nX,s,dgx-h100,all_reduce,ring,2,8,1024,1.0,fitted\n")
    with pytest.raises(InputError) as exc:
        multinode.read_rows(path)
    assert exc.value.line == 2 and exc.value.field == "role"


def test_nvls_tree_rows_at_the_nics_five_sixths():
    # 46 DGX B200, NVLS-tree: every GPU's NIC carries 2S each way (a server is inner in one
    # of the two trees), at T1's transport share (42.6 GB/s per NIC, set by its send/recv)
    # and NCCL's 5/6 for its NVLS kernels: algbw 8 x 42.6 / 2 x 5/6 = 142.0 GB/s, busbw
    # 2 x 142.0 x 367/368 = 283.2 less latency (25 + 2 x 5 x 20.9 us against ~120 ms: 0.2%)
    assert _row("T1", "all_reduce", "nvls_tree", 46).predicted_gbps == pytest.approx(
        283.2, rel=3e-3)


def test_auto_algorithm_rows_take_the_models_choice():
    # V1: 4 HGX H100 (dgx-h100 preset), NCCL's own choice. The ring's every GPU NVLink port
    # carries (n-1)/n of the gathered S at 450 x 0.82 = 369 GB/s: busbw 369 less latency
    # (~0.7%); the all-reduce ring the same, and NVLS-tree would give only 8 NICs x 48.5 / 2
    # x 5/6 x 2 = 323 GB/s busbw, so the ring is the model's choice
    for op in ("all_reduce", "all_gather"):
        r = _row("V1", op, "", 4)
        assert r.counted and r.predicted_gbps == pytest.approx(369 * 0.993, rel=5e-3)
    assert "all_reduce auto" in "\n".join(multinode.render_text(multinode.run()))
