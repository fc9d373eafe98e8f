"""What each policy word on line 1 means: the passes, collectives and waits of one iteration.

ASTRA-sim 1.0's workload layer (``Workload::iterate_*``, one per policy) and SimAI's fork of
it replay the same table differently per policy: which passes run, which column's collective
each pass issues, on which communicator, blocking or not, and in which order the backward
computes a row's input and weight gradients. :data:`POLICY_RULES` describes that once;
:func:`pass_program` turns one pass of a row sequence into a list of steps, and both engines
(the fast busy-until replay in :mod:`.replay` and the row-level rendezvous in
:mod:`.detailed`) interpret the same steps, so they cannot disagree on policy semantics.
docs/simulate.md has the table with the source lines each entry follows.

Registries: a new policy word is one :class:`PolicyRules` line in :data:`POLICY_RULES`; a new
replay of the words (``--compat``) is one function and one line in :data:`REPLAYS`.

Communicators (``--compat``): ASTRA-sim 1.0 picks the network dimensions from the policy
(DATA: the weight gradient on every dimension; MODEL: forward and input gradient on every
dimension; HYBRID_DATA_MODEL: model on the first dimension, data on the others;
HYBRID_MODEL_DATA the other way round; HYBRID_TRANSFORMER: model on the dimensions that hold
``model_parallel_NPU_group`` GPUs). SimAI names the group in the type word (``_EP``,
``_DP_EP``; else TP in the forward and input-gradient columns, DP in the weight-gradient one)
and sizes it from the header. :func:`layout` maps either onto collsim's groups.
"""
from __future__ import annotations

from ..errors import InputError
from ..records import record, replace
from ..workload import NO_COMM, Comm, Group, Op, Phase, Workload

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any


@record(frozen=True)
class PolicyRules:
    """One policy's replay. Columns are 'fwd', 'ig', 'wg'."""

    name: str
    issues: frozenset           # columns whose collective the policy issues
    ig_blocking: bool           # input-gradient collective blocks; else waited after wg
    skip_row0_ig_comm: bool     # file row 0's input-gradient collective is never issued
    wg_first: bool              # backward computes a row's wg before its ig (row 0: no ig)
    forward_only: bool = False  # no backward pass at all
    checkpoints: bool = False   # checkpoint/recompute lists apply
    dlrm: str = ""              # "", "wait" (HYBRID_DLRM) or "nowait" (..._ENHANCED)
    micro: bool = False         # only the collectives, no compute
    # ASTRA-sim 1.0 dimensions per column: 'model', 'data', 'all' or None
    dims: tuple = ()
    source: str = ""            # the function it follows, for the docs and the report
    # the rows after the pipeline (a generated table's optimizer rows) start only when the
    # data-parallel streams (DP, DP_EP) are idle: Megatron-LM's finalize_model_grads waits for
    # every gradient bucket's reduction before the optimizer step (DeepSpeed's step likewise);
    # off: SimAI's replay, where they overlap whatever reduction is still in flight
    grad_sync: bool = False

    def describe(self) -> str:
        if self.forward_only:
            return "forward only, blocking forward collectives"
        if self.micro:
            return "every row's weight-gradient collective, no compute"
        if self.dlrm:
            return ("forward all-to-all non-blocking, waited at the last bottom layer; "
                    "weight gradient then input gradient per row")
        ig = "blocking" if self.ig_blocking else "non-blocking, waited after the weight gradient"
        cols = "/".join(c for c in ("fwd", "ig", "wg") if c in self.issues)
        order = "wg then ig" if self.wg_first else "ig then wg"
        extra = "; recompute from checkpoints" if self.checkpoints else ""
        return (f"collectives {cols}; backward {order}" +
                (f"; input-gradient collective {ig}" if "ig" in self.issues else "") + extra)


_ALL = frozenset({"fwd", "ig", "wg"})
_MODEL_DATA_FLOW: dict[str, Any] = dict(ig_blocking=False, skip_row0_ig_comm=True,
                                         wg_first=False)

