"""A what-if study of one workload: the reported run and the runs around it.

``collsim simulate`` with stragglers, jitter, degraded NICs, a failure, ``--draws``,
``--sensitivity`` or ``--co-job`` is more than one simulation: random draws of the slow GPUs
and compute times (the step-time distribution), the same job with every GPU at full speed (the
baseline beside the draws), each group's communication 10% faster (which bandwidth matters),
the lost time of a node failure, or several jobs sharing one cluster. :func:`run_study` runs
them all and returns one :class:`StudyResult` whose reported result is complete (draws,
baseline, sensitivity, failure, notes, assumptions filled in): reporters render it as it is.
"""
from __future__ import annotations

import sys
import warnings

from .errors import InputError, SimulationWarning
from .records import record, replace
from .result import SimulationResult

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    # a run with no what-if (the common one) loads no scenario code: see run_study
    from .scenario import DegradeSpec, FailureSpec, StragglerSpec
    from .cluster import Cluster
    from .costmodel.base import CostModel
    from .engine.simulate import SimulationOptions
    from .workload import Workload

#: each draw is a whole simulation
MAX_DRAWS = 10_000
#: communication groups a sensitivity study speeds up, in report order
SENSITIVITY_GROUPS = ("TP", "EP", "DP", "DP_EP", "PP")
#: the speed-up of a sensitivity run: the group's collectives take 1/1.1 of their time
SENSITIVITY_SPEEDUP = 1.1


@record(frozen=True)
class WhatIf:
    """What makes ranks differ, parsed (see :mod:`simulator.scenario`), and the runs asked for.

    Constructing one checks that the runs asked for make sense together (exit 2 otherwise).
    """
    stragglers: tuple[StragglerSpec, ...] = ()
    degrades: tuple[DegradeSpec, ...] = ()
    failure: FailureSpec | None = None
    # random compute times: ((phase kind, coefficient of variation), ...) and the first seed
    jitter: tuple[tuple[str, float], ...] = ()
    jitter_seed: int = 0
    draws: int = 1                   # random draws of the stragglers and the jitter
    sensitivity: bool = False        # each group's communication 10% faster, one run each
    co_jobs: tuple[str, ...] = ()    # other workload tables on the same cluster
    placement: str | None = None     # of the co-located jobs: packed, spread or rail
    # whether the co-located jobs' pipeline sends block: auto (each from its own table's
    # sidecar, as collsim simulate decides for a table alone), on or off
    co_job_blocking_sends: str = "auto"

    def __post_init__(self) -> None:
        random = bool(self.jitter) or any(s.fraction is not None for s in self.stragglers)
        if self.draws > MAX_DRAWS:
            raise InputError(f"at most {MAX_DRAWS:,} draws (each is a whole simulation), got "
                             f"{self.draws:,}", field="draws")
        if self.placement and not self.co_jobs:
            warnings.warn("--placement changes nothing without --co-job: it places co-located "
                          "jobs, and there is one job", SimulationWarning, stacklevel=2)
        if self.draws > 1 and not random:
            raise InputError("--draws needs something random: a 'fraction=' straggler or "
                             "--jitter", field="draws")


@record(frozen=True)
class StudyResult:
    """The reported run (complete: render it as it is), the co-located jobs' results, and
    the step time of every draw (the reported run is draw 0)."""
    result: SimulationResult
    co_results: tuple[SimulationResult, ...] = ()   # each --co-job's, in order
    draws_ns: tuple[int, ...] = ()


def slow_gpus_note(slow: tuple[tuple[int, float], ...], world: int, pp: int,
                   gpus_per_server: int, draws: int) -> str:
    """Where the slow GPUs of the reported run sit: pipeline stage (PP is outermost in
    Megatron's rank order) and server; at most 12 listed."""
    per_stage = world // max(pp, 1)
    where = [f"rank {rank} (stage {rank // per_stage}, server "
             f"{rank // gpus_per_server}) x{factor:g}"
             for rank, factor in sorted(slow)[:12]]
    more = f" and {len(slow) - 12} more" if len(slow) > 12 else ""
    return (f"slow GPUs{' in draw 1' if draws > 1 else ''}: " + "; ".join(where) + more)


