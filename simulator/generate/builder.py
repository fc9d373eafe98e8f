"""Build the workload table of one pipeline stage from a :class:`TrainConfig`.

Row layout (AICB's, so that SimAI and our segmenter read it): data-parallel rows first, then
``ga`` copies of one micro-batch (``embedding_layer``, the stage's layers, the output layer),
then the loss/optimizer rows once. Two styles fill it:

* ``megatron`` (default): the collectives Megatron-LM issues, with their sizes. TP:
  ``2 b s h`` bytes per activation all-reduce / all-gather / reduce-scatter, sequence parallel
  backward collectives included; MoE: token-count all-gather on EP, dispatch and combine
  all-to-all of ``topk x b s/TP x h x 2`` bytes on EP, the TP all-gather / reduce-scatter of
  the routed tokens; DP (distributed optimizer): reduce-scatter of fp32 gradients (4 bytes
  per dense parameter) and all-gather of bf16 parameters (2 bytes), the same for expert
  parameters on DP_EP (all-reduce of 4 bytes without the distributed optimizer); with SP
  the layer-norm gradients all-reduced over TP. Collectives on groups of one rank are NONE.
* ``aicb``: AICB's SimAI generator, quirks included (see docs/generate-and-sweep.md):
  its files are reproduced row by row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from ..workload import NO_COMM, Comm, Group, Op, Row, Workload
from .compute import ComputeModel
from .config import TrainConfig
from .moe import COUNT_BYTES, expert_load
from .sizes import (MemoryEstimate, ParamCounts, aicb_params, layer_params, megatron_params,
                    memory_estimate, model_flops_per_iteration, padded_vocab, stage_layers)

POLICY = "HYBRID_TRANSFORMER_FWD_IN_BCKWD"
HEADER_FIELDS = ("model_parallel_NPU_group", "ep", "pp", "vpp", "ga", "all_gpus", "checkpoints",
                 "checkpoint_initiates", "pp_comm")
UPDATE_NS = 100
CORE_ATTENTION = "core_attention"   # row kind: the attention kernel alone (selective recompute)
#: a zero-work row closing each model chunk but the last under full recompute with --vpp: the
#: replay recomputes rows c .. j-1 before row j's backward, so the chunk's last recompute
#: group needs a row j after it inside the chunk's pass (the next chunk's rows run in another)
CHUNK_END = "recompute_chunk_end"


@dataclass
class GeneratedWorkload:
    workload: Workload
    config: TrainConfig
    params: ParamCounts
    memory: MemoryEstimate
    model_flops: float                     # per iteration, whole cluster
    compute_modelled: bool
    notes: list[str] = field(default_factory=list)
    microbatch_compute_ns: int = 0         # forward + backward of one micro-batch, one rank
    compute_source: str = "model"          # model, profile (+ path), none

    def assumptions(self) -> dict:
        """What the table assumed: GPU, how compute was obtained, which features were on."""
        c = self.config
        gpu = c.gpu_spec
        if self.compute_source == "none":
            how = "none: 1 ns placeholders (communication only)"
        elif self.compute_source.startswith("profile"):
            how = self.compute_source + " (rows it names), the GPU model for the rest"
        else:
            how = ("GPU model: every kernel's device time (GEMM curve, attention, memory-bound "
                   "kernels) and host dispatch, replayed as the host issues them "
                   "(docs/compute-model.md); " + (gpu.derivation or "roofline constants")
                   + "; " + power_cap_assumed(gpu, c.features.power_cap))
        return {
            "generator": "collsim generate", "style": c.style, "model": c.model.name,
            "gpu": c.gpu, "gpu_peak_bf16_tflops": gpu.peak_tflops,
            "gpu_hbm_gb_per_s": gpu.hbm_gbps, "compute": how,
            "features": self.features_on(),
            # what the table cannot carry, with its bytes: collsim simulate prices it
            "not_in_table": not_in_table(c),
            "optimizer": (f"DeepSpeed ZeRO-{c.features.zero_stage:d}" if c.features.zero_stage
                          else "Megatron distributed optimizer" if c.distributed_optimizer
                          else "Megatron DDP (all-reduce)"),
            # the schedule the table was generated for: collsim simulate runs it unless
            # --pp-schedule says otherwise
            "pipeline_schedule": ("interleaved" if c.pp > 1 and c.vpp and c.vpp > 1
                                  else "1f1b"),
        }

    def features_on(self) -> dict:
        """The features that are on (:meth:`Features.describe`) and, where the table has a
        pipeline, how its sends go and what of Megatron's stage-to-stage work it leaves out."""
        c = self.config
        on = c.features.describe()
        if c.model.is_moe and c.style == "megatron":
            on.update(c.features.describe_moe())
        if c.style != "megatron" or c.pp == 1:
            return on
        on["pipeline_sends"] = (
            "1/TP of the activation per TP rank, all-gathered over TP (scatter-gather)"
            if scatter_gather_p2p(c) else "1/TP of the activation per TP rank (SP)"
            if c.sp and c.tp > 1 else "the whole activation from every TP rank")
        emb = embedding_grad_allreduce_bytes(c)
        if emb:
            on["tied_embedding_allreduce"] = (f"{emb} bytes per step between the first and "
                                              "last stage, not in the table (in not_in_table)")
        return on

    def info(self) -> dict:
        c = self.config
        return {
            "model": c.model.name, "style": c.style, "gpu": c.gpu, "world": c.world,
            "tp": c.tp, "pp": c.pp, "ep": c.ep, "dp": c.data_parallel, "cp": c.cp,
            "dp_ep": c.dp_ep, "sp": c.sp,
            "vpp": c.vpp, "ga": c.ga, "micro_batch": c.micro_batch,
            "global_batch": c.global_batch, "seq_length": c.seq_length,
            "layers_per_stage": c.layers_per_stage,
            "params_model": self.params.total_model,
            "params_per_gpu_dense": self.params.dense,
            "params_per_gpu_expert": self.params.expert,
            "memory_gib": round(self.memory.total_gib, 2),
            "rows": len(self.workload.rows),
            "microbatch_compute_ms": round(self.microbatch_compute_ns / 1e6, 3),
            "pp_comm_bytes": self.workload.pp_comm_bytes,
            "not_in_table": not_in_table(c),
            "notes": list(self.notes),
            "assumptions": self.assumptions(),
        }


