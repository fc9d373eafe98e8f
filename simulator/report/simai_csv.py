"""``--csv-style simai``: the layout of the EndToEnd.csv SimAI's analytical backend writes, so
that scripts written for SimAI's output read ours unchanged.

The layout, as SimAI 1.6 writes it (tests/data/simai/ holds a file its binary wrote):

* line 1: the summary header, fields joined by ``", "``;
* line 2: the run name, then each exposed part as ``V (P%)`` (V whole microseconds, P its
  share of the iteration with two decimals, both from the unrounded times), then the total;
* line 3: the per-layer header, fields joined by ``","``; the second field is the literal
  ``Analytical_test`` (SimAI's name for the analytical run), repeated on every row;
* one row per workload row, in file order: compute and exposed and total communication per
  phase in whole microseconds, algbw and busbw in GiB/s (2^30 bytes/s, as SimAI reports
  them) with two decimals; C's ``printf`` renderings of 0/0 (``-nan``) and x/0 (``inf``) where
  SimAI prints them: ``-nan`` algbw and ``0.00`` busbw for a phase without a collective,
  ``inf`` algbw and ``-nan`` busbw for a collective that costs nothing (a group of one).

What is ours: the numbers. Exposed communication per phase splits each row's exposed time in
order (forward, then input-gradient, then the weight-gradient wait), since the engine
attributes it per row.
"""
from __future__ import annotations

from ..collectives import of_type_word
from ..result import SimulationResult

SUMMARY_HEADER = ("File name", "Expose DP comm", "Expose DP_EP comm", "Expose TP comm",
                  "Expose_EP_comm", "Expose_PP_comm", "bubble time", "total comp",
                  "total exposed comm", "Total time")
RUN_COLUMN = "Analytical_test"
LAYER_HEADER = ("layer_name", RUN_COLUMN, "fwd compute", "wg compute", "ig compute",
                "fwd exposed comm", "wg exposed comm", "ig exposed comm",
                "fwd total comm", "algbw", "busbw", "wg total comm", "algbw", "busbw",
                "ig total comm", "algbw", "busbw")
GIB = 2 ** 30


def _whole_us(ns: float) -> str:
    return f"{ns / 1000:.0f}"


def _bus_factor(op: str, n: int) -> float:
    """nccl-tests' bus-bandwidth factor for a collective of n ranks."""
    if n <= 0:
        return 0.0
    c = of_type_word(op)
    return 1.0 if c is None else c.bus_factor(n)   # NONE, ALLREDUCEALLTOALL: SimAI's 1


def _bandwidths(op: str, size_bytes: int, comm_ns: int, n: int) -> tuple[str, str]:
    if not size_bytes or op.upper() == "NONE":
        return "-nan", "0.00"
    if comm_ns <= 0:
        return "inf", ("-nan" if _bus_factor(op, n) == 0 else "inf")
    algbw = size_bytes / GIB / (comm_ns / 1e9)
    return f"{algbw:.2f}", f"{algbw * _bus_factor(op, n):.2f}"


def render_simai_csv(r: SimulationResult, run_name: str | None = None) -> str:
    c = r.critical
    e = c.exposed_ns
    total = r.iteration_ns or 1
    exposed_total = sum(e.values())

    def part(ns: int) -> str:
        return f"{_whole_us(ns)} ({100 * ns / total:.2f}%)"

    name = run_name if run_name is not None else r.workload
    lines = [", ".join(SUMMARY_HEADER),
             ", ".join([name, part(e["DP"]), part(e["DP_EP"]), part(e["TP"]), part(e["EP"]),
                        part(e["PP"]), part(c.bubble_ns), part(c.compute_ns),
                        part(exposed_total), _whole_us(r.iteration_ns)]),
             ",".join(LAYER_HEADER)]
    sizes = {"TP": r.tp, "EP": r.ep, "DP": r.dp, "DP_EP": r.dp_ep, "PP": 2}
    for x in sorted(r.rows, key=lambda x: (x.file_line, x.sequence)):
        k = x.occurrences
        left = x.exposed_ns
        fwd_exposed = min(left, x.fwd_comm_ns * k)
        left -= fwd_exposed
        ig_exposed = min(left, x.ig_comm_ns * k)
        wg_exposed = left - ig_exposed
        cells = [x.name, RUN_COLUMN, _whole_us(x.fwd_compute_ns * k),
                 _whole_us(x.wg_compute_ns * k), _whole_us(x.ig_compute_ns * k),
                 _whole_us(fwd_exposed), _whole_us(wg_exposed), _whole_us(ig_exposed)]
        for op, group, size, ns in ((x.fwd_comm, x.fwd_group, x.fwd_bytes, x.fwd_comm_ns),
                                    (x.wg_comm, x.wg_group, x.wg_bytes, x.wg_comm_ns),
                                    (x.ig_comm, x.ig_group, x.ig_bytes, x.ig_comm_ns)):
            cells.append(_whole_us(ns * k))
            cells.extend(_bandwidths(op, size, ns, sizes.get(group, 1)))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"
