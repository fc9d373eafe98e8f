"""What ``collsim calibrate`` shows and writes: the text summary of a fit and its YAML.

Text: the fitted structural parameters per placement class, then median |error| tables per
operation and size band (fit residuals, cross-validation, test files). YAML: the calibration
(:func:`simulator.calibration.yamlio.dump`) followed by the test files' errors, if any.
"""
from __future__ import annotations

BAND_NAMES = ("<=64KiB", "64KiB-16MiB", ">=16MiB", "all")


def _pct(v: dict | None) -> str:
    return "-" if v is None else f"{100 * v['median_abs']:.1f}"


def render_table(block: dict, title: str, fitted_ops: set[str] | None = None) -> str:
    """Median |error| % per op and band, structural -> corrected, and the corrected max."""
    lines = [title, f"  {'op':16s}" + "".join(f"{b:>22s}" for b in BAND_NAMES)]
    s, c = block["structural"], block["corrected"]
    for op in c:
        cells = []
        for b in BAND_NAMES:
            cv = c[op].get(b)
            sv = s.get(op, {}).get(b)
            cells.append("-" if cv is None else
                         f"{_pct(sv)} -> {_pct(cv)} ({100 * cv['max_abs']:.0f})")
        tag = "" if fitted_ops is None else (" *" if op in fitted_ops else "")
        lines.append(f"  {op + tag:16s}" + "".join(f"{x:>22s}" for x in cells))
    o = block["overall"]
    lines.append(f"  overall: median |error| {100 * o['structural']['median_abs']:.1f}% "
                 f"structural, {100 * o['corrected']['median_abs']:.1f}% corrected "
                 f"(max {100 * o['corrected']['max_abs']:.0f}%, {o['corrected']['n']} points)")
    return "\n".join(lines)


def render_text(cal, test: dict | None = None) -> str:
    """What ``collsim calibrate`` prints: the fitted parameters per placement class, the fit
    residuals, the cross-validated error and, with test files, their error."""
    out = []
    srcs = ", ".join(f"{s['path']} ({s.get('used', 0)} used)" for s in cal.sources)
    out.append(f"calibrated on {cal.selection['rows']} measurements "
               f"({cal.method_class}: {', '.join(cal.methods)}) from {srcs}")
    out.append(f"operations: {', '.join(cal.selection['ops'])}")
    for scope, p in cal.classes.items():
        copy = f", own-share copy {p.copy_gbps:.0f} GB/s" if p.copy_gbps else ""
        disp = f" (host dispatch {p.dispatch_us:.1f} us)" if p.dispatch_us else ""
        out.append(f"{scope} (ranks {', '.join(map(str, p.ranks))}): per-call overhead "
                   f"{p.overhead_us:.1f} us{disp}, latency {p.latency_us:.1f} us, per-step "
                   f"latency {p.step_latency_us:.2f} us, link {p.link_gbps:.1f} GB/s{copy}")
    out.append("")
    out.append(render_table(cal.residuals, "fit residuals: median |error| % per size band, "
                            "structural -> corrected (corrected max %)"))
    if cal.cross_validation:
        cv = cal.cross_validation
        out.append("")
        out.append(render_table(cv, f"cross-validated ({cv['folds']}-fold over sizes: fit on "
                                "the other sizes, predict these): median |error| %"))
    if test:
        out.append("")
        out.append(render_table(test, "test files: median |error| % of the calibrated "
                                "prediction (* = operation fitted; others transferred)",
                                set(cal.selection["ops"])))
    return "\n".join(out) + "\n"


def render_yaml(cal, test: dict | None = None) -> str:
    """The calibration file: the fit, then (with test files) their errors under ``test``."""
    from .yamlio import _errblock, dump
    text = dump(cal)
    if test:
        import yaml
        block = _errblock(test)
        block["files"] = test["files"]
        block["note"] = ("errors of the calibrated prediction on these files; operations "
                         "not in selection.ops were not fitted (transfer)")
        text += yaml.safe_dump({"test": block}, sort_keys=False, default_flow_style=None,
                               width=100)
    return text
