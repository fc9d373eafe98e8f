"""Network components shared by engines: flow-level, max-min fair link sharing."""
from .flows import Flow, FlowNetwork

__all__ = ["Flow", "FlowNetwork"]
