"""Case: replay of seed 003's traced pipeline stage (Megatron, PP 4, 16 micro-batches, 1F1B).

Measured inputs (from the trace of stage 0, rank 0): per micro-batch forward compute (the
``forward_step`` duration minus its communication sub-operations) plus the ``get_batch``
before it, backward compute per micro-batch, the optimizer step, and the shapes of every
collective: per MoE layer (2 per stage) an all-gather of 8 int64 per rank, an all-to-all of
[2048, 4096] and one of [2924, 4096] bf16 in the forward and again in the backward; 8 MiB
activations between stages; after the pipeline the DP all-reduce (290,013,184 fp32) and
the expert-DP all-reduce (1,409,286,144 fp32), then the optimizer.
Modelled: every collective and pipeline transfer (the calibrated model inside a server,
the base model across servers), and the other three stages.

Assumptions: the stages are uniform (every stage replays stage 0's compute; the trace has
no other stage), DP 4 (the trace allows 4 or 8), so 16 GPUs on 8-GPU servers: stages 0-1
on one server, 2-3 on the other (the PP hop between stages 1 and 2 crosses servers), the
DP group (4 ranks) and the expert-DP group (2 ranks) inside a server. The trace's durations
include waiting for peers: its forward steps hold ~1 ms of all-to-all and all-gather that
wait for the slower EP peer, and the stage waits for slower downstream stages (its steady
``send_forward_recv_backward`` waits 1.5-3.9 ms); a uniform replay has neither.
The GPUs of the trace are not H200s (its all-reduces run at about half the H200 NVLink
rate), so the calibrated H200 model prices its collectives too low.
"""
from __future__ import annotations

import statistics
from typing import TypeVar

from ..cluster import Cluster
from ..costmodel.base import CostModel
from ..engine import SimulationOptions, simulate
from ..errors import InputError
from ..readers.echo_trace import read_echo_trace, summarize_echo_trace
from ..workload import Group, Op
from .common import MS, TRACES, CaseResult, comm, rel, row, workload

T = TypeVar("T")

SEED003 = TRACES / "seeds" / "003_cac42666c59f300b.txt"
DP = 4
PP = 4


class MeasuredCommModel(CostModel):
    """Prices each collective with the trace's own median duration (for the diagnostic)."""

    name = "trace-measured"

    def __init__(self, table: dict[tuple[Op, int], float]):
        super().__init__()
        self.table = table

    def price_ns(self, op, size_bytes, placement):
        return self.table.get((op, size_bytes), 0.0) * MS

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


def build_workload(include_comm_in_compute: bool = False):
    s, get_batch, a2a_small, a2a_big, ag_bytes, pp_bytes = _inputs()
    fwd_steps = {o.batch_id: o for o in s.ops if o.op == "forward_step"}
    bwd_steps = {o.batch_id: o for o in s.ops if o.op == "backward_step"}
    rows = []
    # iteration rows before the micro-batches: their backward runs after the pipeline drains,
    # in reverse order: the DP all-reduce, then the expert-DP all-reduce and the optimizer
    rows.append(row("ep_dp_grad_and_optimizer",
                    ig=comm(Op.ALLREDUCE, Group.DP_EP, s.ep_dp_allreduce_bytes),
                    update_ns=s.optimizer_step_ms * MS))
    rows.append(row("dp_grad", ig=comm(Op.ALLREDUCE, Group.DP, s.dp_allreduce_bytes)))
    for mb in range(s.num_microbatches):
        f, b = fwd_steps[mb], bwd_steps[mb]
        fc = (f.duration_ms if include_comm_in_compute else f.compute_ms) + get_batch.get(mb, 0)
        bc = b.duration_ms if include_comm_in_compute else b.compute_ms
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


def _forward_starts(result, stage: int = 0) -> dict[int, int]:
    starts: dict[int, int] = {}
    for sl in result.trace or ():
        if sl.stage != stage or sl.lane != "compute" or not sl.name.startswith("F"):
            continue
        mb = int(sl.name[1:].split(" ", 1)[0].split(".", 1)[0])
        if mb not in starts or sl.start_ns < starts[mb]:
            starts[mb] = sl.start_ns
    return starts


def replay(cost_model: CostModel, cluster: Cluster, include_comm_in_compute: bool = False):
    wl, s = build_workload(include_comm_in_compute)
    res = simulate(wl, cluster, cost_model, SimulationOptions(trace=True))
    starts = _forward_starts(res)
    warm = s.num_warmup_forwards
    steady = [starts[m] for m in range(warm, s.num_microbatches)]
    period = statistics.median(b - a for a, b in zip(steady, steady[1:])) / MS
    return {"span_ms": res.stages[0].end_ns / MS, "period_ms": period,
            "iteration_ms": res.iteration_ns / MS, "result": res, "summary": s}


def run(cost_model: CostModel, cluster: Cluster) -> list[CaseResult]:
    p = replay(cost_model, cluster)
    s = p["summary"]
    inputs = ("measured: per-micro-batch compute, get_batch and optimizer times and all "
              "collective shapes of stage 0; modelled: collectives and PP transfers "
              "(calibration inside a server, base model across), stages 1-3 (uniform)")
    out = [
        CaseResult("seed 003 Megatron stage replay", "stage-0 iteration span",
                   s.iteration_span_ms, p["span_ms"], inputs=inputs,
                   note="PP 4, 16 micro-batches, 1F1B, DP 4, EP 2; uniform stages"),
        CaseResult("seed 003 Megatron stage replay", "steady forward-to-forward period",
                   s.steady_forward_period_ms, p["period_ms"], inputs=inputs,
                   note="median over the steady micro-batches 3..15 (simulation trace slices)"),
    ]
    # diagnostic: the same replay with the trace's own communication times, to separate
    # the pipeline model from the communication model
    durations: dict[tuple[Op, int], list[float]] = {}
    for c in s.comm:
        op = Op.ALLTOALL if c.comm_func == "all_to_all" else Op.ALLGATHER
        size = _known(c.size_bytes) * (2 if op is Op.ALLGATHER else 1)
        durations.setdefault((op, size), []).extend(c.durations_ms)
    table = {k: statistics.median(v) for k, v in durations.items()}
    table[(Op.ALLREDUCE, s.dp_allreduce_bytes)] = s.dp_allreduce_ms
    table[(Op.ALLREDUCE, s.ep_dp_allreduce_bytes)] = s.ep_dp_allreduce_ms
    table[(Op.SENDRECV, next(o.size_bytes for o in s.ops if o.op == "send_forward"))] = \
        s.send_forward_warmup_median_ms
    d = replay(MeasuredCommModel(table), cluster)
    dnote = ("diagnostic, not counted: every collective and PP send priced at the trace's own "
             "median duration (waiting included), so only the pipeline model differs")
    out.append(CaseResult("seed 003 (trace's own comm times)", "stage-0 iteration span",
                          s.iteration_span_ms, d["span_ms"], primary=False,
                          inputs="measured: compute and communication durations", note=dnote))
    out.append(CaseResult("seed 003 (trace's own comm times)",
                          "steady forward-to-forward period", s.steady_forward_period_ms,
                          d["period_ms"], primary=False,
                          inputs="measured: compute and communication durations", note=dnote))
    return out


def source_files() -> list[str]:
    return [rel(SEED003)]
