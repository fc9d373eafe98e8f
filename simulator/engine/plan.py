"""Planning one job: world size, groups, micro-batches, schedule, priced rows per stage.

Everything the engines need, computed once before any event runs: the pipeline schedule, the
rows of each pass priced for each stage's group placements, and the pipeline send times.
"""
from __future__ import annotations

from ..cluster import Cluster
from ..costmodel.base import CostModel
from ..errors import InputError, warn
from ..parallel import GroupPlacement, ParallelConfig, RankMap, make_parallel, stage_placements
from ..records import field, record, replace
from ..workload import ROW_GROUPS, Comm, Group, Op, Phase, Workload, placeholder_rows
from .chunks import chunk_split, split_chunks  # noqa: F401 (split_chunks: re-exported)
from .memo import per_workload
from .replay import NO_STREAM, STREAM_INDEX, PassReplayer, PricedRow, StageSetup
from .schedule import SCHEDULES, build_schedule
from .segment import Segmentation, segment

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any


def topology_gpus(cost_model) -> int | None:
    """GPUs of a topology with a fixed server count (``--topology`` with ``servers: N``)."""
    return cost_model.fixed_gpus() if cost_model is not None else None


#: said on stdout (in the notes) when nothing gives the world size
ONE_GPU_GROUPS = ("the header has no all_gpus; assuming {world} GPU{s} (TP x PP x EP, as neither "
                  "--gpus nor a --topology with a fixed server count was given), so {what}; "
                  "pass --gpus N (or --topology) for the real world size")


def resolve_world(workload: Workload, gpus: int | None, cost_model=None,
                  notes: list | None = None) -> int:
    """World size: --gpus, else all_gpus, else a topology's GPU count, else TP x PP x EP
    (ASTRA-sim 1.0 files never carry all_gpus: it comes from the network there)."""
    if gpus is not None:
        if gpus < 1:
            raise InputError(f"must be at least 1, got {gpus}", field="gpus")
        return gpus
    if workload.all_gpus is not None:
        return workload.all_gpus
    from_topology = topology_gpus(cost_model)
    if from_topology is not None:
        if notes is not None:
            notes.append(f"world size {from_topology} GPUs from the topology (no all_gpus)")
        return from_topology
    world = workload.tp * workload.pp * workload.ep
    what = ("every group is one GPU and every collective is free" if world == 1 else
            f"TP {workload.tp}, PP {workload.pp}, EP {workload.ep}, DP {workload.ep}")
    message = ONE_GPU_GROUPS.format(world=world, s="" if world == 1 else "s", what=what)
    warn(f"{workload.path}: {message}")
    if notes is not None:
        notes.append(message)
    return world


class _Pricer:
    """Prices a row's collectives on one stage: the slowest placement of that group kind."""

    def __init__(self, par: ParallelConfig, cost: CostModel,
                 placements: dict[Group, list[GroupPlacement]], scale: dict | None = None):
        self.par = par
        self.cost = cost
        self.placements = placements
        self.scale = scale or {}  # group -> factor on collective times (sensitivity studies)
        self._ns: dict[Comm, int] = {}   # a layer's collectives recur on every layer

    def with_cost(self, cost: CostModel) -> _Pricer:
        return _Pricer(self.par, cost, self.placements, self.scale)

    def comm_ns(self, comm: Comm) -> int:
        ns = self._ns.get(comm)
        if ns is None:
            ns = self._ns[comm] = self._price(comm)
        return ns

    def _price(self, comm: Comm) -> int:
        group = comm.group
        if comm.op is None or comm.size_bytes == 0:
            return 0
        assert group is not None   # the reader gives every collective its group
        if self.par.size(group) <= 1:
            return 0
        ns = max(self.cost.collective_ns(comm.op, comm.size_bytes, p)
                 for p in self.placements[group])
        factor = self.scale.get(group)
        return ns if factor is None else round(ns * factor)

    @staticmethod
    def priced_as(row, key, recompute_from: int, fwd: int, ig: int, wg: int) -> PricedRow:
        """The row with its three collectives' prices given (those :meth:`comm_ns` gives)."""
        return PricedRow(
            key=key, name=row.name,
            fwd_ns=row.fwd_ns, fwd_stream=STREAM_INDEX[row.fwd.group] if fwd else NO_STREAM,
            fwd_comm_ns=fwd,
            ig_ns=row.ig_ns, ig_stream=STREAM_INDEX[row.ig.group] if ig else NO_STREAM,
            ig_comm_ns=ig,
            wg_ns=row.wg_ns, wg_stream=STREAM_INDEX[row.wg.group] if wg else NO_STREAM,
            wg_comm_ns=wg,
            update_ns=row.update_ns, recompute_from=recompute_from,
            comms=(row.fwd, row.ig, row.wg))

    def repriced(self, row: PricedRow, kinds: frozenset) -> PricedRow:
        """The row with its collectives on ``kinds`` priced by this pricer instead."""
        fwd, ig, wg = row.comms
        changes: dict[str, Any] = {}
        for comm, name in ((fwd, "fwd_comm_ns"), (ig, "ig_comm_ns"), (wg, "wg_comm_ns")):
            if comm.group in kinds and getattr(row, name):
                changes[name] = self.comm_ns(comm)
        return replace(row, **changes) if changes else row


