"""`collsim calibrate`: the fit recovers known parameters, cross-validation arithmetic, the
calibrated cost model in the engine, the CLI, and malformed calibration YAML."""
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, shared_path
from simulator.calibration import calibrate, load_calibration, wrap_with_calibration
from simulator.calibration.data import CalRow, detect_format
from simulator.calibration.fit import (cross_validate, error_table, fit,
                                       fit_curve, fold_of_sizes, residuals, summarize)
from simulator.calibration.model import (INTER, INTRA, ClassParams, Curve, OpCorrection,
                                         band_of, knot_grid, wire_bytes)
from simulator.calibration.yamlio import dump, loads
from simulator.cluster import Cluster
from simulator.costmodel.analytical import AnalyticalCostModel
from simulator.errors import InputError
from simulator.parallel import GroupPlacement
from simulator.workload import Op

COLLECTIVES = ROOT / "traces" / "h200x2" / "collectives.csv"
SIZES = [2 ** k for k in range(10, 31)]
TRUE = ClassParams(scope=INTRA, overhead_us=25.0, latency_us=8.0, step_latency_us=2.0,
                   link_gbps=200.0, copy_gbps=900.0, dispatch_us=15.0)


def collsim(*args):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def synthetic(params=TRUE, factor=None, ranks=(2, 4)):
    """Exact times of a known model (optionally times a known correction of all_to_all)."""
    rows = []
    for n in ranks:
        for op, share in [("all_reduce", None), ("all_gather", None), ("all_to_all", None),
                          ("broadcast", None), ("sendrecv", None), ("moe_all_to_all", 0.0),
                          ("moe_all_to_all", 0.25), ("moe_all_to_all", 1.0)]:
            for s in SIZES:
                t = params.predict_us(op, n, s, share)
                if factor is not None and op == "all_to_all":
                    t *= factor(s)
                rows.append(CalRow(op=op, ranks=n, size=s, time_us=t, share=share,
                                   scope=INTRA, per_server=n, method="torch", method_class=
                                   "in-framework", host_us=params.dispatch_us, source="synth"))
    return rows


def test_fit_recovers_known_parameters():
    cal = fit(synthetic())
    p = cal.classes[INTRA]
    assert p.overhead_us == pytest.approx(25.0, rel=1e-3)
    assert p.latency_us == pytest.approx(8.0, rel=1e-2)
    assert p.step_latency_us == pytest.approx(2.0, rel=1e-2)
    assert p.link_gbps == pytest.approx(200.0, rel=1e-3)
    assert p.copy_gbps == pytest.approx(900.0, rel=1e-2)
    assert p.dispatch_us == 15.0
    res = residuals(cal, synthetic())
    assert res["overall"]["structural"]["max_abs"] < 1e-3
    assert res["overall"]["corrected"]["max_abs"] < 1e-3
    for corr in cal.corrections.values():
        for curve in corr.curves.values():
            assert max(abs(f - 1) for f in curve.factors) < 2e-3


def test_corrections_recover_a_known_size_band_factor():
    # all_to_all runs 30% slow between 64 KiB and 16 MiB (a smooth bump in log size)
    def bump(s):
        return 1.0 + 0.3 * np.interp(np.log2(s), [13, 16, 24, 27], [0, 1, 1, 0])

    rows = synthetic(factor=bump)
    cal = fit(rows)
    # the structural part stays with the other operations (robust loss), the correction
    # takes the bump
    assert cal.classes[INTRA].link_gbps == pytest.approx(200.0, rel=0.02)
    a2a = [r for r in rows if r.op == "all_to_all"]
    res = residuals(cal, a2a)
    assert res["overall"]["structural"]["max_abs"] > 0.15
    assert res["overall"]["corrected"]["median_abs"] < 0.02
    f = cal.factor("all_to_all", 2, 2 ** 20)
    assert f[1] == "op" and f[0] == pytest.approx(1.3, rel=0.03)


