"""Parallel groups in Megatron rank order, and where each group sits on the servers.

Rank layout: TP innermost (contiguous ranks), then DP (stride TP), PP outermost. An EP group
takes the same TP position from EP consecutive DP replicas; a DP_EP group joins DP replicas
i, i+EP, i+2EP, ... Every group is therefore an arithmetic progression of ranks
(first, stride, size), which lets us describe all groups with a few numpy arrays instead of
one Python object per GPU.
"""
from __future__ import annotations

from .errors import InputError
from .records import field, record
from .workload import Group

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:  # numpy loads on first use (tests/test_import_floor.py)
    import numpy as np


@record(frozen=True, slots=True)
class GroupPlacement:
    """Where one communicator's ranks sit: what a cost model needs to price a collective.

    Two placements that compare equal cost the same on a symmetric cluster; ``ranks`` is one
    representative group as the cluster's GPU slots its ranks run on (the job's ranks for a
    job alone), kept for topology-aware models and excluded from comparisons.
    """

    size: int            # ranks in the group
    servers: int         # distinct servers the group spans
    max_per_server: int  # most members on one server
    same_local_index: bool  # all members have the same GPU index inside their server (one rail)
    ranks: tuple[int, ...] = field(default=(), compare=False, hash=False)

    @property
    def intra_server(self) -> bool:
        return self.servers == 1


@record(frozen=True)
class ParallelConfig:
    """World size and the TP, PP, EP degrees of a job (DP follows)."""

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
        if group is Group.TP:
            return self.tp
        if group is Group.DP:
            return self.dp
        if group is Group.EP:
            return self.ep
        if group is Group.DP_EP:
            return self.dp_ep
        if group is Group.PP:
            return self.pp
        if isinstance(group, str) and group in Group._value2member_map_:  # "TP" as a string
            return self.size(Group(group))
        raise KeyError(group)

    # -- progressions ------------------------------------------------------------------
    def progression(self, group: Group, stage: int) -> tuple[np.ndarray, int | None, int]:
        """(first ranks of every group of this kind in this stage, stride, size); PP has no
        stride (its pairs span two stages)."""
        import numpy as np

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


@record(frozen=True)
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
        return int(self.gpu(world - 1)) + 1


def as_rank_map(rank_map: RankMap | int) -> RankMap:
    return rank_map if isinstance(rank_map, RankMap) else RankMap(int(rank_map))


def _placements_of(members, rank_map: RankMap | int) -> list[GroupPlacement]:
    """Distinct placements among groups given as rows of rank numbers, sorted by
    (servers, most per server, one rail); each keeps the first group that has it."""
    rank_map = as_rank_map(rank_map)
    found: dict[tuple, tuple] = {}
    for group in members:
        ranks = tuple(int(r) for r in group)
        key = _shape(rank_map, ranks)
        if key not in found:
            found[key] = tuple(int(rank_map.gpu(r)) for r in ranks)   # the GPU slots
    return [GroupPlacement(size=len(ranks), servers=k[0], max_per_server=k[1],
                           same_local_index=k[2], ranks=ranks)
            for k, ranks in sorted(found.items())]


def _shape(rank_map: RankMap, ranks: tuple) -> tuple[int, int, bool]:
    """(servers spanned, most members on one server, all on one local index)."""
    gps = rank_map.gpus_per_server
    per_server: dict[int, int] = {}
    locals_ = set()
    for r in ranks:
        server, local = divmod(rank_map.gpu(r), gps)
        per_server[server] = per_server.get(server, 0) + 1
        locals_.add(local)
    return len(per_server), max(per_server.values()), len(locals_) == 1


_SHAPES: dict[tuple, tuple] = {}


def _affine(rank_map: RankMap) -> tuple[int, int, int] | None:
    """(a, b, server size) when the rank map's shapes are those of GPU = a*rank + b on servers
    of that size, a >= 1; None for a map we cannot read so (a subclass, odd fields): those
    take the plain per-member loop.

    ``rail`` qualifies because job ``index`` of ``jobs`` keeps rank block r // m on server
    r // m (m = gps // jobs) at local index index*m + r % m, one local index per r % m: its
    shapes are those of ``packed`` on servers of m GPUs.
    """
    if type(rank_map) is not RankMap:
        return None
    gps, k, index, offset = (rank_map.gpus_per_server, rank_map.jobs, rank_map.index,
                             rank_map.offset)
    if not all(type(v) is int for v in (gps, k, index, offset)) or gps < 1:
        return None
    if rank_map.policy == "packed":
        return 1, offset, gps
    if rank_map.policy == "spread":
        return (k, index, gps) if k >= 1 else None
    if rank_map.policy == "rail":
        m = gps // k if k >= 1 else 0
        return (1, 0, m) if m >= 1 and 0 <= index < k else None
    return None


