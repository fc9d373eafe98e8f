"""Run one job (or several sharing a cluster) and assemble the results.

The fast engine (:mod:`.pipeline`) simulates one representative rank per stage with memoized
passes; the detailed engine (:mod:`.detailed`) one process per rank class with a rendezvous
per collective. The detailed one is used when ranks differ (stragglers, degraded NICs), when
collectives contend for links, and for several jobs on one cluster; both give the same numbers
when ranks are alike (tested).
"""
from __future__ import annotations

from ..cluster import Cluster
from ..costmodel.base import CostModel, uses_fabric
from ..errors import InputError, warn
from ..parallel import RankMap, stage_placements
from ..records import record
from ..result import RowResult, SimulationResult, TraceSlice
from ..workload import ROW_GROUPS, Group, Op, Workload
from .messages import Direction
from .plan import JobPlan, _describe_places, plan_job, resolve_world

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:   # numpy only when rank classes are built
    from collections.abc import Sequence

    import numpy as np

    # the detailed engine's and contention's types: a plain run loads neither module
    from ..network.links import Link
    from .ranks import RankAttributes

PLACEMENTS = ("packed", "spread", "rail")


@record(frozen=True)
class SimulationOptions:
    """How to replay a workload: world size, pipeline schedule, engine, what to keep."""

    gpus: int | None = None          # world size; overrides the header's all_gpus
    pp_schedule: str = "1f1b"        # 1f1b, interleaved or gpipe
    vpp_chunks: int | None = None    # model chunks per stage, 'interleaved' (default: header vpp)
    trace: bool = False              # keep every slice for the timeline
    engine: str = "fast"             # fast (pass-level, memoized) or detailed (row-level)
    # rank -> compute-time factor (a slow GPU); any entry makes ranks differ (detailed engine)
    stragglers: tuple[tuple[int, float], ...] = ()
    # rank -> (NIC bandwidth factor, extra NIC latency in ns): a degraded NIC or link
    degraded: tuple[tuple[int, float, int], ...] = ()
    # (pod, rail or None: every rail, bandwidth factor): a leaf's uplinks to the spine run
    # slower, both ways; only the fabric model (a topology, contention on) has those links
    degraded_uplinks: tuple[tuple[int, int | None, float], ...] = ()
    # (group name, factor) on that group's collective times: sensitivity studies
    comm_scale: tuple[tuple[str, float], ...] = ()
    # collectives (and pipeline sends) that overlap share links max-min fairly: with a
    # topology, every link of its graph (None: on whenever the cost model has a topology);
    # without one, each rank class's NVLink and NIC
    contention: bool | None = None
    # random compute times: ((phase kind, coefficient of variation), ...) and a seed
    jitter: tuple[tuple[str, float], ...] = ()
    jitter_seed: int = 0
    # whose replay of the policy word: auto (the header's style), simai or astra-sim
    compat: str = "auto"
    # bytes of the tied word-embedding gradient all-reduce between each first-stage rank and
    # its last-stage peer, once per step after the backward (Megatron's finalize_model_grads;
    # a generated table's sidecar gives it: the table has no column for that group)
    embedding_allreduce_bytes: int = 0
    # a pipeline send blocks its sender until it has arrived (Megatron-LM's p2p: requests
    # waited on, outside its interleaved schedule's overlap); off: SimAI's asynchronous sends
    blocking_sends: bool = False
    # the rows after the micro-batches (a generated table's optimizer step) wait for the
    # data-parallel streams to go idle (Megatron-LM's finalize_model_grads waits for every
    # gradient bucket); off: SimAI's replay, where they overlap the reduction still in flight
    grad_sync_before_optimizer: bool = False
    # the per-row detail (result.rows): a sweep point, which reports only the iteration and
    # its breakdown, leaves it out; everything else in the result is the same either way
    row_detail: bool = True


