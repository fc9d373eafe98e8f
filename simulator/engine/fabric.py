"""Wiring between the detailed engine's rank classes and the fabric's flows.

For every collective a rank class can issue (per group kind, operation and size) and every
pipeline send, the groups it stands for are found from the class colouring and handed to
:class:`simulator.network.fabric.FabricFlows` with their GPUs, before the simulation starts.
"""
from __future__ import annotations

from ..workload import ROW_GROUPS, Group, Op
from .messages import Direction


def build_fabric(plans, setups, colours, degraded=(), uplinks=()):
    """FabricFlows for the jobs' plans, their class setups and per-job rank colourings;
    ``degraded``: per job, its (rank, NIC bandwidth factor, extra latency) what-ifs;
    ``uplinks``: (pod, rail or None, bandwidth factor) of slower leaf uplinks."""
    import numpy as np

    from ..network.fabric import FabricFlows, group_members
    from ..parallel import stage_placements
    from .classes import group_ids

    model = plans[0].cost_model
    fabric = FabricFlows(model)
    # the cluster slot of every rank of every job, and the GPU the topology puts it on
    slots = [p.rank_map.gpu(np.arange(p.par.world, dtype=np.int64)) for p in plans]
    topo = model.topology_for(int(max(int(s.max()) for s in slots)) + 1)
    rank_gpu = np.asarray(topo.rank_gpu, dtype=np.int64)
    gpu_of = [rank_gpu[s] for s in slots]
    fabric.pp_bytes = {job: p.workload.pp_comm_bytes for job, p in enumerate(plans)}
    # a degraded NIC loses bandwidth on its own links (its extra latency is in the price)
    for job, entries in enumerate(degraded):
        for rank, factor, _extra in entries:
            fabric.degrade_nic(int(gpu_of[job][rank]), factor)
    for pod, rail, factor in uplinks:
        fabric.degrade_uplinks(pod, rail, factor)
    members_of: dict = {}
    for setup in setups:
        job = setup.job.job
        plan, colour, gpus = plans[job], colours[job], gpu_of[job]
        par = plan.par
        mine = colour == setup.cls.cid
        pricer = plan.pricers[setup.cls.stage]
        for kind in ROW_GROUPS:
            if par.size(kind) <= 1:
                continue
            key = (job, kind, setup.cls.group_members[kind])
            if not fabric.has_groups(key):
                mk = (job, kind)
                if mk not in members_of:
                    gid = group_ids(par, kind)
                    members_of[mk] = (gid, group_members(gid))
                gid, rows = members_of[mk]
                # the class's groups, sorted: np.unique(gid[mine]) without its check for
                # masked arrays, which imports numpy.ma (about 2% of a 9216-GPU run)
                chosen = np.flatnonzero(np.bincount(gid[mine]))
                fabric.add_groups(key, gpus[rows[chosen]])
            rep = _slowest(plan.cost_model, pricer.placements[kind], slots[job], rank_gpu)
            seen = set()
            for rows_ in setup.sequences.values():
                for row in rows_:
                    for comm in row.comms:
                        if (comm.group is kind and comm.op is not None and comm.size_bytes
                                and (comm.op, comm.size_bytes) not in seen):
                            seen.add((comm.op, comm.size_bytes))
                            fabric.add_collective(key, comm.op, comm.size_bytes,
                                                  rep(comm.op, comm.size_bytes))
        size = plan.workload.pp_comm_bytes
        if par.pp > 1 and size:
            ranks = np.nonzero(mine)[0]
            for direction, step in ((Direction.NEXT, par.stage_ranks),
                                    (Direction.PREV, -par.stage_ranks)):
                partner = (ranks + step) % par.world
                pairs = np.stack([gpus[ranks], gpus[partner]], axis=1)
                stage = (setup.cls.stage if direction is Direction.NEXT
                         else (setup.cls.stage - 1) % par.pp)
                place = stage_placements(par, Group.PP, stage, plan.rank_map)[0]
                fabric.add_send((job, direction, setup.cid), pairs, size,
                                _gpus_of(place, slots[job], rank_gpu))
    fabric.finish()
    return fabric


def _gpus_of(place, slots, rank_gpu) -> tuple:
    # placements name the cluster slots their ranks run on; the topology places slots
    # (one lookup for the whole group: DP groups of 6144 ranks at 147,456 GPUs)
    return tuple(rank_gpu[list(place.ranks)].tolist()) if place.ranks else ()


def _canonical(topo, gpus: tuple) -> tuple:
    """The group moved by whole pods to the first pod: the same links, latencies and choice of
    algorithm (the translation symmetry of Topology.link_index), so the groups of every stage
    are priced once."""
    _, _, _, _, spl, exact, _ = topo.link_index()
    if not gpus:
        return gpus
    gps = topo.gpus_per_server
    pod = min(gpus) // gps // spl
    # under ECMP hashing only a group inside one pod moves exactly: its routes never reach
    # the spine, where the hash picks an uplink per connection (network/fabric.py)
    if not exact and any(g // gps // spl != pod for g in gpus):
        return gpus
    shift = pod * spl * gps
    return tuple(g - shift for g in gpus) if shift else gpus


def _slowest(model, placements, slots, rank_gpu):
    """A function (op, size) -> GPUs of the placement the pricer charges (the slowest)."""
    topo = model.topology
    groups = list(dict.fromkeys(_canonical(topo, _gpus_of(p, slots, rank_gpu))
                                for p in placements))

    def rep(op: Op, size: int):
        if len(groups) == 1:
            return groups[0]
        o = Op.ALLREDUCE if op is Op.ALLREDUCEALLTOALL else op
        return max(groups, key=lambda g: model.estimate(o, size, g).time_ns)
    return rep
