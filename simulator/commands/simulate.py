"""``collsim simulate``: replay a workload table and report where the iteration time goes."""
from __future__ import annotations

import sys

from ..engine.policy import COMPATS
from ..engine.schedule import SCHEDULES

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    import argparse

HELP = ("Replay a SimAI/AICB workload table on a cluster and report the iteration time, its "
        "breakdown (compute, exposed TP/EP/DP/DP_EP/PP communication, pipeline bubble), "
        "per-layer detail and a timeline.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    # simulate_args.OPTIONS reads the common lines of these flags without argparse: a flag
    # changed here is changed there (tests/test_simulate_args.py compares the two)
    import argparse

    from .arguments import add_cluster_arguments, positive_int
    p.add_argument("workload", help="workload table (SimAI/AICB text format)")
    p.add_argument("--gpus", type=positive_int, metavar="N",
                   help="world size; overrides the header's all_gpus")
    p.add_argument("--compat", choices=list(COMPATS), default="auto",
                   help="whose replay of the policy word on line 1: astra-sim (ASTRA-sim 1.0: "
                        "the policy picks each column's communicator), simai (the type word's "
                        "suffix and the header's sizes pick it); default auto: the header's "
                        "style (SimAI/AICB keys such as all_gpus: or ga: mean simai)")
    p.add_argument("--strict", action="store_true",
                   help="treat a wrong row count on line 2 as an error instead of a warning")
    p.add_argument("--pp-schedule", choices=list(SCHEDULES), default=None,
                   help="pipeline schedule (default: the one a generated table was written "
                        "for, FILE.meta.json: interleaved with 'collsim generate --vpp'; "
                        "else 1f1b)")
    p.add_argument("--vpp", type=positive_int, metavar="CHUNKS",
                   help="model chunks per stage for --pp-schedule interleaved "
                        "(default: the header's vpp)")
    p.add_argument("--blocking-sends", choices=["auto", "on", "off"], default="auto",
                   help="whether a pipeline send blocks the sending stage until it arrives, as "
                        "Megatron-LM's p2p does (it waits on its requests) outside the "
                        "interleaved schedule, and in it with --no-overlap-p2p-communication. "
                        "auto (default): so for a table generated in Megatron style "
                        "(FILE.meta.json says so), off for SimAI/AICB tables "
                        "(SimAI's asynchronous sends); each --co-job by its own table")
    add_cluster_arguments(p)
    w = p.add_argument_group("ranks that differ (what-ifs; simulated with one process per rank "
                             "class)")
    w.add_argument("--straggler", action="append", default=[], metavar="SPEC",
                   help="slow GPUs: 'rank=17,compute=1.3' (30%% slower compute), "
                        "'ranks=0-7,compute=1.1', or 'fraction=0.01,compute=1.2,seed=7' "
                        "(a random 1%% of the ranks); repeatable")
    w.add_argument("--jitter", metavar="SPEC",
                   help="random compute times: 'cv=0.05,seed=3' (coefficient of variation of "
                        "every phase) or 'fwd=0.05,ig=0.1,wg=0.02'; a class of n ranks waits "
                        "for the slowest of n draws; with --draws N, N seeds")
    w.add_argument("--degrade", action="append", default=[], metavar="SPEC",
                   help="slower scale-out NICs: 'server=3,nic=0.5' (half bandwidth on server "
                        "3), 'rank=17,nic=0.25,latency=5us' (one GPU's NIC, 5 us more "
                        "latency); with --topology also a leaf's uplinks to the spine: "
                        "'leaf=2,uplink=0.5' (pod 2's leaf at half bandwidth, both ways; "
                        "',rail=R': that rail's leaf only); repeatable")
    w.add_argument("--fail", metavar="SPEC",
                   help="a node fails during the iteration: 'at=120ms,restart=300s' (restart "
                        "cost) [',lost-iterations=N' since the last checkpoint]; reports the "
                        "lost time")
    w.add_argument("--sensitivity", action="store_true",
                   help="re-simulate with each group's communication 10%% faster and report "
                        "how much the iteration gains (which group's bandwidth matters)")
    w.add_argument("--draws", type=positive_int, default=1, metavar="N",
                   help="with a 'fraction=' straggler or --jitter: simulate N random draws and "
                        "report the "
                        "step-time distribution (percentiles)")
    w.add_argument("--distribution-plot", metavar="PATH",
                   help="with --draws: PNG histogram of the step time over the draws")
    w.add_argument("--contention", action=argparse.BooleanOptionalAction, default=None,
                   help="collectives and pipeline sends that overlap in time share links "
                        "max-min fairly (flow level; the detailed engine): with the nccl "
                        "cost model every link of its graph (NVLink, PCIe, NIC, leaf, spine), "
                        "on by default with --topology, off on the preset the flags imply; "
                        "with simai each rank class's NVLink and NIC, off by default. "
                        "--no-contention prices every collective alone")
    w.add_argument("--co-job", action="append", default=[], metavar="WORKLOAD",
                   help="another job on the same cluster (repeatable): each job gets its own "
                        "result, and jobs share the NICs their GPUs share (contention on); "
                        "each job's tied-embedding all-reduce and blocking sends follow its "
                        "own FILE.meta.json")
    w.add_argument("--placement", choices=["packed", "spread", "rail"], default=None,
                   help="with --co-job: packed (whole servers per job), spread (jobs "
                        "interleaved GPU by GPU), rail (each job a slice of every server)")
    w.add_argument("--engine", choices=["fast", "detailed"], default="fast",
                   help="fast: one process per stage, passes memoized (default); detailed: "
                        "row-level rendezvous per rank class (same answer when ranks are alike; "
                        "chosen automatically when they differ)")
    o = p.add_argument_group("outputs")
    o.add_argument("--csv", metavar="PATH",
                   help="per-layer CSV plus a summary row in SimAI EndToEnd.csv columns (us); "
                        "'-' for stdout")
    o.add_argument("--csv-style", choices=["collsim", "simai"], default="collsim",
                   help="collsim: our per-layer columns, then the summary (default); simai: "
                        "the layout of SimAI's EndToEnd.csv exactly (summary first, its "
                        "per-layer columns with algbw/busbw in GiB/s, its separators), for "
                        "tools written for SimAI's output")
    o.add_argument("--json", metavar="PATH", help="summary as JSON ('-' for stdout)")
    o.add_argument("--trace", metavar="PATH",
                   help="timeline in Chrome/Perfetto trace-event JSON (.json, or .gz compressed)")
    o.add_argument("--plot", metavar="PATH", help="PNG with the stages' timeline and the breakdown")
    o.add_argument("--report", metavar="PATH.html",
                   help="with --draws N: a self-contained HTML study report (the step-time "
                        "summary, a sortable table of the draws, the distribution plot, the "
                        "settings and cost model; opens offline)")
    o.add_argument("--full-tables", action="store_true",
                   help="with rank classes: list every class (default: the slowest classes "
                        "and each pipeline stage's slowest)")
    o.add_argument("--quiet", action="store_true", help="do not print the summary")


#: slices a --trace or --plot timeline may hold (each about 1 kB)
MAX_TRACE_SLICES = 3_000_000


def _warn_unused_parameters(args: argparse.Namespace, workload, world: int, cluster) -> None:
    """A what-if flag the job never exercises cannot change the answer: say so."""
    import warnings

    from .common import cluster_options
    options = cluster_options(args)
    if not options.asked():     # no cluster flag, no override: the check's modules stay unloaded
        return
    from ..checks import cluster_overrides, unused_parameters
    overrides = cluster_overrides(options)
    if not overrides:
        return
    from ..config.flags import CLUSTER_FIELDS, flag_for
    from ..errors import SimulationWarning
    from ..parallel import make_parallel
    # the job as the policy word replays it (its groups and collectives)
    from ..engine.policy import layout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        replayed = layout(workload, args.compat, world, cluster.gpus_per_server).workload
    par = make_parallel(world, replayed.tp, replayed.pp, replayed.ep, workload.path)
    structural = bool(args.topology or args.contention or args.co_job)
    cost_model_for = None
    if args.calibration and not structural:
        # the calibrated model sees the cluster only through prices, as the
        # analytical one: compare prices through it (its classes may replace NVLink)
        from ..calibration import wrap_with_calibration
        from ..costmodel.analytical import AnalyticalCostModel

        def cost_model_for(c):
            return wrap_with_calibration(c, AnalyticalCostModel(c), args.calibration)
    for message in unused_parameters(replayed, par, cluster, overrides,
                                     cost_model_for=cost_model_for,
                                     structural_only=structural,
                                     names={field: flag_for(key) for key, field
                                            in CLUSTER_FIELDS.items()}):
        warnings.warn(message, SimulationWarning, stacklevel=2)


def _blocking_sends(args: argparse.Namespace, sidecar: dict | None) -> bool:
    from ..provenance import blocking_sends
    return blocking_sends(args.blocking_sends, sidecar, args.pp_schedule)


def _scenario(args: argparse.Namespace) -> dict:
    """WhatIf's stragglers, degrades, failure and jitter from their flags; without any of
    those flags (the common run) the scenario module is not loaded."""
    if not (args.straggler or args.degrade or args.fail or args.jitter):
        return {}
    from ..scenario import parse_degrade, parse_failure, parse_jitter, parse_straggler
    stragglers = tuple(parse_straggler(text) for text in args.straggler)
    degrades = tuple(parse_degrade(text) for text in args.degrade)
    failure = parse_failure(args.fail) if args.fail else None
    jitter, jitter_seed = parse_jitter(args.jitter) if args.jitter else ((), 0)
    return {"stragglers": stragglers, "degrades": degrades, "failure": failure,
            "jitter": jitter, "jitter_seed": jitter_seed}


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..engine import SimulationOptions
    from ..engine.simulate import resolve_world
    from ..errors import InputError
    from ..readers.workload import read_workload
    from ..study import WhatIf, run_study

    dashes = [f for f in ("csv", "json") if getattr(args, f) == "-"]
    if len(dashes) > 1:
        raise InputError(f"only one output can go to stdout ('-'): --{dashes[0]} and "
                         f"--{dashes[1]} both ask for it", field=f"--{dashes[1]}")
    for f in ("trace", "plot", "distribution_plot"):
        if getattr(args, f) == "-":
            raise InputError("a binary output cannot go to stdout: give a file name",
                             field=f"--{f.replace('_', '-')}")
    from .common import check_outputs
    inputs = check_outputs(args, {"json": "--json", "csv": "--csv", "trace": "--trace",
                                  "plot": "--plot", "distribution_plot": "--distribution-plot"})
    what_if = WhatIf(
        **_scenario(args), draws=args.draws, sensitivity=args.sensitivity,
        co_jobs=tuple(args.co_job), placement=args.placement,
        co_job_blocking_sends=args.blocking_sends)
    if args.report and args.draws < 2:
        raise InputError("--report needs --draws N with N >= 2 (a study of random draws); "
                         "for one run use --json or --csv", field="--report")
    if args.distribution_plot and args.draws < 2:
        raise InputError("--distribution-plot needs --draws N with N >= 2",
                         field="--distribution-plot")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        workload = read_workload(args.workload, strict=args.strict)
        import os

        from ..provenance import (embedding_allreduce_bytes, grad_sync_before_optimizer,
                                  pipeline_schedule, read_sidecar, sidecar_path)
        from .common import build_cost_model_for
        sidecar = read_sidecar(args.workload)
        args.pp_schedule, schedule_from = pipeline_schedule(args.pp_schedule, sidecar)
        cluster, cost_model, cluster_choice = build_cost_model_for(
            args, (sidecar or {}).get("gpu"), os.path.basename(sidecar_path(args.workload)))
        tracing = bool(args.trace or args.plot)
        if tracing:
            # every stage replays the table: a timeline holds up to rows x 3 x PP slices,
            # about 1 kB each in memory and JSON
            slices = len(workload.rows) * 3 * max(1, workload.pp)
            if slices > MAX_TRACE_SLICES:
                flag = "--trace" if args.trace else "--plot"
                raise InputError(f"a timeline of {len(workload.rows):,} rows on {workload.pp:,} "
                                 f"pipeline stages holds up to {slices:,} slices; at most "
                                 f"{MAX_TRACE_SLICES:,} (a few GB): drop {flag} or trace a "
                                 "smaller configuration", field=flag)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            world = resolve_world(workload, args.gpus, cost_model)
        _warn_unused_parameters(args, workload, world, cluster)
        study = run_study(workload, cluster, cost_model, SimulationOptions(
            gpus=args.gpus, pp_schedule=args.pp_schedule, vpp_chunks=args.vpp, trace=tracing,
            engine=args.engine, contention=args.contention, compat=args.compat,
            embedding_allreduce_bytes=embedding_allreduce_bytes(sidecar),
            blocking_sends=_blocking_sends(args, sidecar),
            grad_sync_before_optimizer=grad_sync_before_optimizer(sidecar)),
            what_if, strict=args.strict, sidecar_of=args.workload, sidecar=sidecar,
            progress=not args.quiet)
    result, co_results, draws = study.result, study.co_results, list(study.draws_ns)
    if schedule_from and workload.pp > 1:
        result.notes.append(f"pipeline schedule {args.pp_schedule}, the one the table was "
                            f"generated for ({os.path.basename(sidecar_path(args.workload))}); "
                            "--pp-schedule chooses another")
    if cluster_choice:
        from ..records import replace
        result = replace(
            result, cost_model={**result.cost_model, "cluster_chosen": cluster_choice})

    # render everything first, then write: an error leaves no partial set of files
    outputs: dict[str, bytes | str] = {}
    kinds: dict[str, str] = {}
    if args.csv:
        if args.csv_style == "simai":
            import os

            from ..report.simai_csv import render_simai_csv
            run_name = os.path.splitext(os.path.basename(args.workload))[0]
            outputs[args.csv] = render_simai_csv(result, run_name=run_name)
        else:
            from ..report.csv_report import render_csv
            outputs[args.csv] = render_csv(result)
        kinds[args.csv] = "per-layer CSV" + (" (SimAI EndToEnd layout)"
                                             if args.csv_style == "simai" else "")
    if args.trace:
        from ..report.perfetto import render_trace
        outputs[args.trace] = render_trace(result, gzip_output=args.trace.endswith(".gz"))
        kinds[args.trace] = "Perfetto trace"
    if args.plot:
        from ..report.plot import render_plot
        outputs[args.plot] = render_plot(result)
        kinds[args.plot] = "timeline plot"
    if args.distribution_plot:
        from ..report.plot import render_distribution
        outputs[args.distribution_plot] = render_distribution(result)
        kinds[args.distribution_plot] = "step-time distribution plot"
    if args.report:
        from ..report.study_html import render_study_report
        from ..report.text import describe_cost_model
        settings = [("workload", args.workload),
                    ("command", " ".join(["collsim", *sys.argv[1:]])),
                    ("draws", str(args.draws)),
                    ("stragglers", "; ".join(args.straggler) or "none"),
                    ("jitter", args.jitter or "none"),
                    ("degraded", "; ".join(args.degrade) or "none"),
                    ("cost model", "\n".join(describe_cost_model(result.cost_model)))]
        outputs[args.report] = render_study_report(result, draws, args.workload, settings)
        kinds[args.report] = "HTML report"
    if args.json:
        import json

        from ..report.summary import summary_dict
        doc = summary_dict(result)
        if co_results:
            doc["co_jobs"] = [summary_dict(r) for r in co_results]
        outputs[args.json] = json.dumps(doc, indent=2) + "\n"
        kinds[args.json] = "JSON summary"
    to_stdout = "-" in outputs
    show_summary = not args.quiet and not to_stdout
    if show_summary:
        from ..report.text import render_text   # not with --quiet
        sys.stdout.write(render_text(result, full=args.full_tables))
        for r in co_results:
            sys.stdout.write("\n--- co-located job ---\n" + render_text(r, top_rows=0))
    if outputs:     # (a plain run writes nothing: the writer's module is not loaded)
        from ..report.output import write_all
        write_all(outputs, inputs=inputs)
    written = [(path, kinds.get(path, "output")) for path in outputs if path != "-"]
    if show_summary and written:
        sys.stdout.write("\n  wrote: " + "; ".join(f"{p} ({k})" for p, k in written) + "\n")
    return 0
