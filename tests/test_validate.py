"""`collsim validate`: the cases run, are deterministic, and the docs section is replaced in
place without touching the rest of the file."""
import csv
import json
import statistics
import subprocess
import sys

import pytest

from repo_paths import ROOT
from simulator.cluster import Cluster
from simulator.costmodel.base import CostModel
from simulator.engine.segment import segment
from simulator.errors import InputError
from simulator.validation import BEGIN, END, Report, render_text, write_docs
from simulator.validation import moe_step, seed003
from simulator.validation.common import CaseResult
from simulator.workload import Op


def collsim(*args):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


class FlatCost(CostModel):
    """Every collective costs 100 us: makes the replays checkable by hand."""

    name = "flat"

    def price_ns(self, op, size_bytes, placement):
        return 100_000


def test_validate_cli_is_deterministic(tmp_path):
    doc_a, doc_b = tmp_path / "a.md", tmp_path / "b.md"
    js = tmp_path / "v.json"
    p = collsim("validate", "--write-docs", doc_a, "--json", js)
    assert p.returncode == 0, p.stderr
    q = collsim("validate", "--write-docs", doc_b)
    assert q.returncode == 0, q.stderr
    assert p.stdout.replace(str(doc_a), "") == q.stdout.replace(str(doc_b), "")
    assert doc_a.read_text() == doc_b.read_text()
    for text in ("seed 003", "EP MoE step", "seed 002", "seed 000", "median |error|",
                 "maximum", "all_gather", "sendrecv"):
        assert text in p.stdout
    data = json.loads(js.read_text())
    counted = [c for c in data["cases"] if c["counted"]]
    assert data["summary"]["n"] == len(counted) >= 8
    # the measured side comes from the measurement files, read here with csv alone: an H200
    # GPT step's figure is the median over the rounds of one paired run ("case (run5)") or
    # over the runs without rounds of traces/h200/compute/run*/train.csv
    gpt = {c["case"].removeprefix("H200 GPT step "): c for c in data["cases"]
           if c["case"].startswith("H200 GPT step ")}
    assert len(gpt) >= 17
    for case, c in gpt.items():
        runs = _train_steps_ms(case)
        assert len(runs) >= (1 if " (run" in case else 2), case   # run5's variants: 1 round
        assert c["measured"] == pytest.approx(statistics.median(runs), abs=1e-4), case
        assert c["unit"] == "ms"
    # seed 003's stage-0 span is the trace's own: traces/seeds/README.md reads "iteration
    # span 718.9" (ms) off the Echo trace
    spans = {c["measured"] for c in data["cases"] if c["case"].startswith("seed 003")
             and c["quantity"] == "stage-0 iteration span"}
    assert len(spans) == 1 and round(spans.pop(), 1) == 718.9
    # the errors are relative to that measurement; the summary is over the counted cases
    for c in data["cases"]:
        assert c["error"] == pytest.approx(c["predicted"] / c["measured"] - 1, abs=1e-5)
    errs = sorted(abs(c["predicted"] / c["measured"] - 1) for c in counted)
    assert data["summary"]["max_abs"] == pytest.approx(errs[-1], abs=1e-5)
    assert data["summary"]["median_abs"] == pytest.approx(statistics.median(errs), abs=1e-5)
    assert data["summary"]["within_5"] == sum(e <= 0.05 for e in errs)
    doc = doc_a.read_text()
    assert doc.count(BEGIN) == 1 and doc.count(END) == 1
    # the worst case's own spread beside its error: gpt-350m-s1024-b4-fp8 on run10, 12
    # rounds (run10/train.csv step_ms), sorted 72.6157 73.0002 98.2017 100.1706 104.8946
    # 105.4072 110.6489 112.6314 117.6646 118.5471 119.5623 121.7977; quartiles by linear
    # interpolation at (12 - 1) x 0.25 = 2.75 and 8.25: 98.2017 + 0.75 x (100.1706 -
    # 98.2017) = 99.6784, 117.6646 + 0.25 x (118.5471 - 117.6646) = 117.8852; the
    # prediction (96.29 ms) is below the first quartile and above the minimum
    worst = gpt["gpt-350m-s1024-b4-fp8 (run10)"]["repeats"]
    assert worst["n"] == 12 and worst["prediction"] == "range"
    assert (worst["min"], worst["max"]) == (72.6157, 121.7977)
    assert worst["q1"] == pytest.approx(99.6784, abs=1e-4)
    assert worst["q3"] == pytest.approx(117.8852, abs=1e-4)
    assert "| 72.62 / 99.68-117.89 / 121.80 |" in doc
    # a case measured once has no spread (seed 003's trace)
    assert all(c["repeats"] is None for c in data["cases"] if c["case"].startswith("seed 003"))
    # the 4-rank collectives table is in the JSON too, with the numbers the text prints
    c4 = data["collectives_4_ranks"]
    given, x4 = c4["given"], c4["x4_on_run1"]
    assert given["calibration"] == "traces/h200x2/calib_h200x2.yaml" and not given["in_sample"]
    assert x4["calibration"] == "traces/h200x4/calib_h200x4.yaml"
    assert given["overall"]["n"] == x4["overall"]["n"] == 168
    assert sum(v["all"]["n"] for v in given["ops"].values()) == 168
    line = next(ln for ln in p.stdout.splitlines()[::-1] if ln.strip().startswith("sendrecv"))
    assert line.split()[1:] == [
        "21", f"{100 * given['ops']['sendrecv']['all']['median_abs']:.1f}",
        f"{100 * given['ops']['sendrecv']['all']['max_abs']:.0f}",
        f"{100 * x4['ops']['sendrecv']['all']['median_abs']:.1f}",
        f"{100 * x4['ops']['sendrecv']['all']['max_abs']:.0f}"]


