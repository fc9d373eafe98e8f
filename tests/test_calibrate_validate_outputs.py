"""Calibration and validation rendering as libraries, and their outputs through the one writer.

- simulator.calibration.report renders a fit's tables and its YAML (with test files);
- simulator.validation.report_json renders a validation Report as JSON;
- ``collsim calibrate -o`` and ``collsim validate --json/--write-docs`` write through
  simulator.report.output: a FIFO is written through and stays a FIFO, a directory and an
  input are refused (exit 2, one line) and nothing is written.
"""
from __future__ import annotations

import json
import os
import stat
import threading
import warnings
from pathlib import Path

import pytest
import yaml

from simulator.calibration.report import render_table, render_yaml
from cli_helpers import run_cli as cli
from simulator.validation import Report
from simulator.validation.common import CaseResult
from simulator.validation.report_json import render_json

ROOT = Path(__file__).resolve().parent.parent
MEASURED = ROOT / "traces" / "h200x2" / "collectives_aligned.csv"
OLD = "old content that must survive\n"



def _err(n, median, mx):
    return {"n": n, "median_abs": median, "max_abs": mx}


def test_render_table_cells():
    # structural 12.3% -> corrected 4.5% median, corrected max 9%, in percent of each band
    block = {"structural": {"all_to_all": {"all": _err(10, 0.123, 0.2)}},
             "corrected": {"all_to_all": {"<=64KiB": _err(4, 0.01, 0.02),
                                          "all": _err(10, 0.045, 0.09)}},
             "overall": {"structural": _err(10, 0.123, 0.2), "corrected": _err(10, 0.045, 0.09)}}
    lines = render_table(block, "T", fitted_ops={"all_to_all"}).splitlines()
    assert lines[0] == "T"
    cells = lines[2].split(None, 1)
    assert cells[0] == "all_to_all" and lines[2].split()[1] == "*"
    # no structural figure for <=64KiB: '-' before the arrow; no points in the middle bands
    assert lines[2].split()[2:] == ["-", "->", "1.0", "(2)", "-", "-",
                                    "12.3", "->", "4.5", "(9)"]
    assert lines[3] == ("  overall: median |error| 12.3% structural, 4.5% corrected "
                        "(max 9%, 10 points)")


def test_render_yaml_keeps_the_test_block():
    from simulator.calibration import calibrate, evaluate_files
    if not MEASURED.exists():
        pytest.skip("no measured collectives")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate([str(MEASURED)], ops=["all_to_all"], folds=0)
        test = evaluate_files(cal, [str(MEASURED)])
    doc = yaml.safe_load(render_yaml(cal, test))
    assert doc["test"]["files"] == [str(MEASURED)]
    assert "transfer" in doc["test"]["note"]
    assert doc["selection"]["ops"] == ["all_to_all"]
    assert "test" not in yaml.safe_load(render_yaml(cal))


def test_render_json_of_a_report():
    # 108 predicted for 100 measured: +8%; 96 for 100: -4%; the median |error| of the two
    # counted cases is 6%, the maximum 8% (one within 5%, both within 10%); the third
    # (+200%) is not counted
    # a's three repeats 90, 100, 110: quartiles by linear interpolation at (3 - 1) x 0.25 =
    # 0.5 and 1.5, i.e. 95 and 105; its 108 lies above them, inside 90-110
    rep = Report(results=[CaseResult("a", "step", 100.0, 108.0, repeats=(110.0, 90.0, 100.0)),
                          CaseResult("b", "step", 100.0, 96.0, unit="us", note="n"),
                          CaseResult("c", "step", 10.0, 30.0, primary=False)],
                 calibration="cal.yaml", calibration_summary="")
    doc = json.loads(render_json(rep))
    assert doc["calibration"] == "cal.yaml"
    assert [c["error"] for c in doc["cases"]] == [0.08, -0.04, 2.0]
    assert doc["cases"][1] == {"case": "b", "quantity": "step", "unit": "us", "measured": 100.0,
                               "predicted": 96.0, "error": -0.04, "counted": True,
                               "inputs": "", "note": "n", "repeats": None}
    assert doc["cases"][0]["repeats"] == {"n": 3, "min": 90.0, "q1": 95.0, "q3": 105.0,
                                          "max": 110.0, "prediction": "range"}
    assert doc["summary"] == {"n": 2, "median_abs": 0.06, "max_abs": 0.08, "within_5": 1,
                              "within_10": 2}
    assert doc["transfer"] is None and doc["collectives_4_ranks"] is None


