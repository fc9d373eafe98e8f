"""`collsim bench` (simulated nccl-tests) and `simulate --topology`, end to end."""
import csv
import io
import json
import subprocess
import sys

import pytest

from repo_paths import ROOT, WORKLOADS
from simulator.cli import main

SEED = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")
FACTORS = {"all_reduce": lambda n: 2 * (n - 1) / n, "all_gather": lambda n: (n - 1) / n,
           "reduce_scatter": lambda n: (n - 1) / n, "all_to_all": lambda n: (n - 1) / n,
           "broadcast": lambda n: 1.0, "sendrecv": lambda n: 1.0}


def bench(capsys, *args):
    rc = main(["bench", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("op", list(FACTORS))
def test_csv_columns_and_busbw_conventions(capsys, op):
    rc, out, _ = bench(capsys, "--topology", "dgx-h100", "--op", op, "--ranks", 8,
                       "--sizes", "1K:1G", "--factor", 4, "--format", "csv")
    assert rc == 0
    assert out.splitlines()[0] == "op,ranks,bytes,time_us,algbw_GB_per_s,busbw_GB_per_s"
    rows = rows_of(out)
    assert [int(r["bytes"]) for r in rows] == [1024 * 4 ** k for k in range(11)]
    for r in rows:
        assert r["op"] == op and r["ranks"] == "8"
        t, algbw, busbw = float(r["time_us"]), float(r["algbw_GB_per_s"]), float(r["busbw_GB_per_s"])
        assert algbw == pytest.approx(int(r["bytes"]) / (t * 1e3), rel=2e-3)   # GB/s
        assert busbw == pytest.approx(algbw * FACTORS[op](8), rel=2e-3)
    times = [float(r["time_us"]) for r in rows]
    assert times == sorted(times)
    # the in-framework floor at small sizes, a plateau below the NVLink rate at large ones
    assert times[0] == pytest.approx(45.0 if op == "sendrecv" else 28.0)
    # (all-reduce: NVLS moves each GPU's buffer once up and once down the switch, so its
    # busbw may reach 2(n-1)/n x 450 x 0.61 = 480 GB/s, NCCL's ~480 on 8 H100s)
    bound = 2 * 7 / 8 * 450 * 0.61 if op == "all_reduce" else 450 * 0.82
    assert float(rows[-1]["busbw_GB_per_s"]) <= bound * 1.0001


def test_table_format_with_algorithm_and_protocol(capsys):
    rc, out, _ = bench(capsys, "--topology", "h200x2", "--op", "all_reduce", "--ranks", 2,
                       "--sizes", "1K,1G")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("# cost model   nccl (NCCL's algorithms, protocols and latencies "
                               "on a topology): name=nccl, topology=h200x2")
    assert lines[1] == "# bandwidth    NVLink 478 GB/s (3824 Gbit/s) per GPU per direction"
    assert lines[2].split() == ["op", "ranks", "bytes", "time_us", "algbw_GB_per_s", "busbw_GB_per_s",
                                "algorithm", "protocol"]
    assert lines[4].split()[-1] == "Simple" and len(lines) == 5


def test_forced_algorithm_and_details_column(capsys):
    rc, out, _ = bench(capsys, "--topology", "dgx-h100:32", "--op", "all_to_all", "--ranks",
                       32, "--sizes", "1M", "--algorithm", "hierarchical", "--protocol",
                       "Simple", "--format", "csv", "--details")
    assert rc == 0
    (row,) = rows_of(out)
    assert (row["algorithm"], row["protocol"]) == ("hierarchical", "Simple")


def test_nccl_tests_view_without_framework_floor(capsys):
    _, framework, _ = bench(capsys, "--topology", "h200x2", "--op", "all_to_all", "--ranks", 2,
                            "--sizes", "1K", "--format", "csv")
    _, device, _ = bench(capsys, "--topology", "h200x2", "--op", "all_to_all", "--ranks", 2,
                         "--sizes", "1K", "--format", "csv", "--base-latency", "0")
    assert float(rows_of(framework)[0]["time_us"]) == pytest.approx(28.0)
    assert 9 < float(rows_of(device)[0]["time_us"]) < 14       # nccl-tests: about 12 us


def test_without_topology_the_analytical_model(capsys):
    rc, out, _ = bench(capsys, "--op", "all_reduce", "--ranks", 16, "--sizes", "1G",
                       "--format", "csv", "--cost-model", "simai")
    assert rc == 0
    (row,) = rows_of(out)
    # ring over 2 servers: busbw = min(NVLink 450 x 0.82 = 369, 8 NICs x 50 x 0.97 = 388)
    # GB/s, minus the latency terms
    assert 355 < float(row["busbw_GB_per_s"]) < 369


@pytest.mark.parametrize("args, message", [
    (["--topology", "nope", "--op", "all_reduce", "--ranks", 2], "unknown topology 'nope'"),
    (["--topology", "h200x2", "--op", "all_reduce", "--ranks", 4], "h200x2 has 2 GPUs"),
    (["--topology", "h200x2", "--op", "all_gather", "--ranks", 2, "--algorithm", "tree"],
     "--algorithm: all_gather cannot run algorithm 'tree'"),
    (["--op", "all_reduce", "--ranks", 2, "--protocol", "LL", "--cost-model", "simai"],
     "needs the nccl cost model"),
    (["--op", "all_reduce", "--ranks", 1], "--ranks: a collective needs at least 2 ranks"),
    (["--op", "all_reduce", "--ranks", 2, "--sizes", "1G:1K"], "--sizes: expected 1 <= LO <= HI"),
    (["--topology", "h200x2", "--op", "all_reduce", "--ranks", 2, "--nic-bw", "50"],
     "--nic-bw: topology h200x2 has no NICs"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    rc, out, err = bench(capsys, *args)
    assert rc == 2 and out == ""
    assert err.startswith("collsim: error:") and message in err and err.count("\n") == 1


def test_calibration_flag_is_accepted(capsys, tmp_path):
    rc, _, err = bench(capsys, "--op", "all_reduce", "--ranks", 2, "--calibration",
                       tmp_path / "missing.yaml")
    assert rc == 2 and "missing.yaml" in err


def test_simulate_with_a_topology_runs():
    p = subprocess.run([sys.executable, "-m", "simulator", "simulate", "--topology", "dgx-h100",
                        SEED, "--json", "-"], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["gpus"] == 128
    assert summary["cost_model"]["name"] == "nccl"
    assert summary["cost_model"]["topology"] == "dgx-h100"
    assert summary["iteration_time_us"] > 0


def test_simulate_topology_errors(capsys):
    rc = main(["simulate", "--topology", "h200x2", SEED])
    err = capsys.readouterr().err
    assert rc == 2 and "topology h200x2 has 2 GPUs" in err
    rc = main(["simulate", "--topology", "dgx-h100", "--gpus-per-server", "4", SEED])
    err = capsys.readouterr().err
    assert rc == 2 and "--gpus-per-server: topology dgx-h100 has 8 GPUs per server" in err
