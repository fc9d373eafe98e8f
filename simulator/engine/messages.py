"""Pipeline messages shared by both engines: who feeds whom, mailboxes, and receive waits.

A pass needs the output of one pass of a neighbouring stage: a forward pass the activation of
the previous stage (stage 0's chunk k the last stage's chunk k-1 when interleaved), a
backward pass the gradient of the next stage (the last stage's chunk k stage 0's chunk k+1).
A message is an event keyed by the pass that produced it; its value is (sent, arrived).
"""
from __future__ import annotations

from ..workload import Phase

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:  # any environment with simpy's event(), timeout() and now: simpy or .loop
    from enum import Enum as Names  # mypy checks Direction as the Enum it behaves as

    from .._simpy import simpy
else:
    from ..names import Names


class Direction(Names):
    """Which neighbour of a stage a pipeline message goes to or comes from."""

    NEXT = "next"   # stage s+1 (the last stage's next is stage 0: interleaved chunks)
    PREV = "prev"   # stage s-1

    __hash__ = object.__hash__   # singletons: identity hash in C (as when it was an Enum)

    @property
    def reverse(self) -> Direction:
        return Direction.PREV if self is Direction.NEXT else Direction.NEXT

    def of(self, stage: int, pp: int) -> int:
        """The neighbouring stage in this direction."""
        return (stage + 1) % pp if self is Direction.NEXT else (stage - 1) % pp


def send_direction(phase: Phase) -> Direction:
    """Forward passes send activations on, backward passes gradients back."""
    return Direction.NEXT if phase is Phase.FWD else Direction.PREV


def source(phase: Phase, mb: int, chunk: int, stage: int, pp: int, chunks: int
           ) -> tuple[Phase, int, int, Direction] | None:
    """(phase, micro-batch, chunk, Direction) of the pass this one needs, or None."""
    if phase is Phase.FWD:
        if stage > 0:
            return (Phase.FWD, mb, chunk, Direction.PREV)
        return (Phase.FWD, mb, chunk - 1, Direction.PREV) if chunk > 0 else None
    if stage < pp - 1:
        return (Phase.IG, mb, chunk, Direction.NEXT)
    return (Phase.IG, mb, chunk + 1, Direction.NEXT) if chunk < chunks - 1 else None


def has_consumer(phase: Phase, chunk: int, stage: int, pp: int, chunks: int) -> bool:
    if phase is Phase.FWD:
        return stage < pp - 1 or chunk < chunks - 1
    return stage > 0 or chunk > 0


class Mailbox:
    def __init__(self, env: simpy.Environment):
        self.env = env
        self._mail: dict[tuple, simpy.Event] = {}

    def box(self, key: tuple) -> simpy.Event:
        ev = self._mail.get(key)
        if ev is None:
            ev = self._mail[key] = self.env.event()
        return ev

    def deliver(self, key: tuple, start: int, arrive: int) -> None:
        """The message ``key`` left at ``start`` and arrives at ``arrive`` (>= now)."""
        box = self.box(key)
        if arrive <= self.env.now:
            box.succeed((start, arrive))
        else:
            self.env.timeout(arrive - self.env.now).callbacks.append(
                lambda _e: box.succeed((start, arrive)))


def split_wait(w0: int, sent_at: int, arrived: int) -> tuple[int, int]:
    """(bubble, PP communication) of a wait from ``w0`` for a message in flight since
    ``sent_at``: the part during which the message was in flight is communication."""
    in_flight_from = max(w0, sent_at)
    return in_flight_from - w0, arrived - in_flight_from
