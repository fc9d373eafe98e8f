"""The workload table as plain data: what a SimAI/AICB text workload says, nothing simulated.

See ``docs/workload-format.md`` for the file format. Readers build these objects; the engine
consumes them. All times are integer nanoseconds and all sizes integer bytes.
"""
from __future__ import annotations

from .records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:   # mypy checks the classes as the Enums they behave as
    from enum import Enum as Names
else:               # the enum module and its classes are 1/20 of a small run's instructions
    from .names import Names


class Group(str, Names):
    """The communicator a collective runs on."""

    TP = "TP"
    EP = "EP"
    DP = "DP"
    DP_EP = "DP_EP"
    PP = "PP"

    def __str__(self) -> str:  # print "TP", not "Group.TP"
        return self.value


#: groups whose collectives appear in workload rows (PP traffic comes from ``pp_comm``)
ROW_GROUPS = (Group.TP, Group.EP, Group.DP, Group.DP_EP)


class Op(str, Names):
    """Collective operations, named as in the workload format."""

    ALLREDUCE = "ALLREDUCE"
    ALLGATHER = "ALLGATHER"
    REDUCESCATTER = "REDUCESCATTER"
    ALLTOALL = "ALLTOALL"
    BROADCAST = "BROADCAST"
    ALLREDUCEALLTOALL = "ALLREDUCEALLTOALL"  # ASTRA-sim 1.0: an all-reduce, then an all-to-all
    SENDRECV = "SENDRECV"  # point-to-point; pipeline sends, never written in rows

    def __str__(self) -> str:
        return self.value


class Phase(str, Names):
    FWD = "fwd"
    IG = "ig"
    WG = "wg"


POLICIES = frozenset({
    "HYBRID_TRANSFORMER_FWD_IN_BCKWD", "HYBRID_TRANSFORMER", "DATA", "MODEL", "MICRO",
    "HYBRID_DATA_MODEL", "HYBRID_MODEL_DATA", "HYBRID_CUSTOMIZED", "HYBRID_DLRM",
    "HYBRID_DLRM_ENHANCED", "DISTRIBUTED_INFERENCE",
})


@record(frozen=True, slots=True)
class Comm:
    """One collective issued after a compute phase; ``op is None`` means NONE."""

    op: Op | None
    group: Group | None
    size_bytes: int

    def type_name(self) -> str:
        """The type as written in a workload file (``ALLTOALL_EP``, ``NONE``, ...)."""
        if self.op is None:
            return "NONE"
        if self.group in (Group.EP, Group.DP_EP):
            return f"{self.op.value}_{self.group.value}"
        return self.op.value


NO_COMM = Comm(None, None, 0)


@record(frozen=True, slots=True)
class Row:
    """One line of the table: a layer's three compute phases and the collective after each."""

    name: str
    fwd_ns: int
    fwd: Comm
    ig_ns: int
    ig: Comm
    wg_ns: int
    wg: Comm
    update_ns: int
    line: int = 0  # line number in the source file, for messages
    policy: str = ""  # HYBRID_CUSTOMIZED: the row's own policy (its 13th field)

    def comm(self, phase: Phase) -> Comm:
        return self.fwd if phase is Phase.FWD else self.ig if phase is Phase.IG else self.wg

    def compute_ns(self, phase: Phase) -> int:
        return (self.fwd_ns if phase is Phase.FWD else self.ig_ns if phase is Phase.IG
                else self.wg_ns)


@record(frozen=True)
class Workload:
    """A parsed workload table. ``all_gpus`` is None when the header does not give it."""

    path: str
    policy: str
    tp: int = 1
    ep: int = 1
    pp: int = 1
    vpp: int = 1
    ga: int = 1
    all_gpus: int | None = None
    checkpoints: tuple[int, ...] = ()
    checkpoint_initiates: tuple[int, ...] = ()
    pp_comm_bytes: int = 0
    declared_rows: int = 0
    rows: tuple[Row, ...] = field(default_factory=tuple)
    header_fields: tuple[str, ...] = ()  # header keys present in the file, for reports
    dlrm_last_bottom_layer: int | None = None  # HYBRID_DLRM: row index of the last bottom MLP
    mode: str | None = None  # AICB's 'mode:' (training, inference, ...)

    @property
    def inference(self) -> bool:
        """DISTRIBUTED_INFERENCE, or an AICB inference file: forward passes only."""
        if self.policy == "DISTRIBUTED_INFERENCE":
            return True
        # AICB's inference generator writes 'mode: 1' (its training files no mode, or 0)
        m = (self.mode or "").lower()
        return m == "1" or any(w in m for w in ("infer", "prefill", "decode"))

    @property
    def name(self) -> str:
        import os
        return os.path.basename(self.path)



def placeholder_rows(rows: tuple[Row, ...]) -> int:
    """How many rows carry placeholder compute (each of the three times <= 1 ns, as AICB
    writes tables without profiling). The planner and the report's assumptions both ask
    for the same rows tuple: the last answer is kept for it (a tuple of frozen rows).
    (A list comprehension: attribute reads in bytecode are specialised; map over
    attrgetter is 8 times slower here.)"""
    if rows is _LAST_PLACEHOLDERS[0]:
        return _LAST_PLACEHOLDERS[1]
    count = len([r for r in rows if r.fwd_ns <= 1 and r.ig_ns <= 1 and r.wg_ns <= 1])
    if isinstance(rows, tuple):
        _LAST_PLACEHOLDERS[:] = [rows, count]
    return count


_LAST_PLACEHOLDERS: list = [None, 0]