def test_cross_validation_arithmetic():
    rows = synthetic(ranks=(2,))
    folds = fold_of_sizes(rows, 5)
    assert [folds[s] for s in SIZES[:7]] == [0, 1, 2, 3, 4, 0, 1]
    cv = cross_validate(rows, k=5)
    assert cv["folds"] == 5
    assert cv["overall"]["corrected"]["n"] == len(rows)   # every point predicted once
    assert cv["overall"]["corrected"]["max_abs"] < 1e-2   # an exact model cross-validates
    with pytest.raises(InputError, match="lower --folds"):
        cross_validate(rows, k=11)
    # the summaries: median and max of |error|, per band
    s = summarize([0.1, -0.3, 0.02])
    assert s["median_abs"] == pytest.approx(0.1) and s["max_abs"] == pytest.approx(0.3)
    r = [CalRow("all_to_all", 2, size, 1.0, None, INTRA, 2, "", "", None, "")
         for size in (1024, 65536, 65537, 2 ** 24, 2 ** 30)]
    tab = error_table(r, [0.01, 0.03, -0.2, 0.5, 0.1])
    assert tab["all_to_all"]["<=64KiB"]["n"] == 2
    assert tab["all_to_all"]["64KiB-16MiB"]["median_abs"] == pytest.approx(0.2)
    assert tab["all_to_all"][">=16MiB"]["median_abs"] == pytest.approx(0.3)
    assert tab["all_to_all"]["all"]["median_abs"] == pytest.approx(0.1)
    assert [band_of(x) for x in (65536, 65537, 2 ** 24 - 1, 2 ** 24)] == [
        "<=64KiB", "64KiB-16MiB", "64KiB-16MiB", ">=16MiB"]


def test_curve_and_knots():
    assert knot_grid([1024, 2 ** 30], 3)[:3] == (1024.0, 8192.0, 65536.0)
    assert knot_grid([1024, 2 ** 30], 3)[-1] == 2.0 ** 30
    c = Curve((1024.0, 4096.0), (1.0, 2.0))
    assert c(512) == 1.0 and c(2048) == pytest.approx(1.5) and c(1e9) == 2.0
    x = np.array(SIZES, dtype=float)
    fitted = fit_curve(x, np.full(len(x), 1 / 1.2), knot_grid(x, 3))  # 20% too fast
    assert all(f == pytest.approx(1.2, rel=0.02) for f in fitted.factors)
    corr = OpCorrection("moe_all_to_all", INTRA, 2, {0.0: Curve((1.0,), (2.0,)),
                                                      1.0: Curve((1.0,), (1.0,))})
    assert corr.factor(100, 0.25) == pytest.approx(1.75)


def test_wire_bytes_follow_nccl_tests_bus_factors():
    assert wire_bytes("all_reduce", 4, 1000) == 1500
    assert wire_bytes("all_gather", 4, 1000) == 750
    assert wire_bytes("broadcast", 4, 1000) == 1000
    assert wire_bytes("moe_all_to_all", 2, 1000, 0.25) == 250
    assert wire_bytes("all_to_all", 16, 1600, None, 8, INTER) == 800


def test_calibrated_cost_model_in_front_of_a_base_model():
    cal = fit(synthetic())
    cluster = Cluster()
    base = AnalyticalCostModel(cluster)
    text = dump(cal)
    model = wrap_with_calibration(cluster, base, _write(text))
    intra = GroupPlacement(size=2, servers=1, max_per_server=2, same_local_index=False)
    inter = GroupPlacement(size=2, servers=2, max_per_server=1, same_local_index=True)
    got = model.collective_ns(Op.ALLREDUCE, 2 ** 26, intra)
    assert got == pytest.approx(TRUE.predict_us("all_reduce", 2, 2 ** 26) * 1e3, rel=1e-3)
    assert model.collective_ns(Op.ALLREDUCE, 2 ** 26, inter) == base.collective_ns(
        Op.ALLREDUCE, 2 ** 26, inter)
    d = model.describe()
    assert d["priced_by_base"] == ["ALLREDUCE inter-server n=2"]
    assert model.alltoall_uneven_ns(2 ** 26, intra, 1.0) == pytest.approx(
        TRUE.predict_us("moe_all_to_all", 2, 2 ** 26, 1.0) * 1e3, rel=1e-3)


def _write(text):
    import tempfile
    fh = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    fh.write(text)
    fh.close()
    return fh.name