POLICY_RULES: dict[str, PolicyRules] = {r.name: r for r in (
    PolicyRules("DATA", frozenset({"wg"}), False, False, True,
                dims=(None, None, "all"), source="iterate_data_parallel"),
    PolicyRules("MODEL", frozenset({"fwd", "ig"}), **_MODEL_DATA_FLOW,
                dims=("all", "all", None), source="iterate_model_parallel"),
    PolicyRules("HYBRID_DATA_MODEL", _ALL, **_MODEL_DATA_FLOW,
                dims=("model", "model", "data"), source="iterate_hybrid_parallel_data_model"),
    PolicyRules("HYBRID_MODEL_DATA", _ALL, **_MODEL_DATA_FLOW,
                dims=("model", "model", "data"), source="iterate_hybrid_parallel_model_data"),
    PolicyRules("HYBRID_CUSTOMIZED", _ALL, **_MODEL_DATA_FLOW,
                dims=("model", "model", "data"), source="iterate_hybrid_parallel_customized"),
    PolicyRules("HYBRID_TRANSFORMER", _ALL, True, False, False,
                dims=("model", "model", "data"), source="iterate_hybrid_parallel_Transformer"),
    PolicyRules("HYBRID_TRANSFORMER_FWD_IN_BCKWD", _ALL, True, False, False, checkpoints=True,
                dims=("model", "model", "data"),
                source="iterate_hybrid_parallel_Transformer_fwd_in_bckwd"),
    PolicyRules("DISTRIBUTED_INFERENCE", frozenset({"fwd"}), True, False, False,
                forward_only=True, dims=("all", None, None),
                source="iterate_distributed_inference"),
    PolicyRules("HYBRID_DLRM", _ALL, False, False, True, dlrm="wait",
                dims=(None, None, "all"), source="iterate_hybrid_parallel_DLRM"),
    PolicyRules("HYBRID_DLRM_ENHANCED", _ALL, False, False, True, dlrm="nowait",
                dims=(None, None, "all"), source="iterate_hybrid_parallel_DLRM"),
    PolicyRules("MICRO", frozenset({"wg"}), False, False, True, micro=True,
                dims=(None, None, "all"), source="iterate_micro_benchmark"),
)}

#: policies whose per-row 13th field names the row's own policy
ROW_POLICIES = frozenset(POLICY_RULES) - {"HYBRID_CUSTOMIZED", "HYBRID_DLRM",
                                          "HYBRID_DLRM_ENHANCED", "MICRO"}

# SimAI/AICB header keys that ASTRA-sim 1.0 never writes: a file with any is in SimAI's style
# (SimAI's DLRM_LAST_BOTTOM_LAYER: alone does not count: SimAI reads no group size for DLRM)
_SIMAI_KEYS = frozenset({"ep", "pp", "vpp", "ga", "all_gpus", "pp_comm", "mode"})


#: the rules a table built in code without a policy word is replayed with
DEFAULT_POLICY = "HYBRID_TRANSFORMER_FWD_IN_BCKWD"


def rules_for(policy: str = DEFAULT_POLICY) -> PolicyRules:
    return POLICY_RULES[policy]


def header_style(workload: Workload) -> str:
    """'simai' when the header uses SimAI/AICB keys, else 'astra-sim' (ASTRA-sim 1.0 files carry
    the policy word and at most model_parallel_NPU_group and the checkpoint lists)."""
    if set(workload.header_fields) & _SIMAI_KEYS:
        return "simai"
    # a table built in code (no header read): what it sets says which style it is
    if not workload.header_fields and (workload.all_gpus is not None or workload.pp > 1
                                       or workload.ep > 1 or workload.ga > 1):
        return "simai"
    return "astra-sim"


def resolve_compat(workload: Workload, compat: str) -> str:
    if compat not in COMPATS:
        raise InputError(f"unknown compat {compat!r}; expected one of {', '.join(COMPATS)}",
                         field="compat")
    return header_style(workload) if compat == "auto" else compat


@record(frozen=True)
class Layout:
    """The effective job: group sizes and the rows with their collectives on collsim groups."""

    workload: Workload      # rows remapped (and collectives the policy never issues removed)
    tp: int
    pp: int
    ep: int
    compat: str
    notes: tuple[str, ...]


def _column_groups(row_policy: str, rules: PolicyRules, top: str) -> tuple:
    """collsim group per column for ASTRA-sim 1.0's dimensions (None: not issued).

    The layout makes TP the contiguous group (the first network dimension, or the model
    group of HYBRID_TRANSFORMER) and DP the rest; 'all' dimensions are the group the layout
    made world-sized (TP for MODEL and DISTRIBUTED_INFERENCE, DP otherwise)."""
    swap = row_policy == "HYBRID_MODEL_DATA"   # data on the first dimension, model across
    world_group = Group.TP if (row_policy if top == "HYBRID_CUSTOMIZED" else top) in (
        "MODEL", "DISTRIBUTED_INFERENCE") else Group.DP
    out: list[Group | None] = []
    for dim in rules.dims:
        if dim is None:
            out.append(None)
        elif dim == "all":
            out.append(world_group)
        elif dim == "model":
            out.append(Group.DP if swap else Group.TP)
        else:
            out.append(Group.TP if swap else Group.DP)
    return tuple(out)


