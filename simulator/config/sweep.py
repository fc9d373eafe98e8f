"""A sweep point: the workload's options, the cluster's and the cost model's, as sweep keys.

The keys of a sweep spec are this dataclass's fields (``simulator/sweep/spec.py`` reads
them through the one loader); a new sweep key is a new field here (and, where it changes
the workload, in :class:`~simulator.config.generate.GenerateOptions`).
"""
from __future__ import annotations

import os

from .cluster import ClusterOptions, CostModelOptions, _cost_models
from .generate import GenerateOptions
from ..records import fields, record
from .schema import option


@record(frozen=True)
class SweepPoint(GenerateOptions):
    """One sweep point: the workload's keys and the cluster's and cost model's."""

    # cluster (None: the Cluster default)
    gpus_per_server: int | None = option(None, "GPUs in one scale-up (NVLink) domain", "GPUs",
                                         "int?")
    nvlink_bw: float | None = option(
        None, "NVLink per GPU per direction: 450GB/s, 3600Gbit/s, or GB/s", "GB/s", "bw?")
    nic_bw: float | None = option(
        None, "one NIC per direction: 400Gbit/s, 50GB/s, or GB/s", "GB/s", "bw?")
    nics_per_server: int | None = option(None, "scale-out NICs per server", "NICs", "int?")
    base_latency_us: float | None = option(None, "fixed cost of one collective call", "us",
                                           "float?")
    # cost model: a topology preset or YAML file (NCCL algorithms), a calibration file
    topology: str | None = option(None, "a topology preset or YAML file (relative to the "
                                  "spec)", "", "str?")
    cost_model: str | None = option(None, "nccl or simai, as --cost-model", "", "str?",
                                    choices=_cost_models)
    calibration: str | None = option(None, "a calibration YAML (relative to the spec)", "",
                                     "str?")
    # simulation
    pp_schedule: str | None = option(None, "1f1b, interleaved or gpipe (default: interleaved "
                                     "with vpp > 1, else 1f1b)", "", "str?")

    @classmethod
    def from_point(cls, point: dict) -> SweepPoint:
        return cls(**{k: v for k, v in point.items() if k in _NAMES})

    def generate_options(self) -> GenerateOptions:
        return GenerateOptions(**{f.name: getattr(self, f.name)
                                  for f in fields(GenerateOptions)})

    def _local(self, name: str | None, base_dir: str) -> str | None:
        """A YAML file named in the spec is relative to the spec; a preset name stays."""
        if name and name.endswith((".yaml", ".yml")) and not os.path.isabs(name):
            return os.path.join(base_dir, name)
        return name

    def cluster_options(self, base_dir: str = ".") -> ClusterOptions:
        us = self.base_latency_us
        return ClusterOptions(
            gpus_per_server=self.gpus_per_server, nvlink_bw=self.nvlink_bw,
            nic_bw=self.nic_bw, nics_per_server=self.nics_per_server,
            base_latency_ns=None if us is None else round(us * 1000),
            topology=self._local(self.topology, base_dir))

    def cost_model_options(self, base_dir: str = ".") -> CostModelOptions:
        return CostModelOptions(cost_model=self.cost_model,
                                calibration=self._local(self.calibration, base_dir))


_NAMES = frozenset(f.name for f in fields(SweepPoint))
