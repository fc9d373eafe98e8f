"""Wire a workload, a parallel layout and a cost model into one pipeline simulation."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..cluster import Cluster
from ..costmodel.analytical import AnalyticalCostModel
from ..costmodel.base import CostModel
from ..errors import InputError, warn
from ..parallel import GroupPlacement, ParallelConfig, make_parallel, stage_placements
from ..result import RowResult, SimulationResult
from ..workload import ROW_GROUPS, Comm, Group, Op, Phase, Workload
from .pipeline import PipelineSim, StageSetup
from .replay import NO_STREAM, STREAM_INDEX, PassReplayer, PricedRow
from .schedule import build_schedule
from .segment import Segmentation, segment


@dataclass(frozen=True)
class SimulationOptions:
    gpus: int | None = None          # world size; overrides the header's all_gpus
    pp_schedule: str = "1f1b"        # 1f1b, interleaved or gpipe
    vpp_chunks: int | None = None    # model chunks per stage for 'interleaved' (default: header vpp)
    trace: bool = False              # keep every slice for the timeline
    engine: str = "fast"             # fast (pass-level, memoized) or detailed (row-level)
    # rank -> compute-time factor (a slow GPU); any entry makes ranks differ (detailed engine)
    stragglers: tuple[tuple[int, float], ...] = ()
    # rank -> (NIC bandwidth factor, extra NIC latency in ns): a degraded NIC or link
    degraded: tuple[tuple[int, float, int], ...] = ()
    # (group name, factor) on that group's collective times: sensitivity studies
    comm_scale: tuple[tuple[str, float], ...] = ()
    # collectives (and pipeline sends) that overlap share their NVLink/NIC max-min fairly
    contention: bool = False


def resolve_world(workload: Workload, gpus: int | None) -> int:
    if gpus is not None:
        if gpus < 1:
            raise InputError(f"must be at least 1, got {gpus}", field="--gpus")
        return gpus
    if workload.all_gpus is not None:
        return workload.all_gpus
    world = workload.tp * workload.pp * workload.ep
    warn(f"{workload.path}: the header has no all_gpus; assuming {world} GPUs "
         f"(TP {workload.tp} x PP {workload.pp} x EP {workload.ep}, so DP {workload.ep}); "
         "pass --gpus N for the real world size")
    return world


def split_chunks(rows: list, chunks: int, path: str) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges of the micro-batch rows, equal in row count.

    Megatron gives each model chunk the same number of layers whatever their cost; cutting by
    count (not by compute) also keeps a change of compute from moving a chunk boundary.
    """
    n = len(rows)
    if chunks > n:
        raise InputError(f"cannot split a micro-batch of {n} rows into {chunks} interleaved "
                         "chunks; lower --vpp", path=path, field="vpp")
    base, extra = divmod(n, chunks)
    bounds = [0]
    for k in range(chunks):
        bounds.append(bounds[-1] + base + (1 if k < extra else 0))
    return [(bounds[i], bounds[i + 1]) for i in range(chunks)]


class _Pricer:
    """Prices a row's collectives on one stage: the slowest placement of that group kind."""

    def __init__(self, par: ParallelConfig, cost: CostModel,
                 placements: dict[Group, list[GroupPlacement]], scale: dict | None = None):
        self.par = par
        self.cost = cost
        self.placements = placements
        self.scale = scale or {}  # group -> factor on collective times (sensitivity studies)

    def with_cost(self, cost: CostModel) -> "_Pricer":
        return _Pricer(self.par, cost, self.placements, self.scale)

    def comm_ns(self, comm: Comm) -> int:
        if comm.op is None or comm.size_bytes == 0 or self.par.size(comm.group) <= 1:
            return 0
        ns = max(self.cost.collective_ns(comm.op, comm.size_bytes, p)
                 for p in self.placements[comm.group])
        factor = self.scale.get(comm.group)
        return ns if factor is None else round(ns * factor)

    def priced(self, row, key, recompute_from: int) -> PricedRow:
        fwd, ig, wg = self.comm_ns(row.fwd), self.comm_ns(row.ig), self.comm_ns(row.wg)
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
        changes = {}
        for comm, field in ((fwd, "fwd_comm_ns"), (ig, "ig_comm_ns"), (wg, "wg_comm_ns")):
            if comm.group in kinds and getattr(row, field):
                changes[field] = self.comm_ns(comm)
        return replace(row, **changes) if changes else row


