"""Topologies: YAML descriptions of servers, NVLink domains, NICs and fabrics (see
docs/topologies.md), read into a networkx graph that cost models route collectives over.

``load_spec("dgx-h100")`` finds a preset in ``topologies/``; ``load_spec("dgx-h100:64")`` asks
for 64 GPUs; ``load_spec("my.yaml")`` reads a file. ``Topology(spec, servers)`` builds the
graph.
"""
from __future__ import annotations

import os

from ..errors import InputError
from .graph import Link, LinkId, Topology, gpu_node
from .spec import TopologySpec, parse_spec
from .yamlsrc import load_located

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

def _preset_dir() -> str:
    """The presets' folder, through the one resource lookup (a checkout's topologies/ or an
    installed copy's <prefix>/share/collsim/topologies); a string, so that a run needs no
    pathlib."""
    from ..resources import bundled_path

    return bundled_path("topologies")


#: where the presets live (PRESET_DIR, a Path, is made on first access)
_PRESETS = _preset_dir()

__all__ = ["Link", "LinkId", "Topology", "TopologySpec", "gpu_node", "load_spec",
           "load_topology", "presets", "PRESET_DIR"]


def __getattr__(name: str) -> Path:
    if name == "PRESET_DIR":
        from pathlib import Path

        return Path(_PRESETS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def presets() -> list[str]:
    """Names of the bundled presets."""
    if not os.path.isdir(_PRESETS):
        return []
    # what Path.glob("*.yaml") and .stem gave
    return sorted(os.path.splitext(n)[0] for n in os.listdir(_PRESETS) if n.endswith(".yaml"))


def read_spec(path: str | os.PathLike) -> TopologySpec:
    from ..readers.source import read_text

    path = os.fspath(path)
    return parse_spec(load_located(read_text(path, "topology"), path))


def load_spec(name: str) -> TopologySpec:
    """A topology from a preset name, ``NAME:GPUS``, or a YAML file (``FILE[:GPUS]``)."""
    text = str(name).strip()
    gpus = None
    base = text
    if not os.path.exists(text) and ":" in text:
        base, _, count = text.rpartition(":")
        try:
            gpus = int(count)
        except ValueError:
            raise InputError(f"expected NAME or NAME:GPUS (e.g. fat-tree-h100:1024), got "
                             f"{text!r}", field="topology") from None
        if gpus < 1:
            raise InputError(f"GPU count must be at least 1, got {gpus}", field="topology")
    if os.path.exists(base) or base.endswith((".yaml", ".yml")) or os.sep in base:
        spec = read_spec(base)
    else:
        path = os.path.join(_PRESETS, f"{base}.yaml")
        if not os.path.exists(path):
            known = ", ".join(presets()) or "none found"
            raise InputError(f"unknown topology {base!r}: not a file and not a preset "
                             f"(presets: {known})", field="topology")
        spec = read_spec(path)
    if gpus is not None:
        gps = spec.gpus_per_server
        if gpus % gps:
            raise InputError(f"{gpus} GPUs do not fill whole servers of {gps} GPUs",
                             field="topology")
        spec = spec.with_servers(gpus // gps)
        Topology(spec)  # check now: reachability, placement
    return spec


def load_topology(name: str, servers: int | None = None) -> Topology:
    spec = load_spec(name)
    return Topology(spec, servers)
