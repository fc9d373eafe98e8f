"""Parallel groups in Megatron rank order, and where each group sits on the servers.

Rank layout: TP innermost (contiguous ranks), then DP (stride TP), PP outermost. An EP group
takes the same TP position from EP consecutive DP replicas; a DP_EP group joins DP replicas
i, i+EP, i+2EP, ... Every group is therefore an arithmetic progression of ranks
(first, stride, size), which lets us describe all groups with a few numpy arrays instead of
one Python object per GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError
from .workload import Group


@dataclass(frozen=True, slots=True)
class GroupPlacement:
    """Where one communicator's ranks sit: what a cost model needs to price a collective.

    Two placements that compare equal cost the same on a symmetric cluster; ``ranks`` is one
    representative group, kept for topology-aware models and excluded from comparisons.
    """

    size: int            # ranks in the group
    servers: int         # distinct servers the group spans
    max_per_server: int  # most members on one server
    same_local_index: bool  # all members have the same GPU index inside their server (one rail)
    ranks: tuple[int, ...] = field(default=(), compare=False, hash=False)

    @property
    def intra_server(self) -> bool:
        return self.servers == 1


@dataclass(frozen=True)
class ParallelConfig:
    world: int
    tp: int
    pp: int
    ep: int

    @property
    def dp(self) -> int:
        return self.world // (self.tp * self.pp)

    @property
    def dp_ep(self) -> int:
        return self.dp // self.ep

    @property
    def stage_ranks(self) -> int:
        return self.tp * self.dp

    def size(self, group: Group) -> int:
        return {Group.TP: self.tp, Group.DP: self.dp, Group.EP: self.ep,
                Group.DP_EP: self.dp_ep, Group.PP: self.pp}[group]

    # -- progressions ------------------------------------------------------------------
    def progression(self, group: Group, stage: int) -> tuple[np.ndarray, int, int]:
        """(first ranks of every group of this kind in this stage, stride, size)."""
        tp, dp, ep = self.tp, self.dp, self.ep
        base = stage * tp * dp
        if group is Group.TP:
            return base + np.arange(0, tp * dp, tp), 1, tp
        if group is Group.DP:
            return base + np.arange(tp), tp, dp
        if group is Group.EP:
            blocks = np.arange(0, dp, ep)          # first DP replica of each EP block
            firsts = (blocks[:, None] * tp + np.arange(tp)[None, :]).ravel()
            return base + firsts, tp, ep
        if group is Group.DP_EP:
            firsts = (np.arange(ep)[:, None] * tp + np.arange(tp)[None, :]).ravel()
            return base + firsts, tp * ep, dp // ep
        if group is Group.PP:
            # the pair (r, r + tp*dp) between this stage and the next (last wraps to the first,
            # which interleaved schedules use)
            return base + np.arange(tp * dp), None, 2  # stride handled in placements()
        raise ValueError(group)


#: the most GPUs one job may have: the engine holds a few arrays of this many ranks
MAX_WORLD = 1 << 22


def make_parallel(world: int, tp: int, pp: int, ep: int, source: str = "header") -> ParallelConfig:
    """Check that the sizes divide and build the layout; errors name the header field."""
    if world > MAX_WORLD:
        raise InputError(f"{world} GPUs is more than the {MAX_WORLD} this simulator handles",
                         path=source, field="all_gpus")
    for name, value in (("all_gpus", world), ("model_parallel_NPU_group", tp), ("pp", pp),
                        ("ep", ep)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}", path=source, field=name)
    if world % (tp * pp):
        raise InputError(f"world size {world} is not divisible by TP*PP = {tp}*{pp} = {tp * pp}",
                         path=source, field="all_gpus")
    dp = world // (tp * pp)
    if dp % ep:
        raise InputError(f"DP = {world}/({tp}*{pp}) = {dp} is not divisible by EP = {ep} "
                         "(EP groups are carved out of DP replicas)", path=source, field="ep")
    return ParallelConfig(world=world, tp=tp, pp=pp, ep=ep)


@dataclass(frozen=True)
class RankMap:
    """Which GPU of the cluster each rank of a job runs on.

    ``packed``: ranks fill GPUs in order from ``offset`` (a job alone: rank r on GPU r).
    ``spread``: ``jobs`` jobs interleave GPU by GPU; job ``index`` takes GPUs index, index+jobs, ...
    ``rail``: each server's GPUs are cut into ``jobs`` equal slices of consecutive local indices
    (rails); job ``index`` takes slice ``index`` on every server.
    In all three a group's placement depends only on the GPU of its first rank modulo the
    server size, which keeps placement work independent of the GPU count.
    """

    gpus_per_server: int
    policy: str = "packed"
    jobs: int = 1
    index: int = 0
    offset: int = 0

    def gpu(self, ranks):
        gps, k = self.gpus_per_server, self.jobs
        if self.policy == "spread":
            return ranks * k + self.index
        if self.policy == "rail":
            m = gps // k
            return (ranks // m) * gps + self.index * m + ranks % m
        return ranks + self.offset

    def gpus_needed(self, world: int) -> int:
        if self.policy == "packed":
            return self.offset + world
        return int(self.gpu(np.array([world - 1]))[0]) + 1


def as_rank_map(rank_map: "RankMap | int") -> RankMap:
    return rank_map if isinstance(rank_map, RankMap) else RankMap(int(rank_map))


def _placements_of(members: np.ndarray, rank_map: "RankMap | int") -> list[GroupPlacement]:
    """Distinct placements among groups given as rows of a (groups, size) rank array."""
    rank_map = as_rank_map(rank_map)
    gpus = rank_map.gpu(members)
    servers = gpus // rank_map.gpus_per_server
    local = gpus % rank_map.gpus_per_server
    size = members.shape[1]
    s_sorted = np.sort(servers, axis=1)
    change = np.diff(s_sorted, axis=1) != 0
    n_servers = 1 + change.sum(axis=1)
    # longest run of equal servers in each sorted row = most members on one server
    if size == 1:
        max_per = np.ones(len(members), dtype=np.int64)
    else:
        idx = np.arange(size)[None, :].repeat(len(members), axis=0)
        starts = np.where(np.concatenate([np.ones((len(members), 1), bool), change], axis=1),
                          idx, 0)
        run_start = np.maximum.accumulate(starts, axis=1)
        max_per = (idx - run_start + 1).max(axis=1)
    same_local = (local == local[:, :1]).all(axis=1)
    keys = np.stack([n_servers, max_per, same_local.astype(np.int64)], axis=1)
    uniq, first = np.unique(keys, axis=0, return_index=True)
    return [GroupPlacement(size=size, servers=int(k[0]), max_per_server=int(k[1]),
                           same_local_index=bool(k[2]),
                           ranks=tuple(int(r) for r in members[i]))
            for k, i in zip(uniq, first)]


def stage_placements(par: ParallelConfig, group: Group, stage: int,
                     gpus_per_server: "RankMap | int") -> list[GroupPlacement]:
    """Distinct placements of the groups of one kind whose ranks are in ``stage``.

    For PP, the groups are the pairs (rank in this stage, same position in the next stage).
    """
    firsts, stride, size = par.progression(group, stage)
    # A group's placement depends only on its first rank modulo the server size (moving it by
    # one server moves every member by one server), so one group per residue is enough: the
    # work stays below gpus_per_server groups whatever the GPU count.
    rank_map = as_rank_map(gpus_per_server)
    _, keep = np.unique(rank_map.gpu(firsts) % rank_map.gpus_per_server, return_index=True)
    firsts = firsts[np.sort(keep)]
    if group is Group.PP:
        nxt = (stage + 1) % par.pp
        partner = nxt * par.stage_ranks + (firsts - stage * par.stage_ranks)
        members = np.stack([firsts, partner], axis=1)
    else:
        members = firsts[:, None] + stride * np.arange(size)[None, :]
    return _placements_of(members, rank_map)