class _Rows:
    """Collects rows; remembers (kind, slot) of each for compute assignment."""

    def __init__(self, cfg: TrainConfig, sizes_group_free: bool):
        self.cfg = cfg
        self.rows: list[list] = []   # [name, kind, slot, fwd, ig, wg, times or None]
        self.free = sizes_group_free  # megatron: collectives on 1-rank groups become NONE

    def comm(self, op: Op | None, group: Group | None, size: int) -> Comm:
        if op is None:
            return Comm(None, None, size) if size else NO_COMM
        assert group is not None, f"{op} without a group"
        if self.free:
            par = self.cfg.parallel
            n = {Group.TP: par.tp, Group.EP: par.ep, Group.DP: par.dp,
                 Group.DP_EP: par.dp_ep}[group]
            if n <= 1 or size <= 0:
                return NO_COMM
        return Comm(op, group, int(size))

    def add(self, name, fwd=NO_COMM, ig=NO_COMM, wg=NO_COMM, kind=None, slot=0, times=None,
            params=None):
        # params: (group, count) of the parameters whose gradients this row's backward makes
        self.rows.append([name, kind or name, slot, fwd, ig, wg, times, params])


#: rows of a generated table: beyond this the file is gigabytes and simulating it takes hours
MAX_ROWS = 1 << 20


def generate(cfg: TrainConfig, compute: str = "model",
             profile: dict[str, tuple[float, float, float]] | None = None,
             check_memory: bool = True, path: str = "<generated>",
             profile_path: str | None = None) -> GeneratedWorkload:
    """Build the workload. ``compute``: ``model`` (GPU model), ``none`` (1 ns placeholders)."""
    if compute not in ("model", "none"):
        raise ValueError(compute)
    params = aicb_params(cfg) if cfg.style == "aicb" else megatron_params(cfg)
    phys = megatron_params(cfg)
    memory = memory_estimate(cfg, phys)
    notes = list(cfg.notes)
    gpu = cfg.gpu_spec
    if check_memory and memory.total_gib > gpu.hbm_gib:
        raise InputError(
            f"needs about {memory.total_gib:.0f} GiB per GPU (weights {memory.weights_gib:.0f}, "
            f"gradients {memory.grads_gib:.0f}, optimizer {memory.optimizer_gib:.0f}, "
            f"activations {memory.activations_gib:.0f}) but one {cfg.gpu.upper()} has "
            f"{gpu.hbm_gib:g} GiB: {_memory_hints(cfg)}", field="memory")
    if cfg.style == "aicb":
        rb = _aicb_rows(cfg, params)
    else:
        rb = _megatron_rows(cfg, params)
        notes.extend(_feature_notes(cfg))
    prefix, block, suffix, ckpt = rb
    n_rows = len(prefix) + cfg.ga * len(block) + len(suffix)
    if n_rows > MAX_ROWS:
        raise InputError(f"the table would have {n_rows:,} rows ({cfg.ga:,} micro-batches of "
                         f"{len(block):,}); at most {MAX_ROWS:,}: lower the global batch or "
                         "raise the micro-batch", field="global_batch")

    cm = ComputeModel(cfg, phys) if compute == "model" else None
    if cm is not None and cfg.features.fp8:
        cm.fp8_model = ComputeModel(cfg, phys, gpu=fp8_gpu(cfg.gpu_spec))
        cm.link_fp8(cm.fp8_model)   # one step chain: FP8 layers, bf16 embedding and output
    if cm is not None and cm.power_cap is not None:
        notes.append(f"power cap applied (the default): GEMMs at the boost clock, then "
                     f"compute-bound kernels x {cm.power_factor:.3f} at the clock this step "
                     f"sustains ({cm.power_cap.source}); --no-power-cap for the kernel "
                     f"sweep's rates")
    rows: list[Row] = []
    line = 3
    profile_used: set[str] = set()

    def finish(spec, placeholder: int) -> Row:
        nonlocal line
        name, kind, slot, fwd, ig, wg, times = spec[:7]
        t = None
        if profile:
            t = profile.get(f"{name}.{slot + 1}") or profile.get(name)
            profile_used.update((f"{name}.{slot + 1}", name))
        if t is None and cm is not None:
            t = tuple(x * 1000.0 for x in _model_row_us(cm, cfg, kind, slot))
        elif t is not None and cm is not None:
            t = _moved_out(cm, cfg, kind, t)
        if t is None:
            t = (placeholder,) * 3 if times is None else times
        r = Row(name=name, fwd_ns=max(0, round(t[0])), fwd=fwd, ig_ns=max(0, round(t[1])), ig=ig,
                wg_ns=max(0, round(t[2])), wg=wg, update_ns=UPDATE_NS, line=line)
        line += 1
        return r

    # with --overlap-grad-reduce the last micro-batch's backward reduces the gradients in
    # buckets (Megatron syncs gradients only on the last micro-batch)
    if cfg.style == "megatron" and cfg.features.zero_stage == 2:
        block = bucketed(cfg, block, bytes_per_param=2, op=Op.REDUCESCATTER)
    last_block = (bucketed(cfg, block, bytes_per_param=cfg.features.grad_bytes)
                  if cfg.features.overlap_grad_reduce else block)
    for spec in prefix:
        rows.append(finish(spec, 1))
    block_rows = [finish(spec, 1) for spec in (block if cfg.ga > 1 else last_block)]
    mb_ns = sum(r.fwd_ns + r.ig_ns + r.wg_ns for r in block_rows)
    rows.extend(block_rows)
    for j in range(1, cfg.ga):
        for spec in (last_block if j == cfg.ga - 1 else block):
            rows.append(finish(spec, 1))
    for spec in suffix:
        rows.append(finish(spec, 0))

    checkpoints: tuple[int, ...] = ()
    initiates: tuple[int, ...] = ()
    if ckpt:  # file row indices: every unrolled micro-batch has its own
        starts = [len(prefix) + j * len(block) for j in range(cfg.ga)]
        checkpoints = tuple(s + a for s in starts for a, _ in ckpt)
        initiates = tuple(s + b for s in starts for _, b in ckpt)
    pp_comm = 0
    if cfg.pp > 1:
        # one rank's pipeline message: the bf16 activation b x s x h (its 1/CP), of which
        # each TP rank sends 1/TP when sequence parallelism has split it or scatter-gather
        # splits it; else every TP rank sends the whole of it
        pp_comm = 2 * cfg.tokens * cfg.model.hidden
        if cfg.sp or scatter_gather_p2p(cfg):
            pp_comm //= cfg.tp
    vpp = cfg.vpp if (cfg.vpp and cfg.vpp > 1) else cfg.layers_per_stage
    wl = Workload(path=path, policy=POLICY, tp=cfg.tp, ep=cfg.parallel.ep, pp=cfg.pp, vpp=vpp,
                  ga=cfg.ga,
                  all_gpus=cfg.world, checkpoints=checkpoints, checkpoint_initiates=initiates,
                  pp_comm_bytes=pp_comm, declared_rows=len(rows), rows=tuple(rows),
                  header_fields=HEADER_FIELDS)
    unused = sorted(set(profile or ()) - profile_used)
    if unused:
        from ..errors import warn
        from ..readers.numbers import shown
        warn(f"{len(unused)} compute-profile row(s) name no row of this workload and change "
             f"nothing: {', '.join(shown(u) for u in unused[:5])}"
             + (" ..." if len(unused) > 5 else ""))
    if compute == "none" and not profile:
        notes.append("no compute modelled: compute columns hold AICB's 1 ns placeholders")
    return GeneratedWorkload(workload=wl, config=cfg, params=params, memory=memory,
                             model_flops=model_flops_per_iteration(cfg),
                             compute_modelled=compute == "model" or bool(profile),
                             notes=notes, microbatch_compute_ns=mb_ns,
                             compute_source=("profile " + (profile_path or "") if profile
                                             else compute).strip())


