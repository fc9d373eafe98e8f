"""NCCL's rings and PAT over a symmetric group, priced from two servers' transfers.

A group whose servers all hold its GPUs at the same local positions (the data-parallel
group of a job, whatever its size) lays out the same ring transfers on every server: in
channel c each server passes the buffer along its members rotated by c, sends once to the
next server and receives once from the one before. On a topology whose routes are a GPU's
way up to its leaf, the spine when the leaves differ and the way down (an NVSwitch server
with NICs and a fabric: :class:`~simulator.topology.view.TopologyView`'s laid-out routes),
every server's links therefore carry the same bytes, and only the spine links, crossed where
consecutive servers sit under different leaves, differ. The busiest link is then found from
the links of the group's first two servers and the spine's: a few hundred routes instead of
one per GPU and channel.

The answer is the full planner's to the last bit, and to its tie-breaking: every transfer of
a ring adds the same bytes per byte, so a link's load is that share added as many times as
routes cross it, as the full plan adds it; and of equally busy links the full plan's first
laid-out one is the busiest, which lies on the first two servers (a later server's copy of a
link is laid out after the second server's) or on the spine, and is found by walking those
routes in the full plan's order. Everything that needs every link's bytes (flows, the fabric
model) gets the full plan, made on first use. ``tests/test_nccl_symmetric.py`` compares the
two on many groups, placements and presets.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import compress
from operator import ne

from .nccl_phase import Phase

SPINE = -1          # owner of a leaf-spine link (the others belong to one of the servers)


def symmetric_layout(topo, gpus) -> tuple[list[int], list[int]] | None:
    """(the group's servers in order, the local positions each holds), where the group has
    two or more servers holding the same positions and the topology lays routes out as
    up, spine, down; else None."""
    if not getattr(topo, "_fast", False) or type(topo.links).__name__ != "_Links":
        return None
    gps = topo.gpus_per_server
    ordered = sorted(gpus)
    first = ordered[0] // gps
    m = 0
    while m < len(ordered) and ordered[m] // gps == first:
        m += 1
    n = len(ordered)
    if n % m or n == m:
        return None
    local = [g - first * gps for g in ordered[:m]]
    # every block of m GPUs in order is one server holding the same positions
    servers = [g // gps for g in ordered[::m]]
    if ([g % gps for g in ordered] != local * (n // m)
            or [g // gps for g in ordered] != [s for s in servers for _ in range(m)]
            or any(a >= b for a, b in zip(servers, servers[1:]))
            or any(a >= b for a, b in zip(local, local[1:]))):      # a GPU twice
        return None
    return servers, local


class SymmetricRing:
    """The ring channels of a symmetric group (see the module docstring)."""

    def __init__(self, topo, servers: list[int], local: list[int], share: float):
        self.topo, self.servers, self.local, self.share = topo, servers, local, share
        gps, m, k = topo.gpus_per_server, len(local), len(servers)
        self.k, self.m, self.gps = k, m, gps
        spl = topo.spec.fabric.servers_per_leaf
        # the servers whose way to the next one crosses the spine (leaves differ)
        self.crossing = [i for i in range(k) if servers[i] // spl != servers[(i + 1) % k] // spl]
        self.counts = self._counts()

    def edge(self, c: int, e: int) -> tuple[int, int, int, int]:
        """(source GPU, destination GPU, source server index, destination server index) of
        the e-th transfer of channel c, as the full planner orders them."""
        m, gps = self.m, self.gps
        i, j = divmod(e, m)
        rot = self.local[c:] + self.local[:c]
        base = self.servers[i] * gps
        if j < m - 1:
            return base + rot[j], base + rot[j + 1], i, i
        i2 = (i + 1) % self.k
        return base + rot[m - 1], self.servers[i2] * gps + rot[0], i, i2

    def owned(self, c: int, e: int):
        """The links of the e-th transfer of channel c with their owner: a server's index or
        SPINE."""
        a, b, i, i2 = self.edge(c, e)
        side = i
        for link in self.topo.route(a, b):
            u, v = link
            if u.startswith("spine") or v.startswith("spine"):
                yield link, SPINE
                continue
            yield link, side
            if v.startswith("pod"):       # past the sender's leaf: the receiver's links
                side = i2

    def _counts(self) -> dict:
        """Routes over each link of the first two servers and of the spine."""
        k, m = self.k, self.m
        edges: set[tuple[int, int]] = set()
        for c in range(m):
            for i in (0, 1):
                edges.update((c, i * m + j) for j in range(m))      # inside, and out
                edges.add((c, ((i - 1) % k) * m + m - 1))           # in
            edges.update((c, i * m + m - 1) for i in self.crossing)
        counts: dict = {}
        for c, e in edges:
            for link, owner in self.owned(c, e):
                if owner in (0, 1, SPINE):
                    counts[link] = counts.get(link, 0) + 1
        return counts

    def busiest(self, capacity: Callable) -> tuple:
        """(link, bytes per byte, capacity) of the busiest link, as the full plan finds it."""
        loads: dict = {}
        by_count: dict[int, float] = {}
        best_t = -1.0
        for link, n in self.counts.items():
            b = by_count.get(n)
            if b is None:
                b = 0.0
                for _ in range(n):        # the full plan adds the share once per route
                    b += self.share
                by_count[n] = b
            t = b / capacity(link)
            loads[link] = (b, t)
            best_t = max(best_t, t)
        k, m = self.k, self.m
        for c in range(m):
            order = sorted(set(range(min(2 * m, k * m))) | {k * m - 1}
                           | {i * m + m - 1 for i in self.crossing})
            for e in order:
                for link, owner in self.owned(c, e):
                    if owner in (0, 1, SPINE) and loads[link][1] == best_t:
                        return link, loads[link][0], capacity(link)
        raise AssertionError("no busiest link")   # pragma: no cover (counts cover the scan)


class SymmetricPat:
    """PAT over a group of one GPU per server, all at the same local position, on a fabric
    with ideal ECMP (one spine: a leaf's way up depends on its pod alone). Every step every
    server sends once and receives once, so its links carry the same bytes as any other's;
    a spine link carries what the step's sends out of (into) its pod do."""

    def __init__(self, topo, op, order: tuple[int, ...]):
        self.topo, self.order, self.n = topo, order, len(order)
        self.gps = topo.gpus_per_server
        self.sign = 1 if op.name == "ALLGATHER" else -1
        spl = topo.spec.fabric.servers_per_leaf
        self.pod = [g // self.gps // spl for g in order]
        self.steps: list[tuple[int, float]] = []          # (distance, blocks) in order
        d = 1
        while d < self.n:
            self.steps.append((d, min(d, self.n - d) / self.n))
            d *= 2

    def dst(self, i: int, d: int) -> int:
        return (i + self.sign * d) % self.n

    def owned(self, i: int, d: int):
        """The links of rank i's send in the step of distance d, with their owner: 0 (the
        sender's server), 1 (the receiver's) or SPINE."""
        side = 0
        for link in self.topo.route(self.order[i], self.order[self.dst(i, d)]):
            u, v = link
            if u.startswith("spine") or v.startswith("spine"):
                yield link, SPINE
                continue
            yield link, side
            if v.startswith("pod"):
                side = 1

    def crossing(self, d: int) -> tuple[list[int], list[int], list[int]]:
        """The sends of the step of distance d that leave their pod, in rank order: the
        senders, their pods and their receivers' pods."""
        pod, n = self.pod, self.n
        shift = (self.sign * d) % n
        there = pod[shift:] + pod[:shift]            # the receiver's pod of each rank
        leaves = list(map(ne, pod, there))
        return (list(compress(range(n), leaves)), list(compress(pod, leaves)),
                list(compress(there, leaves)))

    def wire_ns(self) -> float:
        """The full plan's latency sum: per step, its slowest send's route."""
        wire = 0.0
        for d, _ in self.steps:
            cross = self.crossing(d)[0]
            i = cross[0] if cross else 0
            dst = self.order[self.dst(i, d)]
            wire += self.topo.path_latency_ns(self.topo.route(self.order[i], dst))
        return wire

    def busiest(self, capacity: Callable) -> tuple:
        """(link, bytes per byte, capacity) of the busiest link, as the full plan finds it."""
        # the servers of rank 0 and of the rank it first sends to: what each sends and
        # receives in each step, in step order (any other server's links carry the same)
        adds: dict = {}
        for x in (0, self.dst(0, self.steps[0][0])):
            for d, blocks in self.steps:
                for link, owner in self.owned(x, d):
                    if owner == 0:
                        adds.setdefault(link, []).append(blocks)
                src = (x - self.sign * d) % self.n       # the rank that sends to rank x
                for link, owner in self.owned(src, d):
                    if owner == 1:
                        adds.setdefault(link, []).append(blocks)
        # the spine: a pod's way up (down) carries the step's sends out of (into) it
        up: dict[int, list] = {}
        down: dict[int, list] = {}
        first: dict = {}                  # (pod, up) -> its spine link and first send
        for d, blocks in self.steps:
            senders, src_pods, dst_pods = self.crossing(d)
            # a pod's way up (down) gets the step's blocks once per send out of (into) it;
            # all of one step's are alike, so counts keep the full plan's order of additions
            for pods, crossed in ((up, src_pods), (down, dst_pods)):
                for p, count in Counter(crossed).items():
                    pods.setdefault(p, []).extend([blocks] * count)
            # the first send of each pod's way up and down (reversed: the lowest rank wins)
            for is_up, crossed in ((True, src_pods), (False, dst_pods)):
                for p, i in dict(zip(reversed(crossed), reversed(senders))).items():
                    if (p, is_up) not in first:
                        spine = [link for link, o in self.owned(i, d) if o == SPINE]
                        first[(p, is_up)] = (spine[0 if is_up else 1], (d, i))
        loads: dict = {}
        for link, seq in adds.items():
            loads[link] = _summed(seq)
        spine_at: dict = {}
        for (p, is_up), (link, at) in first.items():
            loads[link] = _summed((up if is_up else down)[p])
            spine_at[link] = at
        t = {link: b / capacity(link) for link, b in loads.items()}
        best_t = max(t.values())
        # every server's links are laid out first by the first send (rank 0 to the next),
        # then the spine links where the sends first cross it
        for link, _ in self.owned(0, self.steps[0][0]):
            if t[link] == best_t:
                return link, loads[link], capacity(link)
        link = min((at, link) for link, at in spine_at.items() if t[link] == best_t)[1]
        return link, loads[link], capacity(link)


def _summed(seq) -> float:
    """The bytes the full plan adds to a link, in its order."""
    b = 0.0
    for x in seq:
        b += x
    return b


class SymmetricPhase(Phase):
    """A phase whose busiest link comes from a shortcut (:class:`SymmetricRing`,
    :class:`SymmetricPat`); its per-link bytes (``loads``) are the full plan's, made on first
    use."""

    def __init__(self, family: str, shortcut, full_plan: Callable[[], Phase], **fields):
        super().__init__(family, **fields)
        self.shortcut = shortcut
        self._full_plan = full_plan

    @property
    def loads(self) -> dict:
        full = self.__dict__.get("_loads")
        if full is None:
            full = self.__dict__["_loads"] = self._full_plan().loads
        return full

    @loads.setter
    def loads(self, value) -> None:
        self.__dict__["_loads"] = value or None