def _affine_shape(a: int, b: int, server: int, first: int, stride: int,
                  size: int) -> tuple[int, int, bool]:
    """_shape of ranks first, first+stride, ... (size of them) on GPUs a*rank + b, servers of
    ``server`` GPUs, in at most ``server`` steps whatever the size.

    The GPUs are g0, g0+d, ... (d = a*stride). With d >= server every member has a server of
    its own. With d < server no server between the first and the last is skipped, and each
    server after the first holds the terms from offset o < d on: ceil((server - o) / d) of
    them, the next server starting at o + count*d - server. That offset takes fewer than d
    values, so once one repeats every later server's count has been seen.
    """
    d = a * stride
    g0 = a * first + b
    if size == 1:
        return 1, 1, True
    same_local = d % server == 0
    if d >= server:
        return size, 1, same_local
    servers = (g0 + d * (size - 1)) // server - g0 // server + 1
    offset, left, most, seen = g0 % server, size, 0, set()
    while True:
        count = min(left, (server - offset + d - 1) // d)
        most = max(most, count)
        left -= count
        if not left:
            break
        offset += count * d - server
        if offset in seen:
            break
        seen.add(offset)
    return servers, most, same_local


def _progression_gpus(rank_map: RankMap, first: int, stride: int, size: int) -> tuple:
    """The GPU slots of first, first+stride, ...: a range where the map is affine on them."""
    gps, k = rank_map.gpus_per_server, rank_map.jobs
    if _affine(rank_map) is not None:
        if rank_map.policy == "packed":
            g0 = first + rank_map.offset
            return tuple(range(g0, g0 + stride * size, stride))
        if rank_map.policy == "spread":
            g0 = first * k + rank_map.index
            return tuple(range(g0, g0 + stride * k * size, stride * k))
        m = gps // k
        if stride % m == 0:   # rail, whole blocks apart: the same local index throughout
            g0 = int(rank_map.gpu(first))
            step = stride // m * gps
            return tuple(range(g0, g0 + step * size, step))
    return tuple(int(rank_map.gpu(r)) for r in range(first, first + stride * size, stride))


def _progression_shape(rank_map: RankMap, first: int, stride: int, size: int) -> tuple:
    """_shape of first, first+stride, ...: memoized by the first GPU's index in its server,
    which is all it depends on (moving the first rank by whole servers moves every member)."""
    key = (rank_map, rank_map.gpu(first) % rank_map.gpus_per_server, stride, size)
    shape = _SHAPES.get(key)
    if shape is None:
        if len(_SHAPES) > 4096:
            _SHAPES.clear()
        affine = _affine(rank_map)
        if affine is not None:
            shape = _affine_shape(*affine, first, stride, size)
        else:
            shape = _shape(rank_map, tuple(range(first, first + stride * size, stride)))
        _SHAPES[key] = shape
    return shape


def _stage_firsts(par: ParallelConfig, group: Group, stage: int, gps: int) -> list[int]:
    """First ranks of the groups of one kind in ``stage``, in rank order, cut where the
    sequence of their in-server GPU indices starts repeating.

    Within each progression the index of a group's first GPU in its server repeats with a
    period of at most ``gps`` groups (for every RankMap policy), so ``gps`` terms per
    progression already show every index that occurs, each first where it first occurs.
    """
    tp, dp, ep = par.tp, par.dp, par.ep
    base = stage * tp * dp
    if group is Group.TP:
        return [base + tp * i for i in range(min(dp, gps))]
    if group is Group.DP:
        return [base + t for t in range(min(tp, gps))]
    if group is Group.EP:
        return [base + b * ep * tp + t for b in range(min(dp // ep, gps)) for t in range(tp)]
    if group is Group.DP_EP:
        return [base + e * tp + t for e in range(min(ep, gps)) for t in range(tp)]
    if group is Group.PP:
        return [base + j for j in range(min(tp * dp, gps))]
    raise ValueError(group)


_STAGE_PLACEMENTS: dict[tuple, list[GroupPlacement]] = {}


def stage_placements(par: ParallelConfig, group: Group, stage: int,
                     gpus_per_server: RankMap | int) -> list[GroupPlacement]:
    """Distinct placements of the groups of one kind whose ranks are in ``stage``.

    For PP, the groups are the pairs (rank in this stage, same position in the next stage).
    Memoized (a sweep re-plans the same layout under other bandwidths).
    """
    key = (par, group, stage, as_rank_map(gpus_per_server))
    hit = _STAGE_PLACEMENTS.get(key)
    if hit is None:
        if len(_STAGE_PLACEMENTS) > 4096:
            _STAGE_PLACEMENTS.clear()
        hit = _STAGE_PLACEMENTS[key] = _stage_placements(par, group, stage, key[3])
    return list(hit)


def _stage_placements(par: ParallelConfig, group: Group, stage: int,
                      gpus_per_server: RankMap | int) -> list[GroupPlacement]:
    # A group's placement depends only on its first rank modulo the server size (moving it by
    # one server moves every member by one server), so one group per residue is enough: the
    # work stays below gpus_per_server groups whatever the GPU count.
    rank_map = as_rank_map(gpus_per_server)
    gps = rank_map.gpus_per_server
    firsts, seen = [], set()
    for f in _stage_firsts(par, group, stage, gps):
        residue = rank_map.gpu(f) % gps
        if residue not in seen:
            seen.add(residue)
            firsts.append(f)
            if len(seen) == gps:   # every residue seen: no later group adds a placement
                break
    if group is Group.PP:
        nxt = (stage + 1) % par.pp
        return _placements_of([(f, nxt * par.stage_ranks + (f - stage * par.stage_ranks))
                               for f in firsts], rank_map)
    stride, size = {Group.TP: (1, par.tp), Group.DP: (par.tp, par.dp),
                    Group.EP: (par.tp, par.ep), Group.DP_EP: (par.tp * par.ep, par.dp_ep)}[group]
    found: dict[tuple, int] = {}
    for f in firsts:
        found.setdefault(_progression_shape(rank_map, f, stride, size), f)
    return [GroupPlacement(size=size, servers=k[0], max_per_server=k[1], same_local_index=k[2],
                           ranks=_progression_gpus(rank_map, f, stride, size))
            for k, f in sorted(found.items())]
