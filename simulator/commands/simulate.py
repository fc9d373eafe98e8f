"""``collsim simulate``: replay a workload table and report where the iteration time goes."""
from __future__ import annotations

import argparse
import sys

from .common import add_cluster_arguments, build_cost_model, positive_int

HELP = ("Replay a SimAI/AICB workload table on a cluster and report the iteration time, its "
        "breakdown (compute, exposed TP/EP/DP/DP_EP/PP communication, pipeline bubble), "
        "per-layer detail and a timeline.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("workload", help="workload table (SimAI/AICB text format)")
    p.add_argument("--gpus", type=positive_int, metavar="N",
                   help="world size; overrides the header's all_gpus")
    p.add_argument("--strict", action="store_true",
                   help="treat a wrong row count on line 2 as an error instead of a warning")
    p.add_argument("--pp-schedule", choices=["1f1b", "interleaved", "gpipe"], default="1f1b",
                   help="pipeline schedule (default 1f1b)")
    p.add_argument("--vpp", type=positive_int, metavar="CHUNKS",
                   help="model chunks per stage for --pp-schedule interleaved "
                        "(default: the header's vpp)")
    add_cluster_arguments(p)
    o = p.add_argument_group("outputs")
    o.add_argument("--csv", metavar="PATH",
                   help="per-layer CSV plus a summary row in SimAI EndToEnd.csv columns (us)")
    o.add_argument("--json", metavar="PATH", help="summary as JSON ('-' for stdout)")
    o.add_argument("--trace", metavar="PATH",
                   help="timeline in Chrome/Perfetto trace-event JSON (.json, or .gz compressed)")
    o.add_argument("--plot", metavar="PATH", help="PNG with the stages' timeline and the breakdown")
    o.add_argument("--quiet", action="store_true", help="do not print the summary")


def run(args: argparse.Namespace) -> int:
    import json
    import warnings

    from ..engine import SimulationOptions, simulate
    from ..readers.workload import read_workload
    from ..report.output import write_all
    from ..report.summary import summary_dict
    from ..report.text import render_text

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        workload = read_workload(args.workload, strict=args.strict)
        cluster, cost_model = build_cost_model(args)
        tracing = bool(args.trace or args.plot)
        result = simulate(workload, cluster, cost_model, options=SimulationOptions(
            gpus=args.gpus, pp_schedule=args.pp_schedule, vpp_chunks=args.vpp, trace=tracing))

    # render everything first, then write: an error leaves no partial set of files
    outputs: dict[str, bytes | str] = {}
    if args.csv:
        from ..report.csv_report import render_csv
        outputs[args.csv] = render_csv(result)
    if args.trace:
        from ..report.perfetto import render_trace
        outputs[args.trace] = render_trace(result, gzip_output=args.trace.endswith(".gz"))
    if args.plot:
        from ..report.plot import render_plot
        outputs[args.plot] = render_plot(result)
    if args.json:
        outputs[args.json] = json.dumps(summary_dict(result), indent=2) + "\n"
    if not args.quiet and args.json != "-":
        sys.stdout.write(render_text(result))
    write_all(outputs)
    return 0