def _train_steps_ms(key: str) -> list[float]:
    """step_ms of the case ``key`` names: ``case (runN)``: every round of that run;
    otherwise every run without rounds that measured it (status ok)."""
    case, _, run = key.partition(" (")
    run = run.rstrip(")") if run.startswith("run") and " " not in run else ""
    out = []
    for path in sorted((ROOT / "traces" / "h200" / "compute").glob("run*/train.csv")):
        lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
        rows = list(csv.DictReader(lines))
        rounds = any((r.get("round") or "").strip() for r in rows)
        if (run and path.parent.name != run) or (not run and rounds):
            continue
        out += [float(r["step_ms"]) for r in rows if r["case"] == case and r["status"] == "ok"]
    return out


def test_validate_help_names_every_case():
    p = collsim("validate", "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    for case in ("seed 003", "two H200s (EP 2)", "four H200s (EP 4)", "seeds 000 and 002",
                 "all-to-all-only calibration", "collectives measured at 4 ranks",
                 "4-rank collectives table"):
        assert case in text, case


def _report():
    return Report(results=[CaseResult("c", "q", 10.0, 10.9), CaseResult("d", "q", 10.0, 9.8),
                           CaseResult("e", "q", 10.0, 20.0, primary=False)],
                  calibration="x.yaml", calibration_summary="test")


def test_report_statistics():
    st = _report().stats()
    assert st["n"] == 2
    assert st["median_abs"] == pytest.approx(0.055)
    assert st["max_abs"] == pytest.approx(0.09)
    assert st["within_5"] == 1 and st["within_10"] == 2


def test_spread_of_the_repeats_and_where_the_prediction_falls():
    # repeats 1..5: quartiles by linear interpolation at (5 - 1) x 0.25 = 1 and 3, i.e. the
    # 2nd and 4th values, 2 and 4
    r = CaseResult("c", "q", 3.0, 3.0, repeats=(5.0, 1.0, 3.0, 2.0, 4.0))
    assert r.spread() == (1.0, 2.0, 4.0, 5.0)
    assert r.within_repeats() == "interquartile"
    assert CaseResult("c", "q", 3.0, 1.5, repeats=r.repeats).within_repeats() == "range"
    assert CaseResult("c", "q", 3.0, 5.5, repeats=r.repeats).within_repeats() == "outside"
    assert CaseResult("c", "q", 3.0, 3.0, repeats=(3.0,)).spread() is None
    rep = Report(results=[r, CaseResult("d", "q", 3.0, 1.5, repeats=r.repeats),
                          CaseResult("e", "q", 3.0, 9.0, repeats=r.repeats),
                          CaseResult("f", "q", 3.0, 9.0, repeats=r.repeats, primary=False),
                          CaseResult("g", "q", 3.0, 3.3)],
                 calibration="x.yaml", calibration_summary="test")
    text = render_text(rep)
    assert ("of the 3 counted comparisons measured in repeats (a paired run's rounds, or the "
            "runs without rounds), 1 predict inside their repeats' interquartile range, 1 "
            "outside it but inside their min-max, 1 outside every repeat") in text
    # e is +200%, beyond 10%, and named with its repeats
    assert ("e q (+200.0%; its 5 repeats 1.00 / 2.00-4.00 / 5.00 ms, the prediction outside "
            "every repeat)") in text


