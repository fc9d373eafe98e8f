"""``collsim validate``: the bundled validation cases, measured against predicted.

Cases (each module's docstring says what it measured and what it modelled):

* :mod:`.seed003` -- replay of a traced Megatron pipeline stage (seed 003);
* :mod:`.moe_step` -- the EP MoE step measured on two H200s;
* :mod:`.h200x4` -- the EP 4 MoE step measured on four H200s, and the collectives at four
  ranks (a table, not counted);
* :mod:`.moe_layer` -- the 4-GPU A100-class MoE layer runs (seeds 000 and 002);
* :mod:`.h200_train` -- GPT training steps (125M-6.7B) measured on one H200, predicted by
  ``collsim generate`` + ``simulate`` from the kernel-level compute model;
* :mod:`.h200_hostsync` -- GPT steps measured with a host read per micro-batch and with
  fp16 loss scaling beside plain ones (a check of the host-sync model, not counted);
* the collectives: a calibration fitted on all-to-all measurements only predicting the other
  five collectives measured on the same GPUs (not counted in the end-to-end statistics).

:func:`run_validation` returns a :class:`Report`; :func:`render_text` and
:func:`render_markdown` format it; :func:`write_docs` replaces the section between
``<!-- validate:begin -->`` and ``<!-- validate:end -->`` of docs/validation.md.
"""
from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..resources import checkout_root
from .common import DEFAULT_CALIBRATION, TARGET_MAX, TARGET_MEDIAN, TRACES, CaseResult, rel

BEGIN = "<!-- validate:begin -->"
END = "<!-- validate:end -->"
#: the checkout's docs/validation.md (None for an installed copy: no docs to write back)
_CHECKOUT = checkout_root()
DEFAULT_DOCS = _CHECKOUT / "docs" / "validation.md" if _CHECKOUT else None
A2A_ONLY_CALIBRATION = TRACES / "h200x2" / "calib_h200x2_a2a_only.yaml"
COLLECTIVES = TRACES / "h200x2" / "collectives_aligned.csv"   # what the calibrations fit

__all__ = ["CaseResult", "Report", "run_validation", "render_text", "render_markdown",
           "write_docs", "BEGIN", "END"]


@dataclass
class Report:
    results: list[CaseResult]
    calibration: str
    calibration_summary: str
    transfer: dict | None = None          # a2a-only calibration on the other collectives
    transfer_calibration: str | None = None
    sources: list[str] = field(default_factory=list)
    collectives4: dict | None = None      # collectives at 4 ranks (h200x4.collectives)
    multinode: list = field(default_factory=list)   # published multi-node figures (.multinode)

    @property
    def primary(self) -> list[CaseResult]:
        return [r for r in self.results if r.primary]

    def stats(self) -> dict:
        errs = [abs(r.error) for r in self.primary]
        if not errs:
            return {"n": 0}
        return {"n": len(errs), "median_abs": statistics.median(errs), "max_abs": max(errs),
                "within_5": sum(e <= 0.05 for e in errs),
                "within_10": sum(e <= 0.10 for e in errs)}

    def group_stats(self, group: str) -> dict:
        errs = [r.error for r in self.results if r.extra.get("group") == group and r.primary]
        if not errs:
            return {"n": 0}
        a = [abs(e) for e in errs]
        return {"n": len(a), "median_abs": statistics.median(a), "max_abs": max(a),
                "within_5": sum(e <= 0.05 for e in a), "within_10": sum(e <= 0.10 for e in a),
                "mean": statistics.fmean(errs)}


def _transfer(path: Path) -> dict | None:
    from ..calibration.data import read_files
    from ..calibration.fit import evaluate
    from ..calibration.yamlio import load

    if not path.exists() or not COLLECTIVES.exists():
        return None
    cal = load(path)
    rows, _ = read_files([str(COLLECTIVES)])
    fitted: set[str] = set()   # operations the calibration measured
    for c in cal.classes.values():
        fitted.update(c.ops)
    rows = [r for r in rows if r.op not in fitted and r.method_class == cal.method_class]
    if not rows:
        return None
    return evaluate(cal, rows)


