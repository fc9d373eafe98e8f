"""Per-layer CSV, followed by a summary row in the columns of SimAI's EndToEnd.csv."""
from __future__ import annotations

import csv
import io

from ..result import SimulationResult
from .escape import csv_cell

LAYER_COLUMNS = [
    "sequence", "index", "line", "name", "occurrences",
    "fwd_compute_us", "fwd_comm", "fwd_group", "fwd_bytes", "fwd_comm_us",
    "ig_compute_us", "ig_comm", "ig_group", "ig_bytes", "ig_comm_us",
    "wg_compute_us", "wg_comm", "wg_group", "wg_bytes", "wg_comm_us",
    "exposed_comm_us",
]

# SimAI writes its end-to-end summary with these headers (times in microseconds)
SIMAI_SUMMARY_COLUMNS = [
    "File name", "Expose DP comm", "Expose DP_EP comm", "Expose TP comm", "Expose_EP_comm",
    "Expose_PP_comm", "bubble time", "total comp", "total exposed comm", "Total time",
]


def _us(ns: int) -> str:
    return f"{ns / 1000:.3f}"


def render_csv(r: SimulationResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LAYER_COLUMNS)
    for x in r.rows:
        w.writerow([x.sequence, x.index, x.file_line, csv_cell(x.name), x.occurrences,
                    _us(x.fwd_compute_ns), x.fwd_comm, x.fwd_group, x.fwd_bytes, _us(x.fwd_comm_ns),
                    _us(x.ig_compute_ns), x.ig_comm, x.ig_group, x.ig_bytes, _us(x.ig_comm_ns),
                    _us(x.wg_compute_ns), x.wg_comm, x.wg_group, x.wg_bytes, _us(x.wg_comm_ns),
                    _us(x.exposed_ns)])
    c = r.critical
    e = c.exposed_ns
    w.writerow([])
    w.writerow(SIMAI_SUMMARY_COLUMNS)
    w.writerow([csv_cell(r.workload), _us(e["DP"]), _us(e["DP_EP"]), _us(e["TP"]), _us(e["EP"]),
                _us(e["PP"]), _us(c.bubble_ns), _us(c.compute_ns), _us(sum(e.values())),
                _us(r.iteration_ns)])
    return buf.getvalue()
