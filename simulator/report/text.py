"""The human-readable summary printed by ``collsim simulate``."""
from __future__ import annotations

from ..result import BREAKDOWN_GROUPS, SimulationResult, StageResult


def _ms(ns: int) -> str:
    return f"{ns / 1e6:12.3f}"


def _scalars(d: dict, skip=()) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items()
                     if k not in skip and not isinstance(v, (dict, list)))


#: a cost model's name -> the words the summary uses for it (--cost-model's choices)
MODEL_LABELS = {
    "analytical": "simai (SimAI's analytical bus-bandwidth model)",
    "nccl": "nccl (NCCL's algorithms, protocols and latencies on a topology)",
}


def describe_cost_model(d: dict) -> list[str]:
    """A cost model's describe() as header lines: which model, then the resolved bandwidths
    both ways (GB/s and Gbit/s), then any calibration, in words rather than a raw dict."""
    from ..units import format_bandwidth

    name = d.get("name", "?")
    if name == "calibrated":
        lines = [f"cost model   calibrated: {d.get('calibration')} ({d.get('method')}) on top "
                 f"of the model below"]
        for scope, c in (d.get("classes") or {}).items():
            link = c.get("link_GB_per_s")
            lines.append(f"  {scope}: {c.get('overhead_us')} us per call + "
                         + (f"{format_bandwidth(link)} link" if link else "?")
                         + f", fitted at {', '.join(map(str, c.get('ranks_measured', [])))} "
                         f"ranks on {', '.join(c.get('ops_measured', []))}")
        for key, label in (("priced_by_base", "priced by the base model"),
                           ("group_sizes_extrapolated", "extrapolated to group sizes")):
            if d.get(key):
                lines.append(f"  {label}: {', '.join(d[key])}")
        return lines + describe_cost_model(d.get("base") or {})
    gps = d.get("gpus_per_server")
    nvlink = d.get("nvlink_GB_per_s", d.get("scale_up_GB_per_s"))
    nic, nics = d.get("nic_GB_per_s"), d.get("nics_per_server")
    skip = {"nvlink_GB_per_s", "scale_up_GB_per_s", "nic_GB_per_s", "nics_per_server",
            "cluster_chosen"}
    model_label = MODEL_LABELS.get(name)
    lines = ["cost model   " + (model_label + ": " if model_label else "") + _scalars(d, skip)]
    parts = []
    if nvlink is not None:
        parts.append(f"NVLink {format_bandwidth(nvlink)} per GPU per direction")
    if nic is not None:
        parts.append(f"{nics} NIC(s) per server of {format_bandwidth(nic)} each"
                     + (f" ({gps} GPUs)" if gps else ""))
    if parts:
        lines.append("bandwidth    " + "; ".join(parts))
    return lines


#: more stage rows than this (rank classes) are summarised unless full tables are asked for
SUMMARY_CLASSES = 5


def _stage_cells(s) -> list[str]:
    return [f"{v / 1e6:.3f}" for v in (s.end_ns, s.compute_ns, sum(s.exposed_ns.values()),
                                        s.bubble_ns)]


def _stage_width(stages) -> int:
    """Column width of the stage table: 10 as long as the numbers fit (up to 99 s), wider for
    longer steps so that neighbouring columns never run together."""
    return max([10, *(len(c) + 1 for s in stages for c in _stage_cells(s))])


def _stage_head(width: int) -> str:
    return ("  stage" + "".join(f"{h:>{width}}" for h in ("end ms", "compute", "exposed",
                                                          "bubble"))
            + "  idle at end")


def _stage_row(s, width: int = 10) -> str:
    return (f"  {s.stage:>5}" + "".join(f"{c:>{width}}" for c in _stage_cells(s))
            + f"{s.idle_after_ns / 1e6:13.3f}  {s.label}")


def _stage_table(r: SimulationResult, full: bool) -> list[str]:
    width = _stage_width(r.stages)
    head = _stage_head(width)
    classes = any(s.rank_class is not None for s in r.stages)
    if full or not classes or len(r.stages) <= 2 * SUMMARY_CLASSES:
        return ["", head] + [_stage_row(s, width) for s in r.stages]
    # rank classes: the slowest classes, and per pipeline stage its slowest class
    slowest = sorted(r.stages, key=lambda s: (-s.end_ns, s.stage))[:SUMMARY_CLASSES]
    per_stage: dict[int, StageResult] = {}
    for s in r.stages:
        if s.stage not in per_stage or s.end_ns > per_stage[s.stage].end_ns:
            per_stage[s.stage] = s
    counts: dict[int, int] = {}
    for s in r.stages:
        counts[s.stage] = counts.get(s.stage, 0) + 1
    lines = ["", f"  {len(r.stages)} rank classes; the {len(slowest)} slowest "
                 "(--full-tables lists every class):", head]
    lines += [_stage_row(s, width) for s in slowest]
    lines += ["", "  each pipeline stage's slowest class (of its classes):", head]
    lines += [_stage_row(per_stage[k], width)
              + f"  [{counts[k]} class{'' if counts[k] == 1 else 'es'}]" for k in sorted(per_stage)]
    return lines


