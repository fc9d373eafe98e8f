"""Names of the links flows load: a NIC, a rank class's NVLink, or a class of fabric links.

A flow (:mod:`.flows`) loads links by these ids; the engine's contention model names NICs and
NVLinks itself, the fabric (:mod:`.fabric`) names classes of equally loaded topology links.
"""
from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class LinkKind(Enum):
    NIC = "nic"          # a physical NIC: (server, NIC index in the server)
    NVLINK = "nvlink"    # one rank class's NVLink: (job, global class id)
    FABRIC = "fabric"    # a class of topology links that every flow loads alike: (class, 0)

    # members are singletons: hash by identity in C (Enum's own __hash__ is Python code, and
    # link ids are hashed on every flow re-solve)
    __hash__ = object.__hash__


class Link(NamedTuple):
    kind: LinkKind
    first: int           # server / job / link class
    second: int = 0      # NIC index / class id / 0


class LinkShare(NamedTuple):
    """The link a rank class's traffic of one kind loads, and how much of it (the share of
    the link's GPUs that belong to the class)."""

    link: Link
    share: float
