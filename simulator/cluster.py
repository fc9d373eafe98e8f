"""A cluster of identical servers: the first, simple cluster description.

Servers of ``gpus_per_server`` GPUs joined by a scale-up domain (NVLink/NVSwitch) and
``nics_per_server`` NICs on a non-blocking scale-out fabric. Bandwidths are per GPU (NVLink)
or per NIC, per direction, in GB/s (10^9 bytes/s); latencies are integer nanoseconds.
Defaults describe an 8-GPU H100/H200 SXM server with eight 400 Gbit/s NICs.
"""
from __future__ import annotations


from .errors import InputError
from .records import fields, record, replace


@record(frozen=True)
class Cluster:
    """The cluster as the cost model sees it: scale-up domain, NICs, bandwidths (GB/s), latency."""

    name: str = "h100-8x400g"
    gpus_per_server: int = 8
    nvlink_gbps: float = 450.0       # NVLink 4, 18 links: line rate per GPU per direction
    nic_gbps: float = 50.0           # 400 Gbit/s InfiniBand NDR / CX7
    nics_per_server: int = 8
    # Share of the line rate a collective achieves at large sizes. NVLink: ring busbw about
    # 370 of 450 GB/s on H100/H200; NIC: 48-49 of 50 GB/s (docs/cost-models.md).
    nvlink_efficiency: float = 0.82
    nic_efficiency: float = 0.97
    # Fixed cost of one collective call (kernel launch, NCCL set-up, framework dispatch) and
    # the latency each algorithm step adds inside a server and across servers.
    base_latency_ns: int = 10_000
    nvlink_hop_ns: int = 1_000
    nic_hop_ns: int = 3_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                continue
            if f.name in ("gpus_per_server", "nics_per_server") and (
                    not isinstance(value, int) or value < 1):
                raise InputError(f"must be a whole number >= 1, got {value!r}", field=f.name)
            if f.name.endswith("_gbps") and not value > 0:
                raise InputError(f"bandwidth must be positive (GB/s), got {value!r}", field=f.name)
            if f.name.endswith("_efficiency") and not 0 < value <= 1:
                raise InputError(f"must be in (0, 1], got {value!r}", field=f.name)
            if f.name.endswith("_ns") and value < 0:
                raise InputError(f"latency must not be negative, got {value!r}", field=f.name)

    @property
    def nic_gbps_per_gpu(self) -> float:
        """Scale-out bandwidth one GPU gets when every GPU of its server sends at once."""
        return self.nic_gbps * self.nics_per_server / self.gpus_per_server

    def with_overrides(self, **kwargs) -> Cluster:
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})
