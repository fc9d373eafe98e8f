"""Cost models: the price of one collective on a group of ranks placed on the cluster."""
from .base import CostModel
from .analytical import AnalyticalCostModel

__all__ = ["CostModel", "AnalyticalCostModel"]