class _ProgramSource:
    """A pass's program (:func:`.policy.pass_program`) for one point's priced rows, from the
    program of an earlier point of the same workload whose prices were zero where this
    point's are: the steps depend on the prices only through which collectives are free (a
    free one has no stream and no step), so the same steps with this point's rows and
    collective prices are what ``pass_program`` gives (tests/test_sweep_memo.py compares
    them)."""

    __slots__ = ("skeletons", "template", "sequences", "ns", "rules", "dlrm_lbl", "seq_first")

    def __init__(self, skeletons: dict, template: dict, sequences: dict, ns: list, rules,
                 dlrm_lbl, seq_first: dict):
        self.skeletons, self.template, self.sequences = skeletons, template, sequences
        self.ns, self.rules, self.dlrm_lbl, self.seq_first = ns, rules, dlrm_lbl, seq_first

    def __call__(self, phase: Phase, seq) -> tuple:
        from .policy import BLOCK, COMM_OF_TAG, ISSUE, pass_program

        rows = self.sequences[seq]
        hit = self.skeletons.get((phase, seq))
        if hit is None:
            prog = pass_program(rows, phase, self.rules, self.dlrm_lbl,
                                self.seq_first.get(seq, -1))
            at = {id(r): k for k, r in enumerate(rows)}
            entries = self.template[seq]
            # per step: its row's position, and the distinct collective whose price it
            # carries (its row's fwd, ig or wg collective by the step's tag), or -1
            recipe = tuple((at[id(step[1])],
                            entries[at[id(step[1])]][3 + COMM_OF_TAG[step[5]]]
                            if step[0] == BLOCK or step[0] == ISSUE else -1)
                           for step in prog)
            self.skeletons[(phase, seq)] = (prog, recipe)
            return prog
        prog, recipe = hit
        ns = self.ns
        return tuple([(step[0], rows[k], *step[2:]) if slot < 0 else
                       (step[0], rows[k], step[2], ns[slot], *step[4:])
                       for step, (k, slot) in zip(prog, recipe)])


def _describe_places(group: str, places: set, par: ParallelConfig) -> str:
    """'4 ranks over 4 servers (NICs)' and the like, for the report."""
    if group == "PP":
        if par.pp == 1:
            return "no pipeline"
        size = par.pp
        cross = any(servers > 1 for _, servers, _ in places)
        where = "across servers (NICs)" if cross else "inside a server (NVLink)"
        return f"{size} stages, sends {where}"
    size = next(iter(places))[0]
    if size == 1:
        return "1 rank (free)"
    parts = []
    for _, servers, per in sorted(places):
        parts.append(f"{size} ranks in 1 server (NVLink)" if servers == 1 else
                     f"{size} ranks over {servers} servers, up to {per} per server (NICs)")
    return "; ".join(parts)


def _recompute_starts(workload: Workload, seg: Segmentation) -> dict[int, int]:
    """File row index of each checkpoint-initiate row -> file index to recompute from.

    The replay restarts at the nearest checkpoint before the initiate row inside the same
    block (the rows before the micro-batches, one micro-batch, or the rows after), or at the
    block's first row. A row that is both a checkpoint and an initiate replays the segment
    that ends at it (from the previous checkpoint): that is how consecutive layers, each
    checkpointed at its first row, each recompute whole. ASTRA-sim 1.0 would instead run its
    forward on past such a row; rows c .. j-1 with c = j would replay nothing.
    """
    if not workload.checkpoint_initiates:
        return {}
    blocks = [seg.prefix, seg.suffix] + [tuple(range(b, b + len(seg.micro_batch)))
                                         for b in seg.block_starts]
    import bisect

    # linear in rows + checkpoints (a table of 10^5 rows with recompute took minutes when
    # each initiate scanned every block and every checkpoint)
    block_of: dict[int, int] = {}
    for b, block in enumerate(blocks):
        for i in block:
            block_of.setdefault(i, b)  # the first block holding a row, as the scan found it
    in_block: dict[int, list[int]] = {}
    for c in sorted(set(workload.checkpoints)):
        ci = block_of.get(c)
        if ci is not None:
            in_block.setdefault(ci, []).append(c)
    out = {}
    for idx in workload.checkpoint_initiates:
        bi = block_of.get(idx)
        if bi is None:
            continue
        block = blocks[bi]
        cands = in_block.get(bi, [])
        k = bisect.bisect_left(cands, idx)
        # the last checkpoint of the block before idx (not before the block's start)
        out[idx] = cands[k - 1] if k and cands[k - 1] >= block[0] else block[0]
    return out


