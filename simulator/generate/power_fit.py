"""Fit the power-cap model (:mod:`.power`) on kernels measured under sustained load.

Reads a folder of :mod:`simulator.measure.powercap` (traces/h200/compute/powercap1):
``windows.csv`` (one kernel back to back after an idle spell, timed in ~1 ms windows),
``periods.csv`` (GEMM stretches and idle or memory-bound gaps repeated), ``clocks.csv``
(NVML) and ``nvml_env.txt`` (the enforced power limit); and, where given, one of
:mod:`simulator.measure.powerref` (traces/h200/compute/powercap2): ``kernels.csv`` (the
sweep's GEMMs from a rested GPU), ``power.csv`` (a GPT step's element-wise kernels' power)
and ``periods.csv`` (GEMMs with gaps of GPT element-wise kernels or copies); and, where
given, one of :mod:`simulator.measure.powerstep` (traces/h200/compute/powercap3):
``windows.csv`` (a GPT layer's GEMMs and fused attention, each sustained alone); and, where
given, a powerstep ``eltcap`` run (traces/h200/compute/kernelprice1: element-wise kernels
between GEMMs against their rested times). Nothing here reads a training step.

* ``cap_w``: the enforced limit; ``idle_w``: the median power NVML reports at the end of the
  idle spells; ``mem_w``: the median over a GPT step's element-wise kernels run back to back
  (powercap2; without it, the 256 MiB copy's of powercap1).
* ``gemm_boost``: the GEMM curve's e_max refitted (its shape terms kept) on the sweep's
  forward GEMMs timed from a rested GPU, over the shipped e_max.
* ``compute_w``, ``gain``, ``tau_ms``, ``threshold_w``: least squares on the relative error of
  the predicted per-GEMM time in the steady windows (:func:`steady`) of the large GEMM's
  back-to-back run (boost time: its 2nd-6th windows), every duty pattern (boost time: the
  4096^3 GEMM's) and powercap2's mixes (boost time: the 4096^3 GEMM from a rested GPU; the
  gaps at the power their kernels draw back to back), and powercap3's 60 layer GEMMs'
  steady windows (boost: each one's 2nd-6th windows). Without ``ref_folder`` (powercap1
  alone) the threshold is the cap.
* ``attn_fwd_w``, ``attn_bwd_w``: from powercap3's attention runs, given the law above
  (:func:`attention_demand`).
* ``mem_threshold_w``, ``mem_sens``: kernelprice1's element-wise mixes, given the powers
  above (:func:`fit_mem_cap`).
"""
from __future__ import annotations

import csv
import os
import statistics
from dataclasses import replace

from .power import COMPUTE, IDLE, MEMORY, PowerCap, stretch

RAMP_CASE = "gemm 4096x16384x4096"
DUTY_GEMM = "gemm 4096x4096x4096"
#: powercap2's element-wise kernels that are not a GPT step's (the reference copy, attention)
NOT_ELEMENTWISE = ("copy_256MiB", "sdpa_causal.fwd")
#: the GPT element-wise kernels of powercap2's mix gaps, in turn (powerref.run_mix)
MIX_OPS = ("layer_norm.fwd", "gelu.fwd", "dropout.fwd", "add.fwd")
#: below this a rested GEMM's per-call events cost a few % (powerref times each call)
COLD_MIN_US = 50.0
#: every load dips for ~200 ms about 0.8-1.0 s after it starts (a slower power loop catching
#: up, once; a training run passes it in its warm-up): ms after the start left out of the fit,
#: and the first 200 ms (the filter still rising from idle is in the ramp's early windows)
DIP_MS = (700.0, 1100.0)
RISE_MS = 200.0


def steady(t_ms: float) -> bool:
    """Whether a window starting ``t_ms`` after its load began is in the fit (steady state)."""
    return t_ms >= RISE_MS and not DIP_MS[0] <= t_ms < DIP_MS[1]


def _rows(path: str) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _limit_w(folder: str) -> float:
    with open(os.path.join(folder, "nvml_env.txt")) as fh:
        for line in fh:
            if line.startswith("enforced_power_limit_mw "):
                return float(line.split()[1]) / 1e3
    raise ValueError(f"{folder}/nvml_env.txt: no enforced_power_limit_mw")


def ramp(folder: str, case: str, dtype: str = "bf16", phase: str = "ramp") -> list[dict]:
    return [r for r in _rows(os.path.join(folder, "windows.csv"))
            if r["phase"] == phase and r["case"] == case and r["dtype"] == dtype]