# ------------------------------------------------------------------------------ detailed
def _class_setups(plan: JobPlan, options: SimulationOptions, cid_offset: int, job: int,
                  cluster: Cluster):
    """Rank classes of one job and their setups for the detailed engine."""
    from .classes import rank_classes
    from .detailed import ClassSetup, JobRun, scale_rows
    from .ranks import RankAttributes, rank_attributes

    par, cost_model, pricers, setups = plan.par, plan.cost_model, plan.pricers, plan.setups
    classes, colour = rank_classes(
        par, rank_attributes(par.world, options.stragglers, options.degraded),
        RankAttributes())
    attrs: list[RankAttributes] = [c.attributes for c in classes]
    stage_of = {c.cid: c.stage for c in classes}
    degraded_models: dict[tuple, CostModel] = {}
    pp_bytes = plan.workload.pp_comm_bytes

    def worst_nic(member_classes: list) -> tuple[float, int]:
        """The slowest NIC among a group's members: (bandwidth factor, extra latency)."""
        factor = min((attrs[c].nic_factor for c in member_classes), default=1.0)
        extra = max((attrs[c].extra_nic_latency_ns for c in member_classes), default=0)
        return factor, extra

    def degraded_model(factor: float, extra: int) -> CostModel:
        if (factor, extra) not in degraded_models:
            degraded_models[(factor, extra)] = cost_model.degraded(factor, extra)
        return degraded_models[(factor, extra)]

    rep = setups[0].replayer
    run = JobRun(job=job, schedule=plan.schedule, pp=par.pp, chunks=plan.chunks,
                 mb_variant=plan.seg.mb_variant, rules=rep.rules, dlrm_lbl=rep.dlrm_lbl,
                 seq_first=rep.seq_first)
    out = []
    for cls in classes:
        stage_setup = setups[cls.stage]
        sequences = stage_setup.replayer.sequences
        # collectives of groups that hold a degraded NIC are priced with it
        by_model: dict[tuple, set] = {}
        for kind in ROW_GROUPS:
            factor, extra = worst_nic([c for c, _ in cls.group_members[kind]])
            if (factor, extra) != (1.0, 0):
                by_model.setdefault((factor, extra), set()).add(kind)
        for (factor, extra), kinds in by_model.items():
            pricer = pricers[cls.stage].with_cost(degraded_model(factor, extra))
            sequences = {k: [pricer.repriced(r, frozenset(kinds)) for r in v]
                         for k, v in sequences.items()}
        sequences = {k: scale_rows(v, attrs[cls.cid].compute_factor)
                     for k, v in sequences.items()}
        column = cls.group_members[Group.PP]
        nxt = [c for c, _ in column if stage_of[c] == (cls.stage + 1) % par.pp]
        prv = [c for c, _ in column if stage_of[c] == (cls.stage - 1) % par.pp]
        send_next, send_prev = stage_setup.send_next_ns, stage_setup.send_prev_ns
        if par.pp > 1 and pp_bytes:
            for partner, direction in ((nxt, Direction.NEXT), (prv, Direction.PREV)):
                factor, extra = worst_nic([cls.cid] + partner)
                if (factor, extra) == (1.0, 0):
                    continue
                stage = cls.stage if direction is Direction.NEXT else (cls.stage - 1) % par.pp
                ns = max(degraded_model(factor, extra).collective_ns(Op.SENDRECV, pp_bytes, p)
                         for p in stage_placements(par, Group.PP, stage, plan.rank_map))
                if direction is Direction.NEXT:
                    send_next = ns
                else:
                    send_prev = ns
        label = class_label(cls.stage, cls.cid, cls.ranks, cls.example_rank, attrs[cls.cid])
        out.append(ClassSetup(
            cls=cls, cid=cid_offset + cls.cid, job=run, sequences=sequences,
            send_next_ns=send_next, send_prev_ns=send_prev, head=stage_setup.head,
            blocking_send=stage_setup.blocking_send,
            tail=stage_setup.tail,
            next_class=cid_offset + nxt[0] if nxt else None,
            prev_class=cid_offset + prv[0] if prv else None,
            label=label, links=_class_links(plan, cls, colour, cid_offset, job, cluster)))
    return out, colour


def class_label(stage: int, cid: int, ranks: int, example_rank: int,
                attrs: RankAttributes, what: str | None = None) -> str:
    """'stage 0 class 3 (7 ranks, e.g. rank 17, compute x1.2)': how reports name a class.
    ``what``: :func:`class_attributes_text` of ``attrs`` where the caller keeps it."""
    if what is None:
        what = class_attributes_text(attrs)
    return (f"stage {stage} class {cid} ({ranks} rank{'' if ranks == 1 else 's'}, e.g. rank "
            f"{example_rank}" + (f", {what}" if what else "") + ")")


