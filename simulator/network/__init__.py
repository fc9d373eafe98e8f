"""Network components shared by engines: flow-level, max-min fair link sharing."""
from __future__ import annotations

__all__ = ["Flow", "FlowNetwork"]


def __getattr__(name: str):
    # lazily: the engine imports .links on every run, the flow solver (simpy) only when a
    # run shares links
    if name in __all__:
        from . import flows
        return getattr(flows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
