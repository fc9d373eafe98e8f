"""Least-squares fits of the calibrated model, residuals and cross-validation.

1. Structural parameters per placement class (:class:`~.model.ClassParams`): nonlinear
   least squares on the relative error ``predicted / measured - 1`` of every measurement of
   that class, all operations together, with a robust (soft L1) loss so one odd point cannot
   pull the fit; a weak prior keeps the per-step latency near NCCL's per-hop latency where
   the data cannot tell it apart from the fixed latency (two ranks).
2. Correction factors per measured (operation, class, ranks[, remote share]): linear least
   squares on the same relative error with Huber reweighting and a small ridge towards 1.
3. A transfer correction per class, keyed by wire bytes, from every even-operation
   measurement of the class: used for operations that were not measured.

Cross-validation is k-fold over the distinct sizes (size i goes to fold i mod k): each fold
refits everything on the other sizes and predicts its own.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np

from ..errors import InputError
from .data import CalRow
from .model import (BANDS, FRAMEWORK_CALLS, INTER, INTRA, ClassParams, Curve, OpCorrection,
                    band_of, knot_grid, local_bytes, steps, wire_bytes)

#: prior per-step latency (us): NCCL's per-hop latency, NVLink / network (docs/cost-models.md)
STEP_PRIOR_US = {INTRA: 1.0, INTER: 4.0}
PRIOR_WEIGHT = 0.01
ROBUST_SCALE = 0.05     # soft-L1 scale of the structural fit (relative error)
RIDGE = 0.05            # correction factors: pull towards 1 (per knot)
HUBER = 0.10            # correction factors: residuals beyond 10% are down-weighted
DEFAULT_KNOT_OCTAVES = 3.0


class Calibration:
    """A fitted model: class parameters and corrections, and how it was made."""

    def __init__(self, classes: dict[str, ClassParams],
                 corrections: dict[tuple[str, str, int], OpCorrection],
                 method_class: str = "", knot_octaves: float = DEFAULT_KNOT_OCTAVES):
        self.classes = classes
        self.corrections = corrections
        self.method_class = method_class
        self.knot_octaves = knot_octaves
        self.methods: list[str] = []
        self.sources: list[dict] = []
        self.selection: dict = {}
        self.residuals: dict = {}
        self.outliers: list = []   # (row, predicted / measured) the fit misses far (see outliers)
        self.rows: list[CalRow] = []   # the measurements fitted (after selection)
        self.cross_validation: dict | None = None
        self.path: str | None = None

    # -- prediction ---------------------------------------------------------------------
    def structural_us(self, op: str, n: int, size: float, share: float | None = None,
                      scope: str = INTRA, per_server: int | None = None) -> float | None:
        params = self.classes.get(scope)
        if params is None:
            return None
        return params.predict_us(op, n, size, share, per_server)

    def factor(self, op: str, n: int, size: float, share: float | None = None,
               scope: str = INTRA, per_server: int | None = None) -> tuple[float, str]:
        """The correction factor and where it came from (``op``, ``transfer`` or ``none``)."""
        corr = self.corrections.get((op, scope, n))
        if corr is not None:
            return corr.factor(size, share), "op"
        if op == "all_to_all":
            corr = self.corrections.get(("moe_all_to_all", scope, n))
            if corr is not None:
                return corr.factor(size, (n - 1) / n), "op"
        if op == "moe_all_to_all" and (share is None or abs(share - (n - 1) / n) < 0.02):
            corr = self.corrections.get(("all_to_all", scope, n))
            if corr is not None:
                return corr.factor(size, None), "op"
        params = self.classes.get(scope)
        if params is not None and params.transfer is not None:
            w = wire_bytes(op, n, size, share, per_server, scope)
            return params.transfer(w), "transfer"
        return 1.0, "none"

    def predict_us(self, op: str, n: int, size: float, share: float | None = None,
                   scope: str = INTRA, per_server: int | None = None) -> float | None:
        """Calibrated time in microseconds; None where the class was not calibrated."""
        base = self.structural_us(op, n, size, share, scope, per_server)
        if base is None:
            return None
        f, _ = self.factor(op, n, size, share, scope, per_server)
        return base * f

    def predict_row(self, r: CalRow) -> float | None:
        return self.predict_us(r.op, r.ranks, r.size, r.share, r.scope, r.per_server)

    def fitted_row_us(self, r: CalRow) -> tuple[float, float]:
        """(structural, calibrated) time of a row whose class this calibration fitted."""
        s = self.structural_us(r.op, r.ranks, r.size, r.share, r.scope, r.per_server)
        if s is None:
            raise InputError(f"{r.source}: {r.op} {r.ranks} ranks: no fitted parameters for "
                             f"placement class {r.scope!r} (measure it at 3 or more sizes)")
        return s, s * self.factor(r.op, r.ranks, r.size, r.share, r.scope, r.per_server)[0]


# ------------------------------------------------------------------------------------------
# structural fit
# ------------------------------------------------------------------------------------------

def _arrays(rows: list[CalRow]) -> dict[str, np.ndarray]:
    return {
        "extra": np.array([FRAMEWORK_CALLS.get(r.op, 1) - 1 for r in rows], dtype=float),
        "k": np.array([steps(r.op, r.ranks) for r in rows], dtype=float),
        "w": np.array([wire_bytes(r.op, r.ranks, r.size, r.share, r.per_server, r.scope)
                       for r in rows], dtype=float),
        "loc": np.array([local_bytes(r.op, r.ranks, r.size, r.share) for r in rows],
                        dtype=float),
        "t": np.array([r.time_us for r in rows], dtype=float),
    }


def _predict(p, a: dict, dispatch: float, fit_copy: bool) -> np.ndarray:
    o, lat, step, link = p[0], p[1], p[2], p[3]
    t = a["w"] / link / 1e3
    if fit_copy:
        t = np.maximum(t, a["loc"] / p[4] / 1e3)
    device = lat + a["k"] * step + t
    return np.maximum(o + a["extra"] * dispatch, device)


def fit_class(rows: list[CalRow], scope: str) -> ClassParams:
    """Structural parameters of one class from its measurements."""
    from scipy.optimize import least_squares

    a = _arrays(rows)
    hosts = [r.host_us for r in rows if r.host_us is not None and r.op not in FRAMEWORK_CALLS]
    dispatch = statistics.median(hosts) if hosts else None
    # the own share's copy is identifiable only when some all-to-all is uneven
    fit_copy = any(r.op == "moe_all_to_all" and r.share is not None
                   and abs(r.share - (r.ranks - 1) / r.ranks) > 1e-6 for r in rows)
    prior = STEP_PRIOR_US[scope]
    t = a["t"]
    small = t[a["w"] <= np.percentile(a["w"], 25)] if len(t) > 3 else t
    o0 = float(np.median(small))
    big = a["w"] >= np.percentile(a["w"], 75)
    b0 = float(np.median(a["w"][big] / np.maximum(t[big], 1e-9) / 1e3)) or 100.0
    d = dispatch or 0.0

    def resid(p):
        r = _predict(p, a, d, fit_copy) / t - 1.0
        return np.append(r, PRIOR_WEIGHT * (p[2] - prior))

    lo = [0.0, 0.0, 0.0, 1e-3, 1.0]
    hi = [1e5, 1e4, 1e4, 1e5, 1e6]
    best = None
    for lat0 in (0.5 * o0, 0.1 * o0):
        for bscale in (0.5, 1.0, 2.0):
            x0 = [o0, lat0, prior, max(b0 * bscale, 2e-3), 1000.0]
            x0 = [min(max(v, l_ + 1e-6), h - 1e-6) for v, l_, h in zip(x0, lo, hi)]
            res = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1",
                                f_scale=ROBUST_SCALE, x_scale="jac", max_nfev=4000)
            if best is None or res.cost < best.cost - 1e-12:
                best = res
    assert best is not None   # the loops above run six fits
    p = best.x
    return ClassParams(scope=scope, overhead_us=float(p[0]), latency_us=float(p[1]),
                       step_latency_us=float(p[2]), link_gbps=float(p[3]),
                       copy_gbps=float(p[4]) if fit_copy else None,
                       dispatch_us=float(dispatch) if dispatch is not None else None,
                       ranks=tuple(sorted({r.ranks for r in rows})),
                       ops=tuple(sorted({r.op for r in rows})))


# ------------------------------------------------------------------------------------------
# corrections
# ------------------------------------------------------------------------------------------

def _hat(lx: np.ndarray, knots_l: np.ndarray) -> np.ndarray:
    """Piecewise-linear basis in log2 space, constant beyond the end knots."""
    K = len(knots_l)
    H = np.zeros((len(lx), K))
    x = np.clip(lx, knots_l[0], knots_l[-1])
    if K == 1:
        H[:, 0] = 1.0
        return H
    idx = np.clip(np.searchsorted(knots_l, x, side="right") - 1, 0, K - 2)
    left, right = knots_l[idx], knots_l[idx + 1]
    w = (x - left) / (right - left)
    H[np.arange(len(x)), idx] = 1.0 - w
    H[np.arange(len(x)), idx + 1] = w
    return H


def fit_curve(x: np.ndarray, ratio: np.ndarray, knots: tuple[float, ...]) -> Curve:
    """Factors c minimising sum w (c(x) ratio - 1)^2 + RIDGE sum (c - 1)^2 (Huber weights)."""
    kl = np.log2(np.asarray(knots, dtype=float))
    H = _hat(np.log2(np.maximum(x, 1.0)), kl)
    A = H * ratio[:, None]
    K = len(knots)
    wts = np.ones(len(x))
    c = np.ones(K)
    for _ in range(6):
        sw = np.sqrt(wts)[:, None]
        M = np.vstack([A * sw, math.sqrt(RIDGE) * np.eye(K)])
        b = np.concatenate([sw[:, 0], math.sqrt(RIDGE) * np.ones(K)])
        c, *_ = np.linalg.lstsq(M, b, rcond=None)
        r = np.abs(A @ c - 1.0)
        wts = np.where(r <= HUBER, 1.0, HUBER / np.maximum(r, 1e-12))
    c = np.maximum(c, 0.05)
    return Curve(tuple(float(k) for k in knots), tuple(round(float(v), 6) for v in c))


def fit_corrections(rows: list[CalRow], classes: dict[str, ClassParams], octaves: float
                    ) -> dict[tuple[str, str, int], OpCorrection]:
    groups: dict[tuple, list[CalRow]] = defaultdict(list)
    for r in rows:
        share = r.share if r.op == "moe_all_to_all" else None
        groups[(r.op, r.scope, r.ranks, share)].append(r)
    out: dict[tuple[str, str, int], OpCorrection] = {}
    for (op, scope, n, share), grp in sorted(groups.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2], -1 if kv[0][3] is None else kv[0][3])):
        params = classes[scope]
        x = np.array([r.size for r in grp], dtype=float)
        pred = np.array([params.predict_us(r.op, r.ranks, r.size, r.share, r.per_server)
                         for r in grp])
        meas = np.array([r.time_us for r in grp])
        curve = fit_curve(x, pred / meas, knot_grid(x, octaves))
        corr = out.setdefault((op, scope, n), OpCorrection(op, scope, n))
        corr.curves[share] = curve
    return out


def fit_transfer(rows: list[CalRow], params: ClassParams, octaves: float) -> Curve | None:
    even = [r for r in rows if r.op != "moe_all_to_all"]
    if not even:
        even = [r for r in rows if r.share is not None and r.share >= 0.5]
    if not even:
        return None
    w = np.array([wire_bytes(r.op, r.ranks, r.size, r.share, r.per_server, r.scope)
                  for r in even])
    pred = np.array([params.predict_us(r.op, r.ranks, r.size, r.share, r.per_server)
                     for r in even])
    meas = np.array([r.time_us for r in even])
    keep = w > 0
    return fit_curve(w[keep], pred[keep] / meas[keep], knot_grid(w[keep], octaves))


def fit(rows: list[CalRow], octaves: float = DEFAULT_KNOT_OCTAVES,
        method_class: str = "") -> Calibration:
    """Structural parameters, corrections and transfer corrections from measurements."""
    if not rows:
        raise InputError("no measurements to fit")
    by_scope: dict[str, list[CalRow]] = defaultdict(list)
    for r in rows:
        by_scope[r.scope].append(r)
    classes: dict[str, ClassParams] = {}
    for scope in (INTRA, INTER):
        grp = by_scope.get(scope)
        if not grp:
            continue
        if len({r.size for r in grp}) < 3:
            raise InputError(f"{scope}: need measurements at 3 or more sizes to fit, got "
                             f"{len({r.size for r in grp})}")
        params = fit_class(grp, scope)
        params.transfer = fit_transfer(grp, params, octaves)
        classes[scope] = params
    corrections = fit_corrections(rows, classes, octaves)
    return Calibration(classes, corrections, method_class, octaves)


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------

def op_label(r: CalRow) -> str:
    return r.op


def error_table(rows: list[CalRow], errors: list[float]) -> dict:
    """{op: {band: {n, median_abs, max_abs}, 'all': {...}}} of relative errors."""
    by: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r, e in zip(rows, errors):
        by[op_label(r)][band_of(r.size)].append(e)
        by[op_label(r)]["all"].append(e)
    out: dict = {}
    for op in sorted(by):
        out[op] = {}
        for band in [b[0] for b in BANDS] + ["all"]:
            vals = by[op].get(band)
            if vals:
                out[op][band] = summarize(vals)
    return out


def summarize(errors: list[float]) -> dict:
    a = np.abs(np.asarray(errors, dtype=float))
    return {"n": int(len(a)), "median_abs": float(np.median(a)), "max_abs": float(a.max()),
            "mean_signed": float(np.mean(errors))}


def residuals(cal: Calibration, rows: list[CalRow]) -> dict:
    """Fit residuals: structural only and with corrections, per op and band."""
    s_err, c_err = [], []
    for r in rows:
        s, c = cal.fitted_row_us(r)
        s_err.append(s / r.time_us - 1.0)
        c_err.append(c / r.time_us - 1.0)
    return {"structural": error_table(rows, s_err), "corrected": error_table(rows, c_err),
            "overall": {"structural": summarize(s_err), "corrected": summarize(c_err)}}


OUTLIER_RATIO = 2.0      # a point the fit misses by more than 2x either way ...
OUTLIER_SPREAD = 5.0     # ... and by 5x its operation's median miss (in log terms)


def outliers(cal: Calibration, rows: list[CalRow]) -> list[tuple[CalRow, float]]:
    """Measured points the fitted model misses far more than it misses their neighbours:
    (row, predicted / measured), worst first. A single mistyped row (a time off by 100x)
    still pulls the fit a little; naming it lets the user drop or fix it."""
    logs, over = [], []
    for r in rows:
        pred = cal.predict_row(r)
        logs.append(abs(math.log(pred / r.time_us)) if pred and pred > 0 else 0.0)
        over.append(pred is not None and pred > r.time_us)
    by_op: dict[str, list[float]] = defaultdict(list)
    for r, x in zip(rows, logs):
        by_op[r.op].append(x)
    median = {op: float(np.median(v)) for op, v in by_op.items()}
    out = [(r, math.exp(x) if above else math.exp(-x))
           for r, x, above in zip(rows, logs, over)
           if x > math.log(OUTLIER_RATIO) and x > OUTLIER_SPREAD * median[r.op]]
    return sorted(out, key=lambda t: -abs(math.log(t[1])))


def fold_of_sizes(rows: list[CalRow], k: int) -> dict[int, int]:
    sizes = sorted({r.size for r in rows})
    return {s: i % k for i, s in enumerate(sizes)}


def cross_validate(rows: list[CalRow], k: int = 5, octaves: float = DEFAULT_KNOT_OCTAVES
                   ) -> dict:
    """k-fold over sizes: refit on the other sizes, predict each held-out size."""
    sizes = sorted({r.size for r in rows})
    if k < 2:
        raise InputError(f"--folds must be at least 2, got {k}")
    if len(sizes) < 2 * k:
        raise InputError(f"cross-validation needs at least {2 * k} distinct sizes for {k} "
                         f"folds, got {len(sizes)}; lower --folds")
    fold = fold_of_sizes(rows, k)
    pred_c = [0.0] * len(rows)
    pred_s = [0.0] * len(rows)
    for f in range(k):
        train = [r for r in rows if fold[r.size] != f]
        cal = fit(train, octaves)
        for i, r in enumerate(rows):
            if fold[r.size] == f:
                pred_s[i], pred_c[i] = cal.fitted_row_us(r)
    s_err = [p / r.time_us - 1.0 for p, r in zip(pred_s, rows)]
    c_err = [p / r.time_us - 1.0 for p, r in zip(pred_c, rows)]
    return {"folds": k, "split": "sizes, i-th smallest size in fold i mod k",
            "structural": error_table(rows, s_err), "corrected": error_table(rows, c_err),
            "overall": {"structural": summarize(s_err), "corrected": summarize(c_err)}}


def evaluate(cal: Calibration, rows: list[CalRow]) -> dict:
    """Prediction errors of a calibration on other measurements (e.g. unmeasured ops)."""
    kept, s_err, c_err, how = [], [], [], defaultdict(set)
    for r in rows:
        if r.scope not in cal.classes:    # a class this calibration did not fit
            continue
        s, c = cal.fitted_row_us(r)
        kept.append(r)
        s_err.append(s / r.time_us - 1.0)
        c_err.append(c / r.time_us - 1.0)
        how[r.op].add(cal.factor(r.op, r.ranks, r.size, r.share, r.scope, r.per_server)[1])
    if not kept:
        raise InputError("none of the test measurements is in a calibrated placement class")
    return {"structural": error_table(kept, s_err), "corrected": error_table(kept, c_err),
            "overall": {"structural": summarize(s_err), "corrected": summarize(c_err)},
            "correction_used": {op: sorted(v) for op, v in sorted(how.items())}}
