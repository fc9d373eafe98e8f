"""The typed configuration layer: every option a user sets, as frozen dataclasses.

- :mod:`.schema`: :func:`option` declares a field with its help, unit and kind (metadata);
- :mod:`.cluster`: :class:`ClusterOptions`, :class:`CostModelOptions`;
- :mod:`.generate`: :class:`GenerateOptions` (model, parallelism, features, overrides);
- :mod:`.sweep`: :class:`SweepPoint` (a sweep spec's keys);
- :mod:`.scenario`: :class:`ScenarioOptions` (stragglers, degrades, failure, jitter, co-jobs);
- :mod:`.loader`: the one loader, YAML mapping -> options, errors naming file, line and key;
- :mod:`.flags`: the one table of option key -> command-line flag, used by the CLI only.

Data flows one way: the CLI (``commands/common.py``) or the loader builds options; the
library takes options and never sees argparse.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from .cluster import ClusterOptions, CostModelOptions
    from .generate import GenerateOptions
    from .loader import from_mapping, load_options
    from .scenario import ScenarioOptions
    from .schema import describe, option
    from .sweep import SweepPoint

# each name loads its own module on first use: a plain simulate needs the cluster and
# scenario options, not the generate and sweep ones (whose dataclasses cost milliseconds
# to create at import)
_HOME = {"ClusterOptions": "cluster", "CostModelOptions": "cluster",
         "GenerateOptions": "generate", "ScenarioOptions": "scenario", "SweepPoint": "sweep",
         "describe": "schema", "option": "schema", "from_mapping": "loader",
         "load_options": "loader"}


def __getattr__(name: str):
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = ["ClusterOptions", "CostModelOptions", "GenerateOptions", "ScenarioOptions",
           "SweepPoint", "describe", "from_mapping", "load_options", "option"]
