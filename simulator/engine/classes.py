"""Rank classes: ranks that are guaranteed to replay identically, found by partition refinement.

On a symmetric cluster every rank of a pipeline stage behaves alike, so one class per stage
suffices. A what-if that makes some ranks differ (a slow GPU, a degraded NIC) splits them off,
and the split spreads through the groups: a rank whose TP group holds a straggler waits for it
at every TP collective, so it differs from a rank whose groups hold none. We start from a
colouring by (stage, per-rank attributes) and refine it, Weisfeiler-Lehman style, until every
rank of a class sees the same multiset of classes in each of its groups (TP, EP, DP, DP_EP
and its pipeline column). Then one simulated process per class is exact, and the cost grows
with the number of distinct ranks, never with the GPU count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..parallel import ParallelConfig
from ..workload import Group

KINDS = (Group.TP, Group.EP, Group.DP, Group.DP_EP, Group.PP)


@dataclass(frozen=True)
class RankClass:
    cid: int
    stage: int
    ranks: int                  # how many ranks it stands for
    example_rank: int
    attributes: Any             # the per-rank value it was coloured with (RankAttributes)
    # per group kind: ((class id, members of that class in the group), ...), sorted
    group_members: dict = field(default_factory=dict, compare=False, hash=False)


def group_ids(par: ParallelConfig, kind: Group) -> np.ndarray:
    """For every rank, the index of its group of this kind (groups numbered arbitrarily)."""
    ranks = np.arange(par.world, dtype=np.int64)
    tp, dp, ep = par.tp, par.dp, par.ep
    stage, within = np.divmod(ranks, tp * dp)
    dp_idx, tp_idx = np.divmod(within, tp)
    if kind is Group.TP:
        return ranks // tp
    if kind is Group.DP:
        return stage * tp + tp_idx
    if kind is Group.EP:
        return (stage * (dp // ep) + dp_idx // ep) * tp + tp_idx
    if kind is Group.DP_EP:
        return (stage * ep + dp_idx % ep) * tp + tp_idx
    if kind is Group.PP:
        return within
    raise ValueError(kind)


_WORDS: list = []


def _words():
    """(the generator, its first and second 65,536 words), made on first use: a run whose
    ranks are all alike never hashes them, and numpy.random is 3% of a contention run's
    instructions to import."""
    if not _WORDS:
        rng = np.random.default_rng(0x5EED)
        _WORDS.extend((rng, rng.integers(1, 2**63, size=1 << 16, dtype=np.uint64),
                       rng.integers(1, 2**63, size=1 << 16, dtype=np.uint64)))
    return _WORDS


def _group_hash(gid: np.ndarray, colour: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, a 128-bit hash of the multiset of its members' colours.

    Sum of random 64-bit words per member (mod 2^64), twice: equal multisets give equal hashes,
    and distinct ones collide with probability ~2^-128, so refinement stays exact in practice.
    """
    _, r1, r2 = _words()
    h1 = np.zeros(n_groups, dtype=np.uint64)
    h2 = np.zeros(n_groups, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(h1, gid, r1[colour % len(r1)])
        np.add.at(h2, gid, r2[colour % len(r2)])
    return np.stack([h1, h2], axis=1)


def _members(gid: np.ndarray, colour: np.ndarray, rank: int) -> tuple:
    """The exact multiset of classes in ``rank``'s group: ((class, count), ...)."""
    mates = colour[gid == gid[rank]]
    values, counts = np.unique(mates, return_counts=True)
    return tuple(zip(values.tolist(), counts.tolist()))


def _stable_partition(colour: np.ndarray, gids: dict) -> np.ndarray:
    """Refine ``colour`` until every class's ranks see the same multiset of classes in each
    of their groups (classes numbered arbitrarily)."""
    n_groups = {k: int(gids[k].max()) + 1 for k in KINDS}
    n = len(np.unique(colour))
    mix = _words()[0].integers(1, 2**63, size=(len(KINDS), 2), dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2^64 by design
        while True:
            key = colour.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            for i, k in enumerate(KINDS):
                h = _group_hash(gids[k], colour, n_groups[k])[gids[k]]
                key = key ^ (h[:, 0] * mix[i, 0] + h[:, 1] * mix[i, 1])
            new = np.unique(key, return_inverse=True)[1].ravel()
            m = int(new.max()) + 1
            colour = new
            if m == n:
                break
            n = m
    return colour


def class_colours(par: ParallelConfig, attributes: dict, default=()):
    """The stable partition itself: for every rank its class id (classes numbered by their
    first rank), the attribute tuple of each class, and the group ids per kind.

    Cost O(world) numpy work per refinement round, whatever the number of classes.
    """
    world = par.world
    stage = np.arange(world, dtype=np.int64) // par.stage_ranks
    attr_ids: dict = {default: 0}     # ranks not listed have the default attributes
    attr = np.zeros(world, dtype=np.int64)
    for rank, value in attributes.items():
        attr[rank] = attr_ids.setdefault(value, len(attr_ids))
    gids = {k: group_ids(par, k) for k in KINDS}
    if not attr.any():
        # every rank alike: the stages are already stable (a group of any kind but PP lies
        # in one stage and all of its kind have one size; a PP group holds one rank of each
        # stage), so refining would give them back: tests/test_fabric_speed.py checks
        colour = stage
        first = np.arange(par.pp, dtype=np.int64) * par.stage_ranks
    else:
        colour = _stable_partition(
            np.unique(np.stack([stage, attr], axis=1), axis=0, return_inverse=True)[1].ravel(),
            gids)
        _, first = np.unique(colour, return_index=True)
    # renumber classes in rank order so class ids are stable and readable
    order = np.argsort(first)
    remap = np.empty(len(order), dtype=np.int64)
    remap[order] = np.arange(len(order))
    colour = remap[colour]
    inv_attr = {v: k for k, v in attr_ids.items()}
    firsts = np.sort(first)
    class_attrs = [inv_attr[int(a)] for a in attr[firsts]]
    return colour, firsts, stage[firsts], class_attrs, gids


def meeting_ids(colour: np.ndarray, firsts: np.ndarray, gids: np.ndarray) -> np.ndarray:
    """Per class, an id of the multiset of classes in its group of one kind (the classes'
    collectives of that kind meet by it): equal ids, equal multisets (128-bit hashes)."""
    n_groups = int(gids.max()) + 1
    h = _group_hash(gids, colour, n_groups)[gids[firsts]]
    return np.unique(h, axis=0, return_inverse=True)[1].ravel()


def rank_classes(par: ParallelConfig, attributes: dict,
                 default=()) -> tuple[list[RankClass], np.ndarray]:
    """Classes of ranks given per-rank attributes (rank -> hashable value, such as a
    :class:`.ranks.RankAttributes`; ranks not listed have ``default``).

    Returns the classes and, for every rank, its class id.
    """
    colour, firsts, stages, class_attrs, gids = class_colours(par, attributes, default)
    classes: list[RankClass] = []
    counts = np.bincount(colour)
    for cid, rank in enumerate(firsts.tolist()):
        gm = {k: _members(gids[k], colour, rank) for k in KINDS}
        classes.append(RankClass(cid=cid, stage=int(stages[cid]), ranks=int(counts[cid]),
                                 example_rank=rank, attributes=class_attrs[cid],
                                 group_members=gm))
    return classes, colour
