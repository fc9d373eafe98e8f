"""Split a workload's rows into iteration-level rows and the ``ga`` unrolled micro-batches.

AICB writes: data-parallel gradient rows first (the prefix), then ``ga`` identical copies of
one micro-batch, then the loss and optimizer rows once (the suffix). We find the prefix and
suffix as the shortest pair that leaves ``ga`` consecutive blocks with the same
communication (types and byte counts, not names, so per-layer numbering cannot hide the
period). Blocks may differ in compute times (SimAI's own example gives the first micro-batch's
embedding a longer weight-gradient time): each distinct block is kept and replayed for its
micro-batches, so no row is lost. A file with ``ga: 1``, or one with no such period, is
replayed as a single micro-batch.
"""
from __future__ import annotations

from ..errors import warn
from ..records import record
from ..workload import NO_COMM, Row, Workload


@record(frozen=True)
class Segmentation:
    """A table's rows split into iteration rows and its micro-batches (see the module doc)."""

    prefix: tuple[int, ...]        # file row indices replayed once, around the pipeline
    micro_batch: tuple[int, ...]   # file row indices of the first micro-batch (the template)
    suffix: tuple[int, ...]
    ga: int                        # micro-batches simulated
    block_starts: tuple[int, ...]  # file index where each unrolled micro-batch starts
    method: str                    # what we did, for the report
    # distinct micro-batch blocks (variant 0 is ``micro_batch``) and which one each micro-batch
    # replays; blocks equal in every field share a variant
    variants: tuple[tuple[int, ...], ...] = ()
    mb_variant: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.variants:
            object.__setattr__(self, "variants", (self.micro_batch,))
            object.__setattr__(self, "mb_variant", (0,) * self.ga)


def _comm_key(row: Row, free: frozenset) -> tuple:
    return tuple(NO_COMM if c.group in free or c.size_bytes == 0 else c
                 for c in (row.fwd, row.ig, row.wg))


def _full_key(row: Row) -> tuple:
    return (row.fwd_ns, row.fwd, row.ig_ns, row.ig, row.wg_ns, row.wg, row.update_ns)


def _class_ids(rows, key, same) -> list[int]:
    """``key``'s equivalence class of each row, numbered in order of first appearance.

    ``same(row)`` is a cheap tuple of the fields ``key`` reads, with the collectives by
    identity: the reader gives the ``ga`` copies of a row the same ``Comm`` objects, so
    ``key`` (which hashes those collectives field by field) runs once per distinct row
    rather than once per row; rows equal but not identical still meet through ``key``."""
    ids: dict = {}
    of_same: dict = {}
    out = []
    for r in rows:
        s = same(r)
        i = of_same.get(s)
        if i is None:
            i = of_same[s] = ids.setdefault(key(r), len(ids))
        out.append(i)
    return out


def _same_comms(row: Row) -> tuple:
    return (row.name, id(row.fwd), id(row.ig), id(row.wg))


def _same_full(row: Row) -> tuple:
    return (row.fwd_ns, id(row.fwd), row.ig_ns, id(row.ig), row.wg_ns, id(row.wg),
            row.update_ns)


def _variants(rows, starts: list[int], period: int, marks: dict[int, tuple]):
    """Distinct blocks; a block's checkpoint marks count, so recompute stays where it is."""
    seen: dict[tuple, int] = {}
    variants: list[tuple[int, ...]] = []
    mb_variant: list[int] = []
    full = _class_ids(rows, _full_key, _same_full)
    for start in starts:
        span = range(start, start + period)
        key = tuple(zip(full[start:start + period], map(marks.get, span)))
        v = seen.get(key)
        if v is None:
            v = seen[key] = len(variants)
            variants.append(tuple(range(start, start + period)))
        mb_variant.append(v)
    return tuple(variants), tuple(mb_variant)


def free_groups_of(workload: Workload) -> frozenset:
    """Groups of one rank according to the header alone (the engine passes its own)."""
    from ..workload import Group

    free = set()
    if workload.tp == 1:
        free.add(Group.TP)
    if workload.ep == 1:
        free.add(Group.EP)
    if workload.all_gpus and workload.all_gpus % (workload.tp * workload.pp) == 0:
        dp = workload.all_gpus // (workload.tp * workload.pp)
        if dp == 1:
            free.add(Group.DP)
        if dp % workload.ep == 0 and dp // workload.ep == 1:
            free.add(Group.DP_EP)
    return frozenset(free)


