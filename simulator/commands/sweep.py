"""``collsim sweep``: generate and simulate a grid of configurations in parallel."""
from __future__ import annotations

import argparse
import os
import sys
import time

from .arguments import positive_int

HELP = ("Run a grid (or list) of what-if configurations from a YAML spec: generate each "
        "workload, simulate it, and write a CSV (configuration, iteration time, breakdown, "
        "tokens/s, MFU), the best configurations and plots (iteration-time heatmap, "
        "breakdown bars, Pareto front of time vs GPUs). Finished points are cached.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep specification (YAML: base, grid, points, plots)")
    p.add_argument("-o", "--output", metavar="CSV",
                   help="result table (default: <spec name>.csv in the current directory); "
                        "plots go beside it")
    p.add_argument("--jobs", "-j", type=positive_int, metavar="N",
                   help="parallel workers (default: the CPU count)")
    p.add_argument("--executor", choices=["process", "dask", "serial"], default="process",
                   help="where points run: a local process pool (default), Dask, or in this "
                        "process")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="Dask scheduler, e.g. tcp://host:8786 (default: a LocalCluster of "
                        "--jobs workers)")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="cache of finished points (default: <output stem>.cache beside the CSV)")
    p.add_argument("--no-cache", action="store_true", help="compute every point again")
    p.add_argument("--heatmap", metavar="X,Y",
                   help="the two axes of the heatmap (default: the spec's plots.heatmap, else "
                        "the first two grid axes)")
    p.add_argument("--best", type=positive_int, metavar="N", help="configurations to print")
    p.add_argument("--no-plots", action="store_true", help="write the CSV only")
    p.add_argument("--report", metavar="PATH.html",
                   help="also write a self-contained HTML study report: the best "
                        "configurations, the sortable table, the plots, the spec and cost "
                        "model (opens offline in any browser)")
    p.add_argument("--dry-run", action="store_true", help="list the points and stop")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


def _html_report(spec, results, table: str, axes, args, plots, wall: float) -> str:
    import csv
    import io

    import yaml

    from ..report.html import render_report
    from ..sweep import report

    rows = list(csv.reader(io.StringIO(table)))
    ok = sum(r["status"] == "ok" for r in results)
    models = sorted({str(r.get("cost_model")) for r in results if r.get("cost_model")})
    settings = [("spec", os.path.abspath(args.spec)),
                ("points", f"{len(results)} ({ok} ran, {len(results) - ok} infeasible or "
                           "failed)"),
                ("cost model", ", ".join(models) or "the default"),
                ("executor", f"{args.executor}, {args.jobs or os.cpu_count()} workers, "
                             f"{wall:.1f} s"),
                ("command", " ".join(["collsim", "sweep", *sys.argv[2:]])
                 if len(sys.argv) > 1 else "collsim sweep " + args.spec),
                ("spec contents", yaml.safe_dump(spec.raw, sort_keys=False).rstrip())]
    return render_report(
        title=f"collsim sweep: {spec.name}",
        subtitle=f"{len(results)} configurations; varying {', '.join(spec.axes) or 'nothing'}",
        headline=report.best_table(results, axes, args.best or spec.best),
        columns=rows[0] if rows else [], rows=rows[1:],
        images=list(plots.values()), settings=settings)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..report.output import write_all
    from ..sweep import report
    from ..sweep.runner import Cache, make_executor, run_points
    from ..sweep.spec import KEYS, canonical_key, load_spec

    from ..report.output import check_paths

    spec = load_spec(args.spec)
    out = args.output or f"{spec.name}.csv"
    stem = out[:-4] if out.endswith(".csv") else out
    planned = {"--output": out}
    if not args.no_plots and not args.dry_run:
        planned.update({f"the {kind} plot": f"{stem}-{kind}.png"
                        for kind in ("heatmap", "breakdown", "pareto")})
    if args.report and not args.dry_run:
        planned["--report"] = args.report
    cache_dir = None if args.no_cache else (args.cache_dir or f"{stem}.cache")
    inputs = [args.spec] + spec.files
    check_paths(list(planned.items()), inputs)
    if cache_dir and os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        raise InputError("the cache directory is a file; give --cache-dir a directory or "
                         "use --no-cache", path=cache_dir, field="--cache-dir")
    if args.dry_run:
        axes = spec.axes or ["gpus", "tp", "pp", "ep"]
        print(f"{len(spec.points)} points; varying: {', '.join(spec.axes) or 'nothing'}")
        for i, pt in enumerate(spec.points):
            print(f"  {i:4d}  " + " ".join(f"{a}={pt[a]}" for a in axes))
        return 0
    heatmap = spec.heatmap
    if args.heatmap:
        parts = [canonical_key(s) for s in args.heatmap.split(",")]
        if len(parts) != 2 or any(a not in KEYS for a in parts):
            raise InputError(f"expected two keys like tp,ep, got {args.heatmap!r}",
                             field="--heatmap")
        heatmap = (parts[0], parts[1])
    heatmap = heatmap or report.default_heatmap_axes(spec.axes)
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise InputError("the output directory does not exist", path=out)

    t0 = time.perf_counter()
    with make_executor(args.executor, args.jobs, args.scheduler) as ex:
        results = run_points(spec.points, ex, Cache(cache_dir), base_dir=spec.base_dir,
                             progress=not args.quiet)
    wall = time.perf_counter() - t0

    table = report.render_csv(results, spec.axes)
    outputs: dict[str, bytes | str] = {out: table}
    axes = spec.axes or ["gpus", "tp", "pp", "ep"]
    plots: dict[str, tuple[str, bytes]] = {}
    if (not args.no_plots or args.report) and any(r["status"] == "ok" for r in results):
        if heatmap:
            plots[f"{stem}-heatmap.png"] = ("iteration time over " + " x ".join(heatmap),
                                            report.plot_heatmap(
                results, heatmap[0], heatmap[1], title=f"{spec.name}: iteration time (ms)"))
        plots[f"{stem}-breakdown.png"] = ("where the time goes, best configurations",
                                          report.plot_breakdown(
            results, axes, title=f"{spec.name}: breakdown"))
        plots[f"{stem}-pareto.png"] = ("iteration time against GPU count (Pareto front)",
                                       report.plot_pareto(
            results, axes, title=f"{spec.name}: time vs GPUs"))
    if not args.no_plots:
        outputs.update({path: png for path, (_, png) in plots.items()})
    if args.report:
        outputs[args.report] = _html_report(spec, results, table, axes, args, plots, wall)
    write_all(outputs, inputs=inputs)
    if not args.quiet:
        sys.stdout.write(report.best_table(results, axes, args.best or spec.best))
        print(f"wrote {', '.join(outputs)} in {wall:.1f} s"
              + (f"; cache {cache_dir}" if cache_dir else ""))
    return 0
