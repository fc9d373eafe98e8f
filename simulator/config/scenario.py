"""What-ifs that make ranks differ, as typed options: stragglers, degraded NICs, a failure,
compute jitter, co-located jobs. Each spec keeps the text the user wrote (``rank=17,
compute=1.3``); :mod:`simulator.scenario` parses it, naming the key in its errors."""
from __future__ import annotations

from ..records import record
from .schema import option


@record(frozen=True)
class ScenarioOptions:
    """The what-ifs that make ranks differ, as the user wrote them."""

    stragglers: tuple[str, ...] = option(
        (), "slow GPUs: 'rank=17,compute=1.3', 'ranks=0-7,compute=1.1' or "
        "'fraction=0.01,compute=1.2,seed=7'", "compute-time factor", "strs")
    jitter: str | None = option(
        None, "random compute times: 'cv=0.05,seed=3' or 'fwd=0.05,ig=0.1,wg=0.02'",
        "coefficient of variation", "str?")
    degrades: tuple[str, ...] = option(
        (), "slower NICs: 'server=3,nic=0.5' or 'rank=17,nic=0.25,latency=5us'; slower "
        "leaf uplinks of the fabric: 'leaf=2,uplink=0.5[,rail=R]'",
        "bandwidth factor", "strs")
    failure: str | None = option(
        None, "a node fails: 'at=120ms,restart=300s[,lost-iterations=N]'", "", "str?")
    co_jobs: tuple[str, ...] = option((), "other workload tables on the same cluster", "",
                                      "strs")
    placement: str | None = option(None, "co-job placement: packed, spread or rail", "",
                                   "str?", choices=("packed", "spread", "rail"))
    draws: int = option(1, "random draws of the stragglers and jitter", "draws", "int")
    sensitivity: bool = option(False, "re-simulate with each group's communication 10% "
                               "faster", "", "bool")
    contention: bool | None = option(None, "overlapping transfers share links", "", "bool?")
