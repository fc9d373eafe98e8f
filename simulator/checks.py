"""Checks that tell a user when an answer cannot be trusted, or a what-if cannot change it.

What the simulator already says (docs/testing.md lists where): a group of size 1 (a warning
and a note), a row count that disagrees with the file (a warning, an error with --strict),
no repeating micro-batches (a warning), placeholder compute times (a note), no all_gpus in
the header (a warning), pp_comm 0 with pipeline stages (a note).

This module adds the one that was missing: a what-if parameter (``nic_bw``,
``nvlink_bw``, ``nics_per_server``, ``gpus_per_server``, ``base_latency_ns``) that
the workload never exercises, so that changing it changes nothing: ``--nic-bw`` for a job
that fits in one server, ``--nvlink-bw`` when no group has two GPUs in one server.

The test is exact for the replay engine, which sees the cluster only through the price of
each collective: every collective the job runs (each row's collective on groups of more than
one rank, on every pipeline stage, and the pipeline sends) is priced with the user's value
and with the reference value (the default); if no price differs, the iteration cannot
differ, and the message says why (nothing leaves a server, no two members of a group share
one, no collective at all, or simply no price moves). Models that see the cluster otherwise
(``--contention`` flows, a ``--topology`` graph) should pass ``structural_only=True``: then
only the structural reasons count. (The analytical model caps a ring that crosses servers at
the NVLink bandwidth even with one member per server, so there ``--nvlink-bw`` can matter
where no NVLink carries traffic: the price comparison, not the structure, decides.)
"""
from __future__ import annotations

from collections.abc import Callable

from .cluster import Cluster
from .costmodel.base import CostModel
from .records import replace
from .parallel import GroupPlacement, ParallelConfig, stage_placements
from .workload import ROW_GROUPS, Group, Op, Workload

#: the Cluster fields a what-if may set, and how a message names them by default: the option
#: key (``nic_bw``); the CLI passes the flags instead (``names=``)
FLAGS = {
    "gpus_per_server": "gpus_per_server",
    "nvlink_gbps": "nvlink_bw",
    "nic_gbps": "nic_bw",
    "nics_per_server": "nics_per_server",
    "base_latency_ns": "base_latency_ns",
    "nvlink_efficiency": "nvlink_efficiency",
    "nic_efficiency": "nic_efficiency",
    "nvlink_hop_ns": "nvlink_hop_ns",
    "nic_hop_ns": "nic_hop_ns",
}
_NIC_FIELDS = ("nic_gbps", "nics_per_server", "nic_efficiency", "nic_hop_ns")
_NVLINK_FIELDS = ("nvlink_gbps", "nvlink_efficiency", "nvlink_hop_ns")


def cluster_overrides(options) -> dict[str, object]:
    """The Cluster fields a :class:`~simulator.config.ClusterOptions` sets (what-ifs)."""
    from .config.flags import CLUSTER_FIELDS
    return {field: getattr(options, key) for key, field in CLUSTER_FIELDS.items()
            if getattr(options, key) is not None}


def _collectives(workload: Workload, par: ParallelConfig) -> set[tuple[Op, Group, int]]:
    """(op, group, bytes) of every row collective that moves data between ranks."""
    sizes = {g: par.size(g) for g in ROW_GROUPS}
    return {(c.op, c.group, c.size_bytes) for r in workload.rows for c in (r.fwd, r.ig, r.wg)
            if c.op is not None and c.group is not None and c.size_bytes > 0
            and sizes[c.group] > 1}


def _layout(workload: Workload, par: ParallelConfig, gps: int,
            comms: set | None = None) -> tuple[list[tuple], list[GroupPlacement]]:
    """What priced_table prices: ((stage, group, op, bytes), op, bytes, placements) entries,
    and every placement met."""
    comms = _collectives(workload, par) if comms is None else comms
    kinds = sorted({g for _, g, _ in comms}, key=ROW_GROUPS.index)
    entries: list[tuple] = []
    seen: list[GroupPlacement] = []
    for s in range(par.pp):
        for g in kinds:
            placements = stage_placements(par, g, s, gps)
            seen.extend(placements)
            for op, group, size in comms:
                if group is g:
                    entries.append(((s, g, op, size), op, size, placements))
        if par.pp > 1 and workload.pp_comm_bytes:
            placements = stage_placements(par, Group.PP, s, gps)
            seen.extend(placements)
            entries.append(((s, Group.PP, Op.SENDRECV, workload.pp_comm_bytes), Op.SENDRECV,
                            workload.pp_comm_bytes, placements))
    return entries, seen


