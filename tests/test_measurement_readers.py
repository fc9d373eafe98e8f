"""Readers of measured times (measurement CSV, nccl-tests text) and the measure CLI's import."""
import csv
import pathlib
import subprocess
import sys

import pytest

from simulator.errors import InputError
from simulator.measurements import OPS, Measurement, canonical_op
from simulator.readers.measurement_csv import parse_measurement_csv, read_measurement_csv
from simulator.readers.nccl_tests import read_nccl_tests

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "measurements"
TRACES = ROOT / "traces" / "h200x2"


def shared(name: str) -> pathlib.Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared sits beside the checkout)")
    return path


def find(ms, op, size, share=None):
    hits = [m for m in ms if m.op == op and m.size_bytes == size and m.share_remote == share]
    assert len(hits) == 1, (op, size, share, len(hits))
    return hits[0]


# ---------------------------------------------------------------- the model

def test_canonical_ops_and_aliases():
    assert OPS == ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast",
                   "sendrecv", "moe_all_to_all", "gemm")
    assert canonical_op("AllToAll") == "all_to_all"
    assert canonical_op("all-reduce") == "all_reduce"
    assert canonical_op("allgather") == "all_gather"
    assert canonical_op("reduce_scatter") == "reduce_scatter"
    assert canonical_op("nonsense") is None


def test_bandwidths_follow_nccl_tests():
    m = Measurement("all_reduce", 2, 1 << 30, 1000.0)
    assert m.algbw_gbps == pytest.approx(1073.741824)
    assert m.busbw_gbps == pytest.approx(1073.741824)  # 2(n-1)/n = 1 for n = 2
    m8 = Measurement("all_gather", 8, 8_000_000, 100.0)
    assert m8.busbw_gbps == pytest.approx(80.0 * 7 / 8)
    moe = Measurement("moe_all_to_all", 2, 1_000_000, 10.0, share_remote=0.25)
    assert moe.busbw_gbps == pytest.approx(25.0)
    g = Measurement("gemm", 1, 0, 1000.0, extra={"m": 1024, "n": 1024, "k": 1024})
    assert g.busbw_gbps is None
    assert g.tflops == pytest.approx(2 * 1024 ** 3 / 1e9)


# ---------------------------------------------------------------- the shared CSV

def test_shared_torch_csv():
    ms = read_measurement_csv(shared("h200x2_nccl_all_to_all.csv"), method="torch.distributed")
    assert len(ms) == 37
    first = ms[0]
    assert (first.op, first.ranks, first.size_bytes, first.time_us) == ("all_to_all", 2, 1024,
                                                                        27.328)
    assert first.dtype == "fp16" and first.method == "torch.distributed"
    assert first.share_remote is None
    assert first.extra["p10_us"] == 25.056 and first.extra["p90_us"] == 36.192
    big = find(ms, "all_to_all", 1 << 30)
    assert big.time_us == 1649.088
    assert big.busbw_gbps == pytest.approx(325.5562, rel=1e-4)
    uneven = find(ms, "moe_all_to_all", 4194304, 0.05)
    assert uneven.time_us == 32.96
    assert find(ms, "moe_all_to_all", 16777216, 0.5).time_us == 73.824
    shares = sorted({m.share_remote for m in ms if m.op == "moe_all_to_all"})
    assert shares == [0.05, 0.1, 0.25, 0.5]


# ---------------------------------------------------------------- nccl-tests text

def test_shared_nccl_tests_output():
    ms = read_nccl_tests(shared("nccl-tests_alltoall_perf_2xh200.txt"))
    assert len(ms) == 21
    assert {m.op for m in ms} == {"all_to_all"}
    assert {m.ranks for m in ms} == {2}
    assert {m.method for m in ms} == {"nccl-tests"}
    assert {m.dtype for m in ms} == {"fp32"}
    small = ms[0]
    assert small.size_bytes == 1024 and small.time_us == 12.37
    assert small.extra["inplace_time_us"] == 13.33
    assert small.extra["count"] == 128 and small.extra["root"] == -1
    big = find(ms, "all_to_all", 1 << 30)
    assert big.time_us == 1615.80
    assert big.extra["busbw_GBps"] == 332.26
    assert big.busbw_gbps == pytest.approx(332.26, abs=0.01)


NCCL_HEADER = """\
# nThread 1 nGpus 4 minBytes 8 maxBytes 128 step: 2(factor) warmup iters: 5 iters: 20
#
#                                                              out-of-place                       in-place
#       size         count      type   redop    root     time   algbw   busbw  #wrong     time   algbw   busbw  #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)             (us)  (GB/s)  (GB/s)
"""