def boost_us(folder: str, case: str) -> float:
    """The kernel's time at the boost clock: the median of its 2nd-6th windows after the idle
    spell (the first also holds the launch from idle)."""
    return statistics.median(float(r["per_call_us"]) for r in ramp(folder, case)[1:6])


def measured_powers(folder: str) -> tuple[float, float]:
    """(idle, memory-bound) power: NVML's instantaneous power (its averaged reading lags by
    about a second), median over the last 0.3 s of the idle spells and over the second half
    of the copy's run."""
    clocks = _rows(os.path.join(folder, "clocks.csv"))
    idle, mem = [], []
    by_label: dict[str, list[dict]] = {}
    for r in clocks:
        by_label.setdefault(r["label"], []).append(r)
    for label, rs in by_label.items():
        t_end = float(rs[-1]["t_s"])
        if " idle " in label:
            idle += [float(r["power_instant_w"]) for r in rs if float(r["t_s"]) >= t_end - 0.3]
        elif label == "ramp copy 256MiB":
            t0 = float(rs[0]["t_s"])
            mid = t0 + (t_end - t0) / 2
            mem += [float(r["power_instant_w"]) for r in rs if float(r["t_s"]) >= mid]
    return statistics.median(idle), statistics.median(mem)


def duty_patterns(folder: str) -> list[dict]:
    """Per duty case: its periods' groups (gemms, GEMM us, gap us) in order."""
    cases: dict[tuple, dict] = {}
    for r in _rows(os.path.join(folder, "periods.csv")):
        key = (r["gap"], float(r["period_ms"]), float(r["duty_set"]))
        c = cases.setdefault(key, {"gap": r["gap"], "period_ms": key[1], "duty_set": key[2],
                                   "groups": []})
        c["groups"].append((int(r["periods"]), int(r["gemms"]), float(r["gemm_us"]),
                            float(r["gap_us"]), float(r["t_ms"])))
    return list(cases.values())


def predict_duty(cap: PowerCap, case: dict, gemm_boost_us: float) -> tuple[float, float]:
    """(predicted, measured) per-GEMM time over a duty case's steady groups (:func:`steady`):
    every group's periods replayed at the boost clock (its GEMMs at ``gemm_boost_us``, its
    gaps as measured: idle, or memory-bound kernels, drawing ``case["gap_w"]`` where given);
    groups are (periods, gemms, GEMM us, gap us, start ms)."""
    gap_cls = IDLE if case["gap"] == "idle" else MEMORY
    if case.get("gap_w"):
        cap = replace(cap, mem_w=case["gap_w"])
    p = None
    pred_us = meas_us = 0.0
    n = 0
    for periods, gemms, gemm_us, gap_us, t_ms in case["groups"]:
        per = gemms // periods
        segs = [(per * gemm_boost_us, COMPUTE), (gap_us / periods, gap_cls)] * periods
        busy, extra, p = stretch(cap, segs, p)
        if steady(t_ms):
            pred_us += busy + extra
            meas_us += gemm_us
            n += gemms
    return pred_us / n, meas_us / n


def predict_ramp(cap: PowerCap, windows: list[dict], boost: float) -> list[tuple[float, float]]:
    """(predicted, measured) per-call time of each steady window (:func:`steady`) of a
    back-to-back run from idle (the filter replayed over every window)."""
    p = None
    out = []
    for w in windows:
        calls = int(w["calls"])
        busy, extra, p = stretch(cap, [(calls * boost, COMPUTE)], p)
        if steady(float(w["t_ms"])):
            out.append(((busy + extra) / calls, float(w["per_call_us"])))
    return out


def eltwise_power(folder: str) -> dict[tuple[str, str], float]:
    """(op, size) -> median power (W) of powercap2's element-wise kernels that kept the GPU
    busy (busy share >= 0.95: a host-bound loop's idle gaps would lower it)."""
    return {(r["op"], r["size"]): float(r["power_w"])
            for r in _rows(os.path.join(folder, "power.csv"))
            if r["power_w"] and float(r["busy_share"] or 0) >= 0.95}


def step_mem_w(folder: str) -> float:
    """A GPT step's memory-bound kernels' power: the median over its element-wise kernels at
    both measured step sizes."""
    return statistics.median(w for (op, _), w in eltwise_power(folder).items()
                             if op not in NOT_ELEMENTWISE)