# ------------------------------------------------------------------ through the one writer

def _read_fifo(path: Path, sink: list) -> threading.Thread:
    def read():
        with open(path, "rb") as fh:
            sink.append(fh.read())
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def _calibrate(out) -> list:
    return ["calibrate", MEASURED, "--ops", "all_to_all", "--folds", "0", "--quiet", "-o", out]


@pytest.fixture
def measured():
    if not MEASURED.exists():
        pytest.skip("no measured collectives")
    return MEASURED


def test_calibrate_output_fifo_directory_and_input(tmp_path, measured):
    fifo = tmp_path / "cal.fifo"
    os.mkfifo(fifo)
    got: list = []
    t = _read_fifo(fifo, got)
    rc, _, err = cli(_calibrate(fifo))
    t.join(10)
    assert rc == 0, err
    assert got and got[0].startswith(b"# collsim calibration")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)          # written through, not replaced
    rc, _, err = cli(_calibrate(tmp_path))
    assert rc == 2 and "is a directory" in err and err.count("\n") == 1, err
    copy = tmp_path / "m.csv"
    copy.write_bytes(measured.read_bytes())
    before = copy.read_bytes()
    rc, _, err = cli(["calibrate", copy, "--ops", "all_to_all", "--folds", "0", "--quiet",
                      "-o", copy])
    assert rc == 2 and "would overwrite the input" in err and err.count("\n") == 1, err
    assert copy.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal.fifo", "m.csv"]


def test_validate_outputs_fifo_directory_and_input(tmp_path, measured):
    fifo = tmp_path / "v.fifo"
    os.mkfifo(fifo)
    got: list = []
    t = _read_fifo(fifo, got)
    rc, _, err = cli(["validate", "--quiet", "--json", fifo])
    t.join(60)
    assert rc == 0, err
    assert json.loads(got[0])["cases"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    # a directory as the docs file: refused, and the JSON of the same set is not written
    rc, _, err = cli(["validate", "--quiet", "--json", tmp_path / "v.json",
                      "--write-docs", tmp_path])
    assert rc == 2 and "is a directory" in err.lower() and err.count("\n") == 1, err
    assert not (tmp_path / "v.json").exists()
    # the calibration it reads as the docs file or the JSON: refused before anything runs
    cal = tmp_path / "c.yaml"
    cal.write_text((ROOT / "traces" / "h200x2" / "calib_h200x2.yaml").read_text())
    before = cal.read_bytes()
    for flag in ("--json", "--write-docs"):
        rc, _, err = cli(["validate", "--quiet", "--calibration", cal, flag, cal])
        assert rc == 2 and "would overwrite the input" in err, err
        assert cal.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "v.fifo"]


def test_validate_write_docs_without_a_path_writes_the_checkout_docs(tmp_path, monkeypatch):
    # `--write-docs` alone means docs/validation.md of the checkout (here a stand-in file):
    # since empty output paths are refused (`--json=`), the bare flag was read as one and
    # refused too; an explicit empty PATH still is
    import simulator.validation as validation
    from simulator.validation import BEGIN, END
    doc = tmp_path / "validation.md"
    doc.write_text(f"# head\n\n{BEGIN}\nold\n{END}\n")
    monkeypatch.setattr(validation, "DEFAULT_DOCS", doc)
    rc, _, err = cli(["validate", "--quiet", "--write-docs"])
    assert rc == 0, err
    text = doc.read_text()
    assert text.startswith("# head\n") and "old\n" not in text and "H200 GPT step" in text
    rc, _, err = cli(["validate", "--quiet", "--write-docs="])
    assert rc == 2 and "an empty path" in err, err
