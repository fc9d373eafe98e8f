"""hostcause's --tiny cases fit the tiny models, a case that cannot fit stops the run before it
starts, and a phase that fails ends the run nonzero (most of it needs no torch: the phases are
replaced by stand-ins; the dry runs at the end need torch, and CUDA for the GPU one)."""
from __future__ import annotations

import csv
import os
import pathlib
import subprocess
import sys

import pytest

from simulator.measure import hostcause, kernels, runstart, train

ROOT = pathlib.Path(__file__).resolve().parent.parent
# the tiny GPTs' position table: 512 tokens, 128 positions (as the tiny runs of every
# script have built them since the first dry runs)
TINY_POSITIONS = 128


def _main(monkeypatch, argv):
    # --tiny rewrites train.MODELS in place (the real names, tiny sizes): keep it to a test
    monkeypatch.setattr(train, "MODELS", dict(train.MODELS))
    return hostcause.main(argv)


class _Started(Exception):
    pass


def _args_at_start(monkeypatch, argv):
    """The parsed flags as the run has them when it starts (start_run stopped there)."""
    seen = {}

    def stop(args, tool):
        seen["args"] = args
        raise _Started

    monkeypatch.setattr(hostcause, "start_run", stop)
    with pytest.raises(_Started):
        _main(monkeypatch, argv)
    return seen["args"]


def _seqs(args) -> dict[str, list[int]]:
    """Every sequence the phases will run, read from the flags' text (the CLI's formats:
    micro-batch x sequence; model:seq:micro-batch[:micro-batches])."""
    return {"shapes": [int(s.split("x")[1]) for s in args.shapes.split(",")],
            "sync": [int(s.split(":")[1]) for s in args.sync_cases.split(",")],
            "method": [int(s.split(":")[1]) for s in args.method_cases.split(",")],
            "floor": [args.floor_seq]}


def test_tiny_runs_only_sequences_the_tiny_models_have_positions_for(monkeypatch, tmp_path):
    assert train.vocab_positions(True) == (512, TINY_POSITIONS)
    args = _args_at_start(monkeypatch, ["--tiny", "--device", "cpu", "--out",
                                        str(tmp_path)])
    for phase, seqs in _seqs(args).items():
        assert seqs and max(seqs) <= TINY_POSITIONS, (phase, seqs)
    # the tiny cases keep what the phases compare: several micro-batch sizes at one
    # sequence, gradient accumulation (ga > 1), the floor's 1x64 first
    assert args.shapes.split(",")[0] == "1x64"
    assert any(int(c.split(":")[3]) > 1 for c in args.sync_cases.split(","))
    assert len({c.split(":")[2] for c in args.sync_cases.split(",")}) > 1


def test_the_full_run_keeps_its_cases(monkeypatch, tmp_path):
    # the defaults of the H200 runs (traces/h200/compute/hostcause1/README.md)
    args = _args_at_start(monkeypatch, ["--out", str(tmp_path)])
    assert args.shapes == "1x64,4x64,1x256,1x1024,4x256,4x1024"
    assert args.sync_cases.split(",")[0] == "gpt-125m:1024:1:1"
    assert len(args.sync_cases.split(",")) == 15


@pytest.mark.parametrize("flags, named", [
    (["--tiny", "--shapes", "1x64,1x256"], "--shapes 1x256: sequence 256"),
    (["--tiny", "--sync-cases", "gpt-125m:1024:1:1"], "--sync-cases gpt-125m:1024:1:1"),
    (["--tiny", "--phases", "method", "--method-cases", "gpt-125m:129:1"],
     "--method-cases gpt-125m:129:1: sequence 129"),
    (["--shapes", "1x8192"], "--shapes 1x8192: sequence 8192 is longer than the model's 4096"),
    (["--sync-cases", "gpt-125m:1024:1"], "--sync-cases gpt-125m:1024:1: 4 fields"),
    (["--shape-models", "gpt-9b:default"], "--shape-models gpt-9b:default: unknown model"),
    (["--phases", "shapes,synk"], "--phases synk: unknown phase"),
])
def test_a_case_that_cannot_run_stops_the_run_before_it_starts(monkeypatch, tmp_path, capsys,
                                                               flags, named):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        _main(monkeypatch, flags + ["--device", "cpu", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hostcause: error: ") and named in err
    assert not out.exists()   # nothing started, nothing half-written


def test_a_failing_phase_ends_the_run_nonzero_after_the_others(monkeypatch, tmp_path, capsys):
    def started(args, tool):
        os.makedirs(args.out, exist_ok=True)
        return "cpu", None, False

    def shapes(args, device, dtype, cuda, out_rows, prof_rows, t0):
        out_rows.append({"model": "gpt-125m", "mode": "gc", "host_us": 1.0})
        raise RuntimeError("positional table too short")

    def method(args, device, dtype, cuda, out_rows, t0):
        out_rows.append({"case": "gpt-125m-s128-b1", "mode": "step", "host_us": 2.0})

    monkeypatch.setattr(hostcause, "start_run", started)
    monkeypatch.setattr(hostcause, "shapes_phase", shapes)
    monkeypatch.setattr(hostcause, "method_phase", method)
    status = _main(monkeypatch, ["--tiny", "--device", "cpu", "--phases", "shapes,method",
                                 "--out", str(tmp_path)])
    assert status == 1
    log = capsys.readouterr().out
    assert "shapes: failed" in log and "RuntimeError: positional table too short" in log
    assert log.splitlines()[-1].endswith("1 failed: shapes")
    # what was measured is still written, the other phase's rows too
    shapes_csv = list(csv.reader(open(tmp_path / "shapes.csv")))
    assert shapes_csv[0] == hostcause.SHAPE_COLUMNS and len(shapes_csv) == 2
    assert len(list(csv.reader(open(tmp_path / "method.csv")))) == 2


def test_a_run_whose_phases_all_ran_ends_zero(capsys):
    failed: list[str] = []
    runstart.attempt("sync", failed, lambda: None)
    assert failed == [] and runstart.finish(0.0, failed) == 0
    runstart.attempt("shapes", failed, lambda: 1 / 0)
    assert failed == ["shapes"] and runstart.finish(0.0, failed) == 1
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_a_sweep_phase_that_fails_is_named_for_the_exit_status(tmp_path):
    # compute_run, paired and gpubound run their phases through Sweep.phase
    sw = kernels.Sweep(str(tmp_path), None, None, False, log=lambda m: None)
    sw.phase("gemm", lambda: None, 5.0)
    sw.phase("attention", lambda: int("no"), 5.0)
    assert sw.failed == ["attention"]
    assert (tmp_path / "kernels.csv").read_text().startswith("group,op,phase")


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_tiny_dry_run_measures_every_phase(tmp_path, device):
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "simulator.measure.hostcause", "--tiny",
                        "--device", device, "--phases", "shapes,sync,method", "--rounds", "2",
                        "--reps", "2", "--steps", "2", "--warmup", "1", "--floor-reps", "2",
                        "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    shapes = list(csv.DictReader(open(out / "shapes.csv")))
    # 5 shape models x 2 rounds x (4 shapes x gc, nogc + spin at the first shape)
    assert len(shapes) == 5 * 2 * (4 * 2 + 1)
    sync = list(csv.DictReader(open(out / "train.csv")))
    # 3 sync cases x 2 rounds x 3 modes, all measured
    assert len(sync) == 3 * 2 * 3 and {s["status"] for s in sync} == {"ok"}
    method = list(csv.DictReader(open(out / "method.csv")))
    # 2 method cases x 2 rounds x 5 modes
    assert len(method) == 2 * 2 * 5