def test_docs_section_replaced_in_place(tmp_path):
    path = tmp_path / "validation.md"
    other = ("# Validation\n\nIntro written by hand.\n\n<!-- collectives:begin -->\n"
             "collectives table\n<!-- collectives:end -->\n\n")
    path.write_text(other + f"{BEGIN}\nold content\n{END}\n\nTrailing notes.\n")
    write_docs(_report(), path)
    text = path.read_text()
    assert text.startswith(other)
    assert "old content" not in text and "Trailing notes." in text
    assert text.count(BEGIN) == 1 and "| c | q |" in text
    again = write_docs(_report(), path)
    assert again == text  # idempotent
    fresh = tmp_path / "new.md"
    write_docs(_report(), fresh)
    assert fresh.read_text().startswith("# Validation") and BEGIN in fresh.read_text()
    broken = tmp_path / "broken.md"
    broken.write_text(f"text\n{BEGIN}\nno end marker\n")
    with pytest.raises(InputError, match="markers"):
        write_docs(_report(), broken)


def test_seed003_workload_is_one_stage_of_16_micro_batches():
    wl, s = seed003.build_workload(gaps=False)
    seg = segment(wl)
    assert seg.ga == 16 and len(seg.prefix) == 2 and len(seg.micro_batch) == 6
    assert len(seg.variants) == 16          # each micro-batch keeps its own compute time
    total_fwd = sum(r.fwd_ns for r in wl.rows) / 1e6
    gb = sum(o.duration_ms for o in s.ops if o.op == "get_batch")
    assert total_fwd == pytest.approx(sum(s.forward_compute_ms) + gb, abs=1e-3)
    p = seed003.replay(FlatCost(), Cluster())
    assert p["period_ms"] > 0 and p["span_ms"] > 16 * (11 + 18)


def test_seed003_host_gaps_from_the_records():
    # traces/seeds/003: get_batch 0 ends at 3371168147.09; forward_step 0 (12.59 ms) ends at
    # ...159.75, so starts at ...147.16: 0.07 ms; send_forward 0 (0.31) ends at ...160.25,
    # starts at ...159.94, 0.19 ms after the forward: F(0) carries 0.26 ms. recv_backward 0
    # ends at ...256.56, backward_step 0 (18.96) ends at ...275.59, starts at ...256.63:
    # B(0) carries 0.07 ms. Finalize: dp_allreduce ends at 646.83 (relative), ep_dp starts
    # at 646.87 (0.04), ends at 686.92, optimizer starts at 687.08 (0.16): 0.20 ms
    _, s = seed003.build_workload()
    fwd, bwd, final = seed003.host_gaps(s)
    assert fwd[0] == pytest.approx(0.26, abs=1e-6)
    assert bwd[0] == pytest.approx(0.07, abs=1e-6)
    assert final == pytest.approx(0.20, abs=1e-6)
    wl, _ = seed003.build_workload()
    f0 = sum(r.fwd_ns for r in wl.rows[2:8]) / 1e6
    # forward_step 0 less its six sub-operations (0.17+0.23+0.09+0.16+0.23+0.09 = 0.97),
    # plus get_batch 0 (0.04) and the gaps (0.26)
    assert f0 == pytest.approx(12.59 - 0.97 + 0.04 + 0.26, abs=1e-6)


