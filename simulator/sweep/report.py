"""Sweep outputs: the CSV table, the best configurations, and three plots."""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence

from .spec import KEYS

RESULT_COLUMNS = ["iteration_ms", "compute_ms", "recompute_ms", "bubble_ms", "exposed_tp_ms",
                  "exposed_ep_ms", "exposed_dp_ms", "exposed_dp_ep_ms", "exposed_pp_ms",
                  "tokens_per_s", "tokens_per_s_per_gpu", "mfu", "memory_gib",
                  "params_per_gpu"]
CONFIG_COLUMNS = ["model", "gpus", "tp", "pp", "ep", "dp", "dp_ep", "sp", "vpp", "micro_batch",
                  "global_batch", "ga", "seq_length", "gpu", "style", "recompute",
                  "distributed_optimizer", "pp_schedule", "gpus_per_server", "nvlink_bw",
                  "nic_bw", "nics_per_server", "cost_model"]
PARTS = [("compute_ms", "compute"), ("exposed_tp_ms", "TP"), ("exposed_ep_ms", "EP"),
         ("exposed_dp_ms", "DP"), ("exposed_dp_ep_ms", "DP_EP"), ("exposed_pp_ms", "PP"),
         ("bubble_ms", "bubble")]


def _value(r: dict, col: str):
    """A column of a result: the effective value where the run knows it, else the point's."""
    if col in r and r[col] is not None and col not in ("model",):
        return r[col]
    return r["point"].get(col)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def render_csv(results: list[dict], extra_axes: Sequence[str] = ()) -> str:
    from ..report.escape import csv_cell

    cols = list(CONFIG_COLUMNS)
    for a in extra_axes:
        if a not in cols:
            cols.append(a)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["point", "key", "status"] + cols + RESULT_COLUMNS + ["cached", "error", "notes"])
    for i, r in enumerate(results):
        row = [i, r["key"], r["status"]] + [_fmt(_value(r, c)) for c in cols]
        row += [_fmt(r.get(c)) for c in RESULT_COLUMNS]
        row += [_fmt(r.get("cached", False)), r.get("error", ""), r.get("notes", "")]
        w.writerow([csv_cell(c) for c in row])
    return buf.getvalue()


def label(r: dict, axes: list[str]) -> str:
    names = {"gpus": "G", "tp": "TP", "pp": "PP", "ep": "EP", "vpp": "VPP", "sp": "SP",
             "micro_batch": "mb", "global_batch": "gb"}
    parts = []
    for a in axes:
        v = _value(r, a)
        if a in ("topology", "calibration"):
            # a file by its name; no topology is the analytical model, no calibration none
            text = os.path.basename(str(v)) if v else ("analytical" if a == "topology" else "")
            if text:
                parts.append(f"{a}={text}")
            continue
        parts.append(f"{names.get(a, a)}{_fmt(v)}")
    return " ".join(parts) or r["key"][:8]


def best_table(results: list[dict], axes: list[str], n: int = 5) -> str:
    from ..report.escape import for_terminal
    return for_terminal(_best_table(results, axes, n))  # spec values reach a terminal


def _best_table(results: list[dict], axes: list[str], n: int = 5) -> str:
    ok = [r for r in results if r["status"] == "ok"]
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("ok", "infeasible",
                                                                        "error")}
    cached = sum(1 for r in results if r.get("cached"))
    lines = [f"{len(results)} points: {counts['ok']} ok, {counts['infeasible']} infeasible, "
             f"{counts['error']} failed; {cached} from the cache"]
    if not ok:
        return "\n".join(lines) + "\n"
    show = axes or ["gpus", "tp", "pp", "ep"]
    ranked = sorted(ok, key=lambda r: -r["tokens_per_s_per_gpu"])
    lines.append(f"best {min(n, len(ok))} by tokens/s per GPU:")
    lines.append(f"  {'configuration':<34} {'iter ms':>10} {'tok/s/GPU':>10} {'MFU':>6} "
                 f"{'mem GiB':>8}  largest exposed part")
    for r in ranked[:n]:
        worst = max(PARTS[1:], key=lambda p: r.get(p[0]) or 0)
        mfu = f"{r['mfu'] * 100:5.1f}%" if r.get("mfu") is not None else "   n/a"
        lines.append(f"  {label(r, show):<34} {r['iteration_ms']:>10.1f} "
                     f"{r['tokens_per_s_per_gpu']:>10.1f} {mfu:>6} {r['memory_gib']:>8.1f}  "
                     f"{worst[1]} {r.get(worst[0]) or 0:.1f} ms")
    gpus = sorted({r["point"]["gpus"] for r in ok})
    if len(gpus) > 1:
        lines.append("fastest iteration per GPU count:")
        for g in gpus:
            r = min((x for x in ok if x["point"]["gpus"] == g), key=lambda x: x["iteration_ms"])
            lines.append(f"  {g:>6} GPUs: {label(r, show):<34} {r['iteration_ms']:.1f} ms")
    errors = [r for r in results if r["status"] == "error"]
    for r in errors[:3]:
        lines.append(f"failed: {label(r, show)}: {r['error']}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plots

def _fig_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return buf.getvalue()


def _sort_key(v):
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v))