def _describe_places(group: str, places: set, par: ParallelConfig) -> str:
    """'4 ranks over 4 servers (NICs)' and the like, for the report."""
    if group == "PP":
        if par.pp == 1:
            return "no pipeline"
        size = par.pp
        cross = any(servers > 1 for _, servers, _ in places)
        return f"{size} stages, sends {'across servers (NICs)' if cross else 'inside a server (NVLink)'}"
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

    The replay restarts at the nearest checkpoint at or before the initiate row inside the same
    block (the rows before the micro-batches, one micro-batch, or the rows after), or at the
    block's first row.
    """
    if not workload.checkpoint_initiates:
        return {}
    blocks = [seg.prefix, seg.suffix] + [tuple(range(b, b + len(seg.micro_batch)))
                                         for b in seg.block_starts]
    out = {}
    for idx in workload.checkpoint_initiates:
        block = next((b for b in blocks if idx in b), None)
        if block is None:
            continue
        before = [c for c in workload.checkpoints if block[0] <= c <= idx and c in block]
        out[idx] = max(before) if before else block[0]
    return out


def _run_detailed(par, setups: list[StageSetup], pricers: list[_Pricer], schedule,
                  chunks: int, options: SimulationOptions, seg: Segmentation,
                  cost_model: CostModel, pp_comm_bytes: int, gpus_per_server: int):
    from .classes import rank_classes
    from .detailed import ClassSetup, DetailedSim, scale_rows

    attributes: dict[int, dict] = {}
    for rank, factor in options.stragglers:
        if not 0 <= rank < par.world:
            raise InputError(f"rank {rank} is outside the job's {par.world} ranks",
                             field="--straggler")
        attributes.setdefault(rank, {})["compute"] = float(factor)
    for rank, nic_factor, extra_ns in options.degraded:
        if not 0 <= rank < par.world:
            raise InputError(f"rank {rank} is outside the job's {par.world} ranks",
                             field="--degrade")
        attributes.setdefault(rank, {}).update(nic=float(nic_factor), nic_latency_ns=int(extra_ns))
    classes, _ = rank_classes(par, {r: tuple(sorted(a.items())) for r, a in attributes.items()})
    attrs = [dict(c.attributes) for c in classes]
    stage_of = {c.cid: c.stage for c in classes}
    degraded_models: dict[tuple, CostModel] = {}

    def worst_nic(member_classes) -> tuple[float, int]:
        """The slowest NIC among a group's members: (bandwidth factor, extra latency)."""
        factor = min((attrs[c].get("nic", 1.0) for c in member_classes), default=1.0)
        extra = max((attrs[c].get("nic_latency_ns", 0) for c in member_classes), default=0)
        return factor, extra

    def degraded_model(factor: float, extra: int) -> CostModel:
        key = (factor, extra)
        if key not in degraded_models:
            degraded_models[key] = cost_model.degraded(factor, extra)
        return degraded_models[key]

    csetups: list[ClassSetup] = []
    for cls in classes:
        stage_setup = setups[cls.stage]
        sequences = stage_setup.replayer.sequences
        # collectives of groups that hold a degraded NIC are priced with it
        by_model: dict[tuple, set] = {}
        for kind in (Group.TP, Group.EP, Group.DP, Group.DP_EP):
            factor, extra = worst_nic([c for c, _ in cls.group_members[kind]])
            if (factor, extra) != (1.0, 0):
                by_model.setdefault((factor, extra), set()).add(kind)
        for (factor, extra), kinds in by_model.items():
            pricer = pricers[cls.stage].with_cost(degraded_model(factor, extra))
            sequences = {k: [pricer.repriced(r, frozenset(kinds)) for r in v]
                         for k, v in sequences.items()}
        sequences = {k: scale_rows(v, attrs[cls.cid].get("compute", 1.0))
                     for k, v in sequences.items()}
        column = cls.group_members[Group.PP]
        nxt = [c for c, _ in column if stage_of[c] == (cls.stage + 1) % par.pp]
        prv = [c for c, _ in column if stage_of[c] == (cls.stage - 1) % par.pp]
        send_next, send_prev = stage_setup.send_next_ns, stage_setup.send_prev_ns
        if par.pp > 1 and pp_comm_bytes:
            for partner, direction in ((nxt, "next"), (prv, "prev")):
                factor, extra = worst_nic([cls.cid] + partner)
                if (factor, extra) == (1.0, 0):
                    continue
                model = degraded_model(factor, extra)
                stage = cls.stage if direction == "next" else (cls.stage - 1) % par.pp
                ns = max(model.collective_ns(Op.SENDRECV, pp_comm_bytes, p)
                         for p in stage_placements(par, Group.PP, stage, gpus_per_server))
                if direction == "next":
                    send_next = ns
                else:
                    send_prev = ns
        csetups.append(ClassSetup(cls, sequences, send_next, send_prev, stage_setup.head,
                                  stage_setup.tail, nxt[0] if nxt else None,
                                  prv[0] if prv else None))
    contention = None
    if options.contention:
        from .detailed import Contention

        def kind_of(placements) -> str:
            return "nvlink" if all(p.servers == 1 for p in placements) else "nic"

        group_link, send_link = {}, {}
        for cls in classes:
            for g in ROW_GROUPS:
                group_link[(cls.cid, g)] = kind_of(pricers[cls.stage].placements[g])
            send_link[(cls.cid, "next")] = kind_of(
                stage_placements(par, Group.PP, cls.stage, gpus_per_server))
            send_link[(cls.cid, "prev")] = kind_of(
                stage_placements(par, Group.PP, (cls.stage - 1) % par.pp, gpus_per_server))
        contention = Contention(group_link, send_link)
    sim = DetailedSim(csetups, schedule, par.pp, chunks, options.trace, seg.mb_variant,
                      contention)
    sim.run()
    for res, cls in zip(sim.results, classes):
        res.rank_class = cls.cid
        res.ranks = cls.ranks
        what = ", ".join(f"{k} x{v:g}" if k != "nic_latency_ns" else f"NIC +{v / 1000:g} us"
                         for k, v in attrs[cls.cid].items())
        res.label = (f"stage {cls.stage} class {cls.cid} ({cls.ranks} ranks, e.g. rank "
                     f"{cls.example_rank}" + (f", {what}" if what else "") + ")")
    return sim