@record
class JobPlan:
    """A job ready to replay: the workload as the policy replays it, its layout and prices."""

    workload: Workload             # as replayed: rows on the policy's communicators
    replay: str                    # policy and replay used, for the report
    compat: str
    par: ParallelConfig
    seg: Segmentation
    chunks: int
    schedule_name: str
    schedule: list
    setups: list[StageSetup]       # per stage
    pricers: list[_Pricer]       # per stage
    rank_map: RankMap
    cost_model: CostModel
    notes: list[str] = field(default_factory=list)
    free_groups: list[str] = field(default_factory=list)
    group_places: dict = field(default_factory=dict)
    # the tied-embedding gradient all-reduce's price (first and last stage, once per step)
    embedding_allreduce_ns: int = 0
    embedding_allreduce_bytes: int = 0


_PLACEMENTS: dict[tuple, list[GroupPlacement]] = {}


def _placements(par: ParallelConfig, group: Group, stage: int, rank_map: RankMap
                ) -> list[GroupPlacement]:
    """:func:`stage_placements`, kept (a sweep places the same groups on every point; the
    lists are shared, never to be changed)."""
    key = (par, group, stage, rank_map)
    hit = _PLACEMENTS.get(key)
    if hit is None:
        if len(_PLACEMENTS) >= 4096:
            _PLACEMENTS.clear()
        hit = _PLACEMENTS[key] = stage_placements(par, group, stage, rank_map)
    return hit


def _sequence_rows(rows, seg: Segmentation, ranges, recompute: dict[int, int]) -> tuple:
    """The distinct collectives the rows use, and per replayed sequence (keyed "pre", "suf"
    or ("mb", variant, chunk)) its rows as (row, key, position to recompute from or -1, and
    the indices of its forward, input-gradient and weight-gradient collectives among them):
    a layer's collectives recur on every layer, so a point prices each distinct one once."""
    index: dict = {}

    def at(comm) -> int:
        k = index.get(comm)
        if k is None:
            k = index[comm] = len(index)
        return k

    def restart(block: tuple, k: int, first: int) -> int:
        """Position (in a sequence starting at block[first]) to recompute from."""
        src = recompute.get(block[k])
        return -1 if src is None else max(src - block[first], 0)

    def entry(row, key, start):
        return (row, key, start, at(row.fwd), at(row.ig), at(row.wg))

    out: dict[Any, list] = {}
    if seg.prefix:
        out["pre"] = [entry(rows[i], ("pre", k), restart(seg.prefix, k, 0))
                      for k, i in enumerate(seg.prefix)]
    if seg.suffix:
        out["suf"] = [entry(rows[i], ("suf", k), restart(seg.suffix, k, 0))
                      for k, i in enumerate(seg.suffix)]
    for v, block in enumerate(seg.variants):
        for c, (a, b) in enumerate(ranges):
            out[("mb", v, c)] = [entry(rows[block[k]], ("mb", k), restart(block, k, a))
                                 for k in range(a, b)]
    return list(index), out


_LAYOUTS: dict[tuple, tuple] = {}


def _stage_layouts(par: ParallelConfig, rank_map: RankMap) -> tuple:
    """Per stage, (each row group's placements, their signature), and every group's
    (size, servers, per server) set: what the stages' groups look like, kept per
    (parallelism, rank map) as :func:`_placements` keeps each list (shared, never to be
    changed: a sweep point asks again for every stage)."""
    key = (par, rank_map)
    hit = _LAYOUTS.get(key)
    if hit is None:
        layouts = []
        group_places: dict[str, set] = {}
        for s in range(par.pp):
            placements = {g: _placements(par, g, s, rank_map) for g in ROW_GROUPS}
            pp_places = _placements(par, Group.PP, s, rank_map)
            for g, plist in [*placements.items(), (Group.PP, pp_places)]:
                for p in plist:
                    group_places.setdefault(g.value, set()).add(
                        (p.size, p.servers, p.max_per_server))
            layouts.append((placements, tuple(tuple(placements[g]) for g in ROW_GROUPS)))
        if len(_LAYOUTS) >= 256:
            _LAYOUTS.clear()
        hit = _LAYOUTS[key] = (layouts, group_places)
    return hit