def plot_heatmap(results: list[dict], x: str, y: str, title: str = "") -> bytes:
    """Iteration time over two axes; each cell the best (lowest) over the other axes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    xs = sorted({_value(r, x) for r in results}, key=_sort_key)
    ys = sorted({_value(r, y) for r in results}, key=_sort_key)
    grid = np.full((len(ys), len(xs)), np.nan)
    for r in results:
        if r["status"] != "ok":
            continue
        i, j = ys.index(_value(r, y)), xs.index(_value(r, x))
        v = r["iteration_ms"]
        if math.isnan(grid[i, j]) or v < grid[i, j]:
            grid[i, j] = v
    fig, ax = plt.subplots(figsize=(1.1 * len(xs) + 2.5, 0.8 * len(ys) + 1.8))
    cmap = plt.get_cmap("viridis_r").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [_fmt(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_fmt(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for i in range(len(ys)):
        for j in range(len(xs)):
            v = grid[i, j]
            ax.text(j, i, "infeasible" if math.isnan(v) else f"{v:.0f}", ha="center",
                    va="center", fontsize=8, color="#555555" if math.isnan(v) else "white")
    fig.colorbar(im, ax=ax, label="iteration time (ms), best over the other axes")
    ax.set_title(title or f"iteration time over {x} and {y}")
    return _fig_bytes(fig)


def plot_breakdown(results: list[dict], axes: list[str], n: int = 15, title: str = "") -> bytes:
    """Stacked iteration-time breakdown of the ``n`` best points (tokens/s per GPU)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = sorted((r for r in results if r["status"] == "ok"),
                key=lambda r: -r["tokens_per_s_per_gpu"])[:n]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(ok) + 2), 4.5))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#aaaaaa"]
    bottom = [0.0] * len(ok)
    for (col, name), color in zip(PARTS, colors):
        vals = [r.get(col) or 0.0 for r in ok]
        ax.bar(range(len(ok)), vals, bottom=bottom, label=name, color=color)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(ok)), [label(r, axes) for r in ok], rotation=60, ha="right",
                  fontsize=8)
    ax.set_ylabel("iteration time (ms)")
    ax.legend(fontsize=8, ncols=4)
    ax.set_title(title or f"breakdown of the {len(ok)} best configurations (tokens/s per GPU)")
    return _fig_bytes(fig)


def pareto_front(results: list[dict]) -> list[dict]:
    """Points no other point beats on both GPUs (fewer or equal) and iteration time."""
    ok = sorted((r for r in results if r["status"] == "ok"),
                key=lambda r: (r["point"]["gpus"], r["iteration_ms"]))
    front, best = [], math.inf
    for r in ok:
        if r["iteration_ms"] < best:
            front.append(r)
            best = r["iteration_ms"]
    return front


def plot_pareto(results: list[dict], axes: list[str], title: str = "") -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["status"] == "ok"]
    front = pareto_front(results)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([r["point"]["gpus"] for r in ok], [r["iteration_ms"] for r in ok], s=14,
               color="#999999", label="configurations")
    ax.step([r["point"]["gpus"] for r in front], [r["iteration_ms"] for r in front],
            where="post", color="#c44e52", label="Pareto front")
    ax.scatter([r["point"]["gpus"] for r in front], [r["iteration_ms"] for r in front], s=30,
               color="#c44e52", zorder=3)
    show = [a for a in axes if a != "gpus"]
    for r in front:
        ax.annotate(label(r, show), (r["point"]["gpus"], r["iteration_ms"]), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("GPUs")
    ax.set_ylabel("iteration time (ms)")
    ax.legend(fontsize=8)
    ax.set_title(title or "iteration time vs GPUs")
    return _fig_bytes(fig)


def default_heatmap_axes(axes: list[str]) -> tuple[str, str] | None:
    cand = [a for a in axes if a in KEYS]
    return (cand[0], cand[1]) if len(cand) >= 2 else None