def class_attributes_text(attrs: RankAttributes) -> str:
    """'compute x1.2, NIC +5 us': a class's deviations as its label names them."""
    return ", ".join(f"{k} x{v:g}" if k != "nic_latency_ns" else f"NIC +{v / 1000:g} us"
                     for k, v in attrs.given())


def _class_links(plan: JobPlan, cls, colour: np.ndarray, cid_offset: int, job: int,
                 cluster: Cluster) -> dict:
    """For contention: the link each of the class's group kinds and sends loads, and how much.

    NVLink is per GPU (an NVSwitch never blocks), so each class has its own. A NIC is shared
    by the GPUs wired to it, of this class, other classes and other jobs alike: the link is
    the physical NIC of the class's example rank, and the class loads it in proportion to how
    many of its GPUs sit on that NIC (a collective priced for a GPU's share of its NICs takes
    its priced time when all those GPUs run it, less when the others are idle).
    """
    import numpy as np

    from ..network.links import Link, LinkKind, LinkShare

    par, rank_map = plan.par, plan.rank_map
    gps = cluster.gpus_per_server
    gpus_per_nic = max(1, gps // cluster.nics_per_server)
    gpu = int(rank_map.gpu(np.array([cls.example_rank]))[0])
    server, nic = gpu // gps, (gpu % gps) // gpus_per_nic
    all_gpus = rank_map.gpu(np.arange(par.world, dtype=np.int64))
    on_nic = int(np.count_nonzero((colour == cls.cid) & (all_gpus // gps == server)
                                  & ((all_gpus % gps) // gpus_per_nic == nic)))
    nic_link = LinkShare(Link(LinkKind.NIC, server, nic), on_nic / gpus_per_nic)
    nvl_link = LinkShare(Link(LinkKind.NVLINK, job, cid_offset + cls.cid), 1.0)

    def kind_of(placements) -> LinkShare:
        return nvl_link if all(p.servers == 1 for p in placements) else nic_link

    links: dict = {g: kind_of(plan.pricers[cls.stage].placements[g]) for g in ROW_GROUPS}
    links[Direction.NEXT] = kind_of(stage_placements(par, Group.PP, cls.stage, rank_map))
    links[Direction.PREV] = kind_of(stage_placements(par, Group.PP, (cls.stage - 1) % par.pp,
                                                     rank_map))
    return links


def _run_detailed(plans: list[JobPlan], options: list[SimulationOptions], cluster: Cluster):
    """One detailed simulation of every job's rank classes (options per job)."""
    from .detailed import ClassSetup, DetailedSim
    from .fabric import build_fabric

    setups: list[ClassSetup] = []
    colours = []
    for job, (plan, opts) in enumerate(zip(plans, options)):
        job_setups, colour = _class_setups(plan, opts, len(setups), job, cluster)
        setups.extend(job_setups)
        colours.append(colour)
    fabric = None
    if any(_contention(plan, o) for plan, o in zip(plans, options)) and uses_fabric(
            plans[0].cost_model):
        fabric = build_fabric(plans, setups, colours, [o.degraded for o in options],
                              [e for o in options for e in o.degraded_uplinks])
    jitter = None
    if options[0].jitter:
        from .detailed import Jitter
        jitter = Jitter(dict(options[0].jitter), options[0].jitter_seed)
    sim = DetailedSim(setups, options[0].trace,
                      contention=any(_contention(p, o) for p, o in zip(plans, options)),
                      jitter=jitter, fabric=fabric)
    sim.run()
    return sim, setups


def _contention(plan: JobPlan, options: SimulationOptions) -> bool:
    """Contention asked for, or by default where the cost model routes over a topology the
    user named (not over the preset the cluster flags imply)."""
    if options.contention is not None:
        return bool(options.contention)
    return plan.cost_model.shares_links_by_default and uses_fabric(plan.cost_model)


# ------------------------------------------------------------------------------ results
def _assemble(plan: JobPlan, stage_results: list, row_exposed: dict, trace, events: int,
              options: SimulationOptions) -> SimulationResult:
    par, seg, rows = plan.par, plan.seg, plan.workload.rows
    if plan.embedding_allreduce_ns:
        trace = _embedding_allreduce(plan, stage_results, trace)
    iteration = max(r.end_ns for r in stage_results)
    critical = max(range(len(stage_results)), key=lambda i: (stage_results[i].end_ns, -i))
    for r in stage_results:
        r.idle_after_ns = iteration - r.end_ns
    # per-row detail, priced as on the critical stage
    pricer = plan.pricers[stage_results[critical].stage]
    row_results: list[RowResult] = []
    # SimAI's closed-form bubble's stage time: every row but embedding_layer, compute and
    # blocking communication (the note below), in file order as the detail lists them
    stage_ns = 0
    for seq, indices, occurrences in (("pre", seg.prefix, 1), ("mb", seg.micro_batch, seg.ga),
                                      ("suf", seg.suffix, 1)):
        for k, i in enumerate(indices):
            r = rows[i]
            fwd_comm_ns, ig_comm_ns = pricer.comm_ns(r.fwd), pricer.comm_ns(r.ig)
            if r.name != "embedding_layer":
                stage_ns += occurrences * (r.fwd_ns + r.ig_ns + r.wg_ns
                                           + fwd_comm_ns + ig_comm_ns)
            if not options.row_detail:
                continue
            row_results.append(RowResult(
                sequence=seq, index=k, file_line=r.line, name=r.name, occurrences=occurrences,
                fwd_compute_ns=r.fwd_ns, fwd_comm=r.fwd.type_name(),
                fwd_group=str(r.fwd.group or ""),
                fwd_bytes=r.fwd.size_bytes, fwd_comm_ns=fwd_comm_ns,
                ig_compute_ns=r.ig_ns, ig_comm=r.ig.type_name(), ig_group=str(r.ig.group or ""),
                ig_bytes=r.ig.size_bytes, ig_comm_ns=ig_comm_ns,
                wg_compute_ns=r.wg_ns, wg_comm=r.wg.type_name(), wg_group=str(r.wg.group or ""),
                wg_bytes=r.wg.size_bytes, wg_comm_ns=pricer.comm_ns(r.wg),
                exposed_ns=row_exposed.get((seq, k), 0)))
    if trace is not None:
        trace = sorted(trace, key=lambda x: (x.stage, x.start_ns))
    notes = list(plan.notes)
    if par.pp > 1:
        notes.append(_simai_bubble_note(plan, stage_ns, stage_results[critical].bubble_ns))
    return SimulationResult(
        workload=plan.workload.path, gpus=par.world, tp=par.tp, ep=par.ep, pp=par.pp,
        dp=par.dp, dp_ep=par.dp_ep, ga=seg.ga, chunks=plan.chunks,
        pp_schedule=plan.schedule_name, segmentation=seg.method, iteration_ns=iteration,
        critical_stage=critical, stages=stage_results, rows=row_results,
        free_groups=plan.free_groups,
        group_placements={g: _describe_places(g, v, par) for g, v in plan.group_places.items()},
        cost_model=plan.cost_model.describe(), notes=notes, trace=trace,
        events_processed=events, policy=plan.workload.policy, replay=plan.replay,
        link_sharing=_link_sharing(plan, options))


def _embedding_allreduce(plan: JobPlan, stage_results: list, trace):
    """The tied-embedding gradient all-reduce on the first and last stage: both must have
    finished their backward and gradient reduction (a two-rank collective starts when both
    ranks are there), then it takes its price. The time the earlier stage waits for the other
    is bubble, the all-reduce exposed PP communication; the stage's parts still add up to its
    end. It is placed at each stage's end rather than before the optimizer rows: the optimizer
    runs on each rank's own parameters, so this moves the two stages' ends by the same amount
    when their tails after the gradient reduction take equal time (a generated table's do, up
    to the embedding's share of the optimizer step). Returns ``trace`` with one slice per
    stage (or rank class) it charges, where and as long as it charges it."""
    last = plan.par.pp - 1
    ends = [(i, r) for i, r in enumerate(stage_results) if r.stage in (0, last)]
    meet = max(r.end_ns for _, r in ends)
    ar_ns = plan.embedding_allreduce_ns
    slices = []
    for i, r in ends:
        r.bubble_ns += meet - r.end_ns
        r.exposed_ns["PP"] = r.exposed_ns.get("PP", 0) + ar_ns
        r.end_ns = meet + ar_ns
        slices.append(TraceSlice(i, "embedding", "tied-embedding all-reduce", meet, ar_ns, {
            "collective": "ALLREDUCE", "bytes": plan.embedding_allreduce_bytes,
            "group": "embedding", "blocking": True}))
    return trace if trace is None else [*trace, *slices]


def _link_sharing(plan: JobPlan, options: SimulationOptions) -> str:
    """Whether transfers that overlap in time shared links, and how to change it."""
    if not _contention(plan, options):
        return ("not shared: each collective priced alone (--contention or --topology NAME "
                "shares links)")
    if uses_fabric(plan.cost_model):
        return ("shared: overlapping transfers split every link of the topology max-min "
                "(--no-contention: each alone)")
    return ("shared: overlapping transfers split each rank class's NVLink and NIC "
            "(--no-contention: each alone)")


def _simai_bubble_note(plan: JobPlan, stage_ns: int, simulated_ns: int) -> str:
    """What SimAI's closed form would charge: (pp-1)/(ga*vpp) of the stage's compute plus
    blocking communication (``stage_ns``, rows named embedding_layer left out), for users
    comparing."""
    wl = plan.workload
    ga, vpp = max(1, wl.ga), max(1, wl.vpp)
    closed = (plan.par.pp - 1) * stage_ns / (ga * vpp)
    return (f"SimAI's closed-form bubble, (pp-1)/(ga*vpp) = {plan.par.pp - 1}/({ga}*{vpp}) of "
            f"{stage_ns / 1e6:.3f} ms, would be {closed / 1e6:.3f} ms; simulated as events: "
            f"{simulated_ns / 1e6:.3f} ms")


def _detailed_results(plans: list[JobPlan], sim, setups, options) -> list[SimulationResult]:
    results = []
    for job, plan in enumerate(plans):
        idx = [i for i, s in enumerate(setups) if s.job.job == job]
        local = {g: n for n, g in enumerate(idx)}
        stage_results = []
        for i in idx:
            res = sim.results[i]
            res.rank_class = setups[i].cls.cid
            res.ranks = setups[i].cls.ranks
            res.label = setups[i].label
            stage_results.append(res)
        trace = None
        if sim.trace is not None:
            trace = [TraceSlice(local[t.stage], t.lane, t.name, t.start_ns, t.dur_ns, t.args)
                     for t in sim.trace if t.stage in local]
        critical = max(range(len(idx)), key=lambda n: (stage_results[n].end_ns, -n))
        result = _assemble(plan, stage_results, sim.row_exposed[idx[critical]], trace,
                           sim.events, options)
        if sim.trace is not None and sim.link_samples:
            from ..network.links import LinkKind
            mine = {setups[i].cid for i in idx}
            result.link_samples = [(_link_name(link, setups, sim.fabric), t, v)
                                   for link, t, v in sim.link_samples
                                   if link.kind is not LinkKind.NVLINK
                                   or link.second in mine]
        if sim.fabric is not None:
            f = sim.fabric
            result.notes.append(
                f"fabric: collectives and sends as {len(f.shapes)} flow shapes over "
                f"{f.physical_links} links of the topology in {len(f.capacity)} link classes, "
                f"shared max-min (--no-contention: each alone)")
        results.append(result)
    return results


def _link_name(link: Link, setups, fabric=None) -> str:
    from ..network.links import LinkKind
    if link.kind is LinkKind.FABRIC:
        n = fabric.link_classes.get(link, 0) if fabric is not None else 0
        return f"fabric link class {link.first} ({n} link{'s' if n != 1 else ''})"
    if link.kind is LinkKind.NIC:
        return f"NIC server {link.first} #{link.second}"
    return f"NVLink {setups[link.second].label.split(' (')[0]}"


def _run_classes(plan: JobPlan, options: SimulationOptions) -> SimulationResult:
    """Ranks that differ only in compute or NIC: every class of a stage replayed at once
    (vectors; the row-level engine's numbers, tested), for thousands of classes."""
    from .class_replay import ClassReplay

    replay = ClassReplay(plan, options.stragglers, options.degraded)
    replay.run()
    stage_results = replay.stage_results()
    critical = max(range(len(stage_results)), key=lambda n: (stage_results[n].end_ns, -n))
    return _assemble(plan, stage_results, replay.row_exposed(critical), None, replay.events,
                     options)


# ------------------------------------------------------------------------------ API
def simulate(workload: Workload, cluster: Cluster | None = None,
             cost_model: CostModel | None = None,
             options: SimulationOptions = SimulationOptions()) -> SimulationResult:
    """Simulate one iteration of one job."""
    cluster = cluster or Cluster()
    if cost_model is None:   # the CLI always passes one: the analytical model loads only here
        from ..costmodel.analytical import AnalyticalCostModel
        cost_model = AnalyticalCostModel(cluster)
    job_gpus = options.gpus or workload.all_gpus
    routed = cost_model   # narrowed by uses_fabric, cost_model stays a CostModel
    if job_gpus and uses_fabric(routed):
        # build the topology once at the job's size, not grown stage by stage
        routed.topology_for(job_gpus)
    if options.degraded_uplinks:
        if not uses_fabric(routed):
            raise InputError("a degraded leaf uplink (--degrade leaf=...) is a link of the "
                             "fabric: it needs a topology with a fabric (--topology)",
                             field="degrades")
        if not (options.contention if options.contention is not None
                else cost_model.shares_links_by_default):
            # each collective priced alone: the cost model prices the slow uplinks itself
            cost_model = routed.with_degraded_uplinks(options.degraded_uplinks)
    plan = plan_job(workload, cluster, cost_model, options)
    asymmetric = bool(options.stragglers or options.degraded or _contention(plan, options)
                      or options.jitter)
    if (asymmetric and options.engine != "detailed" and not _contention(plan, options)
            and not options.jitter and not options.trace):
        return _run_classes(plan, options)
    if options.engine == "detailed" or asymmetric:
        sim, setups = _run_detailed([plan], [options], cluster)
        return _detailed_results([plan], sim, setups, options)[0]
    sim = fast_pipeline(plan, options.trace)
    sim.run()
    critical = max(range(len(sim.results)), key=lambda i: (sim.results[i].end_ns, -i))
    result = _assemble(plan, sim.results, sim.row_exposed(critical), sim.trace, sim.events,
                       options)
    if plan.par.pp > 1:
        result.notes.append(_evaluation_note(sim))
    return result


def fast_pipeline(plan: JobPlan, trace: bool, direct: bool | None = None):
    """The fast engine's pipeline for ``plan``: evaluated directly in dependency order
    (:mod:`.direct`), or as events (:mod:`.pipeline`) where a trace needs every slice.
    ``direct`` forces one or the other (tests compare them)."""
    if direct is None:
        direct = not trace
    if not direct:
        from .pipeline import PipelineSim   # the event loop, for a trace's every slice
        return PipelineSim(plan.setups, plan.schedule, plan.par.pp, plan.chunks, trace,
                           plan.seg.mb_variant)
    from .direct import DirectPipeline, structure
    from .schedule import SCHEDULES

    par, seg = plan.par, plan.seg
    heads = [tuple(st.head) for st in plan.setups]
    tails = [tuple(st.tail) for st in plan.setups]
    kind = SCHEDULES.get(plan.schedule_name)
    period = kind.period(par.pp, plan.chunks) if kind is not None else 1
    key = (plan.schedule_name, kind, par.pp, seg.ga, plan.chunks,
           tuple(len(steps) for steps in plan.schedule), seg.mb_variant, tuple(heads),
           tuple(tails), period)
    return DirectPipeline(plan.setups, structure(key, plan.schedule, par.pp, plan.chunks,
                                                 seg.ga, seg.mb_variant, heads, tails, period),
                          par.pp)


def _evaluation_note(sim) -> str:
    """How the pipeline was evaluated (notes: a user comparing runs sees which path ran)."""
    from .direct import DirectPipeline

    if not isinstance(sim, DirectPipeline):
        return "pipeline replayed as events (the trace needs every slice)"
    skipped, rounds = sim.skipped_rounds, sim.struct.rounds
    return (f"pipeline evaluated pass by pass in dependency order (no event loop): {rounds} "
            f"rounds, {skipped} of them repeating the steady state exactly and extrapolated")


def simulate_jobs(workloads: list[Workload], cluster: Cluster, cost_model: CostModel,
                  options: SimulationOptions = SimulationOptions(),
                  placement: str = "packed",
                  co_job_rules: Sequence[tuple[int, bool, bool]] = ()
                  ) -> list[SimulationResult]:
    """Several jobs on disjoint GPUs of one cluster, sharing its NICs; one result each.

    The first job takes ``options``' tied-embedding all-reduce, blocking sends and gradient
    sync before the optimizer; each later job its own from ``co_job_rules`` ((embedding
    all-reduce bytes, blocking sends, gradient sync) per job after the first, as its table's
    sidecar gives them), none where it is not listed.

    ``packed`` gives each job whole servers in turn (they share no NIC: results are those of
    each job alone); ``spread`` interleaves the jobs GPU by GPU and ``rail`` gives each job a
    slice of every server's GPUs, so jobs meet on the NICs their GPUs share.
    """
    if not cost_model.shares_nics:
        raise InputError("several jobs on one cluster need the analytical cost model or a "
                         "--topology (not --calibration) for now", field="co_jobs")
    if options.degraded_uplinks and not uses_fabric(cost_model):
        raise InputError("a degraded leaf uplink (--degrade leaf=...) is a link of the fabric "
                         "model: it needs a topology with a fabric (--topology)",
                         field="degrades")
    if placement not in PLACEMENTS:
        raise InputError(f"unknown placement {placement!r}; expected one of "
                         f"{', '.join(PLACEMENTS)}", field="placement")
    gps = cluster.gpus_per_server
    k = len(workloads)
    worlds = [resolve_world(w, options.gpus if i == 0 else None, cost_model)
              for i, w in enumerate(workloads)]
    maps: list[RankMap] = []
    if placement == "packed":
        offset = 0
        for world in worlds:
            maps.append(RankMap(gps, "packed", k, len(maps), offset))
            offset += -(-world // gps) * gps   # each job starts on a fresh server
    else:
        if len(set(worlds)) != 1:
            raise InputError(f"--placement {placement} needs jobs of equal size, got "
                             f"{', '.join(map(str, worlds))} GPUs", field="placement")
        if gps % k:
            raise InputError(f"--placement {placement}: {k} jobs cannot share servers of "
                             f"{gps} GPUs evenly", field="placement")
        maps = [RankMap(gps, placement, k, j) for j in range(k)]
    # what-ifs on ranks (stragglers, degraded NICs) apply to the first job; the rules of a
    # job's own table (tied-embedding all-reduce, blocking sends) to each job
    rules = [(options.embedding_allreduce_bytes, options.blocking_sends,
              options.grad_sync_before_optimizer), *co_job_rules[:k - 1]]
    rules += [(0, False, False)] * (k - len(rules))
    job_options = [SimulationOptions(
        gpus=options.gpus if i == 0 else None, pp_schedule=options.pp_schedule,
        vpp_chunks=options.vpp_chunks if i == 0 else None, trace=options.trace,
        engine="detailed", stragglers=options.stragglers if i == 0 else (),
        degraded=options.degraded if i == 0 else (),
        degraded_uplinks=options.degraded_uplinks if i == 0 else (),
        contention=True, compat=options.compat,
        embedding_allreduce_bytes=rules[i][0], blocking_sends=rules[i][1],
        grad_sync_before_optimizer=rules[i][2])
        for i in range(k)]
    plans = [plan_job(w, cluster, cost_model, o, m)
             for w, o, m in zip(workloads, job_options, maps)]
    if placement == "packed" and not uses_fabric(cost_model):
        warn("with --placement packed the jobs share no NIC (the fabric is non-blocking in "
             "this model): each runs as if alone")
    sim, setups = _run_detailed(plans, job_options, cluster)
    results = _detailed_results(plans, sim, setups, options)
    total = max(m.gpus_needed(w) for m, w in zip(maps, worlds))
    for r, m in zip(results, maps):
        shared = ("every fabric link they both cross" if uses_fabric(cost_model)
                  else "the NICs their GPUs share")
        r.notes.append(f"job {m.index + 1} of {k} placed '{m.policy}' on one cluster of "
                       f"{total} GPUs; jobs share {shared} (contention on)")
    return results
