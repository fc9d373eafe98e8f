"""The collective operations in one table: each one's names and its nccl-tests factors.

One row per operation holds every name it goes by (the workload word of :class:`Op`, the
canonical name that measurements, calibration, topology YAML and ``collsim bench`` use, the
nccl-tests binary stem, the spellings readers accept) and the bus-bandwidth factor of
nccl-tests (``busbw = algbw x factor``: 2(n-1)/n for all-reduce, (n-1)/n for all-gather,
reduce-scatter and all-to-all, 1 for broadcast and send/recv). With ``size_bytes`` in the
nccl-tests convention (the full buffer per rank), ``factor x size_bytes`` is also the bytes one
rank puts on its link in the ring / direct algorithm: the wire bytes. Every module that needs
an operation's name in another vocabulary or its factor looks it up here.
"""
from __future__ import annotations

from .records import record
from .workload import Op


@record(frozen=True)
class Collective:
    """One collective operation and everything that names or scales it."""

    name: str                 # canonical: measurements, calibration, topology YAML, bench
    op: Op | None             # the workload word; None: not written in workload tables
    nccl_tests: str | None    # nccl-tests binary stem (``{stem}_perf``); None: no such binary
    aliases: tuple[str, ...]  # other spellings readers accept (lower case, underscores)
    bus: str                  # bus factor kind: "ring_reduce" 2(n-1)/n, "ring" (n-1)/n, "one" 1
    uneven: bool = False      # an uneven all-to-all: the factor is the remote share given

    def bus_factor(self, ranks: int, share_remote: float | None = None) -> float:
        """nccl-tests' bus-bandwidth factor on ``ranks`` ranks (busbw = algbw x factor)."""
        n = ranks
        if self.uneven and share_remote is not None:
            return share_remote
        if self.bus == "ring_reduce":
            return 2.0 * (n - 1) / n
        if self.bus == "ring":
            return (n - 1) / n
        return 1.0

    def wire_bytes(self, ranks: int, size_bytes: float,
                   share_remote: float | None = None) -> float:
        """Bytes one rank sends over its link: the bus factor times the buffer."""
        return self.bus_factor(ranks, share_remote) * size_bytes


#: every collective, in the order reports and help texts list them
COLLECTIVES: tuple[Collective, ...] = (
    Collective("all_reduce", Op.ALLREDUCE, "all_reduce", ("allreduce",), "ring_reduce"),
    Collective("all_gather", Op.ALLGATHER, "all_gather", ("allgather",), "ring"),
    Collective("reduce_scatter", Op.REDUCESCATTER, "reduce_scatter", ("reducescatter",),
               "ring"),
    Collective("all_to_all", Op.ALLTOALL, "alltoall", ("alltoall", "a2a"), "ring"),
    Collective("broadcast", Op.BROADCAST, "broadcast", ("bcast",), "one"),
    Collective("sendrecv", Op.SENDRECV, "sendrecv", ("send_recv", "p2p"), "one"),
    # an all-to-all whose remote share is given (MoE token dispatch); priced as ALLTOALL
    Collective("moe_all_to_all", None, None, ("moe_alltoall", "moe_a2a"), "ring", uneven=True),
)

BY_NAME: dict[str, Collective] = {c.name: c for c in COLLECTIVES}
BY_OP: dict[Op, Collective] = {c.op: c for c in COLLECTIVES if c.op is not None}

#: canonical names of the operations a workload row or the engine can issue
ENGINE_NAMES: tuple[str, ...] = tuple(c.name for c in COLLECTIVES if c.op is not None)
#: workload word -> canonical name (``Op.ALLREDUCE`` -> ``"all_reduce"``)
OP_NAMES: dict[Op, str] = {op: c.name for op, c in BY_OP.items()}
#: the stems a nccl-tests reader accepts (the binary's, the canonical name, and the
#: canonical name without underscores) -> canonical name
NCCL_TESTS_STEMS: dict[str, str] = {
    stem: c.name for c in COLLECTIVES if c.nccl_tests
    for stem in dict.fromkeys((c.name, c.name.replace("_", ""), c.nccl_tests))}


def by_name(name: str) -> Collective | None:
    """The collective a user's spelling names (case, dashes and aliases folded), or None."""
    key = name.strip().lower().replace("-", "_")
    if key in BY_NAME:
        return BY_NAME[key]
    for c in COLLECTIVES:
        if key in c.aliases:
            return c
    return None


def of_type_word(word: str) -> Collective | None:
    """The collective of a workload type word with its group suffix (``ALLTOALL_EP``)."""
    base = word.upper()
    for suffix in ("_DP_EP", "_EP"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return next((c for c in COLLECTIVES if c.op is not None and c.op.value == base), None)
