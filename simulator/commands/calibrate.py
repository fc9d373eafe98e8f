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


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..calibration import calibrate, evaluate_files
    from ..calibration.report import render_text, render_yaml
    from ..report.output import write_all
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
            test = evaluate_files(cal, args.test, method_default=args.method_default,
                                  placement=args.placement, nccl_tests_op=args.nccl_tests_op)
    write_all({args.output: render_yaml(cal, test)}, inputs=inputs)
    if not args.quiet:
        sys.stdout.write(render_text(cal, test))
        sys.stdout.write(f"wrote {args.output}\n")
    return 0
