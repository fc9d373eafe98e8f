"""Render a :class:`~simulator.workload.Workload` as a SimAI/AICB text workload table.

The output is what AICB writes: the header on line 1 (space separated ``key: value``), the
row count on line 2, then one tab-separated row of 12 fields per line. It reads back with
:func:`simulator.readers.workload.read_workload` into an equal workload, and SimAI reads it.
"""
from __future__ import annotations

from ..workload import Comm, Row, Workload

DEFAULT_HEADER = ("model_parallel_NPU_group", "ep", "pp", "vpp", "ga", "all_gpus", "checkpoints",
                  "checkpoint_initiates", "pp_comm")


def _num(x: int | float) -> str:
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return str(x)


def render_header(w: Workload) -> str:
    keys = [k for k in DEFAULT_HEADER if k in w.header_fields] if w.header_fields \
        else list(DEFAULT_HEADER)
    if not keys and w.policy == "MICRO":
        return w.policy
    parts = [w.policy]
    for key in keys:
        if key == "model_parallel_NPU_group":
            parts.append(f"{key}: {w.tp}")
        elif key in ("ep", "pp", "vpp", "ga"):
            parts.append(f"{key}: {getattr(w, key)}")
        elif key == "all_gpus":
            if w.all_gpus is not None:
                parts.append(f"all_gpus: {w.all_gpus}")
        elif key in ("checkpoints", "checkpoint_initiates"):
            values = getattr(w, key)
            parts.append(" ".join([f"{key}: {len(values)}"] + [str(v) for v in values]))
        elif key == "pp_comm":
            parts.append(f"pp_comm: {w.pp_comm_bytes}")
    return " ".join(parts)


def _comm(c: Comm) -> str:
    return f"{c.type_name()}\t{c.size_bytes}"


def render_row(r: Row) -> str:
    if any(ch.isspace() for ch in r.name) or not r.name:
        raise ValueError(f"row name {r.name!r} must be one word")
    return "\t".join([r.name, "-1", _num(r.fwd_ns), _comm(r.fwd), _num(r.ig_ns), _comm(r.ig),
                      _num(r.wg_ns), _comm(r.wg), _num(r.update_ns)])


def render_workload(w: Workload) -> str:
    lines = [render_header(w), str(len(w.rows))]
    lines.extend(render_row(r) for r in w.rows)
    return "\n".join(lines) + "\n"