def _astra_sim_groups(workload: Workload, rules: PolicyRules, world: int,
                      gpus_per_server: int, notes: list) -> tuple:
    """ASTRA-sim 1.0's replay: the policy picks each column's network dimensions (see the
    module docstring); returns (rows, tp, pp, ep) with the collectives on collsim groups."""
    policy = workload.policy
    tp, pp, ep = workload.tp, workload.pp, workload.ep
    has_tp = "model_parallel_NPU_group" in workload.header_fields
    rows = list(workload.rows)
    pp = 1
    inner = min(gpus_per_server, world)
    if policy in ("DATA", "MICRO"):
        tp, ep = 1, 1
    elif policy in ("HYBRID_DLRM", "HYBRID_DLRM_ENHANCED"):
        tp, ep = 1, world   # row 0's all-to-alls on every GPU, on their own stream
    elif policy in ("MODEL", "DISTRIBUTED_INFERENCE"):
        tp, ep = world, 1
    elif policy == "HYBRID_MODEL_DATA":
        # data on the first dimension (contiguous ranks), model across the others
        tp = world // workload.tp if has_tp and world % workload.tp == 0 else inner
        ep = 1
        notes.append(f"HYBRID_MODEL_DATA: data parallel on the first dimension ({tp} "
                     f"contiguous GPUs, reported as TP), model parallel across the others "
                     f"({world // max(tp, 1)} GPUs, stride {tp}, reported as DP)")
    elif policy in ("HYBRID_DATA_MODEL", "HYBRID_CUSTOMIZED"):
        tp = workload.tp if has_tp else inner
        ep = 1
    if world % tp:
        raise InputError(f"{policy}: the model-parallel group of {tp} GPUs does not divide "
                         f"the {world} GPUs", path=workload.path, field="--gpus")
    if workload.pp > 1:
        notes.append("ASTRA-sim 1.0 has no pipeline: pp ignored (--compat simai keeps it)")
    new_rows = []
    for i, row in enumerate(rows):
        row_policy = row.policy if policy == "HYBRID_CUSTOMIZED" and row.policy else policy
        r_rules = rules_for(row_policy) if row_policy in POLICY_RULES else rules
        if policy == "HYBRID_CUSTOMIZED" and row.policy and row.policy not in ROW_POLICIES:
            raise InputError(f"row policy {row.policy!r} cannot be used per row",
                             path=workload.path, line=row.line, field="field 13 (policy)")
        groups = _column_groups(row_policy, r_rules, policy)
        if rules.dlrm and i == 0:
            groups = (Group.EP, Group.EP, Group.DP)  # DLRM's row 0: every dimension
        comms = []
        for comm, group in zip((row.fwd, row.ig, row.wg), groups):
            if comm.op is None or group is None:
                comms.append(NO_COMM)
            elif comm.group in (Group.EP, Group.DP_EP) and row_policy.startswith(
                    "HYBRID_TRANSFORMER"):
                comms.append(comm)   # SimAI's _EP/_DP_EP suffix: the file names the group
            else:
                comms.append(Comm(comm.op, group, comm.size_bytes))
        new_rows.append(replace(row, fwd=comms[0], ig=comms[1], wg=comms[2]))
    return new_rows, tp, pp, ep


def _simai_groups(workload: Workload, rules: PolicyRules, world: int,
                  gpus_per_server: int, notes: list) -> tuple:
    """SimAI's replay: the type word's suffix and the header's sizes pick the groups, as
    the file wrote them; returns (rows, tp, pp, ep)."""
    policy = workload.policy
    if policy == "HYBRID_CUSTOMIZED":
        notes.append("HYBRID_CUSTOMIZED under --compat simai: groups from the type words; "
                     "the rows' own policies only decide which collectives run")
    return list(workload.rows), workload.tp, workload.pp, workload.ep


_ALL_COLUMNS = frozenset(("fwd", "ig", "wg"))

#: whose replay of the policy word (``--compat``): name -> (workload, rules, world,
#: gpus_per_server, notes) -> (rows, tp, pp, ep). To add one: a function and one line here.
REPLAYS = {"simai": _simai_groups, "astra-sim": _astra_sim_groups}
COMPATS = ("auto", *REPLAYS)   # auto: the header's style (header_style)


