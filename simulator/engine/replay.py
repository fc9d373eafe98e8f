"""Replay of one forward or backward pass of a row sequence on one representative rank.

Inside a pass a rank interacts with nothing but its own streams: the compute stream, one
communication stream per group (TP, EP, DP, DP_EP; NCCL runs a communicator's collectives in
order) and the completion times of its earlier weight-gradient collectives. So a pass is
computed with busy-until arithmetic and handed to simpy as one timed event; the stage
processes in :mod:`.pipeline` do the waiting between ranks.

A pass depends only on the state of those streams relative to its start, so outcomes are
memoized by that relative state: the steady-state micro-batches of a long pipeline cost one
evaluation, and the result is exactly what replaying them would give.
"""
from __future__ import annotations

from ..records import record
from ..workload import Group, Phase
from .policy import COMM_OF_TAG

STREAMS = (Group.TP, Group.EP, Group.DP, Group.DP_EP)
STREAM_INDEX = {g: i for i, g in enumerate(STREAMS)}
NO_STREAM = -1


@record(frozen=True, slots=True)
class PricedRow:
    """A row with its collectives priced for one stage; stream -1 means no communication."""

    key: tuple            # identity for weight-gradient bookkeeping: (sequence, index)
    name: str
    fwd_ns: int
    fwd_stream: int
    fwd_comm_ns: int
    ig_ns: int
    ig_stream: int
    ig_comm_ns: int
    wg_ns: int
    wg_stream: int
    wg_comm_ns: int
    update_ns: int
    recompute_from: int   # position in the sequence to replay forward from, or -1
    comms: tuple = ()     # the row's (fwd, ig, wg) Comm, for re-pricing a rank class



@record(slots=True)
class PassOutcome:
    """One replayed pass: its duration, compute and the exposed time of each stream (ns)."""

    duration_ns: int
    compute_ns: int
    recompute_ns: int
    exposed_ns: list[int]                  # per stream
    stream_free: tuple[int, ...]           # relative to the pass start
    wg_done: tuple[tuple[tuple, int], ...]  # (row key, relative completion) set by this pass
    row_exposed: tuple[tuple[tuple, int], ...]
    slices: tuple | None                   # (lane, name, start, dur, args) relative, when tracing




def comm_args(row: PricedRow, tag: str, blocking: bool) -> dict | None:
    """Trace args of a row's collective: its type as the file wrote it, bytes and group."""
    phase = COMM_OF_TAG.get(str(tag).split()[0]) if tag else None
    if phase is None or not row.comms:
        return None
    comm = row.comms[phase]
    if comm is None or comm.op is None:
        return None
    return {"collective": comm.op.value if hasattr(comm.op, "value") else str(comm.op),
            "bytes": comm.size_bytes,
            "group": comm.group.value if hasattr(comm.group, "value") else str(comm.group),
            "phase": ("fwd", "ig", "wg")[phase], "blocking": blocking}


