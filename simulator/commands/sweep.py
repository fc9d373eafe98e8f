"""``collsim sweep``: generate and simulate a grid of configurations in parallel."""
from __future__ import annotations

import argparse
import os
import sys
import time

from .common import positive_int

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
    p.add_argument("--dry-run", action="store_true", help="list the points and stop")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")


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
        heatmap = tuple(parts)
    heatmap = heatmap or report.default_heatmap_axes(spec.axes)
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise InputError("the output directory does not exist", path=out)

    t0 = time.perf_counter()
    with make_executor(args.executor, args.jobs, args.scheduler) as ex:
        results = run_points(spec.points, ex, Cache(cache_dir), base_dir=spec.base_dir,
                             progress=not args.quiet)
    wall = time.perf_counter() - t0

    outputs: dict[str, bytes | str] = {out: report.render_csv(results, spec.axes)}
    axes = spec.axes or ["gpus", "tp", "pp", "ep"]
    if not args.no_plots and any(r["status"] == "ok" for r in results):
        if heatmap:
            outputs[f"{stem}-heatmap.png"] = report.plot_heatmap(
                results, heatmap[0], heatmap[1], title=f"{spec.name}: iteration time (ms)")
        outputs[f"{stem}-breakdown.png"] = report.plot_breakdown(results, axes,
                                                                 title=f"{spec.name}: breakdown")
        outputs[f"{stem}-pareto.png"] = report.plot_pareto(results, axes,
                                                           title=f"{spec.name}: time vs GPUs")
    write_all(outputs, inputs=inputs)
    if not args.quiet:
        sys.stdout.write(report.best_table(results, axes, args.best or spec.best))
        print(f"wrote {', '.join(outputs)} in {wall:.1f} s"
              + (f"; cache {cache_dir}" if cache_dir else ""))
    return 0