def run_study(workload: Workload, cluster: Cluster, cost_model: CostModel,
              options: SimulationOptions, what_if: WhatIf = WhatIf(), *,
              strict: bool = False, sidecar_of: str | None = None,
              sidecar: dict | None = None, progress: bool = True) -> StudyResult:
    """Simulate ``workload`` under ``what_if``; ``options`` gives
    the world size, schedule, engine, contention, compat and whether to trace the reported
    run. ``strict`` reads the co-located jobs' tables strictly; ``sidecar_of``: the workload
    file whose provenance sidecar names its assumptions (``sidecar``: that sidecar, already
    read); ``progress``: progress on a terminal.
    """
    from .engine import simulate
    from .engine.simulate import resolve_world
    from .provenance import read_sidecar, workload_assumptions
    from .readers.workload import read_workload

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        world = resolve_world(workload, options.gpus, cost_model)
    # the scenario module (its parsers and resolvers) loads only for a what-if that has any
    degraded: tuple[tuple[int, float, int], ...] = ()
    uplinks: tuple[tuple[int, int | None, float], ...] = ()
    if what_if.degrades:
        from .scenario import resolve_degrades, resolve_uplinks
        degraded = resolve_degrades(list(what_if.degrades), world, cluster.gpus_per_server)
        uplinks = resolve_uplinks(list(what_if.degrades))
    stragglers = list(what_if.stragglers)

    def slow_ranks(draw: int) -> tuple[tuple[int, float], ...]:
        if not stragglers:
            return ()
        from .scenario import resolve_all
        return resolve_all(stragglers, world, draw)

    def run_once(draw: int, trace: bool, comm_scale=(), baseline: bool = False):
        return simulate(workload, cluster, cost_model, options=replace(
            options, trace=trace,
            stragglers=() if baseline else slow_ranks(draw),
            degraded=degraded, degraded_uplinks=uplinks, comm_scale=comm_scale,
            jitter=() if baseline else what_if.jitter, jitter_seed=what_if.jitter_seed + draw))

    co_results: list[SimulationResult] = []
    if what_if.co_jobs:
        from .engine import SimulationOptions
        from .engine.simulate import simulate_jobs
        if what_if.draws > 1 or what_if.sensitivity:
            raise InputError("--co-job cannot be combined with --draws or --sensitivity",
                             field="co_jobs")
        from .provenance import table_rules
        others = [read_workload(path, strict=strict) for path in what_if.co_jobs]
        # each co-job's tied-embedding all-reduce and blocking sends from its own sidecar
        rules = [table_rules(path, what_if.co_job_blocking_sends, options.pp_schedule)
                 for path in what_if.co_jobs]
        from .progress import wanted
        if wanted(progress):
            sys.stderr.write(f"simulating {1 + len(others)} co-located jobs together...\n")
        # the jobs share the NICs their GPUs share: contention on, the engine that shares them
        results = simulate_jobs([workload] + others, cluster, cost_model, SimulationOptions(
            gpus=options.gpus, pp_schedule=options.pp_schedule, vpp_chunks=options.vpp_chunks,
            trace=options.trace, stragglers=slow_ranks(0),
            degraded=degraded, degraded_uplinks=uplinks, compat=options.compat,
            embedding_allreduce_bytes=options.embedding_allreduce_bytes,
            blocking_sends=options.blocking_sends,
            grad_sync_before_optimizer=options.grad_sync_before_optimizer),
            placement=what_if.placement or "packed", co_job_rules=rules)
        first, co_results = results[0], results[1:]
    else:
        first = run_once(0, options.trace)
    draws = [first.iteration_ns]
    groups = [g for g in SENSITIVITY_GROUPS if g not in first.free_groups]
    extra = ((what_if.draws - 1) + (len(groups) if what_if.sensitivity else 0)
             + (what_if.draws > 1))
    baseline_ns = None
    sensitivity = None
    if what_if.draws > 1 or what_if.sensitivity:   # more runs: progress loads only for them
        from .progress import Progress
        with warnings.catch_warnings(), Progress(extra, "what-if runs", "run",
                                                 enabled=progress) as bar:
            warnings.simplefilter("ignore")  # the first run already said everything once
            for d in range(1, what_if.draws):
                draws.append(run_once(d, False).iteration_ns)
                bar.update(postfix=f"draw {d + 1} of {what_if.draws}")
            if what_if.draws > 1:
                # beside the draws: the same job with every GPU at full speed
                baseline_ns = run_once(0, False, baseline=True).iteration_ns
                bar.update(postfix="baseline")
            if what_if.sensitivity:
                sensitivity = {}
                for g in groups:
                    sensitivity[g] = run_once(
                        0, False, ((g, 1 / SENSITIVITY_SPEEDUP),)).iteration_ns
                    bar.update(postfix=f"sensitivity {g}")

    notes = list(first.notes)
    slow = slow_ranks(0)
    if slow:
        notes.append(slow_gpus_note(slow, world, workload.pp, cluster.gpus_per_server,
                                    what_if.draws))
    failure = None
    if what_if.failure is not None:
        from .scenario import failure_report
        failure = failure_report(what_if.failure, first.iteration_ns)
        notes.append(failure["summary"])
    result = replace(
        first, notes=notes,
        assumptions=workload_assumptions(workload, sidecar if sidecar is not None
                                         else read_sidecar(sidecar_of or workload.path)),
        baseline_ns=baseline_ns if baseline_ns is not None else first.baseline_ns,
        sensitivity=sensitivity if sensitivity is not None else first.sensitivity,
        failure=failure if failure is not None else first.failure,
        step_time_draws_ns=draws if len(draws) > 1 else first.step_time_draws_ns)
    return StudyResult(result=result, co_results=tuple(co_results), draws_ns=tuple(draws))