def _memory_hints(cfg: TrainConfig) -> str:
    """What would lower the memory estimate, leaving out what the configuration already does."""
    hints = ["raise TP/PP/EP"]
    if not cfg.recompute:
        hints.append("add --recompute")
    if not cfg.distributed_optimizer:
        hints.append("add --use-distributed-optimizer (shards the optimizer states over DP)")
    if cfg.micro_batch > 1:
        hints.append("a smaller micro-batch")
    return ", ".join(hints[:-1]) + " or " + hints[-1] if len(hints) > 1 else hints[0]


def not_in_table(cfg: TrainConfig) -> list[dict]:
    """Collectives a real step runs that the table format cannot carry (no column for their
    group), with their bytes, so that a report can say what the simulation leaves out."""
    out = []
    emb = embedding_grad_allreduce_bytes(cfg) if cfg.style == "megatron" else 0
    if emb:
        out.append({"collective": "ALLREDUCE", "group": "embedding (first and last stage)",
                    "bytes": emb, "when": "once per step, after the gradient reduction"})
    return out


def _feature_notes(cfg: TrainConfig) -> list[str]:
    """What a feature did not change, or what the table could not say, for the summary."""
    f = cfg.features
    notes = []
    emb = embedding_grad_allreduce_bytes(cfg)
    if emb:
        notes.append(f"tied embeddings with PP {cfg.pp}: Megatron all-reduces the word-embedding "
                     f"gradient ({emb:,} bytes) between the first and last stage once per step; "
                     "the table has no column for that group: FILE.meta.json carries it "
                     "(not_in_table) and collsim simulate prices it from there "
                     "(--untie-embeddings-and-output-weights removes it)")
    if f.scatter_gather_p2p and not scatter_gather_p2p(cfg):
        why = ("sequence parallelism already splits the activation" if cfg.sp else
               "needs PP > 1 and TP > 1")
        notes.append(f"--scatter-gather-tensors-in-pipeline changes nothing here: {why}")
    if f.overlap_param_gather and not f.zero_stage:
        notes.append("--overlap-param-gather: the parameter buckets are gathered before the "
                     "first forward (the table's forward collectives block, so their overlap "
                     "with the first micro-batch's forward is not modelled: an upper bound), "
                     "written as ALLGATHER_DP_EP, so simulate reports them as DP_EP time (with "
                     "EP 1 the DP ranks)")
        if cfg.parallel.ep > 1:
            notes.append("--overlap-param-gather with EP or CP > 1: the dense parameters' "
                         "gather stays after the step (the table puts forward collectives "
                         "on the data-parallel ranks only through DP_EP, which is not DP here)")
    return notes


