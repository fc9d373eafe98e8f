"""Case: replay of seed 003's traced pipeline stage (Megatron, PP 4, 16 micro-batches, 1F1B).

Measured inputs (from the trace of stage 0, rank 0): per micro-batch forward compute (the
``forward_step`` duration minus its communication sub-operations) plus the ``get_batch``
before it, backward compute per micro-batch, the host time between the records (below),
the optimizer step, and the shapes and durations of every collective: per MoE layer (2 per
stage) an all-gather of 8 int64 per rank, an all-to-all of [2048, 4096] and one of
[2924, 4096] bf16 in the forward and again in the backward; 8 MiB activations between
stages; after the pipeline the DP all-reduce (290,013,184 fp32) and the expert-DP
all-reduce (1,409,286,144 fp32), then the optimizer.
Modelled: the pipeline: Megatron's 1F1B with its blocking p2p (each send waits for its
transfer), the other three stages, and so every wait of stage 0 (the fill, the steady
``send_forward_recv_backward``, the cool-down ``recv_backward``) and the iteration span.

Collectives are priced for the trace's own machine, from its own records (the trace's GPUs
are not H200s: its all-reduces reach a bus bandwidth of 141-146 GB/s, the H200 pair's 331;
its 64-byte all-gather takes 0.11 ms at the least, the H200 floor is 0.03): each EP
collective at the median of its recorded durations (these include waiting for the EP peer,
which every stage's EP pair has), each all-reduce at its recorded duration, and a pipeline
transfer at the median ``send_forward`` of the warm-up, where the receiving stage is
already waiting for it (so it is the transfer alone). The same replay with the H200
calibration's collectives is shown as a diagnostic.

Host time between records: Megatron's Python between its traced calls (0.06-0.27 ms a
gap, 0.50 ms a steady micro-batch; 8.4 ms of the iteration) is charged to the pass it
belongs to: a gap before ``get_batch``, ``forward_step`` or ``backward_step`` to that
pass, a gap after a ``forward_step`` or ``backward_step`` (before its p2p) to that pass,
gaps in the finalize to the optimizer step.

Assumptions: the stages are uniform (every stage replays stage 0's compute, host gaps and
collective times; the trace has no other stage; a uniform pipeline predicts the fill wait
of the trace, 56.0 ms, within 0.5 ms from stage 0's own forward and backward times), DP 4
(the trace allows 4 or 8), so 16 GPUs on 8-GPU servers (the trace's prices do not depend
on the placement).
"""
from __future__ import annotations

import statistics
from typing import TypeVar

from ..cluster import Cluster
from ..costmodel.base import CostModel
from ..engine import SimulationOptions, simulate
from ..errors import InputError
from ..readers.echo_trace import EchoSummary, read_echo_trace, summarize_echo_trace
from ..workload import Group, Op
from .common import MS, TRACES, CaseResult, comm, rel, row, workload

T = TypeVar("T")

SEED003 = TRACES / "seeds" / "003_cac42666c59f300b.txt"
DP = 4
PP = 4
_PASS_OPS = ("get_batch", "forward_step", "backward_step")
_FINALIZE_OPS = ("dp_allreduce", "ep_dp_allreduce", "optimizer_step")


class MeasuredCommModel(CostModel):
    """Prices each collective with the trace's own duration for it (its machine's cost)."""

    name = "trace-measured"

    def __init__(self, table: dict[tuple[Op, int], float]):
        super().__init__()
        self.table = table

    def price_ns(self, op, size_bytes, placement):
        if (op, size_bytes) not in self.table:
            raise InputError(f"seed 003 has no measured {op.value} of {size_bytes} bytes",
                             path=rel(SEED003))
        return self.table[(op, size_bytes)] * MS

    def describe(self):
        return {"name": self.name}


def _known(value: T | None) -> T:
    """A shape or size the seed-003 trace records (every communication there has both)."""
    if value is None:
        raise InputError("a communication without input__shape or input__dtype",
                         path=rel(SEED003))
    return value


