"""``collsim bench``'s rows (simulator.costmodel.bench) as an aligned table or as CSV."""
from __future__ import annotations

from ..costmodel.bench import COLUMNS


def render(rows: list[dict], fmt: str, details: bool, header: str = "") -> str:
    cols = list(COLUMNS) + (["algorithm", "protocol"] if details or fmt == "table" else [])

    def cell(row, c):
        v = row[c]
        if c == "time_us":
            return f"{v:.3f}" if fmt == "csv" else f"{v:.2f}"
        if c.endswith("_GB_per_s"):
            return f"{v:.6g}" if fmt == "csv" else f"{v:.2f}"
        return str(v)

    if fmt == "csv":
        lines = [",".join(cols)] + [",".join(cell(r, c) for c in cols) for r in rows]
        return "\n".join(lines) + "\n"
    table = [cols] + [[cell(r, c) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["# " + header] if header else []
    for k, row in enumerate(table):
        lines.append("  ".join(v.rjust(w) if k else v.rjust(w) for v, w in zip(row, widths)))
    return "\n".join(lines) + "\n"