def cold_gemms(folder: str) -> list[tuple[int, int, int, float]]:
    """(m, n, k, us) of powercap2's forward GEMMs from a rested GPU, at least COLD_MIN_US."""
    return [(int(r["m"]), int(r["n"]), int(r["k"]), float(r["dev_us"]))
            for r in _rows(os.path.join(folder, "kernels.csv"))
            if r["group"] == "gemm" and r["note"] == "cold" and r["dev_us"]
            and float(r["dev_us"]) >= COLD_MIN_US]


def fit_gemm_boost(folder: str, gpu) -> tuple[float, dict]:
    """(boost e_max / ``gpu.gemm_emax``, residuals): e_max alone refitted on the rested
    GEMMs (relative least squares), the curve's shape terms as shipped."""
    from scipy.optimize import minimize_scalar
    pts = cold_gemms(folder)

    def loss(e):
        g = replace(gpu, gemm_emax=float(e))
        return sum((g.gemm_us(m, n, k) / t - 1) ** 2 for m, n, k, t in pts)
    e = float(minimize_scalar(loss, bounds=(0.3, 1.0), method="bounded").x)
    g = replace(gpu, gemm_emax=e)
    err = [g.gemm_us(m, n, k) / t - 1 for m, n, k, t in pts]
    sweep = [gpu.gemm_us(m, n, k) / t - 1 for m, n, k, t in pts]
    return e / gpu.gemm_emax, {"gemm_boost_points": len(pts),
                               "gemm_boost_median_abs": statistics.median(map(abs, err)),
                               "sweep_curve_over_rested_median": statistics.median(sweep)}


def mix_patterns(folder: str) -> list[dict]:
    """powercap2's mixes as duty cases, each with the power its gap's kernels draw."""
    pw = eltwise_power(folder)
    cases = duty_patterns(folder)
    # the gap's kernels run in turn: their powers weighted by their device times
    us = {r["op"]: float(r["dev_us"]) for r in _rows(os.path.join(folder, "power.csv"))
          if r["size"] == "2.7b-b8" and r["op"] in MIX_OPS}
    gpt_w = sum(pw[(op, "2.7b-b8")] * us[op] for op in MIX_OPS) / sum(us.values())
    for c in cases:
        c["gap_w"] = gpt_w if c["gap"] == "gpt" else pw[("copy_256MiB", "copy")]
    return cases


def rested_us(folder: str, m: int, n: int, k: int) -> float:
    return next(t for mm, nn, kk, t in cold_gemms(folder) if (mm, nn, kk) == (m, n, k))


def sustained(folder: str) -> dict[tuple[str, str, str], tuple[float, float, list]]:
    """powercap3's kernels run back to back alone: (kernel, size, layout) -> (boost us: the
    median of its 2nd-6th windows, steady us: the median from RISE_MS on, its windows)."""
    by: dict[tuple[str, str, str], list[dict]] = {}
    for r in _rows(os.path.join(folder, "windows.csv")):
        by.setdefault((r["kernel"], r["size"], r["layout"]), []).append(r)
    out = {}
    for key, ws in by.items():
        late = [float(w["per_call_us"]) for w in ws if float(w["t_ms"]) >= RISE_MS]
        if len(ws) < 7 or not late:
            continue
        boost = statistics.median(float(w["per_call_us"]) for w in ws[1:6])
        out[key] = (boost, statistics.median(late), ws)
    return out


def _steady_power(folder: str, label: str) -> float:
    """The median NVML instantaneous power of a powercap3 kernel's run from RISE_MS on."""
    rs = [r for r in _rows(os.path.join(folder, "clocks.csv")) if r["label"] == label
          and r["power_instant_w"]]
    t0 = float(rs[0]["t_s"])
    return statistics.median(float(r["power_instant_w"]) for r in rs
                             if float(r["t_s"]) - t0 >= RISE_MS / 1e3)


