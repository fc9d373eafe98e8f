"""Wire a workload, a parallel layout and a cost model into one pipeline simulation."""
from __future__ import annotations

from dataclasses import dataclass

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
    """Contiguous [start, end) ranges of the micro-batch rows with near-equal compute."""
    n = len(rows)
    if chunks > n:
        raise InputError(f"cannot split a micro-batch of {n} rows into {chunks} interleaved "
                         "chunks; lower --vpp", path=path, field="vpp")
    weights = np.array([r.fwd_ns + r.ig_ns + r.wg_ns + 1 for r in rows], dtype=np.float64)
    cum = np.cumsum(weights)
    bounds = [0]
    for k in range(1, chunks):
        idx = int(np.searchsorted(cum, k * cum[-1] / chunks, side="left")) + 1
        idx = min(max(idx, bounds[-1] + 1), n - (chunks - k))
        bounds.append(idx)
    bounds.append(n)
    return [(bounds[i], bounds[i + 1]) for i in range(chunks)]


class _Pricer:
    """Prices a row's collectives on one stage: the slowest placement of that group kind."""

    def __init__(self, par: ParallelConfig, cost: CostModel,
                 placements: dict[Group, list[GroupPlacement]]):
        self.par = par
        self.cost = cost
        self.placements = placements

    def comm_ns(self, comm: Comm) -> int:
        if comm.op is None or comm.size_bytes == 0 or self.par.size(comm.group) <= 1:
            return 0
        return max(self.cost.collective_ns(comm.op, comm.size_bytes, p)
                   for p in self.placements[comm.group])

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
            update_ns=row.update_ns, recompute_from=recompute_from)


def _recompute_starts(workload: Workload, seg: Segmentation) -> dict[tuple[str, int], int]:
    """(sequence, position) of each checkpoint-initiate row -> position to recompute from."""
    if not workload.checkpoint_initiates:
        return {}
    ckpts: dict[str, list[int]] = {}
    for idx in workload.checkpoints:
        seq, pos = seg.file_to_template(idx)
        ckpts.setdefault(seq, []).append(pos)
    out = {}
    for idx in workload.checkpoint_initiates:
        seq, pos = seg.file_to_template(idx)
        before = [c for c in ckpts.get(seq, []) if c <= pos]
        out[(seq, pos)] = max(before) if before else 0
    return out


def simulate(workload: Workload, cluster: Cluster | None = None,
             cost_model: CostModel | None = None,
             options: SimulationOptions = SimulationOptions()) -> SimulationResult:
    cluster = cluster or Cluster()
    cost_model = cost_model or AnalyticalCostModel(cluster)
    world = resolve_world(workload, options.gpus)
    par = make_parallel(world, workload.tp, workload.pp, workload.ep, source=workload.path)
    seg = segment(workload)
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
    p2p_ns = [max(cost_model.collective_ns(Op.SENDRECV, workload.pp_comm_bytes, p)
                  for p in stage_placements(par, Group.PP, s, gps))
              if par.pp > 1 and workload.pp_comm_bytes else 0 for s in range(par.pp)]
    for s in range(par.pp):
        placements = {g: stage_placements(par, g, s, gps) for g in ROW_GROUPS}
        pricer = _Pricer(par, cost_model, placements)
        pricers.append(pricer)
        signature = tuple(tuple(placements[g]) for g in ROW_GROUPS)
        replayer = shared.get(signature)
        if replayer is None:
            sequences: dict[object, list[PricedRow]] = {}
            if seg.prefix:
                sequences["pre"] = [pricer.priced(rows[i], ("pre", k), recompute.get(("pre", k), -1))
                                    for k, i in enumerate(seg.prefix)]
            if seg.suffix:
                sequences["suf"] = [pricer.priced(rows[i], ("suf", k), recompute.get(("suf", k), -1))
                                    for k, i in enumerate(seg.suffix)]
            for v, block in enumerate(seg.variants):
                for c, (a, b) in enumerate(ranges):
                    sequences[("mb", v, c)] = [
                        pricer.priced(rows[block[k]], ("mb", k),
                                      max(recompute[("mb", k)] - a, 0)
                                      if ("mb", k) in recompute else -1)
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

    sim = PipelineSim(setups, schedule, par.pp, chunks, options.trace, seg.mb_variant)
    sim.run()

    iteration = max(r.end_ns for r in sim.results)
    critical = max(range(par.pp), key=lambda s: (sim.results[s].end_ns, -s))
    for r in sim.results:
        r.idle_after_ns = iteration - r.end_ns

    # per-row detail, priced as on the critical stage
    pricer = pricers[critical]
    row_exposed = sim.row_exposed(critical)
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
        cost_model=cost_model.describe(), notes=notes, trace=trace,
        events_processed=sim.events)