def layout(workload: Workload, compat: str, world: int, gpus_per_server: int) -> Layout:
    """Group sizes and remapped rows for ``workload`` replayed under ``compat``."""
    policy = workload.policy
    rules = rules_for(policy)
    compat = resolve_compat(workload, compat)
    notes: list[str] = []
    n = len(workload.rows)
    lbl = workload.dlrm_last_bottom_layer
    rows, tp, pp, ep = REPLAYS[compat](workload, rules, world, gpus_per_server, notes)
    # collectives the policy never issues (whatever the communicator)
    # where no rule below can change a row (most policies: AICB's, DATA, MODEL) the loop is
    # skipped, not run once per row of a GA-unrolled table
    keep_all = (policy != "HYBRID_CUSTOMIZED" and _ALL_COLUMNS <= rules.issues
                and not (rules.forward_only or rules.skip_row0_ig_comm or rules.dlrm
                         or rules.micro or rules.wg_first))
    out = list(rows) if keep_all else []
    for i, row in enumerate(() if keep_all else rows):
        row_rules = rules
        if policy == "HYBRID_CUSTOMIZED" and row.policy in POLICY_RULES:
            row_rules = rules_for(row.policy)
        fwd, ig, wg = row.fwd, row.ig, row.wg
        if "fwd" not in row_rules.issues:
            fwd = NO_COMM
        if "ig" not in row_rules.issues or (rules.forward_only):
            ig = NO_COMM
        if "wg" not in row_rules.issues or rules.forward_only:
            wg = NO_COMM
        if rules.skip_row0_ig_comm and i == 0:
            ig = NO_COMM
        if rules.dlrm:
            if fwd.op is not Op.ALLTOALL:
                fwd = NO_COMM          # DLRM issues only all-to-all forward collectives
            if i > 0:
                ig = NO_COMM           # only the embedding row's input gradient is issued
            elif lbl is None or not 0 <= lbl + 1 < n:
                ig = NO_COMM           # its issuing row (last bottom layer + 1) is missing
        changes: dict[str, Any] = {}
        if (fwd, ig, wg) != (row.fwd, row.ig, row.wg):
            changes.update(fwd=fwd, ig=ig, wg=wg)
        if rules.micro:
            changes.update(fwd_ns=0, ig_ns=0, wg_ns=0)
        if rules.wg_first and i == 0 and row.ig_ns:
            changes.update(ig_ns=0)    # the first row's input gradient is never computed
        out.append(replace(row, **changes) if changes else row)
    if rules.micro:
        notes.append("MICRO: every row's weight-gradient collective once, compute ignored "
                     "(ASTRA-sim and SimAI issue row 0's only, their index never advances)")
    if rules.dlrm and lbl is None:
        raise InputError("HYBRID_DLRM needs the last bottom layer: a number after the policy "
                         "word (ASTRA-sim 1.0) or DLRM_LAST_BOTTOM_LAYER: N (SimAI)",
                         path=workload.path, line=1, field="DLRM_LAST_BOTTOM_LAYER")
    if not rules.checkpoints and (workload.checkpoints or workload.checkpoint_initiates):
        notes.append(f"{policy} has no activation recompute: the checkpoint lists are ignored "
                     "(only HYBRID_TRANSFORMER_FWD_IN_BCKWD replays them)")
    # rows kept as they were keep the workload's own tuple (what counts them once, such as
    # placeholder_rows, then knows them)
    wl = replace(workload, rows=workload.rows if keep_all and out == list(workload.rows)
                 else tuple(out), tp=tp, pp=pp, ep=ep)
    return Layout(wl, tp, pp, ep, compat, tuple(notes))


# ------------------------------------------------------------------------------ programs
# One pass as steps, interpreted by both engines:
#   (WAIT_WG, row)                                    wait for the row's last wg collective
#   (COMPUTE, row, ns, kind, label, recompute)        kind: 'fwd' | 'ig' | 'wg'
#   (BLOCK, row, stream, comm_ns, update_ns, tag)     blocking collective
#   (ISSUE, row, stream, comm_ns, update_ns, tag, handle)   non-blocking collective
#   (WAIT, row, handle, stream)                       wait for a non-blocking one
#   (SYNC, row, stream)                               wait until the stream is idle
# handle ("wg", key) outlives the pass (the next forward of that row waits for it).
WAIT_WG, COMPUTE, BLOCK, ISSUE, WAIT, SYNC = range(6)
#: a collective step's tag -> which of the row's (fwd, ig, wg) collectives it issues
COMM_OF_TAG = {"fwd": 0, "recompute": 0, "ig": 1, "wg": 2}


