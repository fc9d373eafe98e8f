"""simulator.costmodel.bench: simulated nccl-tests rows as a library (no CLI)."""
from __future__ import annotations

import pytest

from simulator.cluster import Cluster
from simulator.costmodel.analytical import AnalyticalCostModel
from simulator.costmodel.bench import bench_rows, group_placement
from simulator.errors import InputError
from simulator.report.bench import render


def test_all_reduce_in_one_server_by_hand():
    # the default cluster: 8 GPUs per server, NVLink 450 GB/s at 82% efficiency, a 10 us
    # floor per call and 1 us per NVLink hop. A ring all-reduce of S bytes on 8 GPUs:
    # 10 000 + 2 x 7 x 1 000 ns + 2 x 7/8 x S / 369 GB/s
    cluster = Cluster()
    rows = bench_rows(AnalyticalCostModel(cluster), cluster, "all_reduce", 8, [1 << 30])
    (row,) = rows
    expected_ns = 10_000 + 14 * 1_000 + 1.75 * (1 << 30) / (450 * 0.82)
    assert row["time_us"] == pytest.approx(expected_ns / 1e3, abs=1e-3)
    # algbw = bytes / time (bytes per ns = GB/s); busbw = algbw x 2(n-1)/n = x 1.75
    assert row["algbw_GB_per_s"] == pytest.approx((1 << 30) / expected_ns, rel=1e-6)
    assert row["busbw_GB_per_s"] == pytest.approx(1.75 * (1 << 30) / expected_ns, rel=1e-6)
    assert (row["op"], row["ranks"], row["bytes"], row["algorithm"]) == (
        "all_reduce", 8, 1 << 30, "-")


def test_group_placement_spans_servers():
    p = group_placement(16, 8)
    assert p.size == 16 and not p.intra_server and p.max_per_server == 8


def test_errors_and_rendering():
    cluster = Cluster()
    model = AnalyticalCostModel(cluster)
    with pytest.raises(InputError, match="at least 2 ranks"):
        bench_rows(model, cluster, "all_reduce", 1, [1024])
    with pytest.raises(InputError, match="needs the nccl cost model"):
        bench_rows(model, cluster, "all_reduce", 8, [1024], algorithm="ring")
    rows = [{"op": "all_to_all", "ranks": 8, "bytes": 1024, "time_us": 12.3456,
             "algbw_GB_per_s": 0.0829, "busbw_GB_per_s": 0.0725, "algorithm": "-",
             "protocol": "-"}]
    assert render(rows, "csv", False) == ("op,ranks,bytes,time_us,algbw_GB_per_s,"
                                          "busbw_GB_per_s\nall_to_all,8,1024,12.346,0.0829,"
                                          "0.0725\n")