def attention_demand(cap: PowerCap, folder: str, layout: str) -> tuple[float, dict]:
    """(demand W, the slowdowns) of the fused attention's ``layout`` kernel (``fwd`` /
    ``bwd``) run back to back alone (powercap3): the demand the fitted law turns into its
    median steady slowdown over the step sizes, ``threshold + (s - 1) cap / gain``; where it
    does not slow (s <= 1.005: the law says nothing above the threshold), the power NVML
    reads while it runs at (near) the boost clock, median over the sizes."""
    runs = {k: v for k, v in sustained(folder).items()
            if k[0] == "attention" and k[2] == layout}
    slow = {k[1]: round(st / b, 4) for k, (b, st, _) in runs.items()}
    s = statistics.median(slow.values())
    if s > 1.005:
        w = max(cap.cap_w, cap.threshold_w) + (s - 1.0) * cap.cap_w / cap.gain
    else:
        w = statistics.median(_steady_power(folder, " ".join(k)) for k in runs)
    return w, slow


#: kernelprice1's mix kinds (powerstep's eltcap) -> the compute model's op names (the 256 MiB
#: copy stands for the layout copy and cast, ``float``)
ELTCAP_OPS = {"copy_256MiB.fwd": "float.fwd"}


def eltcap_points(folder: str, cap: PowerCap) -> list[tuple[str, float, float]]:
    """(op, the mix's filtered demand in the model, measured slowdown) of every element-wise
    mix of a powerstep ``eltcap`` run (``periods.csv``, ``gapref.csv``): the gap kernel's
    time a call over its steady windows (:func:`steady`; median) over its time from a rested
    GPU; the demand the steady mean of ``cap``'s powers at the mix's boost shares (its GEMMs
    at their rested time, its gap kernels at theirs)."""
    ref = {r["gap"]: float(r["dev_us"]) for r in _rows(os.path.join(folder, "gapref.csv"))
           if r["ref"] == "rested_before"}
    gemm = next(v for k, v in ref.items() if k.startswith("gemm "))
    by: dict[tuple[str, float], list[dict]] = {}
    for r in _rows(os.path.join(folder, "periods.csv")):
        if steady(float(r["t_ms"])) and r["gap"] in ref:
            by.setdefault((r["gap"], float(r["duty_set"])), []).append(r)
    out = []
    for (gap, _), rs in sorted(by.items()):
        per = int(rs[0]["periods"])
        n_g, reps = int(rs[0]["gemms"]) // per, int(rs[0]["gap_calls"]) // per
        share = n_g * gemm / (n_g * gemm + reps * ref[gap])
        p = share * cap.compute_w + (1.0 - share) * cap.mem_w
        slow = statistics.median(float(r["gap_us"]) / int(r["gap_calls"]) for r in rs)
        out.append((ELTCAP_OPS.get(gap, gap), p, slow / ref[gap]))
    return out


def fit_mem_cap(folder: str, cap: PowerCap) -> tuple[PowerCap, dict]:
    """``cap`` with the memory-bound law (``mem_threshold_w``, ``mem_sens``) fitted on a
    powerstep ``eltcap`` run (:func:`eltcap_points`): one threshold, a sensitivity per op
    (non-negative), least squares on the log of the slowdown; and its residuals."""
    import numpy as np
    from scipy.optimize import least_squares
    pts = eltcap_points(folder, cap)
    ops = sorted({op for op, _, _ in pts})
    meas = np.array([s for _, _, s in pts])

    def pred(x):
        return np.array([1.0 + x[1 + ops.index(op)] * max(0.0, p - x[0]) / cap.cap_w
                         for op, p, _ in pts])
    sol = least_squares(lambda x: np.log(pred(x) / meas), [cap.cap_w] + [0.1] * len(ops),
                        bounds=([0.0] + [0.0] * len(ops), [3 * cap.cap_w] + [2.0] * len(ops)))
    err = pred(sol.x) / meas - 1
    fitted = replace(cap, mem_threshold_w=round(float(sol.x[0]), 1),
                     mem_sens=tuple((op, round(float(a), 4)) for op, a in zip(ops, sol.x[1:])))
    return fitted, {"eltcap_median_abs": float(np.median(np.abs(err))),
                    "eltcap_max_abs": float(np.abs(err).max()), "eltcap_points": len(pts)}