def _inputs():
    records = read_echo_trace(SEED003)
    s = summarize_echo_trace(records, path=rel(SEED003))
    get_batch = {o.batch_id: o.duration_ms for o in s.ops if o.op == "get_batch"}
    sizes: dict[int, int] = {}   # all-to-all bytes by leading dimension
    for c in s.comm:
        if c.comm_func == "all_to_all":
            sizes.setdefault(_known(c.shape)[0], _known(c.size_bytes))
    a2a_small = sizes[min(sizes)]
    a2a_big = sizes[max(sizes)]
    ag = next(c for c in s.comm if c.comm_func == "allgather")
    # nccl-tests convention: the gathered output of EP 2 ranks
    ag_bytes = _known(ag.size_bytes) * 2
    pp_bytes = next(o.size_bytes for o in s.ops if o.op == "send_forward")
    return s, get_batch, a2a_small, a2a_big, ag_bytes, pp_bytes


def host_gaps(s: EchoSummary) -> tuple[dict[int, float], dict[int, float], float]:
    """Host time between records (ms): per micro-batch forward, per micro-batch backward,
    and the finalize's. A gap runs from the latest end so far to a record's start (the
    steady ``send_forward`` and ``recv_backward`` records are one call, written twice)."""
    fwd: dict[int, float] = {}
    bwd: dict[int, float] = {}
    final = 0.0
    end: float | None = None
    last = None   # the record that ended last
    for o in s.ops:
        if end is not None and o.start_ms > end:
            gap = o.start_ms - end
            if o.op in _FINALIZE_OPS and o.op != "dp_allreduce":
                final += gap
            elif o.op in ("get_batch", "forward_step"):
                fwd[o.batch_id] = fwd.get(o.batch_id, 0.0) + gap
            elif o.op == "backward_step":
                bwd[o.batch_id] = bwd.get(o.batch_id, 0.0) + gap
            elif last is not None and last.op == "forward_step":
                fwd[last.batch_id] = fwd.get(last.batch_id, 0.0) + gap
            elif last is not None and last.op == "backward_step":
                bwd[last.batch_id] = bwd.get(last.batch_id, 0.0) + gap
            else:
                final += gap
        if end is None or o.start_ms + o.duration_ms > end:
            end, last = o.start_ms + o.duration_ms, o
    return fwd, bwd, final


def build_workload(include_comm_in_compute: bool = False, gaps: bool = True):
    s, get_batch, a2a_small, a2a_big, ag_bytes, pp_bytes = _inputs()
    fwd_steps = {o.batch_id: o for o in s.ops if o.op == "forward_step"}
    bwd_steps = {o.batch_id: o for o in s.ops if o.op == "backward_step"}
    fgap, bgap, final = host_gaps(s) if gaps else ({}, {}, 0.0)
    rows = []
    # iteration rows before the micro-batches: their backward runs after the pipeline drains,
    # in reverse order: the DP all-reduce, then the expert-DP all-reduce and the optimizer
    rows.append(row("ep_dp_grad_and_optimizer",
                    ig=comm(Op.ALLREDUCE, Group.DP_EP, s.ep_dp_allreduce_bytes),
                    update_ns=(s.optimizer_step_ms + final) * MS))
    rows.append(row("dp_grad", ig=comm(Op.ALLREDUCE, Group.DP, s.dp_allreduce_bytes)))
    for mb in range(s.num_microbatches):
        f, b = fwd_steps[mb], bwd_steps[mb]
        fc = ((f.duration_ms if include_comm_in_compute else f.compute_ms)
              + get_batch.get(mb, 0) + fgap.get(mb, 0.0))
        bc = (b.duration_ms if include_comm_in_compute else b.compute_ms) + bgap.get(mb, 0.0)
        for layer in range(2):
            rows.append(row(f"l{layer}.attention_gate", fwd_ns=fc / 2 * MS,
                            fwd=comm(Op.ALLGATHER, Group.EP, ag_bytes), ig_ns=bc / 2 * MS))
            rows.append(row(f"l{layer}.dispatch", fwd=comm(Op.ALLTOALL, Group.EP, a2a_small),
                            ig=comm(Op.ALLTOALL, Group.EP, a2a_small)))
            rows.append(row(f"l{layer}.combine", fwd=comm(Op.ALLTOALL, Group.EP, a2a_big),
                            ig=comm(Op.ALLTOALL, Group.EP, a2a_big)))
    wl = workload("seed003-stage0-replay", rows, ep=2, pp=PP, ga=s.num_microbatches,
                  gpus=PP * DP, pp_comm_bytes=pp_bytes)
    return wl, s