def scatter_gather_p2p(cfg: TrainConfig) -> bool:
    """Whether pipeline tensors are scattered over TP and gathered by the receiver: asked
    for, with PP and TP > 1, and without sequence parallelism (whose activation is already
    split, so Megatron skips it)."""
    return (cfg.features.scatter_gather_p2p and cfg.pp > 1 and cfg.tp > 1 and not cfg.sp
            and cfg.style == "megatron")


def embedding_grad_allreduce_bytes(cfg: TrainConfig) -> int:
    """Bytes of the tied word-embedding gradient all-reduce between the first and the last
    pipeline stage (Megatron's embedding group, two ranks of the same TP/DP position), once
    per step after the data-parallel reduction: the local vocabulary shard (padded vocab /
    TP rows of h) of the main gradient; 0 without PP or with untied embeddings."""
    m = cfg.model
    if cfg.pp == 1 or not m.tied_embeddings:
        return 0
    per_param = 2 if cfg.features.zero_stage else cfg.features.grad_bytes
    return padded_vocab(m.vocab, cfg.tp) // cfg.tp * m.hidden * per_param


def param_buckets(count: int, bucket: int) -> list[int]:
    """``count`` parameters cut into Megatron's buckets of ``bucket``: full buckets and
    what is left (the bucket that closes the buffer), none for no parameters."""
    if count <= 0:
        return []
    full, rest = divmod(count, bucket)
    return [bucket] * full + ([rest] if rest else [])


def bucketed(cfg: TrainConfig, block: list, bytes_per_param: int = 4,
             op: Op | None = None) -> list:
    """The micro-batch block with Megatron's gradient buckets on its weight-gradient column.

    Inside each model chunk, the rows' parameters are taken in backward order (last row
    first) and closed into a bucket once it holds ``bucket_size`` parameters (dense on DP,
    experts on DP_EP, separate buffers as in Megatron); the bucket's reduce-scatter
    (distributed optimizer) or all-reduce, 4 bytes a parameter, is issued after the weight
    gradient of the row that completes it, asynchronously, so it overlaps the rest of the
    backward. What is left opens no new bucket: it goes with the chunk's earliest row.
    """
    from ..engine.chunks import chunk_split

    class _Named:
        def __init__(self, name):
            self.name = name

    comm = _Rows(cfg, sizes_group_free=True).comm
    if op is None:
        op = Op.REDUCESCATTER if cfg.distributed_optimizer else Op.ALLREDUCE
    limit = cfg.features.bucket_size
    chunks = cfg.vpp if cfg.vpp and cfg.vpp > 1 else 1
    ranges = chunk_split([_Named(spec[0]) for spec in block], chunks, "<generated>").ranges
    out = [list(spec) for spec in block]
    for a, b in ranges:
        pending: dict = {}
        for k in range(b - 1, a - 1, -1):
            par = out[k][7]
            if not par or par[1] <= 0:
                continue
            group, n = par
            count = pending.get(group, (0, k))[0] + n
            pending[group] = (count, k)
            if count >= limit:
                out[k][5] = comm(op, group, bytes_per_param * count)
                del pending[group]
        for group, (count, k) in pending.items():
            out[k][5] = comm(op, group, bytes_per_param * count)
    return out


def _cap_borrowed(gpu, cap) -> str:
    """Says so when the power model was measured on another GPU (the H100 and H800 take the
    H200's: same limit and clocks, an assumption)."""
    if f"/{gpu.name}/" in cap.source:
        return ""
    return f"; measured on another GPU, assumed for the {gpu.name.upper()}"


def power_cap_assumed(gpu, on: bool) -> str:
    """How the GPU's power cap is priced (the assumptions' compute line)."""
    cap = gpu.power_cap
    if cap is None:
        return ("power cap: no model for this GPU (none measured), every kernel at the rate "
                "derived above")
    if on:
        return (f"power cap on (the default; --no-power-cap turns it off): GEMMs at the "
                f"boost clock (the sweep's curve x {cap.gemm_boost:.4f} in e_max), then GEMMs "
                f"and attention slowed by the "
                f"factor the step's own timeline sustains under the {cap.cap_w:.0f} W limit "
                f"({cap.source}{_cap_borrowed(gpu, cap)}); memory-bound kernels not slowed")
    return ("power cap off (--no-power-cap): GEMMs at the kernel sweep's rate, which ran "
            "partly under the cap (large GEMMs about 4% slower than at the boost clock), "
            "attention and memory-bound kernels at the boost clock (docs/compute-model.md)")


def fp8_gpu(gpu):
    """The GPU as its FP8 GEMMs see it: Hopper's FP8 tensor-core peak is twice bf16's
    (1979 vs 989 dense TFLOPS on H100/H200), operands of one byte, the GEMM curve fitted on
    FP8 GEMMs where there is one (``fp8_gemm``), the casts to FP8 and the FP8 host floor
    (compute.py)."""
    from dataclasses import replace

    peak = getattr(gpu, "fp8_peak_tflops", None) or 2.0 * gpu.peak_tflops
    curve: dict = dict(zip(("gemm_emax", "gemm_x0", "gemm_t0_us"), gpu.fp8_gemm or ()))
    if curve:   # the FP8 fit is the symmetric curve: none of bf16's shape terms
        curve.update(gemm_xk=None, gemm_layouts=())
    return replace(gpu, peak_tflops=peak, gemm_dtype="fp8", **curve)


#: rows whose GEMMs Transformer Engine runs in FP8 (the layers' linear layers, the experts);
#: the embedding, the output layer and the attention kernel stay in bf16
FP8_KINDS = {"attention_layer", "attention_column", "attention_row", "mlp_layer",
             "mlp_column", "mlp_row", "mlp_moelayer"}


