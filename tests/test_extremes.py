"""Extremes: huge and tiny numbers, one GPU and 131,072, free collectives, all-zero rows.

Every expected number is derived by hand in the comments from the default cluster
(docs/cost-models.md): NVLink 450 GB/s x 0.82 = 369 B/ns per GPU, NIC 8 x 50 GB/s x 0.97 / 8
GPUs = 48.5 B/ns per GPU, 10 us per call, 1 us per NVLink step and 3 us per NIC step; ring
all-reduce moves 2(n-1)/n of the buffer, all-to-all (n-1)/n, the update delay follows every
collective that costs time.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import time
import warnings
from fractions import Fraction

import pytest

from simulator.cli import main as cli_main
from simulator.cluster import Cluster
from simulator.engine import SimulationOptions, simulate
from simulator.errors import InputError, SimulationWarning
from simulator.readers.workload import MAX_GPUS, MAX_NUMBER, MAX_PP, read_workload_text
from simulator.report.csv_report import render_csv
from simulator.report.summary import summary_dict
from simulator.report.text import render_text

HEAD = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: {tp} ep: {ep} pp: {pp} " \
       "ga: {ga} all_gpus: {gpus} pp_comm: {pp_comm}"


def table(rows: list[str], tp=1, ep=1, pp=1, ga=1, gpus=1, pp_comm=0) -> str:
    return (HEAD.format(tp=tp, ep=ep, pp=pp, ga=ga, gpus=gpus, pp_comm=pp_comm) + "\n"
            + f"{len(rows)}\n" + "\n".join(rows) + "\n")


def run(text: str, cluster: Cluster | None = None, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = read_workload_text(text, path="x.txt")
        return simulate(w, cluster or Cluster(), options=SimulationOptions(**opts))


def outputs_are_finite(r) -> None:
    """JSON without NaN/Infinity, a CSV without nan/inf, a text report, all renderable."""
    doc = json.loads(json.dumps(summary_dict(r)),
                     parse_constant=lambda c: pytest.fail(f"JSON holds {c}"))
    assert math.isfinite(doc["iteration_time_us"])
    body = render_csv(r)
    assert "nan" not in body.lower().replace("name", "") and "inf" not in body.lower()
    assert "nan" not in render_text(r).lower().replace("name", "")


# ------------------------------------------------------------------------------ huge numbers

def test_compute_of_2_to_the_40_ns():
    # one GPU, three passes of 2^40 ns each, no communication: 3 x 2^40 ns = 3,298.5 s
    r = run(table(["big -1 1099511627776 NONE 0 1099511627776 NONE 0 1099511627776 NONE 0 100"]))
    assert r.iteration_ns == 3 * 2 ** 40 == r.compute_ns
    assert summary_dict(r)["iteration_time_us"] == 3_298_534_883.328
    outputs_are_finite(r)


def test_all_reduce_of_2_to_the_50_bytes():
    # TP 8 inside one server: 10 us + 2 x 7 x 1 us + 2 x 7/8 x 2^50 B / 369 B/ns, then the
    # 100 ns update: 5,339,633,728,538 + 100 ns (about 89 minutes)
    r = run(table(["huge -1 0 ALLREDUCE 1125899906842624 0 NONE 0 0 NONE 0 100"], tp=8, gpus=8))
    expected = round(10_000 + 14 * 1_000 + Fraction(7, 4) * 2 ** 50 / 369) + 100
    assert expected == 5_339_633_728_638
    assert r.iteration_ns == expected
    assert r.exposed_ns["TP"] == expected and r.compute_ns == 0
    outputs_are_finite(r)


def test_largest_accepted_values_and_one_more():
    big = str(MAX_NUMBER)
    r = run(table([f"max -1 {big} ALLGATHER {big} {big} NONE 0 {big} NONE 0 {big}"] * 3,
                  tp=2, gpus=2))
    assert r.iteration_ns > 9 * MAX_NUMBER  # three rows, three passes each, plus collectives
    outputs_are_finite(r)
    with pytest.raises(InputError, match=r"x.txt:3: field 3 \(fwd_ns\): '4611686018427387905' "
                                         r"is too large"):
        run(table([f"max -1 {MAX_NUMBER + 1} NONE 0 0 NONE 0 0 NONE 0 0"]))


# ------------------------------------------------------------------------------ GPU counts

def test_one_gpu_makes_every_collective_free_and_says_so():
    rows = ["a -1 1000 ALLREDUCE 1048576 2000 ALLTOALL_EP 1048576 3000 ALLREDUCE 1048576 100",
            "b -1 10 ALLGATHER_DP_EP 4096 20 BROADCAST 4096 30 REDUCESCATTER_EP 4096 100"]
    with pytest.warns(SimulationWarning, match="group\\(s\\) of size 1: TP, EP, DP, DP_EP"):
        w = read_workload_text(table(rows), path="x.txt")
        r = simulate(w, Cluster())
    assert r.iteration_ns == r.compute_ns == 1000 + 2000 + 3000 + 10 + 20 + 30
    assert sum(r.exposed_ns.values()) == 0
    assert r.free_groups == ["TP", "EP", "DP", "DP_EP"]
    assert any("size 1" in n for n in r.notes)
    assert all(x.fwd_comm_ns == x.ig_comm_ns == x.wg_comm_ns == 0 for x in r.rows)


def test_131072_gpus_by_hand():
    # TP 8, EP 8, DP 16,384, DP_EP 2,048 on 16,384 servers of 8 GPUs.
    # EP all-to-all of 2^24 B: the 8 members sit on 8 servers (stride 8), so 7/8 of the
    # buffer leaves over the GPU's NIC share: 10 us + 3 us + 7/8 x 2^24 / 48.5 = 315,682 ns,
    # plus 100 ns update.
    # DP all-reduce of 2^30 B over 16,384 servers, one member each: ring bandwidth
    # min(369, 48.5) = 48.5 B/ns, 2 x 16,383 NIC steps of 3 us:
    # 10 us + 98,298 us + 2 x 16383/16384 x 2^30 / 48.5 = 142,583,311 ns, plus 100 ns,
    # after 1 us of weight-gradient compute; nothing else runs, so it is all exposed.
    rows = ["moe -1 0 ALLTOALL_EP 16777216 0 NONE 0 0 NONE 0 100",
            "grad -1 0 NONE 0 0 NONE 0 1000 ALLREDUCE 1073741824 100"]
    t0 = time.perf_counter()
    r = run(table(rows, tp=8, ep=8, gpus=131072))
    assert time.perf_counter() - t0 < 20  # arrays of ranks, not objects per GPU
    a2a = round(13_000 + Fraction(7, 8) * 2 ** 24 / Fraction(97, 2))
    ar = round(10_000 + 2 * 16383 * 3_000 + Fraction(2 * 16383, 16384) * 2 ** 30 / Fraction(97, 2))
    assert (a2a, ar) == (315_682, 142_583_311)
    assert (r.dp, r.dp_ep) == (16384, 2048)
    assert r.iteration_ns == a2a + 100 + 1000 + ar + 100 == 142_900_193
    assert r.exposed_ns["EP"] == a2a + 100 and r.exposed_ns["DP"] == ar + 100


def test_131072_gpus_with_a_pipeline_runs_quickly():
    rows = ["l -1 1000 ALLREDUCE 1000000 2000 ALLTOALL_EP 100000 1000 ALLREDUCE_DP_EP 1000000 100"]
    t0 = time.perf_counter()
    r = run(table(rows * 64, tp=8, ep=8, pp=16, ga=16, gpus=131072, pp_comm=1_000_000))
    assert time.perf_counter() - t0 < 30
    assert r.ga == 16 and r.pp == 16 and r.dp == 1024
    for s in r.stages:
        assert s.parts_sum_ns() == s.end_ns
    outputs_are_finite(r)


def test_limits_of_the_header():
    with pytest.raises(InputError, match="all_gpus: '4194305' is too large"):
        run(table(["a -1 1 NONE 0 1 NONE 0 1 NONE 0 1"], gpus=MAX_GPUS + 1))
    with pytest.raises(InputError, match="pp: '16385' is too large"):
        run(table(["a -1 1 NONE 0 1 NONE 0 1 NONE 0 1"], pp=MAX_PP + 1, gpus=MAX_PP + 1))
    with pytest.raises(InputError, match="TP x PP x EP = 8,388,608 GPUs"):
        run(table(["a -1 1 NONE 0 1 NONE 0 1 NONE 0 1"], tp=2048, pp=64, ep=64, gpus=64))


# ------------------------------------------------------------------------------ free and zero

def test_zero_byte_collectives_are_free_and_add_no_update_delay():
    rows = ["z -1 5 ALLREDUCE 0 7 ALLTOALL 0 11 ALLGATHER 0 100000"]
    r = run(table(rows, tp=8, gpus=16))
    assert r.iteration_ns == 5 + 7 + 11  # the 100 us update follows collectives that run


def test_all_zero_rows():
    r = run(table(["z -1 0 NONE 0 0 NONE 0 0 NONE 0 0"] * 5, tp=2, gpus=4))
    assert r.iteration_ns == 0 and r.critical.parts_sum_ns() == 0
    outputs_are_finite(r)
    assert "0.000 ms" in render_text(r)


def test_all_zero_rows_in_a_pipeline_with_free_sends():
    r = run(table(["z -1 0 NONE 0 0 NONE 0 0 NONE 0 0"] * 4, pp=4, ga=4, gpus=4),
            pp_schedule="interleaved", vpp_chunks=1)
    assert r.iteration_ns == 0
    assert all(s.end_ns == 0 for s in r.stages)


def test_zero_time_outputs_render(tmp_path):
    """Text, JSON, CSV, trace and plot of a zero-length iteration, through the CLI."""
    path = tmp_path / "zero.txt"
    path.write_text(table(["z -1 0 NONE 0 0 NONE 0 0 NONE 0 0"]))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli_main(["simulate", str(path), "--json", str(tmp_path / "r.json"),
                       "--csv", str(tmp_path / "r.csv"), "--trace", str(tmp_path / "t.json"),
                       "--plot", str(tmp_path / "p.png")])
    assert rc == 0, err.getvalue()
    assert json.loads((tmp_path / "r.json").read_text())["iteration_time_us"] == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_one_row_with_more_micro_batches_than_rows_falls_back_with_a_warning():
    with pytest.warns(SimulationWarning, match="no 4 repeating micro-batches"):
        w = read_workload_text(table(["a -1 10 NONE 0 20 NONE 0 30 NONE 0 0"], ga=4),
                               path="x.txt")
        r = simulate(w, Cluster())
    assert r.ga == 1 and r.iteration_ns == 60


def test_more_chunks_than_rows_is_a_clear_error():
    with pytest.raises(InputError, match="cannot split a micro-batch of 1 rows into 2"):
        run(table(["a -1 10 NONE 0 20 NONE 0 30 NONE 0 0"]), pp_schedule="interleaved",
            vpp_chunks=2)


def test_a_deep_pipeline_of_one_row_stages_by_hand():
    # PP 8, one micro-batch, free sends: the forward walks down 8 stages (8 x 10 ns), the
    # backward walks back (8 x 50 ns); stage 0 ends last
    r = run(table(["a -1 10 NONE 0 20 NONE 0 30 NONE 0 0"], pp=8, gpus=8))
    assert r.iteration_ns == 8 * 10 + 8 * 50
    assert r.critical_stage == 0
    assert r.stages[7].end_ns == 7 * 10 + 10 + 50  # the last stage finishes after its backward


# ------------------------------------------------------------------------------ CLI extremes

def cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.showwarning = lambda *a, **k: None  # the CLI turns them back on
        try:
            rc = cli_main(args)
        except SystemExit as exc:  # argparse refusing a value
            rc = exc.code
    return rc, err.getvalue()


SMALL = table(["a -1 1000 ALLREDUCE 1048576 1000 NONE 0 1000 ALLREDUCE 1048576 100"],
              tp=8, gpus=16)


@pytest.mark.parametrize("flags", [["--nvlink-bw", "0.0001"], ["--nic-bw", "1e6"],
                                   ["--gpus", "4096"], ["--base-latency", "0"]])
def test_extreme_but_valid_cluster_flags(flags, tmp_path):
    path = tmp_path / "w.txt"
    path.write_text(SMALL)
    rc, err = cli(["simulate", str(path), "--quiet", "--json", str(tmp_path / "r.json"), *flags])
    assert rc == 0, err
    doc = json.loads((tmp_path / "r.json").read_text(), parse_constant=pytest.fail)
    assert math.isfinite(doc["iteration_time_us"]) and doc["iteration_time_us"] > 0


@pytest.mark.parametrize("flags", [
    # these four were strict xfails (an OverflowError or MemoryError traceback) until the
    # flags got bounds: units.py rejects infinite latencies and bandwidths outside
    # 1e-6..1e9 GB/s, parallel.make_parallel more than 2^22 GPUs
    ["--base-latency", "1e400"], ["--nic-bw", "1e-310"], ["--nvlink-bw", "1e-310", "--gpus", "8"],
    ["--gpus", str(2 ** 50)],
    ["--gpus", "0"], ["--nic-bw", "nan"], ["--nic-bw", "-5"], ["--base-latency", "-1us"],
    ["--gpus-per-server", "0"], ["--nics-per-server", "-1"], ["--vpp", "0"],
])
def test_absurd_cluster_flags_are_clear_errors(flags, tmp_path):
    path = tmp_path / "w.txt"
    path.write_text(SMALL)
    rc, err = cli(["simulate", str(path), "--quiet", *flags])
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    assert lines and "Traceback" not in err


def test_stage_table_columns_stay_apart_beyond_100_s():
    # two stages, one micro-batch, one row of 2^37 ns (137.439 s) in each pass: every number
    # of the stage table has 10 characters or more ("137438.953" is 10, "412316.860" too),
    # the old fixed 10-wide columns ran them together ("1412316.860412316.860...")
    r = run(table(["big -1 137438953472 NONE 0 137438953472 NONE 0 137438953472 NONE 0 100"],
                  pp=2, ga=1, gpus=2))
    text = render_text(r)
    lines = text.splitlines()
    head = lines.index(next(ln for ln in lines if ln.lstrip().startswith("stage")))
    for row in lines[head + 1:head + 3]:
        _, end_ms, compute_ms, exposed_ms, bubble_ms = row.split()[:5]
        # end, compute, exposed and bubble of each stage add up to the iteration (ms)
        assert float(end_ms) == pytest.approx(
            float(compute_ms) + float(exposed_ms) + float(bubble_ms), abs=0.002)
        # each stage computes its three passes: 3 x 2^37 ns = 412,316.860 ms
        assert compute_ms == "412316.860"
