"""``collsim validate``: run the bundled validation cases and report measured vs predicted."""
from __future__ import annotations

import argparse
import sys

HELP = ("Run the bundled validation cases (seed 003 pipeline-stage replay, the EP MoE step "
        "measured on two H200s (EP 2) and on four H200s (EP 4), the A100 MoE-layer runs of "
        "seeds 000 and 002, the collectives predicted from an all-to-all-only calibration, and "
        "the collectives measured at 4 ranks predicted by the given calibration and by the "
        "4-GPU one), print measured vs predicted with each error, the median and the maximum; "
        "with --write-docs, also rewrite the validate section of docs/validation.md.")


#: ``--write-docs`` without a PATH (an explicit empty PATH is refused as a typo)
BARE_DOCS = object()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibration", metavar="YAML",
                   help="communication calibration for the end-to-end cases (default: "
                        "traces/h200x2/calib_h200x2.yaml)")
    p.add_argument("--transfer-calibration", metavar="YAML",
                   help="calibration whose prediction of the collectives it was not fitted on "
                        "is reported (default: traces/h200x2/calib_h200x2_a2a_only.yaml)")
    p.add_argument("--write-docs", nargs="?", const=BARE_DOCS, default=None, metavar="PATH",
                   help="also write the validate section of a markdown file (default PATH: "
                        "docs/validation.md of the source checkout); nothing is written "
                        "without this option")
    p.add_argument("--docs", dest="write_docs", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--no-docs", action="store_true", help=argparse.SUPPRESS)  # the default now
    p.add_argument("--json", metavar="PATH",
                   help="results as JSON ('-' for stdout): cases, summary, the transfer table "
                        "and the 4-rank collectives table")
    p.add_argument("--power-cap", choices=("on", "off"), default=None,
                   help="the GPU power-cap model (generate --power-cap) on or off for every "
                        "H200 GPT step (default: generate's default for the H200)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..validation import docs_text, render_text, run_validation
    from ..validation.report_json import render_json

    from .common import check_outputs
    if args.write_docs is BARE_DOCS:
        from ..errors import InputError
        from ..validation import DEFAULT_DOCS
        if DEFAULT_DOCS is None:
            raise InputError("--write-docs needs a PATH outside a source checkout (an "
                             "installed collsim has no docs/ of its own)", field="--write-docs")
        args.write_docs = str(DEFAULT_DOCS)
    inputs = check_outputs(args, {"json": "--json", "write_docs": "--write-docs"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cases' size-1 groups are intended
        pc = getattr(args, "power_cap", None)
        rep = run_validation(args.calibration, args.transfer_calibration,
                             power_cap=None if pc is None else pc == "on")
    if not args.quiet and args.json != "-":
        sys.stdout.write(render_text(rep))
    # the JSON and the docs section are one set of outputs: both written or neither
    outputs: dict[str, str] = {}
    if args.json:
        outputs[args.json] = render_json(rep)
    docs_path = None
    if args.write_docs is not None:
        docs_path = args.write_docs
        outputs[docs_path] = docs_text(rep, docs_path)
    if outputs:
        from ..report.output import write_all
        write_all(outputs, inputs=inputs)
    if docs_path is not None and not args.quiet and args.json != "-":
        sys.stderr.write(f"wrote the validate section of {docs_path}\n")
    return 0
