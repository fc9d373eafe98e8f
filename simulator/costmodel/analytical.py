"""Alpha-beta costs of ring, direct all-to-all and point-to-point on a cluster of servers.

time = base latency + steps x per-step latency + bytes on the busiest link / bandwidth.
Ring all-reduce moves 2(n-1)/n of the buffer through every rank, all-gather and
reduce-scatter (n-1)/n, a pipelined broadcast the whole buffer (docs/cost-models.md).
Inside one server the ring runs on NVLink. Across servers every ring enters and leaves each
server once; NCCL runs one ring per NIC, so the group's rings share the NICs of the group's
members on that server, and the ring bandwidth is the smaller of NVLink and that NIC share.
All-to-all sends each peer its 1/n share directly: the share bound for the same server goes
over NVLink, the rest over the GPU's own share of the NICs (NCCL cannot aggregate NICs
for all-to-all), both at once.
"""
from __future__ import annotations

from ..cluster import Cluster
from ..parallel import GroupPlacement
from ..workload import Op
from .base import CostModel



class AnalyticalCostModel(CostModel):
    name = "analytical"
    shares_nics = True     # each rank class loads its server's NIC (engine contention links)

    def __init__(self, cluster: Cluster) -> None:
        super().__init__()
        self.cluster = cluster

    def describe(self) -> dict:
        c = self.cluster
        return {"name": self.name, "cluster": c.name, "gpus_per_server": c.gpus_per_server,
                "nvlink_GB_per_s": c.nvlink_gbps, "nic_GB_per_s": c.nic_gbps,
                "nics_per_server": c.nics_per_server}

    def degraded(self, nic_factor: float, extra_nic_latency_ns: int) -> AnalyticalCostModel:
        c = self.cluster
        return AnalyticalCostModel(c.with_overrides(
            name=f"{c.name} (NIC x{nic_factor:g})", nic_gbps=c.nic_gbps * nic_factor,
            nic_hop_ns=c.nic_hop_ns + extra_nic_latency_ns))

    # bandwidths in bytes per nanosecond (== GB/s)
    def nvlink_bw(self) -> float:
        return self.cluster.nvlink_gbps * self.cluster.nvlink_efficiency

    def nic_bw_per_gpu(self) -> float:
        return self.cluster.nic_gbps_per_gpu * self.cluster.nic_efficiency

    def ring_bw(self, p: GroupPlacement) -> float:
        if p.intra_server:
            return self.nvlink_bw()
        if p.max_per_server == 1:
            return self.nic_bw_per_gpu()  # one member per server: no NVLink hop in the ring
        return min(self.nvlink_bw(), self.nic_bw_per_gpu() * p.max_per_server)

    def hop_ns(self, p: GroupPlacement) -> int:
        return self.cluster.nvlink_hop_ns if p.intra_server else self.cluster.nic_hop_ns

    def price_ns(self, op: Op, size_bytes: int, p: GroupPlacement) -> float:
        n = p.size
        base = self.cluster.base_latency_ns
        hop = self.hop_ns(p)
        if op is Op.ALLREDUCE:
            return base + 2 * (n - 1) * hop + 2 * (n - 1) / n * size_bytes / self.ring_bw(p)
        if op in (Op.ALLGATHER, Op.REDUCESCATTER):
            return base + (n - 1) * hop + (n - 1) / n * size_bytes / self.ring_bw(p)
        if op is Op.BROADCAST:
            return base + (n - 1) * hop + size_bytes / self.ring_bw(p)
        if op is Op.ALLTOALL:
            local_peers = p.max_per_server - 1
            remote_peers = n - p.max_per_server
            t_local = local_peers / n * size_bytes / self.nvlink_bw()
            t_remote = (remote_peers / n * size_bytes / self.nic_bw_per_gpu() if remote_peers
                        else 0.0)
            return base + hop + max(t_local, t_remote)
        if op is Op.SENDRECV:
            bw = self.nvlink_bw() if p.intra_server else self.nic_bw_per_gpu()
            return base + hop + size_bytes / bw
        raise ValueError(f"no price for {op}")