def plan_job(workload: Workload, cluster: Cluster, cost_model: CostModel, options,
             rank_map: RankMap | None = None) -> JobPlan:
    """Everything about one job that does not depend on time."""
    from .policy import layout, rules_for

    rank_map = rank_map or RankMap(cluster.gpus_per_server)
    notes: list[str] = []
    world = resolve_world(workload, options.gpus, cost_model, notes)
    # the policy word decides the passes, and (ASTRA-sim 1.0) the communicators
    compat = getattr(options, "compat", "auto")
    lay = per_workload(workload, ("layout", compat, world, cluster.gpus_per_server),
                       lambda: layout(workload, compat, world, cluster.gpus_per_server))
    workload = lay.workload
    rules = rules_for(workload.policy)
    if getattr(options, "grad_sync_before_optimizer", False) and not rules.grad_sync:
        rules = replace(rules, grad_sync=True)
    forward_only = rules.forward_only or workload.inference
    replay_name = (f"{workload.policy} replayed as {rules.source} "
                   f"({'ASTRA-sim 1.0' if lay.compat == 'astra-sim' else 'SimAI'} "
                   f"communicators, --compat {lay.compat})")
    if forward_only and not rules.forward_only:
        replay_name += f"; mode {workload.mode}: forward passes only"
    notes.append(f"replay: {replay_name}: {rules.describe()}")
    if rules.grad_sync:
        notes.append("the rows after the micro-batches (the optimizer step) wait until the "
                     "data-parallel gradient reduction has ended (Megatron-LM's "
                     "finalize_model_grads), as a Megatron-style table asks (FILE.meta.json); "
                     "the wait is exposed DP (DP_EP) time")
    notes.extend(lay.notes)
    par = make_parallel(world, workload.tp, workload.pp, workload.ep, source=workload.path)
    # collectives on groups of one rank cost nothing, so they must not decide where the
    # micro-batches are
    free_kinds = frozenset(g for g in ROW_GROUPS if par.size(g) == 1)
    seg = per_workload(workload, ("segment", free_kinds), lambda: segment(workload, free_kinds))
    rows = workload.rows
    notes.append(f"rows: {seg.method}")

    # groups of size 1 that rows use: free, and said so
    used = per_workload(workload, ("used groups",), lambda: {
        c.group for r in rows for c in (r.fwd, r.ig, r.wg) if c.op is not None})
    free_groups = [g.value for g in ROW_GROUPS if g in used and par.size(g) == 1]
    if par.world == 1 and used and not any("every collective is free" in n for n in notes):
        notes.append("1 GPU: every group is one GPU and every collective is free")
    if free_groups:
        msg = (f"group(s) of size 1: {', '.join(free_groups)}; their collectives cost nothing "
               "(no other rank to talk to)")
        warn(f"{workload.path}: {msg}")
        notes.append(msg)
    placeholder = per_workload(workload, ("placeholder rows",), lambda: placeholder_rows(rows))
    if placeholder > len(rows) // 2:
        notes.append(f"{placeholder} of {len(rows)} rows carry placeholder compute times (<= 1 ns, "
                     "as AICB writes without profiling): the result is communication only")
    if par.pp > 1 and workload.pp_comm_bytes == 0:
        notes.append("pp_comm is 0: pipeline sends are free")

    schedule_name = options.pp_schedule
    mb_rows = [rows[i] for i in seg.micro_batch]
    chunks = 1
    kind = SCHEDULES.get(schedule_name)
    if kind is not None and kind.uses_chunks:
        chunks = options.vpp_chunks or workload.vpp or 1
        if chunks < 1:
            raise InputError(f"must be at least 1, got {chunks}", field="vpp")
    elif options.vpp_chunks not in (None, 1):
        raise InputError("model chunks (--vpp) only apply to --pp-schedule interleaved",
                         field="vpp")
    split = chunk_split(mb_rows, chunks, workload.path)
    ranges = split.ranges
    if chunks > 1:
        notes.append(split.note)
        if not split.layers:
            warn(f"{workload.path}: {split.note}")
    schedule = build_schedule(schedule_name, par.pp, seg.ga, chunks)
    if forward_only:
        schedule = [[step for step in steps if step[0] is Phase.FWD] for steps in schedule]
    dlrm_lbl = workload.dlrm_last_bottom_layer

    # price every stage; stages whose groups sit alike share one replayer (and its memo)
    gps = rank_map
    setups: list[StageSetup] = []
    shared: dict[tuple, PassReplayer] = {}
    pricers: list[_Pricer] = []
    # point-to-point time from each stage to the next (the last wraps to the first)
    scale = {Group(g): float(f) for g, f in options.comm_scale}
    p2p_ns = [round(max(cost_model.collective_ns(Op.SENDRECV, workload.pp_comm_bytes, p)
                        for p in _placements(par, Group.PP, s, gps)) * scale.get(Group.PP, 1))
              if par.pp > 1 and workload.pp_comm_bytes else 0 for s in range(par.pp)]
    # the tied-embedding all-reduce: each last-stage rank with its first-stage peer (the PP
    # pair of the last stage, which wraps to stage 0), as slow as the slowest such pair
    emb_bytes = getattr(options, "embedding_allreduce_bytes", 0)
    emb_ns = 0
    if par.pp > 1 and emb_bytes:
        emb_ns = round(max(cost_model.collective_ns(Op.ALLREDUCE, emb_bytes, p)
                           for p in _placements(par, Group.PP, par.pp - 1, gps))
                       * scale.get(Group.PP, 1))
        notes.append(f"tied-embedding gradient all-reduce: {emb_bytes:,} bytes between each "
                     f"first-stage rank and its last-stage peer after the backward, "
                     f"{emb_ns / 1e6:.3f} ms on stages 0 and {par.pp - 1} (in their exposed "
                     "PP time)")
    blocking = bool(getattr(options, "blocking_sends", False))
    if blocking and par.pp > 1:
        notes.append("pipeline sends block the sending stage until they arrive (Megatron-LM's "
                     "p2p waits on its requests): the wait is exposed PP time")
    # the rows each replayed sequence prices, with their keys and recompute starts: the
    # same on every point of a sweep (only the prices change)
    distinct, template = per_workload(workload, ("sequences", free_kinds, tuple(ranges),
                                       bool(rules.checkpoints)),
                            lambda: _sequence_rows(rows, seg, ranges, _recompute_starts(
                                workload, seg) if rules.checkpoints else {}))
    stage_layouts, group_places = _stage_layouts(par, gps)
    for s, (placements, signature) in enumerate(stage_layouts):
        pricer = _Pricer(par, cost_model, placements, scale)
        pricers.append(pricer)
        replayer = shared.get(signature)
        if replayer is None:
            # each distinct collective priced once, then looked up by its index
            ns = [pricer.comm_ns(c) for c in distinct]
            priced_as = pricer.priced_as
            sequences = {k: [priced_as(row, key, start, ns[f], ns[i], ns[w])
                             for row, key, start, f, i, w in rows_of]
                         for k, rows_of in template.items()}
            seq_first = {k: (seg.prefix[0] if k == "pre" else seg.suffix[0] if k == "suf"
                             else seg.variants[k[1]][ranges[k[2]][0]])
                         for k in sequences}
            # the passes' programs of the last point whose prices were zero where these are
            # (the same steps), re-priced
            skeletons = per_workload(workload, ("programs", free_kinds, tuple(ranges),
                                                bool(rules.checkpoints), rules, dlrm_lbl,
                                                tuple(map(bool, ns))), dict)
            source = _ProgramSource(skeletons, template, sequences, ns, rules, dlrm_lbl,
                                    seq_first)
            replayer = shared[signature] = PassReplayer(sequences, options.trace, rules,
                                                        dlrm_lbl, seq_first, source)
        send_next = send_prev = 0
        if par.pp > 1 and workload.pp_comm_bytes:
            send_next = p2p_ns[s]
            send_prev = p2p_ns[(s - 1) % par.pp]
        head = ["pre"] if seg.prefix else []
        tail = []
        if seg.suffix:
            tail += [(Phase.FWD, "suf"), (Phase.IG, "suf")]
        if seg.prefix:
            tail.append((Phase.IG, "pre"))
        if forward_only:
            tail = [t for t in tail if t[0] is Phase.FWD]
        setups.append(StageSetup(replayer, send_next, send_prev, head, tail,
                                 blocking_send=blocking and par.pp > 1))

    return JobPlan(workload=workload, replay=replay_name, compat=lay.compat,
                   par=par, seg=seg, chunks=chunks,
                   schedule_name=schedule_name, schedule=schedule, setups=setups,
                   pricers=pricers, rank_map=rank_map, cost_model=cost_model, notes=notes,
                   free_groups=free_groups, group_places=group_places,
                   embedding_allreduce_ns=emb_ns,
                   embedding_allreduce_bytes=emb_bytes if emb_ns else 0)
