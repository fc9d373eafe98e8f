"""The 4 x H200 measurements (traces/h200x4/): the readers load them and give back the measured
numbers, the derived files agree with their sources, the 4-GPU calibration loads and fits, and
the 4-GPU validation case runs without a GPU."""
import csv
import io
import importlib.util
import warnings

import pytest

from repo_paths import ROOT
from simulator.calibration import load_calibration
from simulator.calibration.data import read_files
from simulator.cluster import Cluster
from simulator.readers.measurement_csv import read_measurement_csv

X4 = ROOT / "traces" / "h200x4"
OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "sendrecv")


def _by(ms):
    return {(m.op, m.size_bytes, m.share_remote): m for m in ms}


@pytest.fixture(scope="module")
def main_run():
    return read_measurement_csv(str(X4 / "collectives.csv"))


def test_collectives_load_with_measured_numbers(main_run):
    ms = main_run
    assert len(ms) == 273
    assert {m.ranks for m in ms} == {4}
    assert {m.placement for m in ms} == {"1x4"}
    assert {m.method for m in ms} == {"torch.distributed/nccl"}
    by = _by(ms)
    for op in OPS:
        assert sum(1 for m in ms if m.op == op) == 21
    # 1 GiB: time and bus bandwidth as measured (run 2)
    ar = by[("all_reduce", 1 << 30, None)]
    assert ar.time_us == pytest.approx(4521.904)
    assert ar.extra["busbw_GBps"] == pytest.approx(356.1802)
    assert by[("all_to_all", 1 << 30, None)].time_us == pytest.approx(2414.832)
    assert by[("sendrecv", 1 << 30, None)].extra["busbw_GBps"] == pytest.approx(357.6469)
    # 1 KiB: the in-framework floor and the host dispatch inside it
    s = by[("sendrecv", 1024, None)]
    assert s.time_us == pytest.approx(144.192) and s.extra["host_us"] == pytest.approx(101.0795)
    assert by[("all_reduce", 1024, None)].time_us == pytest.approx(65.28)
    # uneven all-to-all: all local (share 0) and the misaligned share 1
    assert by[("moe_all_to_all", 1 << 30, 0.0)].time_us == pytest.approx(904.432)
    assert by[("moe_all_to_all", 1 << 30, 1.0)].time_us == pytest.approx(5725.5199)
    assert sorted({m.share_remote for m in ms if m.op == "moe_all_to_all"}) == \
        [0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0]


def test_run1_repeats_large_sizes_within_one_percent(main_run):
    run1 = _by(read_measurement_csv(str(X4 / "run1" / "collectives.csv")))
    assert len(run1) == 231
    for key, m in _by(main_run).items():
        if key in run1 and m.size_bytes >= 256 << 20:
            assert run1[key].time_us == pytest.approx(m.time_us, rel=0.03), key