def _row_us(cm: ComputeModel, cfg: TrainConfig, kind: str, slot: int):
    """The compute model's row times (us); with --fp8 the layers' GEMMs at the FP8 rate and
    the attention kernel still at bf16's."""
    fp8 = cm.fp8_model
    if fp8 is not None and kind in FP8_KINDS:
        f, ig, wg = fp8.row(kind, slot)
        inside = fp8.core_attention_us()
    else:
        f, ig, wg = cm.row(kind, slot)
        inside = cm.core_attention_us()
    # the attention kernel the row should hold (bf16; flash or unfused) for the one inside
    core = _core_us(cm, cfg)
    if kind == ("attention_row" if cfg.sp else "attention_layer"):
        f += core[0] - inside[0]
    if kind == ("attention_column" if cfg.sp else "attention_layer"):
        ig += core[1] - inside[1]
    return (max(0.0, f), max(0.0, ig), wg)


def _core_us(cm: ComputeModel, cfg: TrainConfig) -> tuple[float, float, float]:
    """The attention kernel of one layer (us): the compute model's flash/fused attention, or
    with --attention-backend unfused the materialised scores (whole sequence; CP's share is
    taken in _moved_out)."""
    if cfg.features.attention_backend == "unfused":
        from .compute import config_unfused_attention_us

        return config_unfused_attention_us(cfg.gpu_spec, cfg)
    return cm.core_attention_us()


def _model_row_us(cm: ComputeModel, cfg: TrainConfig, kind: str, slot: int):
    """The compute model's row times (us), with the work features move between rows."""
    if kind == CORE_ATTENTION:
        return (_core_us(cm, cfg)[0] / cfg.cp, 0.0, 0.0)
    t = _row_us(cm, cfg, kind, slot)
    return tuple(x / 1000.0 for x in _moved_out(cm, cfg, kind, tuple(v * 1000.0 for v in t)))


def _moved_out(cm: ComputeModel, cfg: TrainConfig, kind: str, t_ns: tuple) -> tuple:
    """Row times (ns) less what another row carries or a feature removes.

    Selective recompute moves the core attention forward to its own row (its backward stays
    with the attention backward). Context parallelism leaves each rank 1/CP of the attention
    scores (its queries against every key, load-balanced as Megatron chunks the sequence):
    the compute model prices the whole sequence's, so (1 - 1/CP) of it goes.
    """
    core = _core_us(cm, cfg)
    keep = 1.0 / cfg.cp
    fwd_row = "attention_row" if cfg.sp else "attention_layer"
    bwd_row = "attention_column" if cfg.sp else "attention_layer"
    f, ig, wg = t_ns
    if kind == fwd_row:
        selective = cfg.features.recompute_granularity == "selective"
        f -= core[0] * 1000.0 * (1.0 if selective else 1.0 - keep)
    if kind == bwd_row:
        ig -= core[1] * 1000.0 * (1.0 - keep)
    return (max(0.0, f), max(0.0, ig), wg)


# ------------------------------------------------------------------------------ megatron