def render_text(r: SimulationResult, top_rows: int = 10, full: bool = False) -> str:
    c = r.critical
    total = r.iteration_ns or 1
    lines = [
        f"workload     {r.workload}",
        *([f"policy       {r.replay}"] if r.replay else []),
        f"cluster      {r.gpus} GPUs: TP {r.tp}  EP {r.ep}  PP {r.pp}  DP {r.dp}  DP_EP {r.dp_ep}"
        f"   micro-batches {r.ga}   schedule {r.pp_schedule}"
        + (f" ({r.chunks} chunks)" if r.chunks > 1 else ""),
        *([f"             on {r.cost_model['cluster_chosen']}"]
          if r.cost_model.get("cluster_chosen") else []),
        *describe_cost_model(r.cost_model),
        *([f"links        {r.link_sharing}"] if r.link_sharing else []),
        *_assumed(r.assumptions),
        "",
        f"iteration time {r.iteration_ns / 1e6:.3f} ms"
        + (f"   ({r.critical.label or f'stage {r.critical.stage} of {r.pp}'} finishes last; "
           "breakdown below is that one)" if len(r.stages) > 1 else ""),
        "",
        f"  {'part':<28}{'ms':>12}{'share':>9}",
    ]

    def part(name: str, ns: int) -> None:
        lines.append(f"  {name:<28}{_ms(ns)}{100 * ns / total:8.1f}%")

    part("compute", c.compute_ns)
    if c.recompute_ns:
        lines.append(f"    {'of which recompute':<26}{_ms(c.recompute_ns)}")
    for g in BREAKDOWN_GROUPS:
        label = f"exposed {g} comm"
        if g in r.free_groups:
            label += " (size 1)"
        part(label, c.exposed_ns[g])
    part("pipeline bubble", c.bubble_ns)
    lines.append(f"  {'total':<28}{_ms(c.parts_sum_ns())}{100 * c.parts_sum_ns() / total:8.1f}%")

    if len(r.stages) > 1:
        lines += _stage_table(r, full)
    if r.step_time_draws_ns:
        from .summary import distribution
        d = distribution(r.step_time_draws_ns)
        lines += ["", f"  step time over {d['draws']} random draws (ms): min {d['min'] / 1e3:.3f}  "
                      f"p50 {d['p50'] / 1e3:.3f}  p90 {d['p90'] / 1e3:.3f}  "
                      f"p99 {d['p99'] / 1e3:.3f}  max {d['max'] / 1e3:.3f}",
                  "  (the iteration time and tables above are draw 1's)"]
        base = r.baseline_ns
        if base:
            lines.append(f"  baseline without the random stragglers and jitter: "
                         f"{base / 1e6:.3f} ms; p50 is "
                         f"{100 * (d['p50'] * 1e3 / base - 1):+.1f}%, max "
                         f"{100 * (d['max'] * 1e3 / base - 1):+.1f}%")

    if r.group_placements:
        lines += ["", "  where the groups sit:"]
        for g, where in r.group_placements.items():
            lines.append(f"    {g:<6}{where}")
    if r.sensitivity:
        lines += ["", "  each group's communication 10% faster (sensitivity):"]
        for g, ns in r.sensitivity.items():
            gain = r.iteration_ns - ns
            lines.append(f"    {g:<6}{ns / 1e6:12.3f} ms   saves {gain / 1e6:8.3f} ms "
                         f"({100 * gain / total:5.2f}%)")
    worst = sorted((row for row in r.rows if row.exposed_ns), key=lambda x: -x.exposed_ns)
    if worst and top_rows:
        who = r.critical.label.split(" (")[0] if r.critical.label else f"stage {r.critical.stage}"
        lines += ["", f"  rows with the most exposed communication (all occurrences, {who}):",
                  f"  {'line':>6}  {'name':<24}{'x':>4}{'exposed ms':>12}  collectives"]
        for row in worst[:top_rows]:
            comms = " ".join(f"{p}:{t}" for p, t in (("fwd", row.fwd_comm), ("ig", row.ig_comm),
                                                      ("wg", row.wg_comm)) if t != "NONE")
            lines.append(f"  {row.file_line:>6}  {row.name[:24]:<24}{row.occurrences:>4}"
                         f"{row.exposed_ns / 1e6:12.3f}  {comms}")
    if r.notes:
        lines += [""] + [f"note: {n}" for n in r.notes]
    from .escape import for_terminal
    return for_terminal("\n".join(lines) + "\n")  # names from the file reach a terminal


def _assumed(a: dict) -> list[str]:
    """The workload's assumptions in one line (GPU, compute source, features)."""
    if not a:
        return []
    parts = []
    if a.get("gpu"):
        parts.append(f"GPU {str(a['gpu']).upper()}")
    parts.append(f"compute {a.get('compute', 'unknown')}")
    if a.get("optimizer"):
        parts.append(str(a["optimizer"]))
    feats = a.get("features")
    if isinstance(feats, dict) and feats:
        parts.append("features " + ", ".join(f"{k} {v}" if v is not True else str(k)
                                             for k, v in feats.items()))
    return ["assumed      " + "; ".join(parts)]