def checkpoint_marks(workload: Workload) -> dict[int, tuple]:
    """File row index -> (is a checkpoint, is a recompute initiate)."""
    marks: dict[int, tuple] = {}
    checkpoints, initiates = set(workload.checkpoints), set(workload.checkpoint_initiates)
    for i in checkpoints | initiates:
        marks[i] = (i in checkpoints, i in initiates)
    return marks


def segment(workload: Workload, free_groups: frozenset | None = None) -> Segmentation:
    """Split the rows; collectives on ``free_groups`` (size 1) do not count as differences.

    Without ``free_groups`` they are derived from the header.
    """
    if free_groups is None:
        free_groups = free_groups_of(workload)
    rows = workload.rows
    n = len(rows)
    ga = workload.ga
    whole = Segmentation((), tuple(range(n)), (), 1, (0,), "whole file as one micro-batch")
    if ga <= 1:
        return Segmentation((), tuple(range(n)), (), 1, (0,),
                            "whole file as one micro-batch (ga 1)")
    # first by communication, then (blocks that differ in their collectives, kept as
    # distinct micro-batches) by row names, which AICB repeats in every micro-batch
    # names first where they repeat too (AICB's do), so that one collective more or less
    # cannot flip an ambiguous split
    # each basis only where the ones before found nothing, except the weight-gradient one:
    # it accepts micro-batches that differ only in their weight-gradient collectives (as
    # Megatron's gradient buckets on the last micro-batch make them) and wins where the
    # stricter bases found only a spurious short period leaving more rows outside
    keys = (("communication", lambda r: (_comm_key(r, free_groups), r.name)),
            ("communication", lambda r: _comm_key(r, free_groups)),
            ("weight-gradient", lambda r: (_comm_key(r, free_groups)[:2], r.name)),
            ("row names", lambda r: r.name))
    best = None
    for basis, key in keys:
        if best is not None and basis != "weight-gradient":
            continue
        limit = n if best is None else best[0] - 1
        found = _find_period(rows, ga, key, limit)
        if found is not None:
            best = (n - ga * found[1], basis, found)
            if best[0] == 0:
                break
    for basis, (start, period) in ([(best[1], best[2])] if best else []):
        starts = [start + k * period for k in range(ga)]
        variants, mb_variant = _variants(rows, starts, period, checkpoint_marks(workload))
        differ = (f"; {len(variants)} distinct micro-batches ("
                  + ("compute times differ" if basis == "communication"
                     else "they differ in weight-gradient collectives only"
                     if basis == "weight-gradient"
                     else "found by row names; their collectives differ") + ")"
                  if len(variants) > 1 else "")
        if basis == "row names":
            warn(f"{workload.path}: the {ga} micro-batches differ in their collectives; split "
                 f"by row names into blocks of {period} rows, each replayed as written")
        return Segmentation(
            prefix=tuple(range(start)),
            micro_batch=tuple(range(start, start + period)),
            suffix=tuple(range(start + ga * period, n)),
            ga=ga,
            block_starts=tuple(starts),
            method=(f"{start} iteration rows before, {ga} micro-batches of {period} rows, "
                    f"{n - start - ga * period} after{differ}"),
            variants=variants, mb_variant=mb_variant,
        )
    warn(f"{workload.path}: no {ga} repeating micro-batches found in {n} rows; replaying the "
         "whole file as one micro-batch (pipeline schedules then see ga 1)")
    return whole


def _find_period(rows, ga: int, key, max_extra: int | None = None) -> tuple[int, int] | None:
    """(first row, period) of the shortest prefix+suffix leaving ga equal blocks, or None.

    Only prefix+suffix lengths up to ``max_extra`` are tried.
    """
    n = len(rows)
    top = n - ga if max_extra is None else min(n - ga, max_extra)
    arr = None      # the rows' classes: a pass over every row, made once a length fits
    for extra in range(0, top + 1):
        if (n - extra) % ga:
            continue
        if arr is None:
            arr = _class_ids(rows, key, _same_comms)
        period = (n - extra) // ga
        for start in range(0, extra + 1):
            if arr[start] != arr[start + period]:
                continue
            # ga equal blocks: the span equals itself shifted by one period
            if arr[start:start + (ga - 1) * period] == arr[start + period:start + ga * period]:
                return start, period
    return None