def _megatron_rows(cfg: TrainConfig, p: ParamCounts):
    m = cfg.model
    R = _Rows(cfg, sizes_group_free=True)
    act = 2 * cfg.tokens * m.hidden                  # one activation, bf16
    AR, AG, RS, A2A = Op.ALLREDUCE, Op.ALLGATHER, Op.REDUCESCATTER, Op.ALLTOALL
    TP, EP, DP, DPEP = Group.TP, Group.EP, Group.DP, Group.DP_EP
    c = R.comm

    # data-parallel rows (their weight-gradient collectives are issued at the end of backward;
    # with --overlap-grad-reduce the gradient reduction moves into the last backward instead)
    f = cfg.features
    after = not f.overlap_grad_reduce
    gb = f.grad_bytes   # main-gradient bytes per parameter (fp32: 4, unless bf16/fp16 grads)
    zero = f.zero_stage
    # --overlap-param-gather: the updated parameters are gathered bucket by bucket before the
    # next forward uses them, not all at once after the step; the table can put a forward
    # collective on the data-parallel ranks only as *_DP_EP, which is DP when the table's EP
    # column is one rank (no experts, no CP)
    gather_ahead = f.overlap_param_gather and not zero and cfg.parallel.ep == 1
    if zero:
        # DeepSpeed ZeRO, bf16 gradients and parameters on the wire (2 bytes): stage 1
        # reduce-scatters the accumulated gradients after the last backward, 2 in buckets
        # during every backward (gradients are partitioned), 3 per layer (below); 1 and 2
        # all-gather the updated parameters after the step
        if zero < 3:
            R.add("zero_param_gather", wg=c(AG, DP, 2 * p.dense))
        if zero == 1:
            R.add("zero_grad_reduce", wg=c(RS, DP, 2 * p.dense))
    elif cfg.distributed_optimizer:
        if gather_ahead:
            for k, count in enumerate(param_buckets(p.dense, f.bucket_size or p.dense)):
                R.add(f"param_gather_{k + 1}", fwd=c(AG, DPEP, 2 * count), kind="none")
        else:
            R.add("grad_gather", wg=c(AG, DP, 2 * p.dense))
        if after:
            R.add("grad_param_comm", wg=c(RS, DP, gb * p.dense))
    elif after:
        R.add("grad_param_comm", wg=c(AR, DP, gb * p.dense))
    if cfg.sp:
        R.add("layernorm", ig=c(AR, TP, gb * p.norms))
    if m.is_moe:
        if cfg.distributed_optimizer and f.overlap_param_gather and not zero:
            # the experts' buffer is gathered over its own group, DP_EP, which a forward
            # collective can name
            for k, count in enumerate(param_buckets(p.expert, f.bucket_size or p.expert)):
                R.add(f"moe_param_gather_{k + 1}", fwd=c(AG, DPEP, 2 * count), kind="none")
        elif cfg.distributed_optimizer:
            R.add("moe_grad_norm1", wg=c(AG, DPEP, 2 * p.expert))
            if after:
                R.add("moe_grad_norm2", wg=c(RS, DPEP, gb * p.expert))
        elif after:
            R.add("moe_grad_norm2", wg=c(AR, DPEP, gb * p.expert))
    lp = layer_params(cfg)
    table = padded_vocab(m.vocab, cfg.tp) // cfg.tp * m.hidden
    emb_params = table + m.max_position * m.hidden if cfg.pp == 1 else 0
    prefix = R.rows
    R.rows = []

    # one micro-batch
    layer_rows: list[tuple[int, int]] = []   # (first, last) row of each layer in the block
    selective = cfg.features.recompute_granularity == "selective"
    def zero3(count: int, before: bool) -> None:
        """ZeRO-3's parameter all-gather before a layer's forward (and its gradients'
        reduce-scatter after its backward), or the re-gather before its backward."""
        # the table can put a forward or input-gradient collective on the data-parallel
        # ranks only as *_DP_EP; with EP 1 (ZeRO runs no experts here) that is the DP group
        if zero != 3 or count <= 0:
            return
        if before:
            R.add("zero3_param_gather", fwd=c(AG, DPEP, 2 * count), wg=c(RS, DP, 2 * count),
                  kind="none")
        else:
            R.add("zero3_param_regather", ig=c(AG, DPEP, 2 * count), kind="none")

    if f.get_batch == "legacy":
        # tensor_parallel.broadcast_data: the key sizes (5 dims of one int64 key) broadcast
        # over TP, read back on the host (a sync point: compute.py), then the tokens (int64,
        # b x (s+1)) broadcast
        R.add("get_batch_sizes", fwd=c(Op.BROADCAST, TP, 40), kind="get_batch", slot=0)
        R.add("get_batch_data", fwd=c(Op.BROADCAST, TP, 8 * cfg.micro_batch
                                      * (cfg.seq_length + 1)), kind="get_batch", slot=1)
    zero3(emb_params, True)
    R.add("embedding_layer", fwd=c(RS if cfg.sp else AR, TP, act), params=(DP, emb_params))
    zero3(emb_params, False)
    # Megatron's scatter-gather of pipeline tensors: each TP rank sends 1/TP of the
    # activation (pp_comm) and the receiver all-gathers it over TP before using it; the
    # activation from the previous stage before the first layer of each model chunk, the
    # gradient from the next stage before the chunk's backward
    sg = scatter_gather_p2p(cfg)
    if sg:
        R.add("pp_recv_gather", fwd=c(AG, TP, act), kind="none")
    chunks = cfg.vpp if cfg.vpp and cfg.vpp > 1 else 1
    chunked = chunks > 1
    per_chunk = cfg.layers_per_stage // chunks
    for j, i in enumerate(stage_layers(cfg)):
        if chunked and f.full_recompute and j and j % per_chunk == 0:
            # the earlier chunk's last recompute group initiates here (recompute_spans)
            R.add(CHUNK_END, kind="none")
        if sg and j and j % per_chunk == 0:
            # between two chunks: the later chunk's received activation (written at the
            # end of the earlier chunk's forward, the same stage's work) and the earlier
            # chunk's received gradient (at the start of its backward, where it runs)
            R.add("pp_chunk_gather", fwd=c(AG, TP, act), ig=c(AG, TP, act), kind="none")
        zero3(lp.attn + 2 * lp.norm + lp.dense_mlp, True)
        first = len(R.rows)
        attn_params = (DP, lp.attn + lp.norm)
        if cfg.sp:
            R.add("attention_column", fwd=c(AG, TP, act), ig=c(RS, TP, act), params=attn_params)
            _context_parallel_rows(cfg, R)
            if selective:
                R.add("attention_core", kind=CORE_ATTENTION)
            R.add("attention_row", fwd=c(RS, TP, act), ig=c(AG, TP, act))
        else:
            R.add("attention_layer", fwd=c(AR, TP, act), ig=c(AR, TP, act), params=attn_params)
            _context_parallel_rows(cfg, R)
            if selective:
                R.add("attention_core", kind=CORE_ATTENTION)
        if m.moe_layer(i):
            counts = COUNT_BYTES * m.experts * cfg.ep
            # the busiest EP rank's routed tokens (moe.py: imbalance, capacity, padding);
            # balanced and dropless: top-k x the rank's tokens, each way
            load = expert_load(cfg)
            a2a = max(load.sent, load.received) * m.hidden * 2
            # the routed tokens are gathered over the expert-TP group; ETP 1: none
            etp = cfg.features.etp or cfg.tp
            gathered = load.received * etp * m.hidden * 2 if etp > 1 else 0
            if f.moe_aux_loss_coeff and f.moe_router_load_balancing_type != "none" \
                    and cfg.tp > 1:
                # the load-balancing loss sums the per-expert token counts over the
                # sequence-partition (TP) group: an all-reduce of int64 counts; before the
                # layer's MoE rows, whose consecutive slots a compute profile numbers
                R.add("moe_aux_loss_counts", fwd=c(AR, TP, COUNT_BYTES * m.experts),
                      kind="none")
            R.add("mlp_moelayer", fwd=c(AG, EP, counts), slot=0,
                  params=(DP, lp.router + lp.shared + lp.norm))
            R.add("mlp_moelayer", fwd=c(A2A, EP, a2a), ig=c(A2A, EP, a2a), slot=1)
            R.add("mlp_moelayer", fwd=c(AG, TP, gathered), ig=c(RS, TP, gathered), slot=2,
                  params=(DPEP, lp.experts))
            R.add("mlp_moelayer", fwd=c(RS, TP, gathered), ig=c(AG, TP, gathered), slot=3)
            R.add("mlp_moelayer", fwd=c(A2A, EP, a2a), ig=c(A2A, EP, a2a), slot=4)
            if m.shared_experts and cfg.sp:
                # the shared experts are a TP-sharded MLP of their own on the layer's input:
                # sequence-parallel all-gather before, reduce-scatter after (their GEMMs are
                # priced with the experts); without --moe-shared-expert-overlap they run after
                # the routed experts
                R.add("mlp_shared_column", fwd=c(AG, TP, act), ig=c(RS, TP, act), kind="none")
                R.add("mlp_shared_row", fwd=c(RS, TP, act), ig=c(AG, TP, act), kind="none")
        elif cfg.sp:
            R.add("mlp_column", fwd=c(AG, TP, act), ig=c(RS, TP, act),
                  params=(DP, lp.dense_mlp + lp.norm))
            R.add("mlp_row", fwd=c(RS, TP, act), ig=c(AG, TP, act))
        else:
            R.add("mlp_layer", fwd=c(AR, TP, act), ig=c(AR, TP, act),
                  params=(DP, lp.dense_mlp + lp.norm))
        layer_rows.append((first, len(R.rows) - 1))
        zero3(lp.attn + 2 * lp.norm + lp.dense_mlp, False)
    # the output layer (untied, or the last stage's copy) and the final norm: the rest of the
    # stage's dense parameters
    assigned = sum(spec[7][1] for spec in R.rows if spec[7] and spec[7][0] is DP)
    out_params = (DP, max(0, p.dense - assigned))
    zero3(out_params[1], True)
    if cfg.sp:
        R.add("final_column", fwd=c(AG, TP, act), ig=c(RS, TP, act), params=out_params)
    else:
        R.add("final_column", ig=c(AR, TP, act), params=out_params)
    zero3(out_params[1], False)
    for j in range(3):  # vocabulary-parallel cross entropy: max, target logit, sum of exp
        R.add(f"cross_entropy{j + 1}", fwd=c(AR, TP, 4 * cfg.tokens), kind="cross_entropy")
    if sg:
        R.add("pp_grad_gather", ig=c(AG, TP, act), kind="none")
    block = R.rows
    R.rows = []
    if f.params_dtype == "fp16":
        # the loss scaler's found_inf (one fp32), all-reduced (MAX) after the unscale over
        # the model-parallel group, of which the table can name TP (PP's part is left out);
        # the distributed optimizer's grad stats span every rank (its main gradients are
        # sharded over DP): DP's part as a second all-reduce, which a forward collective can
        # name only as *_DP_EP (the DP ranks when the table's EP column is one rank)
        R.add("loss_scale_found_inf", fwd=c(AR, TP, 4), kind="loss_scale")
        if cfg.distributed_optimizer and cfg.parallel.ep == 1:
            R.add("loss_scale_found_inf_dp", fwd=c(AR, DPEP, 4), kind="none")
    for j in range(4):
        R.add(f"optimizer{j + 1}", fwd=c(AR, TP, 4), kind="optimizer" if j == 0 else "none")
    suffix = R.rows
    return prefix, block, suffix, recompute_spans(cfg, block, layer_rows)


