"""Chrome trace-event JSON (opens in ui.perfetto.dev): a process per stage, a track per stream."""
from __future__ import annotations

import gzip
import json

from ..result import SimulationResult

LANE_ORDER = ["compute", "TP", "EP", "DP", "DP_EP", "PP send next", "PP send prev", "wait",
              "embedding"]   # the tied-embedding all-reduce (first and last stage)


def render_trace(r: SimulationResult, gzip_output: bool = False) -> bytes:
    if r.trace is None:
        raise ValueError("the simulation ran without tracing")
    events: list[dict] = []
    lanes = {name: i for i, name in enumerate(LANE_ORDER)}
    for s, stage in enumerate(r.stages):
        events.append({"name": "process_name", "ph": "M", "pid": s, "tid": 0,
                       "args": {"name": stage.label or f"stage {stage.stage}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": s, "tid": 0,
                       "args": {"sort_index": s}})
        for name, tid in lanes.items():
            events.append({"name": "thread_name", "ph": "M", "pid": s, "tid": tid,
                           "args": {"name": name}})
            events.append({"name": "thread_sort_index", "ph": "M", "pid": s, "tid": tid,
                           "args": {"sort_index": tid}})
    # flows (trace-event "s"/"f" pairs) join each pipeline send to the pass that received it:
    # the start sits on the send slice, the end on the first slice of the receiving pass
    flow_ids: dict[str, int] = {}
    flow_ends: dict[str, dict] = {}
    sends: list[tuple[str, dict]] = []
    for sl in r.trace:
        tid = lanes.get(sl.lane, len(lanes))
        ev = {"name": sl.name, "ph": "X", "pid": sl.stage, "tid": tid,
              "ts": sl.start_ns / 1000.0, "dur": sl.dur_ns / 1000.0, "cat": sl.lane}
        args = dict(sl.args) if sl.args else {}
        flow_out, flow_in = args.pop("flow_out", None), args.pop("flow_in", None)
        if args:
            ev["args"] = args
        events.append(ev)
        if flow_out is not None:
            sends.append((flow_out, ev))
        if flow_in is not None:
            first = flow_ends.get(flow_in)
            if first is None or ev["ts"] < first["ts"]:
                flow_ends[flow_in] = ev
    for key, send in sends:
        end = flow_ends.get(key)
        if end is None:
            continue
        fid = flow_ids.setdefault(key, len(flow_ids) + 1)
        common = {"name": "pipeline message", "cat": "PP", "id": fid}
        events.append({**common, "ph": "s", "pid": send["pid"], "tid": send["tid"],
                       "ts": send["ts"]})
        events.append({**common, "ph": "f", "bp": "e", "pid": end["pid"], "tid": end["tid"],
                       "ts": end["ts"]})
    if r.link_samples:
        # link utilisation counters (share of the link's rate) in a process of their own
        pid = len(r.stages)
        events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                       "args": {"name": "links (share of capacity)"}})
        for name, t_ns, value in r.link_samples:
            events.append({"name": name, "ph": "C", "pid": pid, "ts": t_ns / 1000.0,
                           "args": {"utilisation": value}})
    doc = {"traceEvents": events, "displayTimeUnit": "ns",
           "otherData": {"workload": r.workload, "iteration_time_us": r.iteration_ns / 1000.0}}
    data = json.dumps(doc, separators=(",", ":")).encode()
    return gzip.compress(data, mtime=0) if gzip_output else data
