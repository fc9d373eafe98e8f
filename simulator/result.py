"""What a simulation produces: plain data that reporters turn into text, CSV, JSON and plots."""
from __future__ import annotations


from .records import field, record

BREAKDOWN_GROUPS = ("TP", "EP", "DP", "DP_EP", "PP")


@record
class StageResult:
    """Where one pipeline stage's time goes. The parts add up to ``end_ns`` exactly."""

    stage: int
    end_ns: int = 0
    compute_ns: int = 0      # includes recompute
    recompute_ns: int = 0
    exposed_ns: dict[str, int] = field(default_factory=lambda: {g: 0 for g in BREAKDOWN_GROUPS})
    bubble_ns: int = 0
    idle_after_ns: int = 0   # waiting at the end for the slowest stage
    rank_class: int | None = None  # set when ranks of a stage differ (detailed engine)
    ranks: int = 0
    label: str = ""

    def parts_sum_ns(self) -> int:
        return self.compute_ns + sum(self.exposed_ns.values()) + self.bubble_ns


@record
class RowResult:
    """One template row: priced durations (per occurrence) and exposed time on the critical
    stage."""

    sequence: str            # "pre", "mb" (one micro-batch, repeated ga times) or "suf"
    index: int               # position in the sequence
    file_line: int
    name: str
    occurrences: int         # times replayed in the iteration (ga for micro-batch rows)
    fwd_compute_ns: int
    fwd_comm: str            # type as written, e.g. ALLTOALL_EP
    fwd_group: str
    fwd_bytes: int
    fwd_comm_ns: int
    ig_compute_ns: int
    ig_comm: str
    ig_group: str
    ig_bytes: int
    ig_comm_ns: int
    wg_compute_ns: int
    wg_comm: str
    wg_group: str
    wg_bytes: int
    wg_comm_ns: int
    exposed_ns: int = 0      # blocking/waited communication attributed to this row, all occurrences



@record
class TraceSlice:
    """One slice of the timeline: a stage's lane, what ran, when (ns)."""

    stage: int
    lane: str      # compute, TP, EP, DP, DP_EP, PP send, wait, embedding
    name: str
    start_ns: int
    dur_ns: int
    args: dict | None = None


@record
class SimulationResult:
    """What a run reports: iteration time, its breakdown, per-row detail and settings."""

    workload: str
    gpus: int
    tp: int
    ep: int
    pp: int
    dp: int
    dp_ep: int
    ga: int
    chunks: int
    pp_schedule: str
    segmentation: str
    iteration_ns: int
    critical_stage: int
    stages: list[StageResult]
    rows: list[RowResult]
    free_groups: list[str]           # groups of size 1 (their collectives cost nothing)
    cost_model: dict
    notes: list[str] = field(default_factory=list)
    # what the run rests on beyond the cluster and cost model: the workload's GPU, compute
    # source and features (simulator.provenance)
    assumptions: dict = field(default_factory=dict)
    trace: list[TraceSlice] | None = None
    events_processed: int = 0
    step_time_draws_ns: list[int] | None = None  # iteration time of each random what-if draw
    baseline_ns: int | None = None   # with draws: the iteration with no straggler or jitter
    group_placements: dict[str, str] = field(default_factory=dict)  # where each group sits
    sensitivity: dict[str, int] | None = None  # group -> iteration with its comm 10% faster
    failure: dict | None = None
    # link utilisation over time with --contention and a trace: (link name, time ns, share)
    link_samples: list[tuple[str, int, float]] | None = None
    policy: str = ""                 # the policy word on line 1
    replay: str = ""                 # how it was replayed (iterate_* followed, compat)
    link_sharing: str = ""           # whether overlapping transfers shared links, in words

    @property
    def critical(self) -> StageResult:
        return self.stages[self.critical_stage]

    @property
    def compute_ns(self) -> int:
        return self.critical.compute_ns

    @property
    def bubble_ns(self) -> int:
        return self.critical.bubble_ns

    @property
    def exposed_ns(self) -> dict[str, int]:
        return dict(self.critical.exposed_ns)
