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
    # the published file, read here line by line: 19 rows, 3 of them fixed a preset ("set"),
    # 16 are predicted and counted; each row's measured busbw is the file's
    lines = [ln.split(",") for ln in multinode.DATA.read_text().splitlines()[1:] if ln.strip()]
    assert len(rows) == len(lines) == 19
    assert [r.counted for r in rows] == [ln[-1] == "predicted" for ln in lines]
    assert sum(r.counted for r in rows) == 16
    assert [r.measured_gbps for r in rows] == [float(ln[-2]) for ln in lines]
    st = multinode.summary(rows)
    assert st["n"] == 16
    errs = sorted(abs(r.predicted_gbps / float(ln[-2]) - 1)
                  for r, ln in zip(rows, lines) if ln[-1] == "predicted")
    assert st["max_abs"] == pytest.approx(errs[-1]) and st["median_abs"] == pytest.approx(
        (errs[7] + errs[8]) / 2)   # the median of 16: the mean of the 8th and 9th


def test_bad_role_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("source,system,preset,op,algorithm,nodes,gpus_per_node,size_bytes,"
                    "busbw_gbps,role\nX,s,dgx-h100,all_reduce,ring,2,8,1024,1.0,fitted\n")
    with pytest.raises(InputError) as exc:
        multinode.read_rows(path)
    assert exc.value.line == 2 and exc.value.field == "role"
