"""What makes one rank differ from the others of its stage: its compute and its NIC.

Ranks with equal attributes (and equal neighbourhoods, see :mod:`.classes`) form one rank
class; the row-level engine and the class replay build them from the same attributes.
"""
from __future__ import annotations


from ..errors import InputError
from ..records import record, replace


@record(frozen=True)
class RankAttributes:
    """Per-rank deviations; None: as every other rank (a given 1.0 still makes its own class)."""

    compute: float | None = None         # compute times x this (a straggler)
    nic: float | None = None             # NIC bandwidth x this (a degraded NIC)
    nic_latency_ns: int | None = None    # extra latency per NIC hop

    @property
    def compute_factor(self) -> float:
        return 1.0 if self.compute is None else self.compute

    @property
    def nic_factor(self) -> float:
        return 1.0 if self.nic is None else self.nic

    @property
    def extra_nic_latency_ns(self) -> int:
        return 0 if self.nic_latency_ns is None else self.nic_latency_ns

    def given(self) -> tuple[tuple[str, float], ...]:
        """The attributes that were set, in field order (how reports name a class)."""
        return tuple((k, v) for k, v in (("compute", self.compute), ("nic", self.nic),
                                         ("nic_latency_ns", self.nic_latency_ns))
                     if v is not None)


def rank_attributes(world: int, stragglers, degraded) -> dict[int, RankAttributes]:
    """Attributes of the ranks that differ: stragglers (rank, compute factor) and degraded
    NICs (rank, bandwidth factor, extra latency ns)."""
    out: dict[int, RankAttributes] = {}
    for rank, factor in stragglers:
        if not 0 <= rank < world:
            raise InputError(f"rank {rank} is outside the job's {world} ranks",
                             field="stragglers")
        out[rank] = replace(out.get(rank, RankAttributes()), compute=float(factor))
    for rank, nic_factor, extra_ns in degraded:
        if not 0 <= rank < world:
            raise InputError(f"rank {rank} is outside the job's {world} ranks",
                             field="degrades")
        out[rank] = replace(out.get(rank, RankAttributes()), nic=float(nic_factor),
                            nic_latency_ns=int(extra_ns))
    return out
