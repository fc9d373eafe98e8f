"""A sweep's memos (parsed points, built cost models, generated workloads and their sidecar,
per-row detail left out) change nothing it reports: byte-identical CSV, identical numbers."""
from __future__ import annotations

import dataclasses
import io
import json
from contextlib import redirect_stdout

import simulator.engine as engine
from simulator.cli import main
from simulator.sweep import runner
from simulator.sweep.report import render_csv
from simulator.sweep.runner import SerialExecutor, run_points
from simulator.sweep.spec import spec_from_dict

# small and fast: a 2-layer GPT-7B-shaped model; PP 1 and 2 (the pipeline's bubble note
# reads the rows), two NIC bandwidths and both cost models, so every memo is hit
SPEC = {"base": {"model": "gpt-7b", "num_layers": 2, "seq_length": 1024, "global_batch": 16,
                 "gpus": 16, "tp": 2},
        "grid": {"pp": [1, 2], "nic_bw": [25.0, 100.0], "cost_model": ["nccl", "simai"]}}


def _without_memos(monkeypatch):
    """Every point parsed, generated and priced afresh, with the per-row detail kept, as a
    sweep did before the memos."""
    real_point, real_simulate = runner._simulate_point, engine.simulate

    def fresh_point(p, base_dir):
        runner._PARSED.clear()
        runner._COST_MODELS.clear()
        runner._GENERATED.clear()
        return real_point(p, base_dir)

    def with_rows(workload, cluster=None, cost_model=None, options=engine.SimulationOptions()):
        assert options.row_detail is False   # what the sweep asks; the detail put back here
        res = real_simulate(workload, cluster, cost_model,
                            dataclasses.replace(options, row_detail=True))
        assert res.rows   # the detail really was computed on this side
        return res

    monkeypatch.setattr(runner, "_simulate_point", fresh_point)
    monkeypatch.setattr(engine, "simulate", with_rows)


def test_sweep_csv_byte_identical_with_and_without_memos(monkeypatch):
    points = spec_from_dict(SPEC, path="<test>").points
    assert len(points) == 8
    runner._PARSED.clear()
    runner._COST_MODELS.clear()
    runner._GENERATED.clear()
    # twice over: the second pass finds every memo warm (parsing included)
    memo = run_points(points + points, SerialExecutor(), progress=False)
    assert len(runner._GENERATED) == 2 and len(runner._COST_MODELS) == 4
    with monkeypatch.context() as m:
        _without_memos(m)
        fresh = run_points(points + points, SerialExecutor(), progress=False)
    assert [r["status"] for r in memo] == ["ok"] * 16
    assert render_csv(memo) == render_csv(fresh)

    def numbers(r):
        return {k: v for k, v in r.items() if k not in ("wall_s", "cached")}
    assert [numbers(r) for r in memo] == [numbers(r) for r in fresh]
    # the NIC bandwidth and the cost model really changed the points
    assert len({r["iteration_ms"] for r in memo[:8]}) == 8


def test_warm_point_equals_simulate_on_the_generated_table(tmp_path):
    """A point run after others that share its workload and cluster (every memo warm) gives
    exactly the iteration `collsim simulate` gives on the generated table with that NIC."""
    base = {**SPEC["base"], "pp": 2, "cost_model": "simai"}
    for nic in (25.0, 100.0, 25.0):
        warm = runner.run_point({**base, "nic_bw": nic})
    assert warm["status"] == "ok"
    wl, js = tmp_path / "w.txt", tmp_path / "r.json"
    with redirect_stdout(io.StringIO()):
        assert main(["generate", "--model", "gpt-7b", "--world-size", "16", "--tp", "2",
                     "--pp", "2", "--num-layers", "2", "--seq-length", "1024",
                     "--global-batch", "16", "-o", str(wl), "--quiet"]) in (0, None)
        assert main(["simulate", str(wl), "--cost-model", "simai", "--nic-bw", "25",
                     "--json", str(js), "--quiet"]) in (0, None)
    by_hand = json.loads(js.read_text())
    assert warm["iteration_ms"] == by_hand["iteration_time_ns"] / 1e6