def simulate(workload: Workload, cluster: Cluster | None = None,
             cost_model: CostModel | None = None,
             options: SimulationOptions = SimulationOptions()) -> SimulationResult:
    cluster = cluster or Cluster()
    cost_model = cost_model or AnalyticalCostModel(cluster)
    world = resolve_world(workload, options.gpus)
    par = make_parallel(world, workload.tp, workload.pp, workload.ep, source=workload.path)
    # collectives on groups of one rank cost nothing, so they must not decide where the
    # micro-batches are
    free_kinds = frozenset(g for g in ROW_GROUPS if par.size(g) == 1)
    seg = segment(workload, free_kinds)
    rows = workload.rows
    notes: list[str] = [f"rows: {seg.method}"]

    # groups of size 1 that rows use: free, and said so
    used = {c.group for r in rows for c in (r.fwd, r.ig, r.wg) if c.op is not None}
    free_groups = [g.value for g in ROW_GROUPS if g in used and par.size(g) == 1]
    if free_groups:
        msg = (f"group(s) of size 1: {', '.join(free_groups)}; their collectives cost nothing "
               "(no other rank to talk to)")
        warn(f"{workload.path}: {msg}")
        notes.append(msg)
    placeholder = sum(1 for r in rows if r.fwd_ns <= 1 and r.ig_ns <= 1 and r.wg_ns <= 1)
    if placeholder > len(rows) // 2:
        notes.append(f"{placeholder} of {len(rows)} rows carry placeholder compute times (<= 1 ns, "
                     "as AICB writes without profiling): the result is communication only")
    if par.pp > 1 and workload.pp_comm_bytes == 0:
        notes.append("pp_comm is 0: pipeline sends are free")

    schedule_name = options.pp_schedule
    mb_rows = [rows[i] for i in seg.micro_batch]
    chunks = 1
    if schedule_name == "interleaved":
        chunks = options.vpp_chunks or workload.vpp or 1
        if chunks < 1:
            raise InputError(f"must be at least 1, got {chunks}", field="--vpp")
    elif options.vpp_chunks not in (None, 1):
        raise InputError("model chunks (--vpp) only apply to --pp-schedule interleaved",
                         field="--vpp")
    ranges = split_chunks(mb_rows, chunks, workload.path)
    schedule = build_schedule(schedule_name, par.pp, seg.ga, chunks)
    recompute = _recompute_starts(workload, seg)

    # price every stage; stages whose groups sit alike share one replayer (and its memo)
    gps = cluster.gpus_per_server
    setups: list[StageSetup] = []
    shared: dict[tuple, PassReplayer] = {}
    pricers: list[_Pricer] = []
    # point-to-point time from each stage to the next (the last wraps to the first)
    scale = {Group(g): float(f) for g, f in options.comm_scale}
    p2p_ns = [round(max(cost_model.collective_ns(Op.SENDRECV, workload.pp_comm_bytes, p)
                        for p in stage_placements(par, Group.PP, s, gps)) * scale.get(Group.PP, 1))
              if par.pp > 1 and workload.pp_comm_bytes else 0 for s in range(par.pp)]
    group_places: dict[str, set] = {}
    for s in range(par.pp):
        placements = {g: stage_placements(par, g, s, gps) for g in ROW_GROUPS}
        for g, plist in list(placements.items()) + [(Group.PP, stage_placements(par, Group.PP, s, gps))]:
            for p in plist:
                group_places.setdefault(g.value, set()).add(
                    (p.size, p.servers, p.max_per_server))
        pricer = _Pricer(par, cost_model, placements, scale)
        pricers.append(pricer)
        signature = tuple(tuple(placements[g]) for g in ROW_GROUPS)
        replayer = shared.get(signature)
        if replayer is None:
            sequences: dict[object, list[PricedRow]] = {}
            def restart(block: tuple, k: int, first: int) -> int:
                """Position (in a sequence starting at block[first]) to recompute from."""
                src = recompute.get(block[k])
                return -1 if src is None else max(src - block[first], 0)

            if seg.prefix:
                sequences["pre"] = [pricer.priced(rows[i], ("pre", k), restart(seg.prefix, k, 0))
                                    for k, i in enumerate(seg.prefix)]
            if seg.suffix:
                sequences["suf"] = [pricer.priced(rows[i], ("suf", k), restart(seg.suffix, k, 0))
                                    for k, i in enumerate(seg.suffix)]
            for v, block in enumerate(seg.variants):
                for c, (a, b) in enumerate(ranges):
                    sequences[("mb", v, c)] = [
                        pricer.priced(rows[block[k]], ("mb", k), restart(block, k, a))
                        for k in range(a, b)]
            replayer = shared[signature] = PassReplayer(sequences, options.trace)
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
        setups.append(StageSetup(replayer, send_next, send_prev, head, tail))

    asymmetric = bool(options.stragglers or options.degraded or options.contention)
    if options.engine == "detailed" or asymmetric:
        sim = _run_detailed(par, setups, pricers, schedule, chunks, options, seg, cost_model,
                            workload.pp_comm_bytes, gps)
    else:
        sim = PipelineSim(setups, schedule, par.pp, chunks, options.trace, seg.mb_variant)
        sim.run()

    iteration = max(r.end_ns for r in sim.results)
    critical = max(range(len(sim.results)), key=lambda i: (sim.results[i].end_ns, -i))
    for r in sim.results:
        r.idle_after_ns = iteration - r.end_ns

    # per-row detail, priced as on the critical stage
    pricer = pricers[sim.results[critical].stage]
    row_exposed = sim.row_exposed(critical) if hasattr(sim, "row_exposed") else {}
    row_results: list[RowResult] = []
    for seq, indices, occurrences in (("pre", seg.prefix, 1), ("mb", seg.micro_batch, seg.ga),
                                      ("suf", seg.suffix, 1)):
        for k, i in enumerate(indices):
            r = rows[i]
            row_results.append(RowResult(
                sequence=seq, index=k, file_line=r.line, name=r.name, occurrences=occurrences,
                fwd_compute_ns=r.fwd_ns, fwd_comm=r.fwd.type_name(), fwd_group=str(r.fwd.group or ""),
                fwd_bytes=r.fwd.size_bytes, fwd_comm_ns=pricer.comm_ns(r.fwd),
                ig_compute_ns=r.ig_ns, ig_comm=r.ig.type_name(), ig_group=str(r.ig.group or ""),
                ig_bytes=r.ig.size_bytes, ig_comm_ns=pricer.comm_ns(r.ig),
                wg_compute_ns=r.wg_ns, wg_comm=r.wg.type_name(), wg_group=str(r.wg.group or ""),
                wg_bytes=r.wg.size_bytes, wg_comm_ns=pricer.comm_ns(r.wg),
                exposed_ns=row_exposed.get((seq, k), 0)))

    trace = sorted(sim.trace, key=lambda x: (x.stage, x.start_ns)) if sim.trace is not None else None
    return SimulationResult(
        workload=workload.path, gpus=world, tp=par.tp, ep=par.ep, pp=par.pp, dp=par.dp,
        dp_ep=par.dp_ep, ga=seg.ga, chunks=chunks, pp_schedule=schedule_name,
        segmentation=seg.method, iteration_ns=iteration, critical_stage=critical,
        stages=sim.results, rows=row_results, free_groups=free_groups,
        group_placements={g: _describe_places(g, v, par) for g, v in group_places.items()},
        cost_model=cost_model.describe(), notes=notes, trace=trace,
        events_processed=sim.events)
