"""Cases measured on four H200s (traces/h200x4/): the EP 4 MoE step and the collectives.

* The EP MoE step at EP 4 (``moe_step.csv``, runs 2 and 1), predicted as the 2-GPU case
  (:mod:`.moe_step`): the measured compute-only step, minus its modelled local stand-ins,
  plus the all-to-alls priced by the calibration fitted on the same machine's collectives
  (``calib_h200x4.yaml``; the measured remote shares are 0.73-0.76, so the even
  all-to-all). Counted where it repeats between the two runs
  (:func:`.moe_step.unrepeatable`: the host-bound 'small' case's compute-only step does
  not). The same step priced by the calibration the validation runs with (by default the
  2-GPU one, extrapolated to 4 ranks) is a diagnostic.
* The collectives at 4 ranks (``collectives_aligned.csv``): the calibration the validation
  runs with (by default fitted on 2 GPUs: an extrapolation) and ``calib_h200x4.yaml``
  (fitted on run 2) predicting run 1. Reported as a table, not counted.
"""
from __future__ import annotations

from pathlib import Path

from ..cluster import Cluster
from .common import TRACES, CaseResult, need, rel
from .moe_step import _parts, predict_case, unrepeatable

H200X4 = TRACES / "h200x4"
CALIBRATION = H200X4 / "calib_h200x4.yaml"
MOE_STEP = H200X4 / "moe_step.csv"
MOE_STEP_RUN1 = H200X4 / "run1" / "moe_step.csv"
COLLECTIVES = H200X4 / "collectives_aligned.csv"
COLLECTIVES_RUN1 = H200X4 / "run1" / "collectives_aligned.csv"


def _runs() -> list[tuple[str, Path]]:
    return [("run 2", MOE_STEP)] + ([("run 1", MOE_STEP_RUN1)] if MOE_STEP_RUN1.exists()
                                    else [])


def run(cost_model, cluster: Cluster) -> list[CaseResult]:
    from ..calibration import load_calibration

    own = load_calibration(need(CALIBRATION), cluster=cluster)
    loose = unrepeatable([path for _, path in _runs()])
    out = []
    for counted, cost, label in ((True, own, rel(CALIBRATION)),
                                 (False, cost_model, "the validation's calibration")):
        for run_label, path in _runs():
            data = _parts(path)
            for name in sorted(data, key=lambda n: (n != "mixtral", n)):
                parts = data[name]
                p = predict_case(parts, cost, cluster)
                cfg = parts["step"]
                case = f"H200x4 EP MoE step '{name}' ({run_label})"
                if not counted:
                    case += ", 4-rank all-to-alls extrapolated"
                out.append(CaseResult(
                    case=case, quantity="step (slowest rank, median)",
                    measured=float(cfg["time_us"]) / 1e3, predicted=p["step_ms"],
                    primary=counted and name not in loose,
                    inputs=("measured: compute-only step of the same run (all-to-alls replaced "
                            "by local copies), all-to-all sizes; modelled: the all-to-alls "
                            f"({label}), removal of the local stand-ins "
                            f"({p['standins_ms']:.2f} ms, HBM roofline)"),
                    note=(f"{rel(path)}; EP {cfg['ranks']}, hidden {cfg['hidden']}, ffn "
                          f"{cfg['ffn']}, {cfg['tokens']} tokens/rank, {cfg['experts']} "
                          f"experts, {cfg['layers']} layers; compute {p['compute_ms']:.2f} + "
                          f"all-to-all {p['a2a_ms']:.2f} ms (all-to-alls measured alone: "
                          f"{p['a2a_alone_measured_ms']:.2f} ms)"
                          + (f"; {loose[name]}" if name in loose else "")) if counted else "",
                    extra=p))
    return out


def collectives(calibration_path) -> dict | None:
    """Per op: errors of ``calibration_path`` on run 2 and of calib_h200x4.yaml on run 1."""
    from ..calibration.data import read_files
    from ..calibration.fit import evaluate
    from ..calibration.yamlio import load

    if not (COLLECTIVES.exists() and COLLECTIVES_RUN1.exists() and CALIBRATION.exists()):
        return None
    rows2, _ = read_files([str(COLLECTIVES)])
    rows1, _ = read_files([str(COLLECTIVES_RUN1)])
    given = load(calibration_path)
    same = Path(calibration_path).resolve() == CALIBRATION.resolve()
    return {"given": evaluate(given, rows2), "given_path": rel(Path(calibration_path)),
            "given_is_x4": same, "x4_on_run1": evaluate(load(CALIBRATION), rows1),
            "x4_path": rel(CALIBRATION), "data": rel(COLLECTIVES),
            "data_run1": rel(COLLECTIVES_RUN1)}


def table_rows(tab: dict) -> list[tuple[str, ...]]:
    """(op, points, given median, given max, x4-on-run-1 median, x4 max) in %."""
    rows = []
    g, x = tab["given"]["corrected"], tab["x4_on_run1"]["corrected"]
    for op in sorted(set(g) | set(x)):
        cells = [op, str(g[op]["all"]["n"]) if op in g else "-"]
        for t in (g, x):
            if op in t:
                cells += [f"{100 * t[op]['all']['median_abs']:.1f}",
                          f"{100 * t[op]['all']['max_abs']:.0f}"]
            else:
                cells += ["-", "-"]
        rows.append(tuple(cells))
    go, xo = tab["given"]["overall"]["corrected"], tab["x4_on_run1"]["overall"]["corrected"]
    rows.append(("all", str(go["n"]), f"{100 * go['median_abs']:.1f}",
                 f"{100 * go['max_abs']:.0f}", f"{100 * xo['median_abs']:.1f}",
                 f"{100 * xo['max_abs']:.0f}"))
    return rows


def source_files() -> list[str]:
    return [rel(p) for _, p in _runs()] + [rel(CALIBRATION), rel(COLLECTIVES),
                                           rel(COLLECTIVES_RUN1)]
