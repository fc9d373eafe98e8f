"""Cluster and cost-model options: what ``collsim simulate/bench`` flags and sweep keys set.

``None`` everywhere means "not asked": the cluster default (:class:`~simulator.cluster.Cluster`)
or the topology's own value. Bandwidths are GB/s (10^9 B/s) inside, latencies ns.
"""
from __future__ import annotations

from ..records import fields, record
from .schema import option


def _cost_models() -> tuple[str, ...]:
    from ..costmodel.registry import COST_MODELS
    return tuple(COST_MODELS)


@record(frozen=True)
class ClusterOptions:
    """The cluster as the user described it (each unset option keeps the preset's value)."""

    gpus_per_server: int | None = option(
        None, "GPUs in one scale-up (NVLink) domain", "GPUs", "int?")
    nvlink_bw: float | None = option(
        None, "NVLink bandwidth per GPU per direction (a unit, or a bare number in GB/s)",
        "GB/s", "bw?")
    nic_bw: float | None = option(
        None, "bandwidth of one NIC per direction (a unit, or a bare number in GB/s)",
        "GB/s", "bw?")
    nics_per_server: int | None = option(None, "scale-out NICs per server", "NICs", "int?")
    base_latency_ns: int | None = option(
        None, "fixed cost of one collective call (with a topology: the framework's floor "
        "per call)", "ns", "latency?")
    topology: str | None = option(
        None, "a topology preset (NAME or NAME:GPUS) or a topology YAML file", "", "str?")
    fabric: str | None = option(
        None, "the topology's scale-out fabric: rail-optimized or fat-tree", "", "str?",
        choices=("rail-optimized", "fat-tree"))
    oversubscription: float | None = option(
        None, "leaf downlink:uplink bandwidth (1 = non-blocking)", "ratio", "float?",
        lo=1, hi=1e6)
    servers_per_leaf: int | None = option(
        None, "servers under one leaf (per rail when rail-optimized)", "servers", "int?")
    ecmp: str | None = option(
        None, "paths over the spine: ideal, hash or hash:SEED", "", "str?")

    def asked(self) -> dict[str, object]:
        """The options given (not None), by key."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


@record(frozen=True)
class CostModelOptions:
    """How collectives are priced: the cost model, a calibration, NCCL algorithm and protocol."""

    cost_model: str | None = option(
        None, "how a collective is priced (see simulator.costmodel.registry); default: nccl "
        "on a topology, else simai", "", "str?", choices=_cost_models)
    calibration: str | None = option(
        None, "a calibration YAML written by 'collsim calibrate'", "", "str?")
    algorithm: str | None = option(
        None, "force one NCCL algorithm (nccl cost model)", "", "str?")
    protocol: str | None = option(
        None, "force one NCCL protocol (nccl cost model)", "", "str?")