def fit(folder: str, ref_folder: str | None = None, gpu=None,
        step_folder: str | None = None, eltcap_folder: str | None = None
        ) -> tuple[PowerCap, dict]:
    """The fitted model and its residuals (relative errors, predicted / measured - 1);
    ``ref_folder``: powercap2 (with ``gpu``, the spec whose GEMM curve it refers to boost);
    ``step_folder``: powercap3 (a GPT layer's GEMMs in the fit beside the large one, the
    attention's demands from its kernels)."""
    import numpy as np
    from scipy.optimize import least_squares

    cap_w = _limit_w(folder)
    idle_w, mem_w = measured_powers(folder)
    big = ramp(folder, RAMP_CASE)
    big_boost = boost_us(folder, RAMP_CASE)
    duty_boost = boost_us(folder, DUTY_GEMM)
    cases = duty_patterns(folder)
    for c in cases:          # powercap1's memory-bound gaps are its copies
        c["gap_w"] = mem_w
    mixes: list[dict] = []
    extra: dict = {}
    gemm_boost = 1.0
    if ref_folder:
        mem_w = step_mem_w(ref_folder)
        mixes = mix_patterns(ref_folder)
        mix_boost = rested_us(ref_folder, 4096, 4096, 4096)
        if gpu is not None:
            gemm_boost, extra = fit_gemm_boost(ref_folder, gpu)

    def model(x) -> PowerCap:
        return PowerCap(cap_w=cap_w, idle_w=idle_w, mem_w=mem_w, compute_w=float(x[0]),
                        gain=float(x[1]), tau_ms=float(x[2]), gemm_boost=gemm_boost,
                        threshold_w=float(x[3]) if ref_folder else cap_w)

    layer_gemms = [(b, ws) for k, (b, _, ws) in sustained(step_folder).items()
                   if k[0].startswith("gemm ")] if step_folder else []

    def residuals(x):
        cap = model(x)
        r = [pr / me - 1 for pr, me in predict_ramp(cap, big, big_boost)]
        n_big = len(r)
        # each of a GPT layer's sustained GEMMs: its steady windows' median relative error;
        # together they weigh as much as the large GEMM's windows
        for b, ws in layer_gemms:
            e = statistics.median(pr / me - 1 for pr, me in predict_ramp(cap, ws, b))
            r.append((n_big / len(layer_gemms)) ** 0.5 * e)
        # the duty cases weigh as much as the ramp's steady windows together, the mixes half
        w = (len(r) / max(1, len(cases))) ** 0.5
        r += [w * (pr / me - 1) for pr, me in (predict_duty(cap, c, duty_boost) for c in cases)]
        if mixes:
            w = (len(r) / 2 / len(mixes)) ** 0.5
            r += [w * (pr / me - 1)
                  for pr, me in (predict_duty(cap, c, mix_boost) for c in mixes)]
        return np.array(r)

    sol = least_squares(residuals, x0=[1.9 * cap_w, 0.25, 50.0, 1.15 * cap_w],
                        bounds=([cap_w, 0.0, 1.0, cap_w], [4.0 * cap_w, 5.0, 2000.0, 3 * cap_w]))
    cap = model(sol.x)
    ramp_err = [pr / me - 1 for pr, me in predict_ramp(cap, big, big_boost)]
    duty_err = {f"{c['gap']} P{c['period_ms']:g} d{c['duty_set']:g}":
                round(pr / me - 1, 4)
                for c in cases for pr, me in [predict_duty(cap, c, duty_boost)]}
    stats = {"ramp_median_abs": statistics.median(abs(e) for e in ramp_err),
             "ramp_max_abs": max(abs(e) for e in ramp_err),
             "duty_median_abs": statistics.median(abs(e) for e in duty_err.values()),
             "duty_max_abs": max(abs(e) for e in duty_err.values()),
             "duty": duty_err, **extra}
    if layer_gemms and step_folder:
        errs = [statistics.median(pr / me - 1 for pr, me in predict_ramp(cap, ws, b))
                for b, ws in layer_gemms]
        stats["layer_gemms_median_abs"] = statistics.median(abs(e) for e in errs)
        stats["layer_gemms_max_abs"] = max(abs(e) for e in errs)
        fw, stats["attn_fwd_slowdown"] = attention_demand(cap, step_folder, "fwd")
        bw, stats["attn_bwd_slowdown"] = attention_demand(cap, step_folder, "bwd")
        cap = replace(cap, attn_fwd_w=round(fw, 1), attn_bwd_w=round(bw, 1))
    if mixes:
        stats["mix"] = {f"{c['gap']} P{c['period_ms']:g} d{c['duty_set']:g}":
                        round(pr / me - 1, 4)
                        for c in mixes for pr, me in [predict_duty(cap, c, mix_boost)]}
    if eltcap_folder:
        cap, e = fit_mem_cap(eltcap_folder, cap)
        stats.update(e)
    return cap, stats