def run_validation(calibration: str | os.PathLike | None = None,
                   transfer_calibration: str | os.PathLike | None = None,
                   power_cap: bool | None = None) -> Report:
    """``power_cap``: the power-cap model on (True) or off (False) for every H200 GPT step;
    None: generate's default."""
    from . import h200_train
    token = h200_train.POWER_CAP.set(power_cap)
    try:
        return _run_validation(calibration, transfer_calibration)
    finally:
        h200_train.POWER_CAP.reset(token)


def _run_validation(calibration, transfer_calibration) -> Report:
    from ..calibration import load_calibration
    from ..cluster import Cluster
    from . import (h200_hostsync, h200_train, h200x4, moe_layer, moe_modelled, moe_step,
                   seed003)

    path = Path(calibration) if calibration else DEFAULT_CALIBRATION
    if not path.exists():
        raise InputError("no such calibration file (write one with `collsim calibrate`)",
                         path=str(path))
    cluster = Cluster()
    cost = load_calibration(path, cluster=cluster)
    results: list[CaseResult] = []
    sources: list[str] = []
    for module in (seed003, moe_step, h200x4, moe_modelled, moe_layer, h200_train,
                   h200_hostsync):
        results.extend(module.run(cost, cluster))
        sources.extend(module.source_files())
    cal = cost.calibration
    parts = []
    for scope, c in cal.classes.items():
        parts.append(f"{scope}: {', '.join(c.ops)} on {', '.join(map(str, c.ranks))} ranks, "
                     f"overhead {c.overhead_us:.1f} us, link {c.link_gbps:.0f} GB/s")
    tpath = Path(transfer_calibration) if transfer_calibration else A2A_ONLY_CALIBRATION
    transfer = _transfer(tpath)
    return Report(results=results, calibration=rel(path),
                  calibration_summary=f"{cal.method_class}; " + "; ".join(parts),
                  transfer=transfer, transfer_calibration=rel(tpath) if transfer else None,
                  sources=sources, collectives4=h200x4.collectives(path),
                  multinode=_multinode())


def _multinode() -> list:
    from . import multinode
    return multinode.run()


def _fmt(v: float, unit: str) -> str:
    return f"{v:.2f} {unit}"


def _summary_line(st: dict) -> str:
    if not st.get("n"):
        return "no counted cases"
    ok_med = st["median_abs"] <= TARGET_MEDIAN
    ok_max = st["max_abs"] <= TARGET_MAX
    return (f"{st['n']} counted comparisons: median |error| {100 * st['median_abs']:.1f}% "
            f"(target <= {100 * TARGET_MEDIAN:.0f}%: {'met' if ok_med else 'missed'}), "
            f"maximum {100 * st['max_abs']:.1f}% (target <= {100 * TARGET_MAX:.0f}%: "
            f"{'met' if ok_max else 'missed'}); within 5%: {st['within_5']}, within 10%: "
            f"{st['within_10']}")


