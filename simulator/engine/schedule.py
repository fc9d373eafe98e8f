"""Pipeline schedules: the order in which each stage runs its forward and backward passes.

A schedule is, per stage, a list of (phase, micro-batch, chunk). 1F1B and interleaved follow
Megatron-LM's orders (warm-up forwards, steady one-forward-one-backward, cool-down
backwards); GPipe runs every forward, then every backward.

To add a schedule: write its order function ``(pp, ga, chunks, stage) -> [Step]`` (in its own
module if it is long) and add one line to :data:`SCHEDULES`; ``--pp-schedule`` offers it, and
every engine runs it (the stage driver, :mod:`.stage`, walks whatever order it gives).
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import InputError
from ..records import record
from ..workload import Phase

Step = tuple[Phase, int, int]


def one_f_one_b(pp: int, ga: int, stage: int) -> list[Step]:
    warmup = min(pp - stage - 1, ga)
    order: list[Step] = [(Phase.FWD, mb, 0) for mb in range(warmup)]
    for i in range(ga - warmup):
        order.append((Phase.FWD, warmup + i, 0))
        order.append((Phase.IG, i, 0))
    order.extend((Phase.IG, mb, 0) for mb in range(ga - warmup, ga))
    return order


def gpipe(pp: int, ga: int, stage: int) -> list[Step]:
    return [(Phase.FWD, mb, 0) for mb in range(ga)] + [(Phase.IG, mb, 0) for mb in range(ga)]


def interleaved(pp: int, ga: int, chunks: int, stage: int) -> list[Step]:
    """Megatron's interleaved 1F1B: micro-batches go through the chunks in groups of ``pp``."""
    total = ga * chunks
    group = pp * chunks

    def chunk_of(k: int, forward: bool) -> int:
        c = (k % group) // pp
        return c if forward else chunks - 1 - c

    def mb_of(k: int) -> int:
        return (k // group) * pp + k % pp

    warmup = min((pp - stage - 1) * 2 + (chunks - 1) * pp, total)
    order: list[Step] = [(Phase.FWD, mb_of(k), chunk_of(k, True)) for k in range(warmup)]
    for i in range(total - warmup):
        k = warmup + i
        order.append((Phase.FWD, mb_of(k), chunk_of(k, True)))
        order.append((Phase.IG, mb_of(i), chunk_of(i, False)))
    order.extend((Phase.IG, mb_of(k), chunk_of(k, False)) for k in range(total - warmup, total))
    return order


def _check_interleaved(pp: int, ga: int, chunks: int) -> None:
    if chunks > 1 and pp > 1 and ga % pp:
        raise InputError(f"the interleaved schedule needs the micro-batch count (ga {ga}) to "
                         f"be a multiple of PP ({pp}), as in Megatron-LM",
                         field="pp_schedule")


@record(frozen=True)
class ScheduleKind:
    """A registered schedule: its per-stage order and what it requires of (pp, ga, chunks)."""

    order: Callable[[int, int, int, int], list[Step]]    # (pp, ga, chunks, stage) -> steps
    check: Callable[[int, int, int], None] | None = None  # raises InputError when unusable
    uses_chunks: bool = False                             # runs the vpp model chunks
    # micro-batches after which the steady state's order repeats, (pp, chunks) -> count: the
    # direct evaluation (.direct) extrapolates repeating rounds of that many; a wrong value
    # costs speed, never exactness (each repeat is checked)
    period: Callable[[int, int], int] = lambda pp, chunks: 1


#: name -> schedule (the ``--pp-schedule`` choices, in this order)
SCHEDULES: dict[str, ScheduleKind] = {
    "1f1b": ScheduleKind(lambda pp, ga, chunks, s: one_f_one_b(pp, ga, s)),
    "interleaved": ScheduleKind(interleaved, _check_interleaved, uses_chunks=True,
                                period=lambda pp, chunks: pp if chunks > 1 else 1),
    "gpipe": ScheduleKind(lambda pp, ga, chunks, s: gpipe(pp, ga, s)),
}


_BUILT: dict[tuple, list[list[Step]]] = {}


def build_schedule(name: str, pp: int, ga: int, chunks: int) -> list[list[Step]]:
    """Per-stage orders; backward passes are written with Phase.IG (input and weight gradient).
    Kept per (name, pp, ga, chunks), as a sweep asks for the same again and again: the lists
    are shared, never to be changed."""
    key = (name, SCHEDULES.get(name), pp, ga, chunks)   # the kind too: a re-registered name
    hit = _BUILT.get(key)
    if hit is None:
        hit = _order(name, pp, ga, chunks)
        if len(_BUILT) >= 64:
            _BUILT.pop(next(iter(_BUILT)))
        _BUILT[key] = hit
    return hit


def _order(name: str, pp: int, ga: int, chunks: int) -> list[list[Step]]:
    kind = SCHEDULES.get(name)
    if kind is None:
        raise InputError(f"unknown pipeline schedule {name!r}; expected one of "
                         f"{', '.join(SCHEDULES)}", field="pp_schedule")
    if kind.check is not None:
        kind.check(pp, ga, chunks)
    return [kind.order(pp, ga, chunks, s) for s in range(pp)]
