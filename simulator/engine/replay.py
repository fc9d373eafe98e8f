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

from dataclasses import dataclass

from ..workload import Group, Phase

STREAMS = (Group.TP, Group.EP, Group.DP, Group.DP_EP)
STREAM_INDEX = {g: i for i, g in enumerate(STREAMS)}
NO_STREAM = -1


@dataclass(frozen=True, slots=True)
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


@dataclass(slots=True)
class PassOutcome:
    duration_ns: int
    compute_ns: int
    recompute_ns: int
    exposed_ns: list[int]                  # per stream
    stream_free: tuple[int, ...]           # relative to the pass start
    wg_done: tuple[tuple[tuple, int], ...]  # (row key, relative completion) set by this pass
    row_exposed: tuple[tuple[tuple, int], ...]
    slices: tuple | None                   # (lane, name, start, dur) relative, when tracing


class PassReplayer:
    """Replays passes of the sequences of one stage, memoizing by relative stream state."""

    def __init__(self, sequences: dict[object, list[PricedRow]], trace: bool):
        self.sequences = sequences
        self.trace = trace
        self._memo: dict[tuple, PassOutcome] = {}
        self.evaluations = 0
        # rows whose forward must wait for their previous weight-gradient collective
        self._wg_rows = {sid: tuple(r.key for r in rows if r.wg_stream != NO_STREAM)
                         for sid, rows in sequences.items()}

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
            self.evaluations += 1
            hit = self._replay(phase, seq_id, rel_free,
                               dict(zip(self._wg_rows[seq_id], rel_wg)))
            self._memo[key] = hit
        return hit

    # ------------------------------------------------------------------------------------
    def _replay(self, phase: Phase, seq_id, free_in: tuple[int, ...],
                wg_pending: dict[tuple, int]) -> PassOutcome:
        rows = self.sequences[seq_id]
        free = list(free_in)
        exposed = [0] * len(STREAMS)
        row_exposed: dict[tuple, int] = {}
        wg_done: dict[tuple, int] = {}
        slices: list | None = [] if self.trace else None
        t = 0
        compute = 0
        recompute = 0

        def blocking(stream: int, comm_ns: int, update_ns: int, row: PricedRow, what: str) -> None:
            nonlocal t
            start = free[stream] if free[stream] > t else t
            end = start + comm_ns + update_ns
            free[stream] = end
            exposed[stream] += end - t
            row_exposed[row.key] = row_exposed.get(row.key, 0) + end - t
            if slices is not None:
                slices.append((STREAMS[stream].value, f"{row.name} {what}", start, end - start))
            t = end

        def forward(row: PricedRow, tag: str) -> int:
            nonlocal t
            done = wg_pending.get(row.key, 0)
            if done > t and tag == "fwd":
                exposed[row.wg_stream] += done - t
                row_exposed[row.key] = row_exposed.get(row.key, 0) + done - t
                t = done
            if slices is not None and row.fwd_ns:
                slices.append(("compute", f"{row.name} {tag}", t, row.fwd_ns))
            t += row.fwd_ns
            if row.fwd_stream != NO_STREAM:
                blocking(row.fwd_stream, row.fwd_comm_ns, row.update_ns, row, tag)
            return row.fwd_ns

        if phase is Phase.FWD:
            for row in rows:
                compute += forward(row, "fwd")
        else:
            for pos in range(len(rows) - 1, -1, -1):
                row = rows[pos]
                if row.recompute_from >= 0:
                    for r in rows[row.recompute_from:pos + 1]:
                        spent = forward(r, "recompute")
                        compute += spent
                        recompute += spent
                if slices is not None and row.ig_ns:
                    slices.append(("compute", f"{row.name} ig", t, row.ig_ns))
                t += row.ig_ns
                compute += row.ig_ns
                if row.ig_stream != NO_STREAM:
                    blocking(row.ig_stream, row.ig_comm_ns, row.update_ns, row, "ig")
                if slices is not None and row.wg_ns:
                    slices.append(("compute", f"{row.name} wg", t, row.wg_ns))
                t += row.wg_ns
                compute += row.wg_ns
                if row.wg_stream != NO_STREAM:
                    # asynchronous: queued on its stream, overlapping the compute that follows
                    s = row.wg_stream
                    start = free[s] if free[s] > t else t
                    end = start + row.wg_comm_ns + row.update_ns
                    free[s] = end
                    wg_done[row.key] = end
                    if slices is not None:
                        slices.append((STREAMS[s].value, f"{row.name} wg", start, end - start))
        return PassOutcome(
            duration_ns=t, compute_ns=compute, recompute_ns=recompute, exposed_ns=exposed,
            stream_free=tuple(free), wg_done=tuple(wg_done.items()),
            row_exposed=tuple(row_exposed.items()),
            slices=tuple(slices) if slices is not None else None)