def _train_line(rep: Report) -> str:
    st = rep.group_stats("h200_train")
    if not st.get("n"):
        return "H200 GPT training steps: none measured"
    line = (f"H200 GPT training steps alone ({st['n']} cases, 125M-6.7B parameters): median "
            f"|error| {100 * st['median_abs']:.1f}%, maximum {100 * st['max_abs']:.1f}%, mean "
            f"signed {100 * st['mean']:+.1f}%; within 5%: {st['within_5']}, within 10%: "
            f"{st['within_10']}")
    for label, key, want in (("without recompute", "recompute", False),
                             ("with full recompute", "recompute", True),
                             ("default GPTs", "variant", "default"),
                             ("FP8 GEMMs", "variant", "fp8"),
                             ("unfused attention", "variant", "unfused")):
        errs = sorted(r.error for r in rep.primary if r.extra.get("group") == "h200_train"
                      and r.extra.get(key) == want)
        if errs:
            a = sorted(abs(e) for e in errs)
            n = len(a)
            med = a[n // 2] if n % 2 else (a[n // 2 - 1] + a[n // 2]) / 2
            line += (f"; {label} ({n}): median {100 * med:.1f}%, maximum {100 * a[-1]:.1f}%, "
                     f"mean {100 * sum(errs) / n:+.1f}%")
    return line


def _repeats_line(rep: Report) -> str:
    """Where the counted predictions fall among their own measurements' repeats (the rounds
    or runs each measured figure is the median of)."""
    where = [r.within_repeats() for r in rep.primary]
    n = sum(w is not None for w in where)
    if not n:
        return "no counted comparison was measured in repeats"
    iq, rg, out = (sum(w == k for w in where) for k in ("interquartile", "range", "outside"))
    return (f"Against the measurements' own spread: of the {n} counted comparisons measured "
            f"in repeats (a paired run's rounds, or the runs without rounds), {iq} predict "
            f"inside their repeats' interquartile range, {rg} outside it but inside their "
            f"min-max, {out} outside every repeat")


def _beside_repeats(r: CaseResult) -> str:
    """``; repeats MIN / Q1-Q3 / MAX unit, the prediction WHERE`` for a case with repeats."""
    sp = r.spread()
    if sp is None:
        return ""
    lo, q1, q3, hi = sp
    pos = {"interquartile": "inside the interquartile range",
           "range": ("below the first quartile" if r.predicted < q1
                     else "above the third quartile") + ", inside min-max",
           "outside": "outside every repeat"}[r.within_repeats() or "outside"]
    return (f"; its {len(r.repeats)} repeats {lo:.2f} / {q1:.2f}-{q3:.2f} / {hi:.2f} {r.unit}, "
            f"the prediction {pos}")


def _transfer_rows(tr: dict) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    c = tr["corrected"]
    bands = ("<=64KiB", "64KiB-16MiB", ">=16MiB")
    for op in c:
        cells = [f"{100 * c[op][b]['median_abs']:.1f}" if b in c[op] else "-" for b in bands]
        rows.append((op, *cells, f"{100 * c[op]['all']['median_abs']:.1f}",
                     f"{100 * c[op]['all']['max_abs']:.1f}"))
    return rows


def render_text(rep: Report) -> str:
    out = [f"calibration: {rep.calibration} ({rep.calibration_summary})", ""]
    w = max(len(r.case) for r in rep.results)
    q = max(len(r.quantity) for r in rep.results)
    head = (f"{'case':{w}s}  {'quantity':{q}s}  {'measured':>11s}  {'predicted':>11s}  "
            f"{'error':>7s}  {'repeats q1-q3':>15s}")
    out.append(head)
    for counted in (True, False):
        if not counted:
            out.append("")
            out.append("diagnostics (not counted):")
        for r in rep.results:
            if r.primary != counted:
                continue
            sp = r.spread()
            quart = f"{sp[1]:.2f}-{sp[2]:.2f}" if sp else "-"
            out.append(f"{r.case:{w}s}  {r.quantity:{q}s}  {_fmt(r.measured, r.unit):>11s}  "
                       f"{_fmt(r.predicted, r.unit):>11s}  {100 * r.error:+6.1f}%  "
                       f"{quart:>15s}")
    out.append("")
    out.append(_summary_line(rep.stats()))
    out.append(_train_line(rep))
    out.append(_repeats_line(rep))
    misses = [r for r in rep.primary if abs(r.error) > TARGET_MAX]
    if misses:
        out.append("beyond 10%: " + "; ".join(f"{r.case} {r.quantity} ({100 * r.error:+.1f}%"
                                              f"{_beside_repeats(r)})" for r in misses))
    if rep.transfer:
        out.append("")
        out.append(f"collectives predicted by {rep.transfer_calibration} (fitted on all-to-all "
                   "only), median |error| % per size band:")
        out.append(f"  {'op':16s}{'<=64KiB':>10s}{'64K-16M':>10s}{'>=16MiB':>10s}"
                   f"{'all':>8s}{'max':>8s}")
        for op, *cells in _transfer_rows(rep.transfer):
            out.append(f"  {op:16s}{cells[0]:>10s}{cells[1]:>10s}{cells[2]:>10s}"
                       f"{cells[3]:>8s}{cells[4]:>8s}")
        o = rep.transfer["overall"]["corrected"]
        so = rep.transfer["overall"]["structural"]
        out.append(f"  all five: median {100 * o['median_abs']:.1f}%, max "
                   f"{100 * o['max_abs']:.1f}% ({o['n']} points); structural terms alone: "
                   f"median {100 * so['median_abs']:.1f}%, max {100 * so['max_abs']:.1f}%")
    if rep.collectives4:
        from .h200x4 import table_rows
        c4 = rep.collectives4
        out.append("")
        out.append(f"collectives at 4 ranks ({c4['data']}), median / max |error| %: "
                   f"{c4['given_path']} on run 2, {c4['x4_path']} on run 1:")
        out.append(f"  {'op':16s}{'points':>8s}{'median':>9s}{'max':>6s}{'median':>9s}"
                   f"{'max':>6s}")
        for op, n, gm, gx, xm, xx in table_rows(c4):
            out.append(f"  {op:16s}{n:>8s}{gm:>9s}{gx:>6s}{xm:>9s}{xx:>6s}")
    if rep.multinode:
        from .multinode import render_text as multinode_text
        out.extend(multinode_text(rep.multinode))
    return "\n".join(out) + "\n"


def render_markdown(rep: Report) -> str:
    st = rep.stats()
    lines = [BEGIN, "",
             "## End-to-end validation (`collsim validate`)", "",
             "Generated by `collsim validate` (simulator/validation/); do not edit by hand. "
             f"Communication model: `{rep.calibration}` ({rep.calibration_summary}). Errors "
             "are predicted / measured - 1.", "",
             "| case | quantity | measured | predicted | error | measured repeats: min / "
             "q1-q3 / max | inputs |",
             "|---|---|---|---|---|---|---|"]
    for counted in (True, False):
        for r in rep.results:
            if r.primary != counted:
                continue
            name = r.case if counted else f"{r.case} *(diagnostic)*"
            sp = r.spread()
            rng = f"{sp[0]:.2f} / {sp[1]:.2f}-{sp[2]:.2f} / {sp[3]:.2f}" if sp else "-"
            lines.append(f"| {name} | {r.quantity} | {_fmt(r.measured, r.unit)} | "
                         f"{_fmt(r.predicted, r.unit)} | {100 * r.error:+.1f}% | {rng} | "
                         f"{r.inputs} |")
    lines += ["", f"**{_summary_line(st)}.** Diagnostics are not counted.", "",
              f"**{_train_line(rep)}.**", "", f"**{_repeats_line(rep)}.**", ""]
    misses = [r for r in rep.primary if abs(r.error) > TARGET_MAX]
    lines.append("### Notes per case")
    lines.append("")
    for r in rep.results:
        if r.note:
            lines.append(f"- **{r.case}**, {r.quantity}: {r.note}.")
    lines.append("")
    if misses:
        lines.append("### Misses beyond 10%")
        lines.append("")
        for r in misses:
            lines.append(f"- {r.case}, {r.quantity}: {100 * r.error:+.1f}%"
                         f"{_beside_repeats(r)}.")
        lines.append("")
        lines.append("Why: see docs/calibration.md, section *Validation: what misses and why*; "
                     "for the H200 GPT steps docs/compute-model.md (*FP8 host-bound steps*, "
                     "*The host's speed drift*).")
        lines.append("")
    if rep.transfer:
        lines += ["### Collectives from an all-to-all-only calibration", "",
                  f"`{rep.transfer_calibration}` was fitted on `all_to_all` and "
                  f"`moe_all_to_all` measurements only (`{rel(COLLECTIVES)}`) and "
                  "predicts the five other collectives measured on the same two H200s. "
                  "Median |error| % per size band (SimAI's published gap for this: 65%):", "",
                  "| op | <=64 KiB | 64 KiB-16 MiB | >=16 MiB | all sizes | max |",
                  "|---|---|---|---|---|---|"]
        for op, *cells in _transfer_rows(rep.transfer):
            lines.append(f"| {op} | " + " | ".join(cells) + " |")
        o = rep.transfer["overall"]["corrected"]
        so = rep.transfer["overall"]["structural"]
        lines += ["", f"All five together: median {100 * o['median_abs']:.1f}%, maximum "
                  f"{100 * o['max_abs']:.1f}% over {o['n']} points (structural terms alone, "
                  f"without the transfer correction: median {100 * so['median_abs']:.1f}%, "
                  f"maximum {100 * so['max_abs']:.1f}%).", ""]
    if rep.collectives4:
        from .h200x4 import table_rows
        c4 = rep.collectives4
        given = (f"`{c4['given_path']}` (fitted on these four GPUs: in-sample)"
                 if c4["given_is_x4"] else
                 f"`{c4['given_path']}`, the calibration above, extrapolated to 4 ranks")
        lines += ["### Collectives at 4 ranks (four H200s)", "",
                  f"Measured: `{c4['data']}` (run 2) and `{c4['data_run1']}` (run 1), "
                  "in-framework (torch.distributed), 1 KiB-1 GiB; the uneven all-to-all at "
                  "its 16-byte-aligned shares 0 and 0.75 (traces/h200x4/README.md says why "
                  f"the others are left out). Predicted by {given}, on run 2, and by "
                  f"`{c4['x4_path']}` (fitted on run 2) on run 1, the held-out run. Median "
                  "and maximum |error| in %, corrected model. Not counted above.", "",
                  f"| op | points | {'in-sample' if c4['given_is_x4'] else 'extrapolated'} "
                  "on run 2: median | max | 4-GPU calibration on run 1: median | max |",
                  "|---|---|---|---|---|---|"]
        for x4_cells in table_rows(c4):
            lines.append("| " + " | ".join(x4_cells) + " |")
        lines.append("")
    if rep.multinode:
        from .multinode import render_markdown as multinode_markdown
        lines += multinode_markdown(rep.multinode)
    lines += ["Inputs: " + ", ".join(f"`{s}`" for s in dict.fromkeys(rep.sources)) + ".", "",
              END]
    return "\n".join(lines) + "\n"


def docs_text(rep: Report, path: str | os.PathLike) -> str:
    """The file at ``path`` with its validate section replaced (or appended); other content
    is kept. Nothing is written: the command writes it with its other outputs as one set."""
    path = os.fspath(path)
    section = render_markdown(rep)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = "# Validation\n\n"
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    b, e = text.find(BEGIN), text.find(END)
    if (b < 0) != (e < 0) or (b >= 0 and e < b):
        raise InputError(f"found only one of the markers {BEGIN} / {END}, or in the wrong "
                         "order; fix the file by hand", path=path)
    if b >= 0:
        return text[:b] + section.rstrip("\n") + text[e + len(END):]
    return text.rstrip("\n") + "\n\n" + section


def write_docs(rep: Report, path: str | os.PathLike) -> str:
    """Replace (or append) the validate section of ``path``; other content is kept."""
    new = docs_text(rep, path)
    from ..report.output import write_atomic
    write_atomic(os.fspath(path), new)
    return new