def _analyze():
    spec = importlib.util.spec_from_file_location("h200x4_analyze",
                                                  ROOT / "scripts" / "h200x4_align_and_compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_aligned_files_are_the_aligned_rows_of_their_sources():
    an = _analyze()
    # the analysis' copy is the rounding these runs were measured with: whole elements, so
    # 1 GiB of bf16 at share 0.05 over 3 peers is round(2^29 * 0.05 / 3) = 8947849 each
    assert an.moe_splits(1 << 29, 4, 0, 0.05) == [(1 << 29) - 3 * 8947849] + [8947849] * 3
    # `collsim measure` now rounds to whole multiples of 8 elements: 8947849 -> 8947848, and
    # every offset is 16-byte aligned at every share
    from simulator.measure.bench import moe_splits
    assert moe_splits(1 << 29, 4, 0, 0.05) == [(1 << 29) - 3 * 8947848] + [8947848] * 3
    for share in (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0):
        for world in (2, 4, 8):
            for n in (512, 1 << 20, 1 << 29):
                for rank in range(world):
                    splits = moe_splits(n, world, rank, share)
                    assert sum(splits) == n and all(c % 8 == 0 for c in splits)
                    peer = splits[(rank + 1) % world]
                    assert abs(peer - n * share / (world - 1)) < 8  # rounded or capped
    assert an.splits_aligned(1 << 30, 4, 0.75) and an.splits_aligned(1 << 30, 4, 0.0)
    assert not an.splits_aligned(1 << 30, 4, 1.0)      # n/3 elements per peer: odd offsets
    assert not an.splits_aligned(1 << 30, 4, 0.25)
    for src in (X4 / "collectives.csv", X4 / "run1" / "collectives.csv"):
        with open(src, newline="") as fh:
            want = [r for r in csv.DictReader(fh) if an.is_aligned_row(r)]
        dst = src.with_name("collectives_aligned.csv")
        with open(dst, newline="") as fh:
            got = list(csv.DictReader(line for line in fh if not line.startswith("#")))
        assert got == want and len(got) == 168
        assert {r["share_remote"] for r in got if r["op"] == "moe_all_to_all"} == {"0.0", "0.75"}


def test_analysis_prices_the_presets_as_collsim_bench_does(capsys):
    # compare.md's column (a) is `collsim bench --topology P --ranks 4`: the script calls the
    # library, and must get what the command prints (its CSV rounds time_us to 3 decimals)
    from simulator.cli import main
    an = _analyze()
    got = an.bench("hgx-h200", "all_gather")
    assert main(["bench", "--topology", "hgx-h200", "--ranks", "4", "--op", "all_gather",
                 "--sizes", "1K:1G", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 21 and sorted(got) == [1 << k for k in range(10, 31)]
    assert got == {int(r["bytes"]): float(r["time_us"]) for r in rows}


def test_moe_step_numbers():
    rows = list(csv.DictReader(open(X4 / "moe_step.csv", newline="")))
    get = {(r["case"], r["part"], r["rank"]): r for r in rows}
    assert {r["ranks"] for r in rows} == {"4"}
    assert float(get[("mixtral", "step", "max")]["time_us"]) == pytest.approx(62027.7748)
    assert float(get[("mixtral", "compute_step", "max")]["time_us"]) == pytest.approx(59624.9933)
    assert float(get[("mixtral", "a2a_per_step", "max")]["time_us"]) == pytest.approx(3476.768)
    assert float(get[("small", "step", "max")]["time_us"]) == pytest.approx(15676.2238)
    assert int(get[("mixtral", "a2a_dispatch_l0", "max")]["bytes"]) == 4096 * 2 * 4096 * 2
    for r in rows:
        if r["part"].startswith("a2a_") and r["share_remote"]:
            assert 0.72 <= float(r["share_remote"]) <= 0.77
    run1 = {(r["case"], r["part"], r["rank"]): r
            for r in csv.DictReader(open(X4 / "run1" / "moe_step.csv", newline=""))}
    assert float(run1[("mixtral", "step", "max")]["time_us"]) == pytest.approx(61623.1375)


def test_env_says_what_machine():
    env = (X4 / "env.txt").read_text()
    assert env.count("NVIDIA H200") >= 4 and "NV18" in env
    assert "nccl (2, 28, 9)" in env and "torch 2.11.0+cu130" in env
    menv = (X4 / "measure_env.txt").read_text()
    assert "env NCCL_NVLS_ENABLE=0" in menv and "world 4 placement 1x4" in menv


def test_calibration_fits_the_4gpu_data():
    cost = load_calibration(X4 / "calib_h200x4.yaml", cluster=Cluster())
    cal = cost.calibration
    assert cal.method_class == "in-framework"
    intra = cal.classes["intra-server"]
    assert intra.ranks == (4,)
    assert 60 < intra.overhead_us < 100 and 300 < intra.link_gbps < 400
    rows, _ = read_files([str(X4 / "collectives_aligned.csv")])
    errs = sorted(abs(cal.predict_row(r) / r.time_us - 1) for r in rows)
    assert errs[len(errs) // 2] < 0.05
    big = {r.op: cal.predict_row(r) / r.time_us for r in rows if r.size == 1 << 30}
    for op in OPS:
        assert big[op] == pytest.approx(1.0, abs=0.05), op


def test_validation_case_runs_without_gpu():
    from simulator.validation import h200x4

    cluster = Cluster()
    cost = load_calibration(ROOT / "traces" / "h200x2" / "calib_h200x2.yaml", cluster=cluster)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = h200x4.run(cost, cluster)
    counted = [r for r in results if r.primary]
    # 'small' is not counted: its compute-only step took 13.74 ms in run 2 and 11.90 in
    # run 1 (moe_step.csv, compute_step max), 15% apart
    assert len(results) == 8
    assert sorted(r.case for r in counted) == ["H200x4 EP MoE step 'mixtral' (run 1)",
                                               "H200x4 EP MoE step 'mixtral' (run 2)"]
    by = {r.case: r for r in counted}
    m = by["H200x4 EP MoE step 'mixtral' (run 2)"]
    assert m.measured == pytest.approx(62.0277748)
    assert abs(m.error) < 0.05
    # the modelled all-to-alls of the step agree with those measured alone
    assert m.extra["a2a_ms"] == pytest.approx(m.extra["a2a_alone_measured_ms"], rel=0.1)
    tab = h200x4.collectives(ROOT / "traces" / "h200x2" / "calib_h200x2.yaml")
    assert not tab["given_is_x4"]
    rows = {r[0]: r for r in h200x4.table_rows(tab)}
    assert set(OPS) <= set(rows) and rows["all"][1] == "168"
    # the 2-GPU calibration misses the 4-GPU floor; the 4-GPU one holds on the other run
    assert float(rows["all"][2]) > 20 and float(rows["all"][4]) < 15
