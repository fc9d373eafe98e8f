"""stage_placements' arithmetic path against the plain loop over every group of a stage.

The plain loop below builds every group of one kind from the Megatron rank order (TP
innermost, then DP, PP outermost), places each member with the rank map, counts servers and
local indices member by member, and keeps the first group (lowest first rank) of each shape,
sorted by shape. Regular rank maps (packed, spread, rail) take the arithmetic path in
simulator/parallel.py; the results must be the same list, representative GPUs included.
"""
import itertools
from collections import Counter
from dataclasses import dataclass

import pytest

from simulator.parallel import (RankMap, _affine, _affine_shape, _shape, make_parallel,
                                stage_placements)
from simulator.workload import Group


def all_groups(par, group, stage):
    """Every group of this kind in ``stage`` as a tuple of ranks, by first rank."""
    tp, dp, ep, pp = par.tp, par.dp, par.ep, par.pp
    base = stage * tp * dp
    if group is Group.TP:
        groups = [[base + j * tp + t for t in range(tp)] for j in range(dp)]
    elif group is Group.DP:
        groups = [[base + j * tp + t for j in range(dp)] for t in range(tp)]
    elif group is Group.EP:   # EP consecutive DP replicas, same TP position
        groups = [[base + (b * ep + e) * tp + t for e in range(ep)]
                  for b in range(dp // ep) for t in range(tp)]
    elif group is Group.DP_EP:   # DP replicas e, e+EP, e+2EP, ...
        groups = [[base + (e + ep * i) * tp + t for i in range(dp // ep)]
                  for e in range(ep) for t in range(tp)]
    else:   # PP: (position q in this stage, position q in the next; the last wraps)
        nxt = (stage + 1) % pp
        groups = [[base + q, nxt * tp * dp + q] for q in range(tp * dp)]
    return sorted(tuple(g) for g in groups)


def plain_placements(par, group, stage, rank_map):
    found = {}
    gps = rank_map.gpus_per_server
    for ranks in all_groups(par, group, stage):
        gpus = tuple(int(rank_map.gpu(r)) for r in ranks)
        per_server = Counter(g // gps for g in gpus)
        key = (len(per_server), max(per_server.values()), len({g % gps for g in gpus}) == 1)
        found.setdefault(key, gpus)
    return [(len(gpus), *key, gpus) for key, gpus in sorted(found.items())]


def as_tuples(placements):
    return [(p.size, p.servers, p.max_per_server, p.same_local_index, p.ranks)
            for p in placements]


@dataclass(frozen=True)
class ShiftedMap(RankMap):
    """A rank map of another class (not read arithmetically): packed, shifted by ``shift``."""
    shift: int = 0

    def gpu(self, ranks):
        return ranks + self.shift


def rank_maps(gps):
    yield RankMap(gps)
    yield RankMap(gps, offset=3)
    yield RankMap(gps, offset=gps)
    yield RankMap(gps, "spread", 2, 1)
    yield RankMap(gps, "spread", 3, 2)
    for jobs in (1, 2, 4):
        if jobs <= gps:
            for index in {0, jobs - 1}:
                yield RankMap(gps, "rail", jobs, index)
    yield ShiftedMap(gps, shift=5)


LAYOUTS = [(world, tp, pp, ep)
           for world, tp, pp, ep in itertools.product((24, 48, 96, 192), (1, 2, 3, 4, 8),
                                                      (1, 3), (1, 2, 3))
           if world % (tp * pp) == 0 and (world // (tp * pp)) % ep == 0]


@pytest.mark.parametrize("gps", [1, 2, 3, 4, 6, 8, 16])
def test_fast_path_equals_plain_loop(gps):
    checked = 0
    for world, tp, pp, ep in LAYOUTS:
        par = make_parallel(world, tp, pp, ep)
        for rank_map in rank_maps(gps):
            for group in Group:
                if group not in (Group.TP, Group.DP, Group.EP, Group.DP_EP, Group.PP):
                    continue
                for stage in {0, pp - 1}:
                    got = as_tuples(stage_placements(par, group, stage, rank_map))
                    assert got == plain_placements(par, group, stage, rank_map), \
                        (world, tp, pp, ep, rank_map, group, stage)
                    checked += 1
    assert checked > 1000


def test_which_maps_are_read_arithmetically():
    # packed: GPU = rank + offset; spread: GPU = rank*jobs + index; rail: packed on servers of
    # gps // jobs GPUs; anything else (another class, odd fields) takes the plain loop
    assert _affine(RankMap(8, offset=3)) == (1, 3, 8)
    assert _affine(RankMap(8, "spread", 3, 2)) == (3, 2, 8)
    assert _affine(RankMap(8, "rail", 4, 1)) == (1, 0, 2)
    assert _affine(RankMap(8, "rail", 16, 1)) is None
    assert _affine(ShiftedMap(8, shift=1)) is None
    assert _affine(RankMap(8, "custom")) is None


def test_affine_shape_equals_member_loop():
    # the closed form against counting member by member, far past one server's worth
    for a, b, server, first, stride, size in itertools.product(
            (1, 2, 3), (0, 1, 5), (1, 2, 3, 4, 6, 8), range(0, 9), (1, 2, 3, 5, 8, 12),
            (1, 2, 3, 7, 33)):
        rank_map = RankMap(server, "spread", a, b)
        want = _shape(rank_map, tuple(range(first, first + stride * size, stride)))
        assert _affine_shape(a, b, server, first, stride, size) == want, \
            (a, b, server, first, stride, size)


def test_by_hand_dp_group_of_many_ranks():
    # TP 2 on 8-GPU servers, DP 6144: DP group 0 is ranks 0, 2, ..., 12286: 4 per server on
    # 12288 / 8 = 1536 servers, never one local index; the group of TP position 1 likewise
    par = make_parallel(12288, tp=2, pp=1, ep=1)
    (dp,) = stage_placements(par, Group.DP, 0, RankMap(8))
    assert (dp.size, dp.servers, dp.max_per_server, dp.same_local_index) == (6144, 1536, 4, False)
    assert dp.ranks == tuple(range(0, 12288, 2))