def test_nccl_tests_op_from_command_and_ranks_from_params(tmp_path):
    path = tmp_path / "ar.txt"
    path.write_text("$ ./build/all_reduce_perf -b 8 -e 128 -f 2 -g 4\n" + NCCL_HEADER
                    + "           8             2     float     sum      -1    20.10    0.00"
                    "    0.00       0    19.90    0.00    0.00       0\n"
                    "vm:1:1 [0] NCCL INFO comm 0x1 rank 0 nranks 4 - Init COMPLETE\n"
                    "         128            32     float     sum      -1    21.50    0.01"
                    "    0.01       0    21.00    0.01    0.01       0\n")
    ms = read_nccl_tests(path)
    assert [m.op for m in ms] == ["all_reduce", "all_reduce"]
    assert [m.ranks for m in ms] == [4, 4]
    assert [m.time_us for m in ms] == [20.10, 21.50]
    assert ms[0].extra["redop"] == "sum"


def test_nccl_tests_malformed_row_names_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("# Collective test starting: alltoall_perf\n" + NCCL_HEADER
                    + "        1024           128     float    none      -1    12.37    0.08"
                    "    0.04       0    13.33    0.08    0.04    N/A\n"
                    + "        2048           256     float    none      -1    fast    0.14"
                    "    0.07       0    13.43    0.15    0.08    N/A\n")
    with pytest.raises(InputError) as err:
        read_nccl_tests(path)
    assert err.value.line == 8
    assert str(err.value).startswith(f"{path}:8: time (out-of-place): ")


