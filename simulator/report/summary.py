"""The numbers every reporter shares, in microseconds, from a SimulationResult."""
from __future__ import annotations

from ..result import BREAKDOWN_GROUPS, SimulationResult


def us(ns: int | float) -> float:
    return round(ns / 1000.0, 3)


def summary_dict(r: SimulationResult) -> dict:
    c = r.critical
    return {
        "workload": r.workload,
        "policy": r.policy,
        "replay": r.replay,
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
        "critical_stage": r.critical.stage,
        **({"critical_rank_class": r.critical.rank_class, "critical_label": r.critical.label}
           if r.critical.rank_class is not None else {}),
        "stages": [{"stage": s.stage, **({"rank_class": s.rank_class, "ranks": s.ranks,
                                          "label": s.label} if s.rank_class is not None else {}),
                    "end_us": us(s.end_ns), "compute_us": us(s.compute_ns),
                    "bubble_us": us(s.bubble_ns), "idle_after_us": us(s.idle_after_ns),
                    "exposed_comm_us": {g: us(s.exposed_ns[g]) for g in BREAKDOWN_GROUPS}}
                   for s in r.stages],
        "free_groups": r.free_groups,
        "segmentation": r.segmentation,
        "cost_model": r.cost_model,
        "link_sharing": r.link_sharing,
        "notes": r.notes,
        "assumptions": r.assumptions,
        "group_placements": r.group_placements,
        **({"sensitivity_iteration_us": {g: us(v) for g, v in r.sensitivity.items()}}
           if r.sensitivity else {}),
        **({"failure": r.failure} if r.failure else {}),
        **({"step_time_distribution_us": distribution(r.step_time_draws_ns)}
           if r.step_time_draws_ns else {}),
        **({"baseline_iteration_time_us": r.baseline_ns / 1000} if r.baseline_ns else {}),
    }


def distribution(draws_ns: list[int]) -> dict:
    import numpy as np

    a = np.array(draws_ns, dtype=np.float64) / 1000.0
    return {"draws": len(a), "min": round(float(a.min()), 3),
            "p50": round(float(np.percentile(a, 50)), 3),
            "p90": round(float(np.percentile(a, 90)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3),
            "mean": round(float(a.mean()), 3)}
