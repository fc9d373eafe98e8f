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

from .cluster import ClusterOptions, CostModelOptions
from .generate import GenerateOptions
from .loader import from_mapping, load_options
from .scenario import ScenarioOptions
from .schema import describe, option
from .sweep import SweepPoint

__all__ = ["ClusterOptions", "CostModelOptions", "GenerateOptions", "ScenarioOptions",
           "SweepPoint", "describe", "from_mapping", "load_options", "option"]
