"""The interface between the engine and any communication cost model.

The engine only ever calls :meth:`CostModel.collective_ns`. A model implements
:meth:`CostModel.price_ns` for the primitive operations; this base class adds what every model
shares: a group of one rank or zero bytes is free, ASTRA-sim's ``ALLREDUCEALLTOALL`` is an
all-reduce followed by an all-to-all, and prices are memoized by (op, bytes, placement) so
thousands of identical rows cost one evaluation.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from ..parallel import GroupPlacement
from ..workload import Op

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from ..topology import Topology


class CostModel(ABC):
    """Prices collectives. Sizes follow nccl-tests (the full buffer per rank)."""

    #: a short name for reports
    name: str = "cost-model"

    # -- capabilities: what the engine may ask of a model beyond prices (read, never sniffed)
    #: it prices collectives by routing them over a topology graph, so the engine can replay
    #: them as flows over that graph's links (the model then has ``topology_for``,
    #: ``estimate`` and ``group_loads``)
    routes_over_topology: bool = False
    #: jobs sharing one cluster meet on its NICs under this model (per-class NIC links for a
    #: model that knows the cluster's NICs, the fabric's links for a topology)
    shares_nics: bool = False
    #: overlapping transfers share links unless told otherwise (``contention`` None): the
    #: NCCL model on a topology the user named; off for an implied preset and the simai model
    shares_links_by_default: bool = False

    def fixed_gpus(self) -> int | None:
        """GPUs of a topology with a fixed server count, or None (the model scales to any)."""
        return None

    def __init__(self) -> None:
        # keyed (op, bytes, placement, ...): a model may key by more (NCCL adds the ranks)
        self._memo: dict[tuple, int] = {}

    @abstractmethod
    def price_ns(self, op: Op, size_bytes: int, placement: GroupPlacement) -> float:
        """Time of one primitive collective (never ALLREDUCEALLTOALL) on >= 2 ranks."""

    def describe(self) -> dict:
        """Parameters for reports (JSON-serialisable)."""
        return {"name": self.name}

    def degraded(self, nic_factor: float, extra_nic_latency_ns: int) -> CostModel:
        """The same model with slower scale-out NICs (a degraded NIC, cable or switch port)."""
        from ..errors import InputError
        raise InputError(f"the {self.name} cost model cannot degrade links", field="degrades")

    def collective_ns(self, op: Op, size_bytes: int, placement: GroupPlacement) -> int:
        if placement.size <= 1 or size_bytes <= 0:
            return 0
        key = (op, size_bytes, placement)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if op is Op.ALLREDUCEALLTOALL:
            ns = (self.collective_ns(Op.ALLREDUCE, size_bytes, placement)
                  + self.collective_ns(Op.ALLTOALL, size_bytes, placement))
        else:
            ns = max(0, round(self.price_ns(op, size_bytes, placement)))
        self._memo[key] = ns
        return ns


def uses_fabric(cost_model: CostModel) -> TypeGuard[RoutesOverTopology]:
    """Whether the cost model routes over a topology graph (the NCCL model)."""
    return cost_model.routes_over_topology


if TYPE_CHECKING:  # only for mypy (uses_fabric narrows to it)
    from typing import Protocol, TypeGuard

    class RoutesOverTopology(Protocol):
        """What a model with ``routes_over_topology`` offers the engine besides prices (the
        engine's ``uses_fabric`` narrows a model to it)."""

        def topology_for(self, gpus: int) -> Topology:
            ...

        def with_degraded_uplinks(self, uplinks) -> CostModel:
            """The model pricing each collective with those leaf uplinks slower."""
            ...
