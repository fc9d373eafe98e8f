"""Calibration of the communication model on measured collectives (``collsim calibrate``).

``calibrate(files)`` fits the model of :mod:`.model` (structural terms per placement class,
then per-size-band corrections per measured operation) and returns a
:class:`~.fit.Calibration` with its residuals and a cross-validated error; ``save`` writes
it as YAML. ``load_calibration(path)`` gives a :class:`CalibratedCostModel` for the engine;
``wrap_with_calibration(cluster, cost_model, path)`` puts one in front of any cost model.
See docs/calibration.md.
"""
from __future__ import annotations

from .costmodel import CalibratedCostModel, load_calibration, wrap_with_calibration
from .fit import Calibration

__all__ = ["CalibratedCostModel", "Calibration", "calibrate", "evaluate_files",
           "load_calibration", "wrap_with_calibration", "save"]


def calibrate(paths: list[str], ops: list[str] | None = None, method: str | None = None,
              method_default: str | None = None, placement: str | None = None,
              folds: int = 5, knot_octaves: float | None = None,
              nccl_tests_op: str | None = None) -> Calibration:
    """Read measurement files, fit, and attach residuals and cross-validation."""
    from .data import read_files, select
    from .fit import OUTLIER_RATIO
    from .fit import DEFAULT_KNOT_OCTAVES, cross_validate, fit, outliers, residuals

    octaves = knot_octaves or DEFAULT_KNOT_OCTAVES
    rows, sources = read_files(paths, method_default=method_default, placement=placement,
                               nccl_tests_op=nccl_tests_op)
    chosen, method_class = select(rows, ops, method)
    cal = fit(chosen, octaves, method_class)
    used: dict[str, int] = {}
    for r in chosen:
        used[r.source] = used.get(r.source, 0) + 1
    for s in sources:
        s["used"] = used.get(s["path"], 0)
    cal.sources = sources
    cal.methods = sorted({r.method for r in chosen})
    cal.selection = {"ops": sorted({r.op for r in chosen}), "method": method_class,
                     "rows": len(chosen),
                     "sizes": [min(r.size for r in chosen), max(r.size for r in chosen)]}
    cal.residuals = residuals(cal, chosen)
    cal.outliers = outliers(cal, chosen)
    if cal.outliers:
        from ..errors import warn
        shown = "; ".join(
            f"{r.source}: {r.op} {r.ranks} ranks {r.size} bytes measured {r.time_us:.4g} us, "
            f"fitted {r.time_us * ratio:.4g} us" for r, ratio in cal.outliers[:3])
        more = f" (+{len(cal.outliers) - 3} more)" if len(cal.outliers) > 3 else ""
        warn(f"{len(cal.outliers)} measurement(s) the fit misses by more than "
             f"{OUTLIER_RATIO:g}x and far more than their neighbours, check them: {shown}{more}")
    if folds:
        cal.cross_validation = cross_validate(chosen, folds, octaves)
    cal.rows = chosen
    return cal


def save(cal: Calibration, path: str) -> str:
    from .yamlio import dump
    return dump(cal, path)


def evaluate_files(cal: Calibration, paths: list[str], method_default: str | None = None,
                   placement: str | None = None, nccl_tests_op: str | None = None) -> dict:
    """The calibrated prediction's errors on other measurement files (collectives that were
    not fitted, another run): an evaluate() block with the files under ``files``. Only the
    measurements of the calibration's method class count."""
    from .data import read_files
    from .fit import evaluate

    rows, _ = read_files(paths, method_default=method_default, placement=placement,
                         nccl_tests_op=nccl_tests_op)
    rows = [r for r in rows if r.method_class == cal.method_class]
    if not rows:
        from ..errors import InputError
        raise InputError(f"the --test files hold no {cal.method_class} measurements")
    test = evaluate(cal, rows)
    test["files"] = list(paths)
    return test
