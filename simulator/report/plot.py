"""A PNG with the stages' timeline and the iteration-time breakdown (matplotlib, no display)."""
from __future__ import annotations

import io

from ..result import BREAKDOWN_GROUPS, SimulationResult

COLORS = {"compute": "#4c78a8", "TP": "#f58518", "EP": "#e45756", "DP": "#72b7b2",
          "DP_EP": "#54a24b", "PP": "#b279a2", "bubble": "#d3d3d3", "wait": "#d3d3d3"}


#: at most this many stages / rank classes in the timeline
MAX_PLOT_ROWS = 8


def render_plot(r: SimulationResult) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # many rank classes: draw the slowest few (the critical one among them), so the timeline
    # stays readable and cheap whatever the class count
    shown = set(range(len(r.stages)))
    if len(r.stages) > MAX_PLOT_ROWS:
        # each pipeline stage's slowest class first, then the slowest others
        order = sorted(range(len(r.stages)), key=lambda i: (-r.stages[i].end_ns, i))
        firsts: dict[int, int] = {}
        for i in order:
            firsts.setdefault(r.stages[i].stage, i)
        picked = list(firsts.values())[:MAX_PLOT_ROWS]
        picked += [i for i in order if i not in picked][:MAX_PLOT_ROWS - len(picked)]
        shown = set(picked)
    n = len(shown)
    fig, (ax_t, ax_b) = plt.subplots(2, 1, figsize=(12, 3 + 0.6 * min(n, 24)),
                                     gridspec_kw={"height_ratios": [max(min(n, 24), 1), 1.2]})
    lanes = ["compute", "TP", "EP", "DP", "DP_EP", "PP"]
    # one row per (stage, lane that has something), stage 0 on top
    rows: dict[tuple[int, str], list[tuple[float, float, str]]] = {}   # (start, length, kind)
    for sl in r.trace or []:
        if sl.stage not in shown:
            continue
        lane = "PP" if sl.lane.startswith("PP") else sl.lane
        if lane == "wait":
            lane = "compute"  # draw waits in the compute row, in grey
        rows.setdefault((sl.stage, lane), []).append(
            (sl.start_ns / 1e6, sl.dur_ns / 1e6, "bubble" if sl.lane == "wait" else sl.lane))
    keys = sorted(rows, key=lambda k: (k[0], lanes.index(k[1])))
    for y, key in enumerate(reversed(keys)):
        spans = rows[key]
        by_color: dict[str, list] = {}
        for start, dur, kind in spans:
            color = COLORS.get("PP" if kind.startswith("PP") else kind, "#888888")
            by_color.setdefault(color, []).append((start, max(dur, 1e-6)))
        for color, bars in by_color.items():
            ax_t.broken_barh(bars, (y - 0.4, 0.8), facecolors=color, linewidth=0)
    ax_t.set_yticks(range(len(keys)))
    names = [st.label.split(" (")[0] if st.label else f"stage {st.stage}" for st in r.stages]
    ax_t.set_yticklabels([f"{names[s]} {lane}" for s, lane in reversed(keys)], fontsize=7)
    ax_t.set_xlabel("time (ms)")
    ax_t.set_xlim(0, r.iteration_ns / 1e6 * 1.01 or 1)
    ax_t.set_title(f"{r.workload.split('/')[-1]}: iteration {r.iteration_ns / 1e6:.2f} ms "
                   f"({r.gpus} GPUs, TP {r.tp} EP {r.ep} PP {r.pp} DP {r.dp})"
                   + (f"; {n} of {len(r.stages)} rank classes (each stage's slowest first)"
                      if n < len(r.stages) else ""), fontsize=9)

    c = r.critical
    parts = [("compute", c.compute_ns)] + [(g, c.exposed_ns[g]) for g in BREAKDOWN_GROUPS] + [
        ("bubble", c.bubble_ns)]
    left = 0.0
    for name, ns in parts:
        if ns <= 0:
            continue
        width = ns / 1e6
        ax_b.barh([0], [width], left=left, color=COLORS[name], label=f"{name} {width:.2f} ms")
        left += width
    ax_b.set_yticks([])
    who = (r.critical.label.split(" (")[0] if r.critical.label else f"stage {r.critical.stage}")
    ax_b.set_xlabel(f"breakdown of {who}, which finishes last (ms)")
    ax_b.set_xlim(0, r.iteration_ns / 1e6 * 1.01 or 1)
    ax_b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=4, fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def render_distribution(r: SimulationResult) -> bytes:
    """Histogram of the iteration time over random what-if draws."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ms = np.array(r.step_time_draws_ns, dtype=np.float64) / 1e6
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(ms, bins=min(30, max(5, len(ms) // 3)), color=COLORS["compute"])
    for q, style in ((50, "-"), (90, "--"), (99, ":")):
        v = float(np.percentile(ms, q))
        ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"p{q} {v:.2f} ms")
    ax.set_xlabel("iteration time (ms)")
    ax.set_ylabel("draws")
    ax.set_title(f"{r.workload.split('/')[-1]}: {len(ms)} random straggler draws", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
