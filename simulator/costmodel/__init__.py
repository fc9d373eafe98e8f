"""Cost models: the price of one collective on a group of ranks placed on the cluster."""
from .base import CostModel

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from .analytical import AnalyticalCostModel


def __getattr__(name: str):
    # the analytical model loads on first use: a run priced by the nccl model never makes it
    if name != "AnalyticalCostModel":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .analytical import AnalyticalCostModel
    globals()[name] = AnalyticalCostModel
    return AnalyticalCostModel


__all__ = ["CostModel", "AnalyticalCostModel"]