def _context_parallel_rows(cfg: TrainConfig, R: _Rows) -> None:
    """The context-parallel collectives of one attention block, on the CP group (EP column).

    ``allgather`` and ``p2p`` (the ring: CP-1 steps each passing one rank's K and V on, the
    same bytes as gathering them): forward all-gather of the whole sequence's K and V
    (2 tensors x tokens x CP x local KV heads x head dim x 2 bytes), backward reduce-scatter
    of their gradients. The ring's steps overlap the attention kernel in Transformer Engine;
    here they block, an upper bound. ``a2a`` (Ulysses): all-to-all of Q, K, V before the
    kernel and of its output after, each way, per rank ``2 x tokens x heads x head dim``.
    """
    if cfg.cp <= 1:
        return
    m, tp = cfg.model, cfg.tp
    nh, nkv, hd = m.heads // tp, max(1, m.kv // tp), m.hd
    T = cfg.tokens
    if cfg.features.cp_comm_type == "a2a":
        qkv = 2 * T * (nh + 2 * nkv) * hd
        out = 2 * T * nh * hd
        R.add("attention_cp_qkv", fwd=R.comm(Op.ALLTOALL, Group.EP, qkv),
              ig=R.comm(Op.ALLTOALL, Group.EP, qkv), kind="none")
        R.add("attention_cp_out", fwd=R.comm(Op.ALLTOALL, Group.EP, out),
              ig=R.comm(Op.ALLTOALL, Group.EP, out), kind="none")
    else:
        kv = 2 * 2 * T * cfg.cp * nkv * hd
        R.add("attention_cp_kv", fwd=R.comm(Op.ALLGATHER, Group.EP, kv),
              ig=R.comm(Op.REDUCESCATTER, Group.EP, kv), kind="none")