def test_seed003_prices_from_the_trace_and_blocking_p2p():
    _, s = seed003.build_workload()
    table = seed003.trace_comm_table(s)
    # the records: dp_allreduce 11.88, ep_dp_allreduce 40.05 ms; the warm-up send_forward
    # durations 0.31, 0.32, 0.27 (median 0.31); every [2924, 4096] bf16 all-to-all 0.09
    # but one 0.1 (median 0.09)
    assert table[(Op.ALLREDUCE, 290_013_184 * 4)] == pytest.approx(11.88)
    assert table[(Op.ALLREDUCE, 1_409_286_144 * 4)] == pytest.approx(40.05)
    assert table[(Op.SENDRECV, 1024 * 4096 * 2)] == pytest.approx(0.31)
    assert table[(Op.ALLTOALL, 2924 * 4096 * 2)] == pytest.approx(0.09)
    # with every collective and transfer at 0.1 ms: F(0) = 11.62 + 0.04 + 0.26 + 6 EP
    # collectives (0.6) = 12.52 ms, B(0) = 18.96 - 0.45 + 0.07 + 4 all-to-alls (0.4) =
    # 18.98 ms. Stage 0's second forward starts when its blocking send of the first has
    # arrived (12.52 + 0.1), 0.1 ms later than with asynchronous sends; its first backward
    # when the chain F(0) on four stages, B(0) on three and six transfers has run:
    # 4 x 12.52 + 3 x 18.98 + 6 x 0.1 = 107.62 ms
    for blocking, second in ((True, 12.62), (False, 12.52)):
        p = seed003.replay(FlatCost(), Cluster(), blocking_sends=blocking)
        starts = seed003._forward_starts(p["result"])
        assert starts[1] / 1e6 == pytest.approx(second, abs=1e-5)
        # the pass starts with the last layer's combine all-to-all (the backward runs the
        # rows in reverse)
        b0 = min(sl.start_ns for sl in p["result"].trace
                 if sl.stage == 0 and sl.lane in ("compute", "EP") and sl.name.startswith("B0"))
        assert b0 / 1e6 == pytest.approx(107.62, abs=1e-5)
    with pytest.raises(InputError, match="no measured"):
        seed003.MeasuredCommModel(table).price_ns(Op.ALLREDUCE, 12345, None)


def test_moe_step_cases_that_do_not_repeat_are_not_counted():
    # traces/h200x2 'small' step (slowest rank, median): run 2 10065.17 us, run 1 8737.15:
    # 15.2% apart, over the 10% target; its compute-only step 8009.60 / 7504.02 (6.7%).
    # 'mixtral': 60092.46 / 60191.17 and 58198.90 / 57822.73 (under 1%): counted
    loose = moe_step.unrepeatable([moe_step.MOE_STEP, moe_step.MOE_STEP_RUN1])
    assert set(loose) == {"small"}
    assert "step 10.07 / 8.74 ms (15% apart)" in loose["small"]
    assert "compute-only" not in loose["small"]
    assert moe_step.unrepeatable([moe_step.MOE_STEP]) == {}


def test_moe_step_prediction_adds_compute_and_priced_all_to_alls():
    parts = moe_step._parts(moe_step.MOE_STEP)["mixtral"]
    p = moe_step.predict_case(parts, FlatCost(), Cluster())
    # 4 layers: a count exchange forward, dispatch and combine forward and backward
    assert p["a2a_ms"] == pytest.approx(4 * 5 * 0.1)
    assert p["step_ms"] == pytest.approx(p["compute_ms"] + p["a2a_ms"], rel=1e-6)
    cs = float(parts["compute_step"]["time_us"]) / 1e3
    assert p["compute_ms"] == pytest.approx(cs - p["standins_ms"], rel=1e-6)


def test_validate_writes_no_docs_unless_asked(tmp_path):
    # writing docs/validation.md is an explicit option: a plain run leaves the file as it is
    doc = ROOT / "docs" / "validation.md"
    before = doc.read_bytes(), doc.stat().st_mtime_ns
    p = collsim("validate", "--quiet")
    assert p.returncode == 0, p.stderr
    assert (doc.read_bytes(), doc.stat().st_mtime_ns) == before
    assert "wrote" not in p.stdout + p.stderr


def test_json_and_docs_are_one_set_of_outputs(tmp_path):
    # a docs file with only the begin marker cannot take the section: the command fails
    # with one line, exit 2, and writes neither output (the JSON used to be written first)
    doc = tmp_path / "v.md"
    doc.write_text(f"# mine\n\n{BEGIN}\nhalf a section\n")
    js = tmp_path / "v.json"
    p = collsim("validate", "--quiet", "--json", js, "--write-docs", doc)
    assert p.returncode == 2 and "markers" in p.stderr and len(p.stderr.splitlines()) == 1
    assert not js.exists()
    assert doc.read_text() == f"# mine\n\n{BEGIN}\nhalf a section\n"
    # with a well-formed file both are written, the rest of the file kept
    doc.write_text("# mine\n\nkept\n")
    p = collsim("validate", "--quiet", "--json", js, "--write-docs", doc)
    assert p.returncode == 0, p.stderr
    assert json.loads(js.read_text())["cases"]
    text = doc.read_text()
    assert text.startswith("# mine\n\nkept\n") and BEGIN in text and END in text