def _forward_steps(row, tag: str, steps: list, wait_wg: bool, rules: PolicyRules,
                   dlrm_wait_key=None) -> None:
    from .replay import NO_STREAM

    if wait_wg and row.wg_stream != NO_STREAM:
        steps.append((WAIT_WG, row))
    if row.fwd_ns:
        steps.append((COMPUTE, row, row.fwd_ns, "fwd", f"{row.name} {tag}", tag == "recompute"))
    if row.fwd_stream != NO_STREAM:
        if rules.dlrm:
            steps.append((ISSUE, row, row.fwd_stream, row.fwd_comm_ns, row.update_ns, tag,
                          ("fwd", row.key)))
        else:
            steps.append((BLOCK, row, row.fwd_stream, row.fwd_comm_ns, row.update_ns, tag))
    elif dlrm_wait_key is not None:
        steps.append(dlrm_wait_key)


def pass_program(rows: list, phase: Phase, rules: PolicyRules, dlrm_lbl: int | None = None,
                 first_index: int = 0) -> tuple:
    """The steps of one pass over ``rows`` (a sequence whose first row is file row
    ``first_index``); DLRM's last bottom layer is a file row index."""
    from .replay import NO_STREAM

    steps: list = []
    n = len(rows)
    dlrm_first = rows[0] if rules.dlrm and first_index == 0 and rows else None
    # the row after the last bottom layer issues the embedding's input-gradient all-to-all
    # (the reader requires the layer for the DLRM policies; -1 matches no row)
    dlrm_ig_at = -1 if dlrm_lbl is None else dlrm_lbl + 1
    if phase is Phase.FWD:
        if rules.grad_sync and rows and rows[0].key[0] == "suf":
            # the optimizer step after the gradient reduction (PolicyRules.grad_sync)
            from .replay import STREAM_INDEX
            steps.extend((SYNC, rows[0], STREAM_INDEX[g]) for g in (Group.DP, Group.DP_EP))
        for pos, row in enumerate(rows):
            wait = None
            if (dlrm_first is not None and first_index + pos == dlrm_lbl
                    and dlrm_first.fwd_stream != NO_STREAM):
                wait = (WAIT, row, ("fwd", dlrm_first.key), dlrm_first.fwd_stream)
            _forward_steps(row, "fwd", steps, True, rules, wait)
        return tuple(steps)
    if rules.forward_only:
        return ()
    for pos in range(n - 1, -1, -1):
        row = rows[pos]
        if rules.wg_first:
            if row.wg_ns:
                steps.append((COMPUTE, row, row.wg_ns, "wg", f"{row.name} wg", False))
            if row.wg_stream != NO_STREAM:
                steps.append((ISSUE, row, row.wg_stream, row.wg_comm_ns, row.update_ns, "wg",
                              ("wg", row.key)))
            if (rules.dlrm == "wait" and dlrm_first is not None and pos == 0
                    and row.ig_stream != NO_STREAM):
                steps.append((WAIT, row, ("ig", row.key), row.ig_stream))
            if pos == 0 and first_index == 0:
                continue
            if row.ig_ns:
                steps.append((COMPUTE, row, row.ig_ns, "ig", f"{row.name} ig", False))
            if (dlrm_first is not None and first_index + pos == dlrm_ig_at
                    and dlrm_first.ig_stream != NO_STREAM):
                steps.append((ISSUE, dlrm_first, dlrm_first.ig_stream, dlrm_first.ig_comm_ns,
                              dlrm_first.update_ns, "ig", ("ig", dlrm_first.key)))
            elif not rules.dlrm and row.ig_stream != NO_STREAM:
                steps.append((BLOCK, row, row.ig_stream, row.ig_comm_ns, row.update_ns, "ig"))
            continue
        if rules.checkpoints and row.recompute_from >= 0:
            # ASTRA-sim 1.0: the forward of rows c .. j-1 from the checkpoint c
            for r in rows[row.recompute_from:pos]:
                _forward_steps(r, "recompute", steps, False, replace(rules, dlrm=""))
        if row.ig_ns:
            steps.append((COMPUTE, row, row.ig_ns, "ig", f"{row.name} ig", False))
        deferred = False
        if row.ig_stream != NO_STREAM:
            if rules.ig_blocking:
                steps.append((BLOCK, row, row.ig_stream, row.ig_comm_ns, row.update_ns, "ig"))
            else:
                steps.append((ISSUE, row, row.ig_stream, row.ig_comm_ns, row.update_ns, "ig",
                              ("ig", row.key)))
                deferred = True
        if row.wg_ns:
            steps.append((COMPUTE, row, row.wg_ns, "wg", f"{row.name} wg", False))
        if row.wg_stream != NO_STREAM:
            steps.append((ISSUE, row, row.wg_stream, row.wg_comm_ns, row.update_ns, "wg",
                          ("wg", row.key)))
        if deferred:
            steps.append((WAIT, row, ("ig", row.key), row.ig_stream))
    return tuple(steps)