def test_nccl_tests_short_row_and_missing_op(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("# Collective test starting: alltoall_perf\n" + NCCL_HEADER
                    + "        1024           128     float    none      -1    12.37\n")
    with pytest.raises(InputError) as err:
        read_nccl_tests(path)
    assert err.value.line == 7 and "expected 13 columns" in str(err.value)
    path.write_text(NCCL_HEADER)
    with pytest.raises(InputError, match="cannot tell the operation"):
        read_nccl_tests(path)
    path.write_text("# Collective test starting: hypercube_perf\n" + NCCL_HEADER)
    with pytest.raises(InputError, match="unsupported nccl-tests binary hypercube_perf"):
        read_nccl_tests(path)


# ---------------------------------------------------------------- our own traces

def test_h200x2_collectives_trace():
    ms = read_measurement_csv(TRACES / "collectives.csv")
    assert len(ms) == 273  # 6 ops x 21 sizes + 7 shares x 21 sizes
    assert {m.method for m in ms} == {"torch.distributed/nccl"}
    assert {m.placement for m in ms} == {"1x2"}
    a2a = find(ms, "all_to_all", 1024)
    assert a2a.time_us == 28.832 and a2a.dtype == "bf16"
    assert a2a.extra["host_us"] == 20.106 and a2a.extra["iters"] == 100
    ar = find(ms, "all_reduce", 1 << 30)
    assert ar.time_us == 3241.2641
    assert ar.busbw_gbps == pytest.approx(331.2725, rel=1e-4)
    assert find(ms, "sendrecv", 1024).time_us == 45.856
    uneven = find(ms, "moe_all_to_all", 1 << 30, 0.1)
    assert uneven.time_us == 2543.3279
    assert uneven.busbw_gbps == pytest.approx(42.218, rel=1e-4)
    ops = {m.op for m in ms}
    assert ops == {"all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast",
                   "sendrecv", "moe_all_to_all"}
    run1 = read_measurement_csv(TRACES / "run1" / "collectives.csv")
    assert find(run1, "all_to_all", 1024).time_us == 26.736


def test_h200x2_gemm_trace():
    ms = read_measurement_csv(TRACES / "gemm.csv")
    assert len(ms) == 180
    assert {(m.op, m.ranks, m.method) for m in ms} == {("gemm", 1, "torch.matmul")}
    g = [m for m in ms if (m.extra["m"], m.extra["n"], m.extra["k"]) == (4096, 14336, 4096)]
    assert len(g) == 1
    assert g[0].time_us == 703.152 and g[0].extra["layer"] == "expert_w13"
    assert g[0].tflops == pytest.approx(684.1143, rel=1e-4)
    tflops = [m.tflops for m in ms]
    assert 100 < min(tflops) < max(tflops) < 990  # under the H200's dense bf16 peak


def test_h200x2_moe_step_trace():
    with open(TRACES / "moe_step.csv", newline="") as fh:
        rows = {(r["case"], r["part"], r["rank"]): r for r in csv.DictReader(fh)}
    step = rows[("mixtral", "step", "max")]
    assert float(step["time_us"]) == 60092.4635
    assert float(rows[("mixtral", "compute_step", "max")]["time_us"]) == 58198.8964
    assert float(rows[("mixtral", "a2a_per_step", "max")]["time_us"]) == 2598.624
    assert rows[("mixtral", "a2a_dispatch_l0", "0")]["bytes"] == "67108864"
    # not a measurement table: the reader says which column is missing
    with pytest.raises(InputError, match="missing column 'op'"):
        read_measurement_csv(TRACES / "moe_step.csv")


# ---------------------------------------------------------------- malformed CSV

def write(tmp_path, text, name="m.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_bad_value_names_file_line_and_column(tmp_path):
    path = write(tmp_path, "# measured by hand\nop,world,bytes,median_us\n"
                           "all_reduce,2,1024,30.5\nall_reduce,two,2048,31\n")
    with pytest.raises(InputError) as err:
        read_measurement_csv(path)
    assert (err.value.line, err.value.field) == (4, "world")
    assert str(err.value) == f"{path}:4: world: expected an integer, got 'two'"


def test_csv_other_errors(tmp_path):
    cases = [
        ("op,ranks,bytes,time_us\nall_reduce,2,1024\n", 2, None, "expected 4 fields"),
        ("op,ranks,bytes,time_us\nallreduce,2,1024,0\n", 2, "time_us", "positive"),
        ("op,ranks,bytes,time_us\nall_reduce,2,-1,3\n", 2, "bytes", ">= 0"),
        ("op,ranks,bytes,time_us\nreduce,2,1,3\n", 2, "op", "unknown operation"),
        ("op,ranks,bytes,time_us\nmoe_all_to_all_f1.5,2,1,3\n", 2, "op", "[0, 1]"),
        ("op,ranks,bytes\nall_reduce,2,1\n", 1, "time_us", "missing column 'time_us'"),
        ("op,ranks,bytes,time_us,share_remote\nmoe_all_to_all_f0.5,2,8,3,0.25\n", 2,
         "share_remote", "disagrees"),
        ("# only a comment\n", 1, None, "empty file"),
    ]
    for i, (text, line, field, message) in enumerate(cases):
        path = write(tmp_path, text, f"c{i}.csv")
        with pytest.raises(InputError) as err:
            read_measurement_csv(path)
        assert err.value.line == line, text
        assert err.value.field == field, text
        assert message in str(err.value), text


def test_csv_minimal_and_extra_columns():
    ms = parse_measurement_csv(["op,ranks,bytes,time_us,note,p50\n",
                                "AllGather,8,1048576,5.5,x,\n",
                                "\n", "moe_a2a_f0.25,2,4096,30,,7\n"])
    assert [m.op for m in ms] == ["all_gather", "moe_all_to_all"]
    assert ms[0].extra == {"note": "x"}
    assert ms[1].share_remote == 0.25 and ms[1].extra == {"p50": 7}


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nope.csv: no such file"):
        read_measurement_csv(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="nope.txt: no such file"):
        read_nccl_tests(tmp_path / "nope.txt")


# ---------------------------------------------------------------- measure CLI without torch

NO_TORCH = "import sys; sys.modules['torch'] = None\n"


def run_py(code):
    return subprocess.run([sys.executable, "-c", NO_TORCH + code], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_measure_cli_imports_and_helps_without_torch():
    r = run_py("import simulator.measure.cli, simulator.measure.bench, simulator.measure.moe\n"
               "from simulator.measure.cli import main\n"
               "try:\n    main(['--help'])\nexcept SystemExit as e:\n    print('exit', e.code)\n")
    assert r.returncode == 0, r.stderr
    assert "collsim measure" in r.stdout and "--sizes" in r.stdout
    assert r.stdout.strip().endswith("exit 0")
    r = run_py("from simulator.measure.cli import main\nraise SystemExit(main(['--out', 'x']))")
    assert r.returncode == 2
    assert "PyTorch is not installed" in r.stderr


def test_measure_cli_parses_sizes_and_rejects_bad_values(capsys):
    from simulator.measure.cli import main, parse_gemm_shapes, parse_sizes
    assert parse_sizes("1K:1G") == [1 << s for s in range(10, 31)]
    assert parse_sizes("1K:1M:4") == [1024, 4096, 16384, 65536, 262144, 1048576]
    assert parse_sizes("512,4KiB,2M") == [512, 4096, 2 << 20]
    assert parse_gemm_shapes("4Kx14336x4K") == [(4096, 14336, 4096)]
    assert main(["--sizes", "1Q:1G"]) == 2
    assert "bad size '1Q'" in capsys.readouterr().err
    assert main(["--ops", "all_reduce,gossip"]) == 2
    assert "unknown op 'gossip'" in capsys.readouterr().err
