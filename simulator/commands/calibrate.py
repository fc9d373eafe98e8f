"""``collsim calibrate``: fit the communication model to measured collectives."""
from __future__ import annotations

import argparse
import sys

HELP = ("Fit the communication model to measured collectives (measurement CSV or nccl-tests "
        "output, detected per file): structural parameters per placement class (per-call "
        "overhead, latency, per-step latency, link and copy bandwidth) by least squares on "
        "relative error, then per-size-band correction factors per measured operation. "
        "Prints fit residuals per op and size band and a k-fold cross-validated error, and "
        "writes the calibration as YAML for --calibration.")

BAND_NAMES = ("<=64KiB", "64KiB-16MiB", ">=16MiB", "all")


def _ops(text: str) -> list[str]:
    from ..measurements import canonical_op
    from ..calibration.model import CAL_OPS

    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        op = canonical_op(part)
        if op not in CAL_OPS:
            raise argparse.ArgumentTypeError(
                f"unknown collective {part!r}; expected some of {', '.join(CAL_OPS)}")
        out.append(op)
    if not out:
        raise argparse.ArgumentTypeError("expected a comma-separated list of collectives")
    return out


def _folds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value == 1 or value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no cross-validation) or at least 2, "
                                         f"got {value}")
    return value


def _octaves(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.5 <= value <= 20:
        raise argparse.ArgumentTypeError(f"must lie in [0.5, 20], got {value:g}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="measurement files: CSV (op,ranks,bytes,time_us,...) or nccl-tests "
                        "output; read with the readers in simulator/readers")
    p.add_argument("-o", "--output", required=True, metavar="YAML",
                   help="where to write the calibration")
    p.add_argument("--ops", type=_ops, metavar="OP[,OP...]",
                   help="fit only these collectives (e.g. all_to_all,moe_all_to_all)")
    p.add_argument("--method", choices=["in-framework", "nccl-tests"],
                   help="fit the measurements of this method only (needed when the files mix "
                        "framework timings and nccl-tests)")
    p.add_argument("--method-default", choices=["in-framework", "nccl-tests"],
                   help="method of rows whose file does not say (no 'method' column)")
    from ..readers.nccl_tests import BINARY_OPS
    p.add_argument("--nccl-tests-op", metavar="OP", choices=sorted(set(BINARY_OPS.values())),
                   help="operation of nccl-tests output files that do not name their "
                        "'<op>_perf' binary (all_reduce, all_gather, all_to_all, ...)")
    p.add_argument("--placement", metavar="NODESxGPUS",
                   help="placement of every measurement (default: the file's 'placement' "
                        "column; none means one server)")
    p.add_argument("--folds", type=_folds, default=5, metavar="K",
                   help="cross-validation folds over the sizes (default 5; 0 skips it)")
    p.add_argument("--knot-octaves", type=_octaves, default=None, metavar="N",
                   help="spacing of the correction knots in powers of two (default 3: 8x)")
    p.add_argument("--test", nargs="+", metavar="FILE",
                   help="also predict these measurements (e.g. collectives that were not "
                        "fitted) and report the error; stored in the YAML under 'test'")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


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


def render(cal, test: dict | None = None) -> str:
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


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..calibration import calibrate
    from ..calibration.data import read_files
    from ..calibration.fit import evaluate
    from .common import check_outputs

    inputs = check_outputs(args, {"output": "--output"})
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        cal = calibrate(args.files, ops=args.ops, method=args.method,
                        method_default=args.method_default, placement=args.placement,
                        folds=args.folds, knot_octaves=args.knot_octaves,
                        nccl_tests_op=args.nccl_tests_op)
        test = None
        if args.test:
            rows, _ = read_files(args.test, method_default=args.method_default,
                                 placement=args.placement, nccl_tests_op=args.nccl_tests_op)
            rows = [r for r in rows if r.method_class == cal.method_class]
            if not rows:
                from ..errors import InputError
                raise InputError(f"the --test files hold no {cal.method_class} measurements")
            test = evaluate(cal, rows)
            test["files"] = list(args.test)
            cal.test = test
    from ..calibration.yamlio import dump
    text = dump(cal)
    if test:
        from ..calibration.yamlio import _errblock
        import yaml
        block = _errblock(test)
        block["files"] = test["files"]
        block["note"] = ("errors of the calibrated prediction on these files; operations "
                         "not in selection.ops were not fitted (transfer)")
        text += yaml.safe_dump({"test": block}, sort_keys=False, default_flow_style=None,
                               width=100)
    from ..report.output import write_all
    write_all({args.output: text}, inputs=inputs)
    if not args.quiet:
        sys.stdout.write(render(cal, test))
        sys.stdout.write(f"wrote {args.output}\n")
    return 0
