"""collsim sweep: grid expansion, cache, failure isolation, executors, CLI outputs."""
from __future__ import annotations

import csv
import json

import pytest

from simulator.cli import main
from simulator.errors import InputError
from simulator.sweep import runner
from simulator.sweep.runner import Cache, SerialExecutor, make_executor, run_points
from simulator.sweep.spec import load_spec, point_key, spec_from_dict

# small and fast: a 2-layer GPT-7B-shaped model, 1024-token sequences
BASE = {"model": "gpt-7b", "num_layers": 2, "seq_length": 1024, "global_batch": 16}


def small_spec(grid=None, points=None, **base):
    data = {"base": {**BASE, **base}, "grid": grid or {"gpus": [8, 16], "tp": [2, 4]}}
    if points is not None:
        data["points"] = points
    return spec_from_dict(data, path="<test>")


def test_grid_expansion_order_and_merge():
    spec = spec_from_dict({
        "base": {"model": "gpt-7b", "world_size": 8, "mbs": 2},
        "grid": {"tp": [1, 2, 4], "pp": [1, 2]},
        "points": [{"ep": 1}, {"seq_len": 2048}],
    })
    assert len(spec.points) == 3 * 2 * 2
    assert [(p["tp"], p["pp"]) for p in spec.points[:4]] == [(1, 1), (1, 1), (1, 2), (1, 2)]
    assert all(p["gpus"] == 8 and p["micro_batch"] == 2 for p in spec.points)
    assert {p["seq_length"] for p in spec.points} == {4096, 2048}
    assert spec.axes == ["tp", "pp", "seq_length"]
    # explicit list only
    spec = spec_from_dict({"base": {"model": "gpt-7b"}, "points": [{"gpus": 8}, {"gpus": 16}]})
    assert [p["gpus"] for p in spec.points] == [8, 16] and spec.axes == ["gpus"]


