"""One kernel's worth of an NCCL algorithm's transfers (shared by the planners)."""
from __future__ import annotations

from collections import defaultdict

from ..records import field, record


@record
class Phase:
    """One kernel's worth of transfers: bytes per directed link and the latency it chains."""

    family: str                                   # ring | tree | p2p (latency tables), or
    #                                               an algorithm with its own fixed latency
    loads: dict = field(default_factory=lambda: defaultdict(float))
    nvlink_hops: float = 0.0
    net_hops: float = 0.0
    wire_ns: float = 0.0                          # physical link latencies along the chain
    nvlink_efficiency: float | None = None        # NVLink pace when not the operation's
    busiest: dict = field(default_factory=dict)   # (op, ranks) -> slowest link (cache)
    # latency of an algorithm the preset has no table for (NCCL's own formula), ns
    fixed_latency_ns: float | None = None
    # share of the links' pace the algorithm's kernels reach (NCCL's tuner factor)
    kernel_share: float = 1.0
    # algorithm bandwidth the kernels cannot exceed, bytes/ns (= GB/s); None: no cap
    algbw_cap: float | None = None

    def add(self, path, nbytes: float) -> None:
        for link in path:
            self.loads[link] += nbytes
