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

from ..workload import Op

_PAIR_OPS = (Op.ALLREDUCE, Op.ALLTOALL)


@dataclass
class Shape:
    """One flow shape: bytes per byte of buffer on each link, summed over the groups."""

    loads: dict              # link -> bytes per byte of buffer (all groups)
    solo_ns_per_byte: float  # the slowest single group alone: ns per byte of buffer


class FabricFlows:
    """Flow shapes of every collective and send of a run, and their link classes.

    ``add_*`` register shapes before the simulation (every (job, group kind, class, op,
    algorithm) the run can issue), :meth:`finish` merges links into classes, and
    :meth:`collective` / :meth:`send` give a FlowNetwork transfer's ``(loads, latency_ns)``.
    """

    def __init__(self, model):
        self.model = model                   # an NcclCostModel (its topology, its algorithms)
        self.shapes: dict = {}               # shape key -> Shape
        self._meeting: dict = {}             # meeting key -> [(op, (algo, proto) by size)]
        self._groups: dict = {}              # meeting key -> list of GPU tuples
        self.capacity: dict = {}             # link class -> capacity (1: loads are in ns)
        self._class_loads: dict = {}         # shape key -> {link class: ns per byte}
        self.link_classes: dict = {}         # link class -> number of physical links in it
        self.physical_links = 0

    @property
    def topology(self):
        return self.model.topology

    # -- registering ----------------------------------------------------------------------
    def add_groups(self, key, groups: list[tuple[int, ...]]) -> None:
        """GPUs of every group a meeting (job, kind, member classes) stands for."""
        if key not in self._groups:
            self._groups[key] = groups

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

    def add_send(self, key, pairs: list[tuple[int, int]], size_bytes: int, representative):
        """Register one-way pipeline sends ``(src GPU, dst GPU)`` of ``size_bytes`` each."""
        est = self.model.estimate(Op.SENDRECV, size_bytes, representative)
        shape_key = (key, Op.SENDRECV, est.algorithm, est.protocol)
        if shape_key not in self.shapes:
            topo = self.topology
            share = self.model.params.protocol_bandwidth[est.protocol]
            loads: dict = defaultdict(float)
            solo = 0.0
            for a, b in pairs:
                path = topo.route(a, b)
                worst = 0.0
                for link in path:
                    loads[link] += 1.0 / share
                    worst = max(worst, 1.0 / share / self._pace(Op.SENDRECV, link, 2))
                solo = max(solo, worst)
            self.shapes[shape_key] = Shape(self._rescale(Op.SENDRECV, loads, 2), solo)
        self._meeting[(key, Op.SENDRECV, size_bytes)] = (shape_key,)

    def _pace(self, op: Op, link, ranks: int) -> float:
        return self.model.capacity(op, link, ranks)

    def _rescale(self, op: Op, loads: dict, ranks: int) -> dict:
        """Bytes scaled so that a link's plain capacity gives the operation's pace there."""
        links = self.topology.links
        return {l: b * links[l].capacity / self._pace(op, l, ranks) for l, b in loads.items()}

    def _collective_shape(self, op: Op, algo: str, proto: str, groups) -> Shape:
        share = self.model.params.protocol_bandwidth[proto]
        links = self.topology.links
        total: dict = defaultdict(float)
        solo = 0.0
        cache: dict = {}
        for gpus in groups:
            got = cache.get(gpus)
            if got is None:
                loads = self.model.group_loads(op, algo, gpus)
                n = len(gpus)
                scaled = {l: b / share * links[l].capacity / self._pace(op, l, n)
                          for l, b in loads.items()}
                worst = max((b / links[l].capacity for l, b in scaled.items()), default=0.0)
                got = cache[gpus] = (scaled, worst)
            for l, b in got[0].items():
                total[l] += b
            solo = max(solo, got[1])
        return Shape(dict(total), solo)

    # -- link classes ---------------------------------------------------------------------
    def finish(self) -> None:
        """Merge links with identical constraints under every shape into link classes."""
        links = self.topology.links
        signature: dict = defaultdict(list)
        keys = list(self.shapes)
        for i, k in enumerate(keys):
            for l, b in self.shapes[k].loads.items():
                signature[l].append((i, round(b / links[l].capacity, 12)))
        self.physical_links = len(signature)
        classes: dict = {}
        member: dict = {}
        for l, sig in signature.items():
            cid = classes.setdefault(tuple(sig), len(classes))
            member[l] = cid
        self.capacity = {("fabric", c): 1.0 for c in range(len(classes))}
        counts = np.bincount(np.fromiter(member.values(), dtype=np.int64, count=len(member)),
                             minlength=len(classes))
        self.link_classes = {("fabric", c): int(n) for c, n in enumerate(counts)}
        for k in keys:
            per: dict = {}
            for l, b in self.shapes[k].loads.items():
                per[("fabric", member[l])] = b / links[l].capacity   # ns per byte
            self._class_loads[k] = per

    # -- flows ----------------------------------------------------------------------------
    def collective(self, key, op: Op, size_bytes: int, priced_ns: int) -> tuple[dict, float]:
        parts = self._meeting[(key, op, size_bytes)]
        return self._flow(parts, size_bytes, priced_ns)

    def send(self, key, size_bytes: int, priced_ns: int) -> tuple[dict, float]:
        return self._flow(self._meeting[(key, Op.SENDRECV, size_bytes)], size_bytes, priced_ns)

    def _flow(self, parts, size_bytes: int, priced_ns: int) -> tuple[dict, float]:
        loads: dict = defaultdict(float)
        solo = 0.0
        for k in parts:
            for c, b in self._class_loads[k].items():
                loads[c] += b * size_bytes
            solo += self.shapes[k].solo_ns_per_byte * size_bytes
        # what a group alone would not spend moving data is latency (launch, hops, floor)
        return dict(loads), max(0, round(priced_ns - solo))


def group_members(gid: np.ndarray) -> np.ndarray:
    """Ranks of every group of one kind as rows (group ids 0..G-1 of equal size), in rank
    order inside each group."""
    order = np.argsort(gid, kind="stable")
    groups = int(gid.max()) + 1
    return order.reshape(groups, -1)