def test_spec_errors_name_the_line(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("base:\n  model: gpt-7b\n  gpus: 8\ngrid:\n  tp: [1, 2]\n  tpp: [1]\n")
    with pytest.raises(InputError) as err:
        load_spec(str(p))
    assert err.value.line == 6 and "tpp" in str(err.value)
    p.write_text("base:\n  model: gpt-7b\ngrid:\n  tp: [1, 2]\n")
    with pytest.raises(InputError, match="GPU count"):
        load_spec(str(p))
    p.write_text("base:\n  model: gpt-7b\n  gpus: 8\n  cost_model: busbw\n")
    with pytest.raises(InputError, match="known: nccl, simai"):
        load_spec(str(p))
    p.write_text("base:\n  model: gpt-7b\n  gpus: eight\n")
    with pytest.raises(InputError) as err:
        load_spec(str(p))
    assert err.value.line == 3


def test_spec_shape_errors_name_the_section_once(tmp_path):
    # a list under grid: (a common slip for explicit points) names the line and the section
    # once ('s.yaml:4: grid: expected ...', not 'grid: grid: expected') and says where a list
    # of points goes
    p = tmp_path / "s.yaml"
    p.write_text("base:\n  model: gpt-7b\n  gpus: 8\ngrid:\n  - {tp: 2}\n")
    with pytest.raises(InputError) as err:
        load_spec(str(p))
    assert err.value.line == 4
    assert str(err.value).count("grid:") == 1 and "'points:'" in str(err.value)
    p.write_text("base: [1]\n")
    with pytest.raises(InputError) as err:
        load_spec(str(p))
    assert str(err.value).count("base:") == 1
    p.write_text("base:\n  model: gpt-7b\n  gpus: 8\npoints: {tp: 2}\n")
    with pytest.raises(InputError) as err:
        load_spec(str(p))
    assert err.value.line == 4 and str(err.value).count("points:") == 1


def test_point_key_is_stable_and_discriminating():
    a = small_spec().points[0]
    assert point_key(a) == point_key(dict(a))
    assert point_key(a) != point_key({**a, "nic_bw": 25.0})


def test_run_and_infeasible_points_recorded():
    spec = small_spec(grid={"gpus": [8], "tp": [2, 3]})
    res = run_points(spec.points, SerialExecutor(), progress=False)
    assert [r["status"] for r in res] == ["ok", "infeasible"]
    ok, bad = res
    assert ok["iteration_ms"] > ok["compute_ms"] > 0 and 0 < ok["mfu"] < 1
    # a sweep user wrote gpus: and tp: (keys), not --world-size: the error names the key
    assert bad["error"].startswith("gpus: 8 GPUs are not divisible by TP x PP = 3 x 1")


def test_point_matches_generate_then_simulate(tmp_path):
    """The sweep's numbers for one point are those of the two commands a user would run by
    hand, and its throughput is the spec's tokens over that step: global batch 16 x 1,024
    tokens = 16,384 tokens per step, on 8 GPUs."""
    import io
    from contextlib import redirect_stdout

    res = run_points(small_spec(grid={"gpus": [8], "tp": [2]}).points, SerialExecutor(),
                     progress=False)[0]
    wl, js = tmp_path / "w.txt", tmp_path / "r.json"
    with redirect_stdout(io.StringIO()):
        assert main(["generate", "--model", "gpt-7b", "--world-size", "8", "--tp", "2",
                     "--num-layers", "2", "--seq-length", "1024", "--global-batch", "16",
                     "-o", str(wl), "--quiet"]) in (0, None)
        assert main(["simulate", str(wl), "--json", str(js), "--quiet"]) in (0, None)
    by_hand = json.loads(js.read_text())
    step_s = by_hand["iteration_time_ns"] / 1e9
    assert res["iteration_ms"] == pytest.approx(by_hand["iteration_time_ns"] / 1e6, rel=1e-12)
    assert res["compute_ms"] == pytest.approx(by_hand["compute_us"] / 1e3, rel=1e-6)
    assert res["tokens_per_s"] == pytest.approx(16_384 / step_s, rel=1e-9)
    assert res["tokens_per_s_per_gpu"] == pytest.approx(16_384 / step_s / 8, rel=1e-9)


def test_cache_second_run_computes_nothing(tmp_path, monkeypatch):
    spec = small_spec()
    cache = Cache(str(tmp_path / "cache"))
    first = run_points(spec.points, SerialExecutor(), cache, progress=False)
    assert not any(r["cached"] for r in first)
    assert len(list((tmp_path / "cache").glob("*.json"))) == 4

    def boom(*a, **k):
        raise AssertionError("computed a cached point")
    monkeypatch.setattr(runner, "run_point", boom)
    second = run_points(spec.points, SerialExecutor(), cache, progress=False)
    assert all(r["cached"] for r in second)
    assert [r["iteration_ms"] for r in second] == [r["iteration_ms"] for r in first]


def test_failure_isolation_and_errors_not_cached(tmp_path, monkeypatch):
    spec = small_spec()
    real = runner._simulate_point

    def flaky(p, base_dir):
        if p["gpus"] == 16 and p["tp"] == 2:
            raise ZeroDivisionError("boom")
        return real(p, base_dir)
    monkeypatch.setattr(runner, "_simulate_point", flaky)
    cache = Cache(str(tmp_path / "c"))
    res = run_points(spec.points, SerialExecutor(), cache, progress=False)
    assert [r["status"] for r in res] == ["ok", "ok", "error", "ok"]
    assert res[2]["error"].startswith("ZeroDivisionError: boom")
    assert len(list((tmp_path / "c").glob("*.json"))) == 3  # the failure is retried next time


def test_process_pool_matches_serial():
    spec = small_spec(grid={"gpus": [8, 16], "tp": [2, 4], "ep": [1, 2]})
    serial = run_points(spec.points, SerialExecutor(), progress=False)
    with make_executor("process", jobs=2) as ex:
        pooled = run_points(spec.points, ex, progress=False)
    strip = lambda rs: [(r["status"], r.get("iteration_ms"), r["error"]) for r in rs]  # noqa
    assert strip(pooled) == strip(serial)
    assert [r["status"] for r in serial].count("infeasible") == 4  # EP 2 on a dense model


def test_chunk_size_by_hand():
    # about eight calls per worker, at most 32 points a call, one point for small sweeps:
    # 10,000 points on 2 workers -> 10000 // 16 = 625, capped at 32; 100 -> 100 // 16 = 6;
    # 12 -> 0, at least 1
    assert runner.chunk_size(10_000, 2) == 32
    assert runner.chunk_size(100, 2) == 6
    assert runner.chunk_size(12, 2) == 1
    assert runner.chunk_size(5, 0) == 1


def test_process_pool_in_chunks_matches_serial(monkeypatch):
    """Several points a call into a worker (as a large sweep sends them): the same results in
    the same order as one point a call in this process."""
    spec = small_spec(grid={"gpus": [8, 16], "tp": [2, 4], "ep": [1, 2]})
    serial = run_points(spec.points, SerialExecutor(), progress=False)
    monkeypatch.setattr(runner, "chunk_size", lambda points, workers: 3)   # 8 -> 3 + 3 + 2
    with make_executor("process", jobs=2) as ex:
        pooled = run_points(spec.points, ex, progress=False)
    strip = lambda rs: [(r["point"], r["status"], r.get("iteration_ms"), r["error"])  # noqa
                        for r in rs]
    assert strip(pooled) == strip(serial)


_real_run_point = None


def _deadly_point(point, base_dir="."):
    import os
    import signal

    if point["tp"] == 2 and point["gpus"] == 16:
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_run_point(point, base_dir)


def test_a_killed_worker_in_a_chunk_fails_only_its_point(monkeypatch):
    """A point that kills its worker takes its chunk's other points down with it; they are
    run again (alone after a second break) and only the deadly point is an error."""
    global _real_run_point
    _real_run_point = runner.run_point
    monkeypatch.setattr(runner, "run_point", _deadly_point)   # forked workers see it
    monkeypatch.setattr(runner, "chunk_size", lambda points, workers: 4)
    spec = small_spec(grid={"gpus": [8, 16], "tp": [1, 2, 4, 8]})
    with make_executor("process", jobs=2) as ex:
        res = run_points(spec.points, ex, Cache(None), progress=False)
    status = {(r["point"]["gpus"], r["point"]["tp"]): r["status"] for r in res}
    assert status.pop((16, 2)) == "error"
    assert set(status.values()) == {"ok"}, [r["error"] for r in res]


def test_dask_local_cluster():
    pytest.importorskip("dask.distributed")
    spec = small_spec(grid={"gpus": [8], "tp": [2, 4]})
    with make_executor("dask", jobs=2) as ex:
        res = run_points(spec.points, ex, progress=False)
    assert [r["status"] for r in res] == ["ok", "ok"]


def test_cli_sweep_outputs_and_rerun(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: small\nbase:\n  model: mixtral-8x7b\n  num_layers: 2\n  seq_length: 1024\n"
        "  global_batch: 64\ngrid:\n  gpus: [16, 32]\n  tp: [1, 2]\n  ep: [1, 2, 3]\n"
        "plots:\n  heatmap: [tp, ep]\n")
    out = tmp_path / "r.csv"
    rc = main(["sweep", str(spec), "-o", str(out), "--jobs", "2", "--quiet"])
    assert rc == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 12
    assert {r["status"] for r in rows} == {"ok", "infeasible"}
    assert all(r["status"] == "infeasible" for r in rows if r["ep"] == "3")
    for suffix in ("heatmap", "breakdown", "pareto"):
        png = tmp_path / f"r-{suffix}.png"
        assert png.read_bytes()[:4] == b"\x89PNG"
    rc = main(["sweep", str(spec), "-o", str(out), "--executor", "serial"])
    printed = capsys.readouterr().out
    assert rc == 0 and "12 from the cache" in printed and "best" in printed
    cached = json.loads(next((tmp_path / "r.cache").glob("*.json")).read_text())
    assert cached["status"] in ("ok", "infeasible") and "point" in cached


def test_shipped_mixtral_spec_expands():
    from repo_paths import ROOT
    spec = load_spec(str(ROOT / "workloads" / "sweeps" / "mixtral_tp_ep_pp.yaml"))
    assert len(spec.points) == 4 * 4 * 4 * 3
    assert {p["gpus"] for p in spec.points} == {64, 128, 256, 512}
    assert spec.heatmap == ("tp", "ep")


def test_topology_and_calibration_points_use_the_simulate_builder(tmp_path):
    """A point with a topology or a calibration is priced exactly as `collsim generate` then
    `collsim simulate --topology/--calibration/--cost-model` price the same workload: the
    same builder, and the rules simulate reads from the table's sidecar (the tied-embedding
    all-reduce at PP 2, Megatron's blocking sends) apply to the point too."""
    import json

    from cli_helpers import run_cli
    from simulator.sweep.runner import _simulate_point
    from repo_paths import ROOT

    calib = str(ROOT / "traces" / "h200x2" / "calib_h200x2.yaml")
    base = {"model": "gpt-7b", "gpus": 16, "tp": 4, "pp": 2, "global_batch": 16,
            "seq_length": 2048, "distributed_optimizer": True}
    table = tmp_path / "gpt7b.txt"
    rc, _, err = run_cli(["generate", "--model", "gpt-7b", "--gpus", 16, "--tp", 4, "--pp", 2,
                          "--global-batch", 16, "--seq-length", 2048,
                          "--use-distributed-optimizer", "-o", table, "--quiet"])
    assert rc == 0, err
    times = {}
    for topo, cal, cm in ((None, None, "simai"), ("dgx-h100", None, None), (None, calib, None)):
        point = dict(base, topology=topo, calibration=cal, cost_model=cm)
        got = _simulate_point(point, str(tmp_path))["iteration_ms"]
        flags = ([f"--topology={topo}"] if topo else []) + (
            [f"--calibration={cal}"] if cal else []) + ([f"--cost-model={cm}"] if cm else [])
        out = tmp_path / f"sim{len(times)}.json"
        rc, _, err = run_cli(["simulate", table, *flags, "--json", out, "--quiet"])
        assert rc == 0, err
        want = json.loads(out.read_text())["iteration_time_ns"] / 1e6
        assert got == pytest.approx(want, rel=1e-12)
        times[(topo, cal)] = got
    assert len(set(times.values())) == 3  # each cost model gives its own answer


def test_megatron_features_are_sweep_keys():
    # DP 8 (16 GPUs, TP 2): reducing the gradients during the backward can only shorten the
    # step; selective recompute replays the attention kernels (recompute > 0), none without
    spec = small_spec(grid={"gpus": [16], "tp": [2], "overlap_grad_reduce": [False, True],
                            "recompute_granularity": [None, "selective"]})
    res = {(r["point"]["overlap_grad_reduce"], r["point"]["recompute_granularity"]): r
           for r in run_points(spec.points, SerialExecutor(), progress=False)}
    assert all(r["status"] == "ok" for r in res.values())
    assert res[(True, None)]["iteration_ms"] < res[(False, None)]["iteration_ms"]
    assert res[(False, None)]["recompute_ms"] == 0 < res[(False, "selective")]["recompute_ms"]
    bad = run_points(small_spec(grid={"gpus": [16], "cp": [3]}).points, SerialExecutor(),
                     progress=False)[0]
    assert bad["status"] == "infeasible" and "CP" in bad["error"]


def test_points_sharing_workload_keys_generate_once(monkeypatch):
    """Points that differ only in a cluster key (nic_bw) reuse one generated workload; a
    point with another workload key (num_layers) generates its own. The reused points give
    the numbers a fresh generation gives (the memo emptied before each)."""
    import simulator.generate as gen_mod

    real = gen_mod.generate
    calls = []

    def counting(cfg, **kw):
        calls.append(cfg)
        return real(cfg, **kw)
    monkeypatch.setattr(gen_mod, "generate", counting)
    monkeypatch.setattr(runner, "_GENERATED", type(runner._GENERATED)())
    spec = small_spec(grid={"gpus": [16], "tp": [2], "nic_bw": [25.0, 50.0, 100.0],
                            "num_layers": [2, 4]})
    memoized = run_points(spec.points, SerialExecutor(), progress=False)
    assert [r["status"] for r in memoized] == ["ok"] * 6
    assert len(calls) == 2  # one per num_layers value, not one per point
    fresh = []
    for p in spec.points:
        runner._GENERATED.clear()
        fresh.append(runner.run_point(p))
    assert len(calls) == 8
    assert [r["iteration_ms"] for r in memoized] == [r["iteration_ms"] for r in fresh]
    # the NIC bandwidth really changed the points (else sharing would prove nothing)
    assert len({r["iteration_ms"] for r in memoized}) > 2


def test_a_point_for_an_a100_is_priced_on_the_a100_preset(tmp_path):
    """A point that names its GPU and no cluster is priced on that GPU's preset, as
    `collsim simulate` prices the generated table (its sidecar names the GPU): the same
    iteration as the CLI's, and not the one of the default DGX H100 cluster."""
    import json

    from cli_helpers import run_cli
    from simulator.sweep.runner import _simulate_point

    table = tmp_path / "a100.txt"
    rc, _, err = run_cli(["generate", "--model", "gpt-7b", "--gpus", 16, "--tp", 4, "--pp", 2,
                          "--global-batch", 16, "--seq-length", 2048, "--gpu", "a100",
                          "-o", table, "--quiet"])
    assert rc == 0, err
    point = {"model": "gpt-7b", "gpus": 16, "tp": 4, "pp": 2, "global_batch": 16,
             "seq_length": 2048, "gpu": "a100"}
    got = _simulate_point(point, str(tmp_path))["iteration_ms"]
    results = {}
    for name, flags in (("own", []), ("h100", ["--topology=dgx-h100"])):
        out = tmp_path / f"{name}.json"
        rc, _, err = run_cli(["simulate", table, *flags, "--json", out, "--quiet"])
        assert rc == 0, err
        results[name] = json.loads(out.read_text())["iteration_time_ns"] / 1e6
    assert got == pytest.approx(results["own"], rel=1e-12)
    # A100's NVLink (300 GB/s) and 200 Gbit/s NICs are slower than the H100 preset's
    assert got > results["h100"]
