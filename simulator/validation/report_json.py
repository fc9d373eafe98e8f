"""``collsim validate --json``: a validation :class:`~simulator.validation.Report` as JSON.

The text and the docs section of the same report are :func:`simulator.validation.render_text`
and :func:`simulator.validation.render_markdown`.
"""
from __future__ import annotations


def _bands(tab: dict) -> dict:
    """{op: {band: {n, median_abs, max_abs}}} of an evaluate() block's corrected errors."""
    return {op: {b: {"n": v["n"], "median_abs": round(v["median_abs"], 6),
                     "max_abs": round(v["max_abs"], 6)} for b, v in bands.items()}
            for op, bands in tab["corrected"].items()}


def _collectives4(c4: dict | None) -> dict | None:
    if c4 is None:
        return None
    overall = {k: {m: (round(v, 6) if isinstance(v, float) else v)
                   for m, v in c4[k]["overall"]["corrected"].items()}
               for k in ("given", "x4_on_run1")}
    return {"data": c4["data"], "data_run1": c4["data_run1"],
            "given": {"calibration": c4["given_path"], "in_sample": c4["given_is_x4"],
                      "on": c4["data"], "ops": _bands(c4["given"]),
                      "overall": overall["given"]},
            "x4_on_run1": {"calibration": c4["x4_path"], "on": c4["data_run1"],
                           "ops": _bands(c4["x4_on_run1"]), "overall": overall["x4_on_run1"]}}


def _repeats(r) -> dict | None:
    """The repeats a case's measured median is taken over: their count, min, quartiles, max
    and where the prediction falls among them (None for a single measurement)."""
    sp = r.spread()
    if sp is None:
        return None
    return {"n": len(r.repeats), "min": round(sp[0], 6), "q1": round(sp[1], 6),
            "q3": round(sp[2], 6), "max": round(sp[3], 6), "prediction": r.within_repeats()}


def render_json(rep) -> str:
    """What ``collsim validate --json`` writes: every case (measured, predicted, error, its
    repeats' spread), the
    summary, the transfer table and the 4-rank collectives table; floats to 6 digits."""
    import json

    st = rep.stats()
    return json.dumps({
        "calibration": rep.calibration,
        "cases": [{"case": r.case, "quantity": r.quantity, "unit": r.unit,
                   "measured": round(r.measured, 6), "predicted": round(r.predicted, 6),
                   "error": round(r.error, 6), "counted": r.primary, "inputs": r.inputs,
                   "note": r.note, "repeats": _repeats(r)} for r in rep.results],
        "summary": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in st.items()},
        "transfer": None if rep.transfer is None else _bands(rep.transfer),
        "collectives_4_ranks": _collectives4(rep.collectives4),
    }, indent=2) + "\n"
