"""The numbers every reporter shares, in microseconds, from a SimulationResult."""
from __future__ import annotations

from ..result import BREAKDOWN_GROUPS, SimulationResult


def us(ns: int | float) -> float:
    return round(ns / 1000.0, 3)


def summary_dict(r: SimulationResult) -> dict:
    c = r.critical
    return {
        "workload": r.workload,
        "iteration_time_us": us(r.iteration_ns),
        "iteration_time_ns": r.iteration_ns,
        "compute_us": us(c.compute_ns),
        "recompute_us": us(c.recompute_ns),
        "bubble_us": us(c.bubble_ns),
        "exposed_comm_us": {g: us(c.exposed_ns[g]) for g in BREAKDOWN_GROUPS},
        "exposed_comm_total_us": us(sum(c.exposed_ns.values())),
        "gpus": r.gpus,
        "parallelism": {"tp": r.tp, "ep": r.ep, "pp": r.pp, "dp": r.dp, "dp_ep": r.dp_ep,
                        "ga": r.ga, "chunks": r.chunks, "pp_schedule": r.pp_schedule},
        "critical_stage": r.critical_stage,
        "stages": [{"stage": s.stage, "end_us": us(s.end_ns), "compute_us": us(s.compute_ns),
                    "bubble_us": us(s.bubble_ns), "idle_after_us": us(s.idle_after_ns),
                    "exposed_comm_us": {g: us(s.exposed_ns[g]) for g in BREAKDOWN_GROUPS}}
                   for s in r.stages],
        "free_groups": r.free_groups,
        "segmentation": r.segmentation,
        "cost_model": r.cost_model,
        "notes": r.notes,
    }
