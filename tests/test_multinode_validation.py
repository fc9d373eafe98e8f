"""The multi-node section of `collsim validate`: published nccl-tests rows predicted."""
import pytest

from simulator.errors import InputError
from simulator.validation import multinode


def test_tuned_b200_ring_is_eight_nic_line_rates():
    rows = [r for r in multinode.run() if r.source == "T2" and r.op == "all_reduce"]
    assert len(rows) == 1
    # 4 DGX B200 on 8 x 400 Gbit/s rails: the ring crosses each NIC once per channel, so
    # busbw = 8 NICs x 50 GB/s x 0.97 = 388 GB/s, less NCCL's per-step latency (62 steps of
    # a few us against ~44 ms at 8 GiB: under 1%)
    assert rows[0].predicted_gbps == pytest.approx(388.0, rel=0.01)
    assert rows[0].counted


def test_set_rows_are_not_counted_and_summary_counts_the_rest():
    rows = multinode.run()
    assert rows and any(not r.counted for r in rows)
    st = multinode.summary(rows)
    assert st["n"] == sum(r.counted for r in rows)


def test_bad_role_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("source,system,preset,op,algorithm,nodes,gpus_per_node,size_bytes,"
                    "busbw_gbps,role\nX,s,dgx-h100,all_reduce,ring,2,8,1024,1.0,fitted\n")
    with pytest.raises(InputError) as exc:
        multinode.read_rows(path)
    assert exc.value.line == 2 and exc.value.field == "role"
