"""The stage driver: what one pipeline stage does in an iteration, for every engine.

A stage (or a rank class of one) replays its head passes (rows before the pipeline), then its
schedule's forward and backward passes, each after the message it needs from a neighbouring
stage and followed by the message it sends on, then its tail passes, and finally waits for its
communication streams to drain. :func:`stage_passes` gives that order once, with the
message each pass receives and sends (:mod:`.messages`), and :func:`drive` walks it; the
engines differ only in how they execute the steps (:class:`StageExecutor`):

* the fast engine (:mod:`.pipeline`): one representative rank, a pass is one memoized
  busy-until evaluation and one timed event;
* the row-level engine (:mod:`.detailed`): one process per rank class, a collective is a
  rendezvous of the classes in its group;
* the class replay (:mod:`.class_replay`): every class of a stage as vectors; a stage whose
  message has not been sent yet is parked (``drive`` yields) and resumed later.

The rules every engine shares beyond the order live here too: how a wait for a message splits
into bubble and exposed pipeline communication (:func:`split_wait`) and how sends in one
direction queue behind each other (:func:`queue_send`).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from ..records import record
from ..workload import Phase
from .messages import Direction, has_consumer, send_direction, source, split_wait

__all__ = ["Receive", "StagePass", "StageExecutor", "stage_passes", "drive", "split_wait",
           "queue_send"]


@record(slots=True)
class Receive:
    """The message a pass waits for: the pass (phase, micro-batch, chunk) that produced it,
    on the neighbouring stage in direction ``sender`` (slots, not frozen: frozen dataclasses
    are slow to build, and every run builds one per pass)."""

    phase: Phase
    mb: int
    chunk: int
    sender: Direction
    sender_stage: int            # that neighbour's stage index


@record(slots=True)
class StagePass:
    """One pass of a stage's iteration, with its pipeline messages."""

    phase: Phase
    seq: object                  # the row sequence it replays (a PassReplayer sequence id)
    mb: int                      # micro-batch, -1 for the head and tail passes
    chunk: int
    receive: Receive | None      # the message it waits for before it starts
    send: Direction | None       # where its output goes after it ends (None: nobody needs it)
    part: str = "pipeline"       # "head", "pipeline" or "tail"

    @property
    def tag(self) -> str:
        return "F" if self.phase is Phase.FWD else "B"


def stage_passes(schedule: list, stage: int, pp: int, chunks: int, mb_variant: tuple,
                 head: list, tail: list) -> Iterator[StagePass]:
    """Every pass of ``stage`` in order: head forwards, the schedule's (phase, mb, chunk)
    entries, the tail's (phase, sequence). Made as the driver walks them (a long interleaved
    schedule has thousands: no list of them is kept)."""
    for seq in head:
        yield StagePass(Phase.FWD, seq, -1, 0, None, None, "head")
    for phase, mb, chunk in schedule:
        src = source(phase, mb, chunk, stage, pp, chunks)
        yield StagePass(
            phase, ("mb", mb_variant[mb], chunk), mb, chunk,
            Receive(*src, src[3].of(stage, pp)) if src is not None else None,
            send_direction(phase) if has_consumer(phase, chunk, stage, pp, chunks) else None)
    for phase, seq in tail:
        yield StagePass(phase, seq, -1, 0, None, None, "tail")


class StageExecutor(Protocol):
    """How one engine executes the steps of a stage. ``receive``, ``run_pass`` and ``drain``
    are generators (they yield whatever their engine's scheduler waits on)."""

    def receive(self, p: StagePass) -> Iterator: ...

    def run_pass(self, p: StagePass) -> Iterator: ...

    def send(self, p: StagePass) -> Iterator | None: ...

    def drain(self) -> Iterator: ...


def drive(passes: Iterable[StagePass], ex: StageExecutor) -> Iterator:
    """The stage loop: receive, pass, send, for each pass in order; then drain. A send that
    blocks its sender (Megatron-LM's p2p waits for its requests) returns what to wait on."""
    for p in passes:
        if p.receive is not None:
            yield from ex.receive(p)
        yield from ex.run_pass(p)
        if p.send is not None:
            blocked = ex.send(p)
            if blocked is not None:
                yield from blocked
    yield from ex.drain()


def queue_send(ready, free, cost, maximum=max):
    """(start, arrival) of a send ready at ``ready`` behind the previous send in the same
    direction (busy until ``free``): sends in one direction go one after another. On numpy
    vectors (the class replay) pass ``maximum=np.maximum``."""
    start = maximum(ready, free)
    return start, start + cost
