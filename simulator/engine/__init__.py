"""Replays a workload as events on simpy and returns a
:class:`~simulator.result.SimulationResult`."""
from .simulate import SimulationOptions, simulate

__all__ = ["SimulationOptions", "simulate"]
