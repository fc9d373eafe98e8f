"""A cost model that prices collectives with a calibration and falls back on a base model.

Collectives whose placement class (inside one server, or across servers) was calibrated are
priced by the calibrated model, also for group sizes other than the measured ones (the
structural terms scale with the group size; the report says so); the others go to the base
model (analytical, NCCL/topology, ...).
"""
from __future__ import annotations

import os

from ..cluster import Cluster
from ..collectives import OP_NAMES
from ..costmodel.base import CostModel
from ..errors import warn
from ..parallel import GroupPlacement
from ..workload import Op
from .fit import Calibration
from .model import INTER, INTRA

#: workload word -> the calibration's operation name
ENGINE_OPS = OP_NAMES


class CalibratedCostModel(CostModel):
    name = "calibrated"

    def __init__(self, calibration: Calibration, base: CostModel | None = None,
                 cluster: Cluster | None = None):
        super().__init__()
        self.calibration = calibration
        self.cluster = cluster
        if base is None:
            from ..costmodel.analytical import AnalyticalCostModel
            base = AnalyticalCostModel(cluster or Cluster())
        self.base = base
        self.calibrated_calls: set[tuple[str, str, int]] = set()
        self.fallback_calls: set[tuple[str, str, int]] = set()

    @staticmethod
    def scope(p: GroupPlacement) -> str:
        return INTRA if p.servers <= 1 else INTER

    def price_ns(self, op: Op, size_bytes: int, p: GroupPlacement) -> float:
        name = ENGINE_OPS.get(op)
        scope = self.scope(p)
        us = None
        if name is not None:
            us = self.calibration.predict_us(name, p.size, size_bytes, None, scope,
                                             p.max_per_server)
        if us is None:
            self.fallback_calls.add((str(op), scope, p.size))
            return float(self.base.collective_ns(op, size_bytes, p))
        self.calibrated_calls.add((str(op), scope, p.size))
        return us * 1e3

    def alltoall_uneven_ns(self, size_bytes: int, p: GroupPlacement,
                           share_remote: float) -> int:
        """An all-to-all in which a share ``share_remote`` of each rank's buffer leaves it."""
        if p.size <= 1 or size_bytes <= 0:
            return 0
        us = self.calibration.predict_us("moe_all_to_all", p.size, size_bytes, share_remote,
                                         self.scope(p), p.max_per_server)
        if us is None:
            return self.collective_ns(Op.ALLTOALL, size_bytes, p)
        return max(0, round(us * 1e3))

    def describe(self) -> dict:
        cal = self.calibration
        classes = {}
        for scope, c in cal.classes.items():
            classes[scope] = {"ranks_measured": list(c.ranks), "ops_measured": list(c.ops),
                              "overhead_us": round(c.overhead_us, 3),
                              "link_GB_per_s": round(c.link_gbps, 2)}
        extrapolated = sorted({f"{op} {scope} n={n}" for op, scope, n in self.calibrated_calls
                               if n not in cal.classes[scope].ranks})
        return {"name": self.name, "calibration": cal.path, "method": cal.method_class,
                "classes": classes, "base": self.base.describe(),
                "priced_by_base": sorted(f"{op} {scope} n={n}"
                                         for op, scope, n in self.fallback_calls),
                "group_sizes_extrapolated": extrapolated}


def load_calibration(path: str | os.PathLike, base: CostModel | None = None,
                     cluster: Cluster | None = None) -> CalibratedCostModel:
    """Read a calibration YAML into a cost model (base: the analytical model by default)."""
    from .yamlio import load

    cal = load(path)
    if cal.method_class == "nccl-tests":
        warn(f"{os.fspath(path)}: calibrated on nccl-tests device times; calls inside a "
             "training framework pay a host dispatch on top (about 2x at small sizes)")
    return CalibratedCostModel(cal, base=base, cluster=cluster)


def wrap_with_calibration(cluster: Cluster, cost_model: CostModel,
                          path: str | os.PathLike) -> CalibratedCostModel:
    """``cost_model`` with the calibrated classes of ``path`` priced by the calibration."""
    return load_calibration(path, base=cost_model, cluster=cluster)