class PassReplayer:
    """Replays passes of the sequences of one stage, memoizing by relative stream state.

    A pass is the policy's program of steps (:func:`.policy.pass_program`); ``seq_first``
    gives each sequence's first file row (DLRM and row-0 rules refer to file rows).
    """

    def __init__(self, sequences: dict[object, list[PricedRow]], trace: bool,
                 rules=None, dlrm_lbl: int | None = None, seq_first: dict | None = None,
                 program_source=None):
        from .policy import rules_for

        self.sequences = sequences
        # (phase, sequence) -> the pass's program where the planner keeps them across
        # points (:func:`.plan.repriced_program`); else :func:`.policy.pass_program`
        self.program_source = program_source
        self.trace = trace
        self.rules = rules or rules_for()
        self.dlrm_lbl = dlrm_lbl
        self.seq_first = seq_first or {}
        self._memo: dict[tuple, PassOutcome] = {}
        self._programs: dict[tuple, tuple] = {}
        # rows whose forward must wait for their previous weight-gradient collective
        self._wg_rows = {sid: tuple(r.key for r in rows if r.wg_stream != NO_STREAM)
                         for sid, rows in sequences.items()}

    def program(self, phase: Phase, seq_id) -> tuple:
        key = (phase, seq_id)
        prog = self._programs.get(key)
        if prog is None and self.program_source is not None:
            prog = self._programs[key] = self.program_source(phase, seq_id)
        elif prog is None:
            from .policy import pass_program
            prog = self._programs[key] = pass_program(
                self.sequences[seq_id], phase, self.rules, self.dlrm_lbl,
                self.seq_first.get(seq_id, -1))
        return prog

    def run(self, phase: Phase, seq_id, now: int, stream_free: list[int],
            wg_done: dict[tuple, int]) -> PassOutcome:
        rel_free = tuple(f - now if f > now else 0 for f in stream_free)
        if phase is Phase.FWD:
            rel_wg = tuple((wg_done.get(k, 0) - now) if wg_done.get(k, 0) > now else 0
                           for k in self._wg_rows[seq_id])
        else:
            rel_wg = ()
        key = (phase, seq_id, rel_free, rel_wg)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._replay(phase, seq_id, rel_free,
                               dict(zip(self._wg_rows[seq_id], rel_wg)))
            self._memo[key] = hit
        return hit

    # ------------------------------------------------------------------------------------
    def _replay(self, phase: Phase, seq_id, free_in: tuple[int, ...],
                wg_pending: dict[tuple, int]) -> PassOutcome:
        from .policy import BLOCK, COMPUTE, ISSUE, SYNC, WAIT, WAIT_WG

        free = list(free_in)
        exposed = [0] * len(STREAMS)
        row_exposed: dict[tuple, int] = {}
        wg_done: dict[tuple, int] = {}
        local: dict[tuple, int] = {}     # non-blocking collectives of this pass by handle
        slices: list | None = [] if self.trace else None
        t = 0
        compute = 0
        recompute = 0

        def wait_until(done: int, stream: int, row: PricedRow) -> None:
            nonlocal t
            if done > t:
                exposed[stream] += done - t
                row_exposed[row.key] = row_exposed.get(row.key, 0) + done - t
                t = done

        for step in self.program(phase, seq_id):
            kind, row = step[0], step[1]
            if kind == COMPUTE:
                ns = step[2]
                if slices is not None:
                    slices.append(("compute", step[4], t, ns, None))
                t += ns
                compute += ns
                if step[5]:
                    recompute += ns
            elif kind == BLOCK:
                stream, comm_ns, update_ns = step[2], step[3], step[4]
                start = free[stream] if free[stream] > t else t
                end = start + comm_ns + update_ns
                free[stream] = end
                exposed[stream] += end - t
                row_exposed[row.key] = row_exposed.get(row.key, 0) + end - t
                if slices is not None:
                    slices.append((STREAMS[stream].value, f"{row.name} {step[5]}", start,
                                   end - start, comm_args(row, step[5], True)))
                t = end
            elif kind == ISSUE:
                # asynchronous: queued on its stream, overlapping the compute that follows
                stream, comm_ns, update_ns, handle = step[2], step[3], step[4], step[6]
                start = free[stream] if free[stream] > t else t
                end = start + comm_ns + update_ns
                free[stream] = end
                if handle[0] == "wg":
                    wg_done[row.key] = end
                else:
                    local[handle] = end
                if slices is not None:
                    slices.append((STREAMS[stream].value, f"{row.name} {step[5]}", start,
                                   end - start, comm_args(row, step[5], False)))
            elif kind == WAIT:
                wait_until(local.get(step[2], 0), step[3], row)
            elif kind == WAIT_WG:
                wait_until(wg_pending.get(row.key, 0), row.wg_stream, row)
            elif kind == SYNC:
                wait_until(free[step[2]], step[2], row)
        return PassOutcome(
            duration_ns=t, compute_ns=compute, recompute_ns=recompute, exposed_ns=exposed,
            stream_free=tuple(free), wg_done=tuple(wg_done.items()),
            row_exposed=tuple(row_exposed.items()),
            slices=tuple(slices) if slices is not None else None)


@record
class StageSetup:
    """One pipeline stage: its pass replayer, its send times and what it replays around the
    pipeline."""

    replayer: PassReplayer
    send_next_ns: int   # activation to the next stage (or, last stage, to stage 0: interleaved)
    send_prev_ns: int   # gradient to the previous stage (or, stage 0, to the last)
    head: list          # sequences replayed forward before the pipeline
    tail: list          # (phase, sequence) replayed after it
    # the sender waits until its send has arrived before its next pass (Megatron-LM's p2p
    # waits on its requests outside interleaving); its wait is exposed PP time
    blocking_send: bool = False