def test_cli_calibrate_is_deterministic_and_loads_back(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    p = collsim("calibrate", COLLECTIVES, "-o", a)
    assert p.returncode == 0, p.stderr
    assert "cross-validated (5-fold over sizes" in p.stdout
    for op in ("all_reduce", "all_to_all", "moe_all_to_all", "sendrecv"):
        assert op in p.stdout
    assert "<=64KiB" in p.stdout and ">=16MiB" in p.stdout
    q = collsim("calibrate", COLLECTIVES, "-o", b)
    assert q.returncode == 0 and q.stdout.replace(str(b), "") == p.stdout.replace(str(a), "")
    assert a.read_text() == b.read_text()
    text = a.read_text()
    for key in ("method:", "class: in-framework", "sources:", "sha256", "residuals:",
                "cross_validation:", "overhead_us", "link_gbps", "copy_gbps"):
        assert key in text
    model = load_calibration(a)
    cal = calibrate([str(COLLECTIVES)], folds=0)
    p2 = GroupPlacement(size=2, servers=1, max_per_server=2, same_local_index=False)
    for op, name in ((Op.ALLREDUCE, "all_reduce"), (Op.ALLTOALL, "all_to_all")):
        for size in (1024, 2 ** 20, 2 ** 30):
            assert model.collective_ns(op, size, p2) / 1e3 == pytest.approx(
                cal.predict_us(name, 2, size), rel=1e-4)


def test_cli_a2a_only_with_test_files(tmp_path):
    out = tmp_path / "a2a.yaml"
    p = collsim("calibrate", COLLECTIVES, "--ops", "all_to_all,moe_all_to_all", "--folds", "0",
                "--test", COLLECTIVES, "-o", out)
    assert p.returncode == 0, p.stderr
    assert "test files" in p.stdout and "all_to_all *" in p.stdout
    assert "cross-validated" not in p.stdout
    text = out.read_text()
    assert "test:" in text and "ops: [all_to_all, moe_all_to_all]" in text
    load_calibration(out)  # the appended test block does not disturb loading


def test_bad_inputs_are_one_line_errors(tmp_path):
    p = collsim("calibrate", tmp_path / "missing.csv", "-o", tmp_path / "x.yaml")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "no such file" in p.stderr
    csv = tmp_path / "m.csv"
    csv.write_text("op,ranks,bytes,time_us,method\nall_to_all,2,1024,30,torch\n"
                   "all_to_all,2,2048,31,nccl-tests\n")
    p = collsim("calibrate", csv, "-o", tmp_path / "x.yaml")
    assert p.returncode == 2 and "mix measuring methods" in p.stderr
    p = collsim("calibrate", csv, "--method", "in-framework", "-o", tmp_path / "x.yaml")
    assert p.returncode == 2 and "3 or more sizes" in p.stderr


MALFORMED = [
    ("format: collsim-calibration/1\nmodel:\n  classes:\n  - scope: intra-server\n"
     "    overhead_us: [1\n", 6, "not valid YAML"),
    ("format: collsim-calibration/1\nmodel:\n  classes:\n  - scope: intra-server\n"
     "    overhead_us: 1\n    latency_us: 1\n    step_latency_us: 1\n    link_gbps: fast\n",
     8, "link_gbps: expected a number"),
    ("format: collsim-calibration/1\nmodel:\n  classes:\n  - scope: intra-server\n"
     "    overhead_us: 1\n", 4, "missing key 'latency_us'"),
    ("format: collsim-calibration/1\nmodel:\n  classes:\n  - scope: nowhere\n", 4,
     "expected one of"),
    ("format: v0\n", 1, "expected 'collsim-calibration/1'"),
]


@pytest.mark.parametrize("text,line,message", MALFORMED)
def test_malformed_calibration_yaml_names_the_line(text, line, message):
    with pytest.raises(InputError) as info:
        loads(text, path="c.yaml")
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"c.yaml:{line}:")


def test_malformed_yaml_through_the_cli(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(MALFORMED[1][0])
    p = collsim("validate", "--calibration", bad, "--no-docs")
    assert p.returncode == 2
    assert p.stderr.strip() == f"collsim: error: {bad}:8: model.classes[0].link_gbps: " \
                               "expected a number, got 'fast'"


def test_nccl_tests_output_is_detected(tmp_path):
    path = shared_path("measurements", "nccl-tests_alltoall_perf_2xh200.txt")
    assert detect_format(str(path)) == "nccl-tests"
    assert detect_format(str(COLLECTIVES)) == "csv"
    cal = calibrate([str(path)], folds=3)
    assert cal.method_class == "nccl-tests"
    assert cal.classes[INTRA].overhead_us < 20  # nccl-tests sees no framework dispatch