def _price(cost_model: CostModel, op: Op, size: int, placements) -> int:
    return max(cost_model.collective_ns(op, size, p) for p in placements)


def priced_table(workload: Workload, par: ParallelConfig, cluster: Cluster,
                 cost_model: CostModel) -> tuple[dict[tuple, int], list[GroupPlacement]]:
    """What the engine sees of the cluster: the price of each (stage, group, op, bytes), the
    slowest group of that kind on the stage, and of each stage's pipeline send; with the
    placements those prices came from."""
    entries, seen = _layout(workload, par, cluster.gpus_per_server)
    return {key: _price(cost_model, op, size, pl) for key, op, size, pl in entries}, seen


def _same_prices(table: dict, entries: list[tuple], cost_model: CostModel) -> bool:
    """Whether every entry prices as in ``table`` (stops at the first that does not)."""
    if len(entries) != len(table):
        return False
    for key, op, size, placements in entries:
        if table.get(key) != _price(cost_model, op, size, placements):
            return False
    return True


def _show(field: str, value) -> str:
    if field == "base_latency_ns":
        return f"{value / 1000:g}us"
    return f"{value:g}" if isinstance(value, float) else str(value)


def unused_parameters(workload: Workload, parallel: ParallelConfig, cluster: Cluster,
                      overrides: dict[str, object],
                      cost_model_for: Callable[[Cluster], CostModel] | None = None,
                      reference: Cluster | None = None,
                      structural_only: bool = False,
                      names: dict[str, str] | None = None) -> list[str]:
    """One warning per what-if in ``overrides`` that cannot change this job's answer.

    ``overrides`` maps Cluster fields to the values the user asked for (``cluster`` already
    holds them); each is compared with ``reference`` (default: ``Cluster()``, the defaults).
    A value equal to the reference is no what-if and is not reported. ``cost_model_for``
    builds the cost model from a cluster (default: the analytical model). ``names``: how a
    message names each field (default :data:`FLAGS`: the option keys).
    """
    if cost_model_for is None:
        from .costmodel.analytical import AnalyticalCostModel
        cost_model_for = AnalyticalCostModel
    reference = reference or Cluster()
    asked = {f: v for f, v in overrides.items()
             if v is not None and f in FLAGS and v != getattr(reference, f)}
    if not asked:
        return []
    comms = _collectives(workload, parallel)
    entries, placements = _layout(workload, parallel, cluster.gpus_per_server, comms)
    model = cost_model_for(cluster)
    table = {key: _price(model, op, size, pl) for key, op, size, pl in entries}
    any_comm = bool(table)
    crosses_servers = any(p.servers > 1 for p in placements)
    shares_a_server = any(p.max_per_server > 1 for p in placements)
    gps = cluster.gpus_per_server

    messages: list[str] = []
    for field, value in asked.items():
        if not structural_only:
            other = replace(cluster, **{field: getattr(reference, field)})
            other_entries = (entries if other.gpus_per_server == cluster.gpus_per_server
                             else _layout(workload, parallel, other.gpus_per_server, comms)[0])
            if not _same_prices(table, other_entries, cost_model_for(other)):
                continue  # some price differs: the what-if can change the answer
        reason: str | None = None
        if not any_comm:
            reason = ("this job runs no collective and no pipeline send that costs time "
                      "(every group has one GPU, or the sizes are 0)")
        elif field in _NIC_FIELDS and not crosses_servers:
            reason = (f"every group and pipeline send of this job stays inside one server "
                      f"({parallel.world} GPUs, {gps} per server), so no traffic uses the NICs")
        elif field in _NVLINK_FIELDS and not shares_a_server:
            reason = ("no group of this job has two GPUs in one server, so no traffic uses "
                      "NVLink")
        elif not structural_only:
            ref = _show(field, getattr(reference, field))
            if field == "gpus_per_server":
                reason = (f"every group of this job sits on its servers the same way with "
                          f"{ref} GPUs per server (the default)")
            else:
                reason = (f"no collective or pipeline send of this job costs a different "
                          f"time than with the default {ref}")
        if reason:
            name = (names or FLAGS).get(field, FLAGS[field])
            messages.append(f"{name} {_show(field, value)} cannot change the answer: "
                            f"{reason}")
    return messages
