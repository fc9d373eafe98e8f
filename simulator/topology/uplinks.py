"""The links between a pod's leaf and the spine, named by ``--degrade leaf=P[,rail=R]``
(one list for the fabric engine and the cost model, with the errors a user sees)."""
from __future__ import annotations

from ..errors import InputError


def uplink_links(topo, pod: int, rail: int | None) -> list[tuple[str, str]]:
    """Directed link ids, both ways, between pod ``pod``'s leaf (on a rail-optimized fabric
    rail ``rail``'s, or every rail's when None) and the spine: the aggregate link under
    ``ecmp: ideal``, every uplink under ``hash``."""
    fab = topo.spec.fabric
    pods = getattr(topo, "pods", 1)
    if fab is None or topo.spec.nics is None or pods <= 1:
        raise InputError(f"leaf={pod}: the topology's {topo.servers} servers sit "
                         "under one leaf (no uplinks to a spine)" if fab is not None else
                         f"leaf={pod}: the topology has no fabric", field="degrades")
    if not 0 <= pod < pods:
        raise InputError(f"leaf={pod}: the fabric has leaves (pods) 0-{pods - 1}",
                         field="degrades")
    rails = topo.rails if fab.type == "rail-optimized" else 1
    if rail is not None and (fab.type != "rail-optimized" or not 0 <= rail < rails):
        raise InputError(f"rail={rail}: " + (
            f"the fabric's rails are 0-{rails - 1}" if fab.type == "rail-optimized"
            else "a fat tree has one leaf per pod (no rails)"), field="degrades")
    spines = ["spine"] if fab.ecmp == "ideal" else [f"spine{j}" for j in range(topo.uplinks)]
    out = []
    for r in (range(rails) if rail is None else (rail,)):
        leaf = topo.leaf_name(pod, r)
        for spine in spines:
            out += [(leaf, spine), (spine, leaf)]
    return out