def trace_comm_table(s: EchoSummary) -> dict[tuple[Op, int], float]:
    """(op, bytes) -> ms: the trace's own price of each of its collectives (see above)."""
    durations: dict[tuple[Op, int], list[float]] = {}
    for c in s.comm:
        op = Op.ALLTOALL if c.comm_func == "all_to_all" else Op.ALLGATHER
        size = _known(c.size_bytes) * (2 if op is Op.ALLGATHER else 1)
        durations.setdefault((op, size), []).extend(c.durations_ms)
    table = {k: statistics.median(v) for k, v in durations.items()}
    table[(Op.ALLREDUCE, _known(s.dp_allreduce_bytes))] = _known(s.dp_allreduce_ms)
    table[(Op.ALLREDUCE, _known(s.ep_dp_allreduce_bytes))] = _known(s.ep_dp_allreduce_ms)
    pp_bytes = next(o.size_bytes for o in s.ops if o.op == "send_forward")
    table[(Op.SENDRECV, _known(pp_bytes))] = _known(s.send_forward_warmup_median_ms)
    return table


def _forward_starts(result, stage: int = 0) -> dict[int, int]:
    starts: dict[int, int] = {}
    for sl in result.trace or ():
        if sl.stage != stage or sl.lane != "compute" or not sl.name.startswith("F"):
            continue
        mb = int(sl.name[1:].split(" ", 1)[0].split(".", 1)[0])
        if mb not in starts or sl.start_ns < starts[mb]:
            starts[mb] = sl.start_ns
    return starts


def replay(cost_model: CostModel, cluster: Cluster, include_comm_in_compute: bool = False,
           gaps: bool = True, blocking_sends: bool = True):
    wl, s = build_workload(include_comm_in_compute, gaps)
    res = simulate(wl, cluster, cost_model,
                   SimulationOptions(trace=True, blocking_sends=blocking_sends))
    starts = _forward_starts(res)
    warm = s.num_warmup_forwards
    steady = [starts[m] for m in range(warm, s.num_microbatches)]
    period = statistics.median(b - a for a, b in zip(steady, steady[1:])) / MS
    return {"span_ms": res.stages[0].end_ns / MS, "period_ms": period,
            "iteration_ms": res.iteration_ns / MS, "result": res, "summary": s}


def run(cost_model: CostModel, cluster: Cluster) -> list[CaseResult]:
    wl, s = build_workload()
    own = MeasuredCommModel(trace_comm_table(s))
    p = replay(own, cluster)
    inputs = ("measured: per-micro-batch compute, get_batch, host gaps and optimizer times of "
              "stage 0, every collective's and the p2p's duration on the trace's machine; "
              "modelled: 1F1B with blocking p2p, stages 1-3 (uniform), every wait")
    note = ("PP 4, 16 micro-batches, 1F1B with Megatron's blocking p2p, DP 4, EP 2; uniform "
            "stages; collectives priced from the trace's own records (its machine is not an "
            "H200)")
    out = [
        CaseResult("seed 003 Megatron stage replay", "stage-0 iteration span",
                   s.iteration_span_ms, p["span_ms"], inputs=inputs, note=note),
        CaseResult("seed 003 Megatron stage replay", "steady forward-to-forward period",
                   s.steady_forward_period_ms, p["period_ms"], inputs=inputs,
                   note=note + "; median over the steady micro-batches 3..15"),
    ]
    # diagnostic: the same pipeline with the H200 calibration's collectives and p2p: what
    # the calibration of another machine gives on this trace
    d = replay(cost_model, cluster)
    dnote = ("diagnostic, not counted: the same replay with every collective and the p2p "
             "priced by the H200 calibration (inside a server) and the base model (across): "
             "another machine's collectives, about half the trace's time")
    dinputs = ("measured: compute, host gaps and optimizer of stage 0, collective shapes; "
               "modelled: collectives and p2p (H200 calibration), the pipeline")
    for quantity, measured, key in (("stage-0 iteration span", s.iteration_span_ms, "span_ms"),
                                    ("steady forward-to-forward period",
                                     s.steady_forward_period_ms, "period_ms")):
        out.append(CaseResult("seed 003 (H200-calibrated collectives)", quantity, measured,
                              d[key], primary=False, inputs=dinputs, note=dnote))
    return out


def source_files() -> list[str]:
    return [rel(SEED003)]
