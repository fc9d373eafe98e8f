"""The Perfetto trace's structure: collective slices carry type, bytes and group; flow events
join every pipeline send to the pass that receives it (trace-event format: 's'/'f' pairs)."""
import json
import warnings

import pytest

from repo_paths import WORKLOADS
from simulator.cluster import Cluster
from simulator.engine import SimulationOptions, simulate
from simulator.readers.workload import read_workload
from simulator.report.perfetto import render_trace

SEED = WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt"
COMM_LANES = {"TP", "EP", "DP", "DP_EP"}


def _trace(path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = read_workload(str(path))
        r = simulate(w, Cluster(), options=SimulationOptions(trace=True, **options))
    return w, r, json.loads(render_trace(r))["traceEvents"]


def _thread_names(events):
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in events
            if e["ph"] == "M" and e["name"] == "thread_name"}


@pytest.mark.parametrize("options", [{}, {"engine": "detailed"}])
def test_collective_slices_carry_type_bytes_and_group(options):
    w, r, events = _trace(SEED, **options)
    assert {e["ph"] for e in events} <= {"M", "X", "s", "f", "C"}
    comm = [e for e in events if e["ph"] == "X" and e["cat"] in COMM_LANES]
    assert comm
    for e in comm:
        a = e["args"]
        assert set(a) >= {"collective", "bytes", "group"}, e
        assert a["group"] == e["cat"] and a["bytes"] > 0
    # line 14 of the file: mlp_moelayer_3, forward ALLTOALL_EP of 6291456 bytes on EP
    moe = [e for e in comm if e["name"].endswith("mlp_moelayer_3 fwd")]
    assert moe and all(e["args"]["collective"] == "ALLTOALL" and e["args"]["bytes"] == 6291456
                       and e["args"]["group"] == "EP" for e in moe)
    assert all("flow_in" not in e.get("args", {}) for e in events)


def _check_flows(events, pp: int, ga: int):
    names = _thread_names(events)
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    ends = {e["id"]: e for e in events if e["ph"] == "f"}
    # every micro-batch's activation goes forward over pp-1 boundaries and its gradient back
    assert len(starts) == len(ends) == 2 * (pp - 1) * ga
    assert set(starts) == set(ends)
    sends = {(e["pid"], e["tid"], e["ts"]): e for e in events
             if e["ph"] == "X" and e["cat"].startswith("PP send")}
    for fid, s in starts.items():
        f = ends[fid]
        assert names[(s["pid"], s["tid"])].startswith("PP send")
        send = sends[(s["pid"], s["tid"], s["ts"])]          # starts on a send slice
        assert abs(f["pid"] - s["pid"]) == 1                # at the neighbouring stage
        assert f["ts"] >= send["ts"] + send["dur"] - 1e-6   # not before the data arrived
        assert f["bp"] == "e" and s["cat"] == f["cat"] == "PP"
        # the end binds to a slice that begins at its time on its thread
        assert any(e["ph"] == "X" and e["pid"] == f["pid"] and e["tid"] == f["tid"]
                   and abs(e["ts"] - f["ts"]) < 1e-6 for e in events)


def test_flows_join_pipeline_sends_to_receives():
    w, r, events = _trace(SEED)
    _check_flows(events, pp=4, ga=1)
    w, r, events = _trace(WORKLOADS / "mixtral8x7b_256gpu_tp4_pp4_ep8.txt")
    _check_flows(events, pp=w.pp, ga=r.ga)


@pytest.mark.parametrize("options", [{"engine": "detailed"},
                                     {"engine": "detailed", "contention": True}])
def test_detailed_trace_has_the_fast_engines_args_and_flows(options):
    # the row-level engine (one process per rank class; seed 004 has one class per stage, as
    # many pids as stages) writes the same flows and collective args as the fast engine
    w, r, events = _trace(SEED, **options)
    assert len(r.stages) == 4
    _check_flows(events, pp=4, ga=1)
    keys = ("collective", "bytes", "group", "phase", "blocking")

    def comm_args(evs):   # per stage, every collective's args (names differ: F0/B0 labels)
        return {(e["pid"], tuple(e["args"][k] for k in keys)) for e in evs
                if e["ph"] == "X" and e["cat"] in COMM_LANES}
    mine = comm_args(events)
    assert mine and mine == comm_args(_trace(SEED)[2])
