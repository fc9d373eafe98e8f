"""Collectives and pipeline sends as flows over the topology's links, for the engine.

The detailed engine replays one process per rank class; a collective of a class stands for
every group of that kind whose ranks are in the class (all of them run it at the same moment,
by symmetry). Its flow is what *all* those groups move over every directed link of the
topology (GPU-NVSwitch, GPU-NIC PCIe, NIC-leaf, leaf-spine), laid out by the NCCL cost
model's algorithm for the size (:meth:`NcclCostModel.group_loads`), so that eight groups
behind one NIC load that NIC eight times, and a second job on the same leaf loads its uplinks.

Symmetry keeps the flow network small: links whose load per byte, relative to their capacity,
is the same under every flow shape of the run are the same max-min constraint, so they are
merged into one *link class* (exact: max-min only sees the constraints). A symmetric job has
a handful of link classes whatever its GPU count.

A flow alone takes the collective's priced time: the priced time less the bandwidth part of
the slowest group is paid as latency, and the rest is data moving at the max-min rate.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..randomwords import Words
from ..workload import Op
from .flows import Demand
from .links import Link, LinkKind

_PAIR_OPS = (Op.ALLREDUCE, Op.ALLTOALL)


@dataclass
class Shape:
    """One flow shape: bytes per byte of buffer on each link (by link id), all groups."""

    ids: np.ndarray          # link ids (Topology.link_index)
    loads: np.ndarray        # bytes per byte of buffer on each, scaled to the op's pace
    solo_ns_per_byte: float  # the slowest single group alone: ns per byte of buffer


class FabricFlows:
    """Flow shapes of every collective and send of a run, and their link classes.

    ``add_*`` register shapes before the simulation (every (job, group kind, class, op,
    algorithm) the run can issue), :meth:`finish` merges links into classes, and
    :meth:`collective` / :meth:`send` give a FlowNetwork transfer's ``(loads, latency_ns)``.

    Groups that are the same pattern moved by whole pods (whole servers in a one-pod fabric)
    are laid out once: their link ids are the pattern's, shifted (Topology.link_index).
    """

    def __init__(self, model):
        self.model = model                   # an NcclCostModel (its topology, its algorithms)
        self.shapes: dict = {}               # shape key -> Shape
        self._meeting: dict = {}             # (meeting key, op, size) -> shape keys
        self._groups: dict = {}              # meeting key -> (patterns, shifts) of its groups
        self.capacity: dict = {}             # link class -> capacity (1: loads are in ns)
        self._class_loads: dict = {}         # shape key -> {link class: ns per byte}
        self.link_classes: dict = {}         # link class -> number of physical links in it
        self.physical_links = 0
        self.layouts = 0                     # groups laid out by the NCCL model
        self._layouts: dict = {}             # (kind, pattern) -> (first server, ids, loads, worst)
        self._moved_shapes: dict = {}        # (kind, patterns) -> (first servers, Shape)
        # (groups' shape, hashed_moves) -> [(groups, their patterns)] (FabricFlows._patterns)
        self._pattern_memo: dict = {}
        self.pp_bytes: dict = {}
        self._flows: dict = {}               # (shapes, size, priced ns) -> (Demand, latency)
        self._caps = None                    # link capacities by id, degraded links lowered
        # ... with only the degraded NICs lowered: what the collectives were priced with
        # (a flow alone takes its priced time; a slower uplink slows its data only)
        self._solo_caps = None

    @property
    def topology(self):
        return self.model.topology

    @property
    def caps(self) -> np.ndarray:
        """Capacity of every link by id (bytes/ns), with the degraded NICs' links lowered."""
        return self.topology.link_index()[1] if self._caps is None else self._caps

    @property
    def solo_caps(self) -> np.ndarray:
        """Capacity of every link by id as the collectives were priced (degraded NICs)."""
        return self.topology.link_index()[1] if self._solo_caps is None else self._solo_caps

    def degrade_nic(self, gpu: int, factor: float) -> None:
        """The NIC ``gpu`` sends through runs at ``factor`` of its bandwidth, both ways (a
        degraded NIC, cable or switch port); call before registering shapes."""
        if factor == 1:
            return
        topo = self.topology
        table, caps, *_ = topo.link_index()
        if topo.spec.fabric is None or topo.spec.nics is None:
            return
        if self._caps is None:
            self._caps = caps.copy()
        if self._solo_caps is None:
            self._solo_caps = caps.copy()
        server = gpu // topo.gpus_per_server
        nic = topo.nic_of(gpu)
        port, leaf = f"s{server}.nic{nic}", topo.leaf_name(
            server // topo.spec.fabric.servers_per_leaf, nic)
        for link in ((port, leaf), (leaf, port)):
            i = table[link]
            if self._caps[i] == caps[i]:       # once per link, whoever else names it
                self._caps[i] = caps[i] * factor
                self._solo_caps[i] = caps[i] * factor

    def degrade_uplinks(self, pod: int, rail: int | None, factor: float) -> None:
        """The uplinks between pod ``pod``'s leaf (on a rail-optimized fabric: rail
        ``rail``'s, or every rail's when None) and the spine run at ``factor`` of their
        bandwidth, both ways (a bad cable or optic, a spine port down to a lower speed); call
        before registering shapes. Collectives keep the price they were given (the cost
        model prices each alone on healthy links): the slower links slow only the data their
        flows move over them, shared max-min with everything else that crosses them."""
        from ..topology.uplinks import uplink_links

        topo = self.topology
        links = uplink_links(topo, pod, rail)
        table, caps, *_ = topo.link_index()
        if self._caps is None:
            self._caps = caps.copy()
        for link in links:
            self._caps[table[link]] *= factor

    # -- groups as patterns and shifts ----------------------------------------------------
    def _patterns(self, groups: np.ndarray, hashed_moves: bool = False) -> list:
        """[(pattern GPUs, server shifts, pod shifts of its copies, pattern key, rows)] for
        groups as rows.

        Routes depend only on which members share a server, which share a pod, and the
        local GPU (rail) of each: two groups with the same GPUs relative to their first
        server and the same pods relative to its pod are one pattern; a copy's server-owned
        link ids move by its server shift, its pod-owned ones (leaf-spine) by its pod shift.

        Under ECMP hashing a route that crosses the spine takes the uplink its (sender,
        receiver, NIC) hashes to, so a moved copy may take other uplinks: such groups are
        laid out one by one. A group inside one pod never reaches a spine (the hash picks
        nothing on its routes), so it moves exactly as with an ideal spread. ``rows`` (the
        copies' row numbers) is given under hashing: the shape then sums the groups' loads
        in row order, as when each is laid out by itself (the same sums to the last bit).
        ``hashed_moves``: group every row under hashing too (the caller puts each copy's
        hashed uplinks back: :meth:`_respine`).
        """
        topo = self.topology
        _, _, _, _, spl, exact, _ = topo.link_index()
        gps = topo.gpus_per_server
        if len(groups) == 0:
            return []
        # the groups of the next stage (job) are often an earlier call's moved by whole pods:
        # then every position relative to a first server and its pod, so every key, copy
        # order and choice of what moves under hashing, is that call's; only GPUs and first
        # servers move
        pod_gpus = gps * spl
        memo = self._pattern_memo.setdefault((groups.shape, hashed_moves), [])
        for base, found in memo:
            shift = int(groups[0, 0]) - int(base[0, 0])
            if shift % pod_gpus == 0 and np.array_equal(groups - shift, base):
                return _moved_patterns(found, shift, shift // gps)
        out = self._patterns_of(groups, hashed_moves, gps, spl, exact)
        memo.append((groups, out))
        return out

    def _patterns_of(self, groups: np.ndarray, hashed_moves: bool, gps: int, spl: int,
                     exact: bool) -> list:
        """:meth:`_patterns` worked out (not moved from an earlier call's)."""
        none = np.zeros(1, dtype=np.int64)
        out: list = []
        servers = groups // gps
        first = servers.min(axis=1)
        pod = servers // spl
        if exact:
            movable = None
        elif hashed_moves:
            movable = np.ones(len(groups), dtype=bool)
        else:
            movable = (pod == pod[:, :1]).all(axis=1)
            if not movable.any():
                return [(tuple(row.tolist()), none, none, None,
                         np.array([i], dtype=np.int64)) for i, row in enumerate(groups)]
        picked = (np.arange(len(groups), dtype=np.int64) if movable is None
                  else np.flatnonzero(movable))
        sub, first_s = groups[picked], first[picked]
        rel = sub - (first_s * gps)[:, None]
        rel_pod = pod[picked] - (first_s // spl)[:, None]
        keys, inverse = _unique_rows(np.column_stack([rel, rel_pod]))
        order = np.argsort(inverse, kind="stable")
        bounds = np.r_[0, np.cumsum(np.bincount(inverse, minlength=len(keys)))]
        for i, key in enumerate(keys):
            copies = order[bounds[i]:bounds[i + 1]]
            # laid out where its first copy sits (pod boundaries as they are), moved from there
            base = copies[0]
            out.append((tuple(sub[base].tolist()), first_s[copies] - first_s[base],
                        first_s[copies] // spl - first_s[base] // spl,
                        (tuple(key.tolist()), int(first_s[base])),
                        None if movable is None else picked[copies]))
        if movable is not None:
            out.extend((tuple(groups[i].tolist()), none, none, None,
                        np.array([i], dtype=np.int64)) for i in np.flatnonzero(~movable))
        return out

    def _spread(self, ids: np.ndarray, server_shift: np.ndarray,
                pod_shift: np.ndarray) -> np.ndarray:
        """Link ids of a pattern's copies: (copies, links)."""
        topo = self.topology
        _, _, per_server, per_pod, _, _, _ = topo.link_index()
        server_links = ids < topo.servers * per_server
        off = np.where(server_links[None, :], (server_shift * per_server)[:, None],
                       (pod_shift * per_pod)[:, None])
        return ids[None, :] + off

    # -- registering ----------------------------------------------------------------------
    def add_groups(self, key, groups) -> None:
        """GPUs of every group a meeting (job, kind, member classes) stands for, as rows."""
        if key not in self._groups:
            self._groups[key] = self._patterns(np.asarray(groups, dtype=np.int64))

    def has_groups(self, key) -> bool:
        return key in self._groups

    def add_collective(self, key, op: Op, size_bytes: int, representative) -> tuple:
        """Register the shape of ``op`` at ``size_bytes`` on the meeting ``key``; the algorithm
        and protocol are those the cost model picks for the representative placement."""
        ops = _PAIR_OPS if op is Op.ALLREDUCEALLTOALL else (op,)
        parts = []
        for o in ops:
            est = self.model.estimate(o, size_bytes, representative)
            shape_key = (key, o, est.algorithm, est.protocol)
            if shape_key not in self.shapes:
                self.shapes[shape_key] = self._collective_shape(
                    o, est.algorithm, est.protocol, self._groups[key])
            parts.append(shape_key)
        self._meeting[(key, op, size_bytes)] = tuple(parts)
        return tuple(parts)

    def add_send(self, key, pairs, size_bytes: int, representative) -> None:
        """Register one-way pipeline sends ``(src GPU, dst GPU)`` of ``size_bytes`` each."""
        est = self.model.estimate(Op.SENDRECV, size_bytes, representative)
        shape_key = (key, Op.SENDRECV, est.algorithm, est.protocol)
        if shape_key not in self.shapes:
            share = self.model.params.protocol_bandwidth[est.protocol]
            topo = self.topology

            def layout(gpus):
                loads: dict = defaultdict(float)
                loads.update((link, 1.0) for link in topo.route(gpus[0], gpus[1]))
                return loads
            pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
            hashed = not topo.link_index()[5] and len(pairs) > 0
            self.shapes[shape_key] = self._shape(
                Op.SENDRECV, share, self._patterns(pairs, hashed_moves=hashed), layout,
                (Op.SENDRECV, "direct", est.protocol),
                (lambda rows, ids, spread: self._respine(pairs[rows], ids, spread))
                if hashed else None)
        self._meeting[(key, Op.SENDRECV, size_bytes)] = (shape_key,)

    def _respine(self, pairs: np.ndarray, ids: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """A send pattern's copies (``spread``: their link ids, moved from ``ids``) with each
        copy's own hashed uplink: a route across pods goes up from its leaf to the spine
        plane ``Topology.ecmp_uplink`` picks for (sender, receiver, sending NIC) and down to
        the receiver's leaf; the rest of the route moves with the pair exactly. ``pairs``:
        the copies' (sender, receiver) GPUs, in the rows of ``spread``."""
        topo = self.topology
        table, _, per_server, per_pod, spl, _, _ = topo.link_index()
        pod_links = np.flatnonzero(ids >= topo.servers * per_server)
        if len(pod_links) == 0:
            return spread                       # inside one pod: no spine, nothing hashed
        # a pair's route names two pod links, in route order: leaf -> spine, spine -> leaf
        assert len(pod_links) == 2, "a send crosses the spine once"
        src, dst = int(pairs[0, 0]), int(pairs[0, 1])
        route = topo.route(src, dst)
        up_hop = route[[i for i, hop in enumerate(route) if hop[1].startswith("spine")][0]]
        leaf_a, leaf_b = up_hop[0], route[route.index(up_hop) + 1][1]
        planes = range(topo.uplinks)
        up = np.array([table[(leaf_a, f"spine{j}")] for j in planes], dtype=np.int64)
        down = np.array([table[(f"spine{j}", leaf_b)] for j in planes], dtype=np.int64)
        gps = topo.gpus_per_server
        first = (pairs // gps).min(axis=1)
        moved = (first // spl - first[0] // spl) * per_pod   # pods moved from the first copy
        nic = topo.nic_of(src)                  # the same local GPU in every copy: its NIC
        fab = topo.spec.fabric
        assert fab is not None                  # a route across pods: there is a fabric
        plane = ecmp_uplinks(pairs[:, 0], pairs[:, 1], nic, fab.ecmp_seed, topo.uplinks)
        out = spread.copy()
        out[:, pod_links[0]] = up[plane] + moved
        out[:, pod_links[1]] = down[plane] + moved
        return out

    def _collective_shape(self, op: Op, algo: str, proto: str, patterns) -> Shape:
        share = self.model.params.protocol_bandwidth[proto]

        def layout(gpus):
            by_symmetry = self._ring_by_symmetry(op, algo, gpus)
            return (by_symmetry if by_symmetry is not None
                    else self.model.group_loads(op, algo, gpus))
        return self._shape(op, share, patterns, layout, (op, algo, proto))

    def _ring_by_symmetry(self, op: Op, algo: str, gpus) -> tuple | None:
        """(link ids, bytes per byte) of a ring over a symmetric group (its servers hold the
        same local positions), from the route counts of its first two servers and the spine
        the cost model's shortcut keeps (``SymmetricRing.counts``): every server's links
        carry what the first one's do, moved by its server number; None for any other plan.

        The same loads as the full plan's, to the last bit: the full plan adds the ring's
        share once per route crossing a link, so a link crossed n times holds the share added
        n times, as here. A 6144-rank ring is then its first server's few dozen links instead
        of a route per GPU and channel (25,000 routes, most of a 147,456-GPU set-up)."""
        from ..costmodel.nccl_symmetric import SymmetricRing

        if algo != "ring":
            return None
        model = self.model
        model.topology_for(max(gpus) + 1)
        phases = model._phases(op, algo, gpus)
        ring = getattr(phases[0], "shortcut", None) if len(phases) == 1 else None
        if not isinstance(ring, SymmetricRing):
            return None
        topo = self.topology
        table, _, per_server, *_ = topo.link_index()
        first, second = ring.servers[0], ring.servers[1]
        server_links = topo.servers * per_server
        own: dict = {}                      # the first server's links: id moved to server 0
        check: dict = {}                    # the second's, to hold the symmetry to account
        spine: dict = {}
        for link, n in ring.counts.items():
            i = table[link]
            if i >= server_links:
                spine[i] = n
            elif i // per_server == first:
                own[i - first * per_server] = n
            elif i // per_server == second:
                check[i - second * per_server] = n
        if own != check:
            return None                     # pragma: no cover (the shortcut's premise)
        by_count: dict = {}
        for n in set(own.values()) | set(spine.values()):
            b = 0.0
            for _ in range(n):              # the full plan's additions, in its order
                b += ring.share
            by_count[n] = b
        rel = np.fromiter(own, dtype=np.int64, count=len(own))
        servers = np.asarray(ring.servers, dtype=np.int64)
        ids = np.concatenate([(servers[:, None] * per_server + rel[None, :]).ravel(),
                              np.fromiter(spine, dtype=np.int64, count=len(spine))])
        per_link = np.fromiter((by_count[n] for n in own.values()), dtype=np.float64,
                               count=len(own))
        vals = np.concatenate([np.tile(per_link, len(servers)),
                               np.fromiter((by_count[n] for n in spine.values()),
                                           dtype=np.float64, count=len(spine))])
        return ids, vals

    def _shape(self, op: Op, share: float, patterns, layout, kind, respine=None) -> Shape:
        # groups that are an earlier shape's moved by whole pods (the next stage's, the next
        # job's): that shape moved, link ids and all (the sums are the same, in the same order)
        moved_key = None
        if (respine is None and self._solo_caps is None and patterns
                and all(p[3] is not None and p[4] is None for p in patterns)):
            moved_key = (kind, tuple((p[3][0], p[1].tobytes(), p[2].tobytes())
                                     for p in patterns))
            firsts = [p[3][1] for p in patterns]
            hit = self._moved_shapes.get(moved_key)
            if hit is not None:
                moved = self._moved(hit[1], hit[0], firsts)
                if moved is not None:
                    return moved
        out = self._laid_out(op, share, patterns, layout, kind, respine)
        if moved_key is not None:
            self._moved_shapes.setdefault(moved_key, (firsts, out))
        return out

    def _moved(self, base: Shape, base_firsts: list, firsts: list) -> Shape | None:
        """``base`` moved from groups first at servers ``base_firsts`` to ``firsts``, if all
        move by the same servers and pods (server links by the servers, pod links by the
        pods: what :meth:`_spread` does to each copy)."""
        topo = self.topology
        _, _, per_server, per_pod, spl, _, _ = topo.link_index()
        servers = {f - b for f, b in zip(firsts, base_firsts)}
        pods = {f // spl - b // spl for f, b in zip(firsts, base_firsts)}
        if len(servers) != 1 or len(pods) != 1:
            return None
        d, p = servers.pop(), pods.pop()
        ids = base.ids
        return Shape(ids + np.where(ids < topo.servers * per_server, d * per_server,
                                    p * per_pod), base.loads, base.solo_ns_per_byte)

    def _laid_out(self, op: Op, share: float, patterns, layout, kind, respine=None) -> Shape:
        topo = self.topology
        table, _, *_, nvlink = topo.link_index()
        caps = self.solo_caps                  # a group alone: the links it was priced on
        su = topo.spec.scale_up
        all_ids, all_loads = [], []
        solo = 0.0
        spl = topo.link_index()[4]
        row_of: list = []                      # under hashing: the row of every copy
        for gpus, shifts, pod_shifts, pattern, rows in patterns:
            # the same pattern in another meeting (another stage, job or class) is laid out
            # once: moved from where it was laid out first
            cached = self._layouts.get((kind, pattern[0])) if pattern is not None else None
            if cached is not None:
                base_first, ids, vals, worst = cached
                shifts = shifts + (pattern[1] - base_first)
                pod_shifts = pod_shifts + (pattern[1] // spl - base_first // spl)
            else:
                loads = layout(gpus)
                self.layouts += 1
                n = len(gpus)
                if isinstance(loads, tuple):    # already by link id (a symmetric ring)
                    ids, vals = loads
                else:
                    ids = np.fromiter(map(table.__getitem__, loads), dtype=np.int64,
                                      count=len(loads))
                    vals = np.fromiter(loads.values(), dtype=np.float64, count=len(loads))
                # bytes scaled so that a link's plain capacity gives the op's pace there:
                # NVLink runs at the operation's efficiency, every other link at its own
                pace = su.efficiency / self.model.nvlink_efficiency(op, kind[1], n)
                vals = vals / share
                vals = np.where(nvlink[ids], vals * pace, vals)
                worst = float((vals / caps[ids]).max()) if len(ids) else 0.0
                if pattern is not None:
                    self._layouts[(kind, pattern[0])] = (pattern[1], ids, vals, worst)
            spread = self._spread(ids, shifts, pod_shifts)
            if respine is not None:
                spread = respine(rows, ids, spread)
            if self._solo_caps is not None and len(ids):
                # copies may hold a degraded link: the slowest copy alone
                worst = float((vals[None, :] / caps[spread]).max())
            solo = max(solo, worst)
            if rows is not None:
                row_of.extend((int(r), spread[j], vals) for j, r in enumerate(rows))
                continue
            all_ids.append(spread.ravel())
            all_loads.append(np.tile(vals, len(shifts)))
        if row_of:
            row_of.sort(key=lambda entry: entry[0])
            all_ids = [entry[1] for entry in row_of]
            all_loads = [entry[2] for entry in row_of]
        if not all_ids:
            return Shape(np.zeros(0, dtype=np.int64), np.zeros(0), 0.0)
        ids = np.concatenate(all_ids)
        vals = np.concatenate(all_loads)
        lo = int(ids.min())
        span = int(ids.max()) - lo + 1
        if span <= 8 * len(ids):
            # dense ids (a stage's groups side by side): counted, not sorted; sums in entry
            # order as below
            rel = ids - lo
            present = np.bincount(rel, minlength=span) > 0
            uniq = np.flatnonzero(present) + lo
            total = np.bincount(rel, weights=vals, minlength=span)[present]
        else:
            uniq, inv = np.unique(ids, return_inverse=True)
            # sums in entry order, as np.add.at would, but buffered
            total = np.bincount(inv.ravel(), weights=vals, minlength=len(uniq))
        return Shape(uniq, total, solo)

    # -- link classes ---------------------------------------------------------------------
    def finish(self) -> None:
        """Merge links with identical constraints under every shape into link classes.

        A link's signature is its load per byte over its capacity under each shape, hashed
        into two 64-bit words (sums of per-shape random words times the rounded value, as
        the rank classes do); equal signatures are the same max-min constraint. Shape by
        shape (a shape names each link once), so nothing the size of all shapes together
        is ever made."""
        caps = self.caps
        keys = list(self.shapes)
        if not keys:
            return
        # default_rng(0xFAB).integers(1, 2**63, ...) twice, without numpy.random's import
        rng = Words(0xFAB)
        r1 = np.array(rng.integers(1, 2**63, len(keys)), dtype=np.uint64) | np.uint64(1)
        r2 = np.array(rng.integers(1, 2**63, len(keys)), dtype=np.uint64) | np.uint64(1)
        present = np.zeros(len(caps), dtype=bool)
        h1 = np.zeros(len(caps), dtype=np.uint64)
        h2 = np.zeros(len(caps), dtype=np.uint64)
        values = []
        # the shapes of a job's stages (and of its identical groups) are one shape moved: the
        # same values link for link, so their words are computed once
        words: dict = {}
        # a shape moved from another (FabricFlows._moved) shares its loads; on links whose
        # capacities repeat server by server and pod by pod its values are the other's too
        by_loads: dict | None = {} if self._tiled(caps) else None
        on_ids: dict = {}           # number of links -> [[ids, words 1, words 2]]: a meeting's
        meeting = None
        with np.errstate(over="ignore"):
            for i, k in enumerate(keys):
                shape = self.shapes[k]
                ids = shape.ids
                known = by_loads.get(id(shape.loads)) if by_loads is not None else None
                if known is None:
                    value = shape.loads / caps[ids]
                    memo = value.tobytes()
                    hit = words.get(memo)
                    if hit is None:
                        hit = words[memo] = _words(value)
                    if by_loads is not None:
                        by_loads[id(shape.loads)] = (shape.loads, value, hit)
                else:
                    _, value, hit = known
                values.append(value)
                # shapes of one meeting on the same links (an all-gather and a
                # reduce-scatter of the same groups) add their words up first and scatter
                # them once: sums modulo 2**64, in any order the same. A meeting's shapes
                # are registered together: the sums of the one before are scattered when
                # the next begins (so only one meeting's are ever held)
                if k[0] != meeting:
                    _scatter(on_ids, h1, h2, present)
                    meeting = k[0]
                same = on_ids.setdefault(len(ids), [])
                for entry in same:
                    if entry[0] is ids or np.array_equal(entry[0], ids):
                        entry[1] += r1[i] * hit[0]
                        entry[2] += r2[i] * hit[1]
                        break
                else:
                    same.append([ids, r1[i] * hit[0], r2[i] * hit[1]])
            _scatter(on_ids, h1, h2, present)
        used = np.flatnonzero(present)
        self.physical_links = len(used)
        if not len(used):
            return
        first, member = _unique_pairs(h1[used], h2[used])
        n = len(first)
        self.capacity = {Link(LinkKind.FABRIC, c): 1.0 for c in range(n)}
        counts = np.bincount(member, minlength=n)
        self.link_classes = {Link(LinkKind.FABRIC, c): int(k) for c, k in enumerate(counts)}
        # a class's load under a shape is that of any of its links (they are all equal):
        # its first link's, found by bisection in the shape's ids (sorted, each once), in the
        # order of those links
        reps = used[first]
        by_link = np.argsort(reps, kind="stable")
        reps = reps[by_link]
        for k, value in zip(keys, values):
            ids = self.shapes[k].ids
            if not len(ids):
                self._class_loads[k] = {}
                continue
            at = np.minimum(np.searchsorted(ids, reps), len(ids) - 1)
            there = ids[at] == reps
            self._class_loads[k] = {Link(LinkKind.FABRIC, c): v      # ns per byte
                                    for c, v in zip(by_link[there].tolist(),
                                                    value[at[there]].tolist())}

    def _tiled(self, caps: np.ndarray) -> bool:
        """Whether every server's links have the first server's capacities and every pod's
        the first pod's (what moving a shape by whole servers and pods keeps)."""
        topo = self.topology
        _, _, per_server, per_pod, *_ = topo.link_index()
        n = topo.servers * per_server
        if len(caps) < n or (len(caps) - n) % max(per_pod, 1):
            return False
        servers = caps[:n].reshape(-1, per_server) if per_server else caps[:0]
        pods = caps[n:].reshape(-1, per_pod) if per_pod else caps[:0]
        return bool((servers == servers[:1]).all() and (pods == pods[:1]).all())

    def link_users(self) -> dict:
        """Link class -> the meeting keys (as given to ``add_*``) of every collective and
        send that loads it: who can ever put a flow on it."""
        users: dict = {}
        for (key, _op, _size), parts in self._meeting.items():
            for part in parts:
                for link in self._class_loads.get(part, ()):
                    users.setdefault(link, set()).add(key)
        return users

    # -- flows ----------------------------------------------------------------------------
    def collective(self, key, op: Op, size_bytes: int, priced_ns: int) -> tuple[Demand, float]:
        parts = self._meeting[(key, op, size_bytes)]
        return self._flow(parts, size_bytes, priced_ns)

    def send(self, key, size_bytes: int, priced_ns: int) -> tuple[Demand, float]:
        return self._flow(self._meeting[(key, Op.SENDRECV, size_bytes)], size_bytes, priced_ns)

    def _flow(self, parts, size_bytes: int, priced_ns: int) -> tuple[Demand, float]:
        key = (parts, size_bytes, priced_ns)
        hit = self._flows.get(key)
        if hit is None:
            loads: dict = defaultdict(float)
            solo = 0.0
            for k in parts:
                for c, b in self._class_loads[k].items():
                    loads[c] += b * size_bytes
                solo += self.shapes[k].solo_ns_per_byte * size_bytes
            # what a group alone would not spend moving data is latency (launch, hops, floor)
            hit = self._flows[key] = (Demand(loads), max(0, round(priced_ns - solo)))
        return hit


def _scatter(on_ids: dict, h1: np.ndarray, h2: np.ndarray, present: np.ndarray) -> None:
    """Add the summed hash words of a meeting's shapes onto their links (FabricFlows.finish),
    and forget them."""
    for same in on_ids.values():
        for ids, w1, w2 in same:
            h1[ids] += w1
            h2[ids] += w2
            present[ids] = True
    on_ids.clear()


def _moved_patterns(patterns: list, gpus: int, servers: int) -> list:
    """``FabricFlows._patterns`` of groups moved by ``gpus`` GPUs (``servers`` servers, whole
    pods): each pattern's GPUs and first server move, its shifts, key and rows do not."""
    return [(tuple((np.asarray(p[0], dtype=np.int64) + gpus).tolist()), p[1], p[2],
             None if p[3] is None else (p[3][0], p[3][1] + servers), p[4])
            for p in patterns]


def ecmp_uplinks(src: np.ndarray, dst: np.ndarray, nic: int, seed: int,
                 uplinks: int) -> np.ndarray:
    """``Topology.ecmp_uplink`` of many connections at once: the same 64-bit mixing, in
    unsigned 64-bit arithmetic (which wraps as the masked Python integers do)."""
    u = np.uint64
    with np.errstate(over="ignore"):
        x = (src.astype(u) * u(0x9E3779B1) + dst.astype(u) * u(0x85EBCA77)
             + u((nic * 0xC2B2AE3D + seed * 0x27D4EB2F + 0x165667B1) & 0xFFFFFFFFFFFFFFFF))
        x ^= x >> u(33)
        x *= u(0xFF51AFD7ED558CCD)
        x ^= x >> u(33)
        x *= u(0xC4CEB9FE1A85EC53)
        x ^= x >> u(33)
    return (x % u(uplinks)).astype(np.int64)


def _words(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two hash words of a shape's values (FabricFlows.finish): each value rounded to 9
    significant digits (sums of the same bytes in another order still match), mixed."""
    exp = np.floor(np.log10(np.abs(value) + 1e-300)).astype(np.int64)
    # 10 ** (exp - 8) from a table of the few exponents (the same powers)
    lo = int(exp.min()) if len(exp) else 0
    scale = (10.0 ** (np.arange(lo, int(exp.max()) + 1 if len(exp) else 1,
                                dtype=np.float64) - 8))[exp - lo]
    quant = (np.round(value / scale).astype(np.int64) ^ (exp << 40)).astype(np.uint64)
    with np.errstate(over="ignore"):
        return (quant * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1),
                quant ^ np.uint64(0xC2B2AE3D27D4EB4F))


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)`` without sorting the rows: rows are
    grouped by a hash of their values, checked exactly, and only the distinct ones sorted."""
    n, k = rows.shape
    if n <= 1 or k == 0:
        keys, inverse = np.unique(rows, axis=0, return_inverse=True)
        return keys, inverse.ravel()
    mult = np.array(Words(0x5EED).integers(1, 2**63, k), dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = (rows.astype(np.uint64) * (mult | np.uint64(1))).sum(axis=1, dtype=np.uint64)
    _, first, inv = np.unique(h, return_index=True, return_inverse=True)
    inv = inv.ravel()
    distinct = rows[first]
    if not np.array_equal(distinct[inv], rows):        # a hash collision: the exact way
        keys, inverse = np.unique(rows, axis=0, return_inverse=True)
        return keys, inverse.ravel()
    # lexicographic, as np.unique's: a few wide rows sort faster as lists than by lexsort
    # (one pass per column)
    order = (np.array(sorted(range(len(distinct)), key=distinct.tolist().__getitem__),
                      dtype=np.int64)
             if len(distinct) <= 64 else np.lexsort(distinct.T[::-1]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return distinct[order], rank[inv]


def _unique_pairs(h1: np.ndarray, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and inverse of the distinct (h1, h2) pairs in (h1, h2) order, as
    ``np.unique(np.stack([h1, h2], 1), axis=0, return_index=True, return_inverse=True)``
    gives them, sorting h1 alone when it tells the pairs apart (it nearly always does)."""
    # np.unique's index and inverse sort h1 stably; the few distinct values are found
    # faster apart, then looked up, and each one's first place is the least of its places
    distinct, inv = _sorted_inverse(h1)
    first = np.full(len(distinct), len(h1), dtype=np.int64)
    np.minimum.at(first, inv, np.arange(len(h1), dtype=np.int64))
    if np.array_equal(h2[first][inv], h2):
        return first, inv
    _, first, inv = np.unique(np.stack([h1, h2], axis=1), axis=0, return_index=True,
                              return_inverse=True)
    return first, inv.ravel()


def _sorted_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values)`` and where each value is in it. Hash words tell a few distinct
    values apart by their low 16 bits nearly always: then a table of those bits gives each
    value's rank without sorting or searching them all (checked exactly: every value must be
    its slot's)."""
    slots = 1 << 16
    low = (values & np.uint64(slots - 1)).astype(np.intp)
    held = np.zeros(slots, dtype=values.dtype)
    held[low] = values
    if not np.array_equal(held[low], values):          # two values share low bits
        distinct = np.unique(values)
        return distinct, np.searchsorted(distinct, values)
    used = np.flatnonzero(np.bincount(low, minlength=slots))
    order = np.argsort(held[used], kind="stable")
    rank = np.zeros(slots, dtype=np.intp)
    rank[used[order]] = np.arange(len(used), dtype=np.intp)
    return held[used[order]], rank[low]


def group_members(gid: np.ndarray) -> np.ndarray:
    """Ranks of every group of one kind as rows (group ids 0..G-1 of equal size), in rank
    order inside each group."""
    order = np.argsort(gid, kind="stable")
    groups = int(gid.max()) + 1
    return order.reshape(groups, -1)