def recompute_spans(cfg: TrainConfig, block: list, layer_rows: list[tuple[int, int]]):
    """(checkpoint row, recompute-initiate row) pairs of one micro-batch block.

    Full recompute, Megatron's methods, inside each model chunk (a chunk is a transformer
    block of its own): ``uniform`` checkpoints the input of every group of N consecutive
    layers and replays the whole group (rows c .. j-1, the initiate on the row after the
    group) before its backward; ``block`` checkpoints the first
    N layers one by one and keeps every activation of the others. Selective recompute
    replays the core attention row alone (its forward holds no collective).
    """
    f = cfg.features
    if f.recompute_granularity == "selective":
        cores = [k for k, spec in enumerate(block) if spec[1] == CORE_ATTENTION]
        # the replay runs rows c .. j-1 (ASTRA-sim 1.0): initiate at the row after the core
        # (the layer's MLP row, always there), so exactly the core's forward is replayed
        return [(k, k + 1) for k in cores if k + 1 < len(block)]
    if not f.full_recompute:
        return []
    chunks = cfg.vpp if cfg.vpp and cfg.vpp > 1 else 1
    per_chunk = max(1, len(layer_rows) // chunks)
    n = f.recompute_num_layers or 1
    spans: list[tuple[int, int]] = []

    def span(group: list[tuple[int, int]], chunk_end: int) -> tuple[int, int]:
        # replay is rows c .. j-1: initiate at the row after the group's last row (the next
        # layer's first row, itself a checkpoint, the output layer, or the chunk's
        # CHUNK_END row), so the whole group is recomputed, as Megatron does
        last = group[-1][1]
        return (group[0][0], last + 1 if last < chunk_end else last)

    for c0 in range(0, len(layer_rows), per_chunk):
        chunk = layer_rows[c0:c0 + per_chunk]
        last_chunk = c0 + per_chunk >= len(layer_rows)
        # the last row of the chunk's pass: the loss in the last chunk; in the others the
        # CHUNK_END row after the chunk's last layer (the next chunk starts after it)
        after = chunk[-1][1] + 1
        chunk_end = (len(block) - 1 if last_chunk else
                     after if after < len(block) and block[after][0] == CHUNK_END else
                     chunk[-1][1])
        if f.recompute_method == "block":
            spans.extend(span([layer], chunk_end) for layer in chunk[:n])
        else:
            for g in range(0, len(chunk), n):
                spans.append(span(chunk[g:g + n], chunk_end))
    return spans


# ---------------------------------------------------------------------------------- aicb

def _aicb_rows(cfg: TrainConfig, p: ParamCounts):
    """AICB's SimAI training workload (Megatron frame, no profiled compute), as it writes it."""
    m = cfg.model
    R = _Rows(cfg, sizes_group_free=False)
    total, moe = p.dense + p.expert, p.expert
    tp_size = 2 * cfg.micro_batch * cfg.seq_length * m.hidden
    AR, AG, RS, A2A = Op.ALLREDUCE, Op.ALLGATHER, Op.REDUCESCATTER, Op.ALLTOALL
    TP, EP, DP, DPEP = Group.TP, Group.EP, Group.DP, Group.DP_EP
    c = R.comm

    R.add("grad_norm", fwd=c(AG, TP, 2 * total), wg=c(RS, DP, 4 * total))
    if not cfg.sp:
        R.add("layernorm", ig=c(AR, TP, 2 * total))
    if cfg.ep != cfg.dp:
        R.add("moe_grad_norm1", wg=c(AG, DPEP, 2 * moe))
        R.add("moe_grad_norm2", wg=c(RS, DPEP, 4 * moe))
    prefix = R.rows
    R.rows = []

    twice = 2 if cfg.recompute else 1
    if cfg.sp:
        R.add("embedding_layer", fwd=c(None, None, tp_size), ig=c(None, None, tp_size))
        for _ in range(cfg.layers_per_stage):
            R.add("attention_column", fwd=c(AG, TP, tp_size * twice))
            R.add("attention_row", fwd=c(RS, TP, tp_size * twice), ig=c(None, None, tp_size))
            if m.is_moe:
                k = m.topk
                d = tp_size * k // cfg.tp
                R.add("mlp_moelayer", fwd=c(AG, TP, 2 * cfg.ep * m.experts * cfg.tp), slot=0)
                R.add("mlp_moelayer", fwd=c(A2A, EP, d), ig=c(A2A, EP, d), slot=1)
                R.add("mlp_moelayer", fwd=c(AG, TP, tp_size * k), ig=c(RS, TP, tp_size * k),
                      slot=2)
                R.add("mlp_moelayer", fwd=c(RS, TP, tp_size * k), ig=c(AG, TP, tp_size * k),
                      slot=3)
                R.add("mlp_moelayer", fwd=c(A2A, EP, d), ig=c(A2A, EP, d), slot=4)
            else:
                R.add("mlp_column", fwd=c(AG, TP, tp_size))
                R.add("mlp_row", fwd=c(RS, TP, tp_size), ig=c(None, None, tp_size))
        R.add("final_column", fwd=c(AG, TP, tp_size))
    else:
        R.add("embedding_layer", fwd=c(AR, TP, tp_size), ig=c(AR, TP, tp_size))
        for _ in range(cfg.layers_per_stage):
            R.add("attention_layer", fwd=c(AR, TP, tp_size * twice), ig=c(AR, TP, tp_size))
            R.add("mlp_layer", fwd=c(AR, TP, tp_size), ig=c(AR, TP, tp_size))
    R.add("embedding_norm", fwd=c(AR, TP, m.vocab * m.hidden * 2),
          kind="final_column" if not cfg.sp else "embedding_norm")
    block = R.rows
    R.rows = []
    for j in range(3):
        R.add(f"cross_entropy{j + 1}", fwd=c(AR, TP, cfg.seq_length * cfg.micro_batch * 4),
              times=(0, 0, 0))
    for j in range(4):
        R.add(f"optimizer{j + 1}", fwd=c(AR, TP, 4), times=(0, 0, 0),
              kind="optimizer" if j == 0 else "none")
    suffix = R.rows
    return prefix, block, suffix, []
