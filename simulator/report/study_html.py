"""``collsim simulate --draws N --report PATH.html``: a study of random draws as one page.

The headline is the text summary (the step-time distribution over the draws), the table
lists every draw with its step time, how much slower it is than the fastest and its rank,
the plot is the step-time histogram; the settings are what the user asked, as written.
"""
from __future__ import annotations


def render_study_report(result, draws_ns: list[int], workload: str,
                        settings: list[tuple[str, str]]) -> str:
    """The page of a study whose reported run is ``result`` (draw 0 of ``draws_ns``)."""
    from .html import render_report
    from .plot import render_distribution
    from .text import render_text

    draws = list(draws_ns)
    order = sorted(range(len(draws)), key=lambda i: draws[i])
    fastest = draws[order[0]]
    rows = [[i, f"{draws[i] / 1e6:.3f}", f"{100 * (draws[i] / fastest - 1):.2f}",
             rank + 1] for rank, i in sorted(enumerate(order), key=lambda ri: ri[1])]
    return render_report(
        title=f"collsim simulate: {workload}",
        subtitle=f"{result.gpus} GPUs, TP {result.tp} EP {result.ep} PP {result.pp} "
                 f"DP {result.dp}; {len(draws)} random draws",
        headline=render_text(result, top_rows=5),
        columns=["draw", "step time (ms)", "slower than the fastest draw (%)", "rank"],
        rows=rows, images=[("step time over the draws", render_distribution(result))],
        settings=settings, table_title="Every draw")
