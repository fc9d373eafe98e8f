"""Megatron-LM (and DeepSpeed) training features that change the work of a step.

A :class:`Features` holds what ``collsim generate`` was asked for, under Megatron's own flag
names; :func:`check_features` rejects what Megatron would reject, naming the flag. The
builder (:mod:`.builder`) turns each feature into rows and collectives as the framework
does; ``docs/generate-and-sweep.md`` says how, feature by feature.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

RECOMPUTE_GRANULARITIES = ("full", "selective")
RECOMPUTE_METHODS = ("uniform", "block")
ATTENTION_BACKENDS = ("flash", "fused", "unfused")
CP_COMM_TYPES = ("p2p", "a2a", "allgather")
FP8_FORMATS = ("hybrid", "e4m3")
PARAMS_DTYPES = ("bf16", "fp16")
MOE_LOAD_BALANCING_TYPES = ("aux_loss", "seq_aux_loss", "none")
MOE_SCORE_FUNCTIONS = ("softmax", "sigmoid")
GET_BATCH_STYLES = ("core", "legacy")

#: Megatron's default DDP bucket: max(40M, 1M x DP) parameters
DEFAULT_BUCKET_PARAMS = 40_000_000
#: DeepSpeed's default reduce_bucket_size (elements)
ZERO_REDUCE_BUCKET_PARAMS = 500_000_000


@dataclass(frozen=True)
class Features:
    recompute_granularity: str | None = None   # None: keep every activation
    recompute_method: str | None = None        # full only: uniform (groups) or block (first N)
    recompute_num_layers: int | None = None    # layers per group (uniform) or recomputed (block)
    overlap_grad_reduce: bool = False          # gradient buckets reduced during the backward
    overlap_param_gather: bool = False         # parameter buckets gathered during the forward
    bucket_size: int | None = None             # parameters per DDP bucket (None: Megatron's)
    attention_backend: str = "flash"           # flash/fused: no score matrix; unfused: s x s
    # unfused only (Megatron's core attention): its fused scale-mask-softmax kernel
    # (--no-masked-softmax-fusion: PyTorch's separate scale, mask and softmax, as measured)
    # and the dropout on the attention probabilities (--attention-dropout, Megatron's 0.1;
    # flash kernels apply it inside)
    masked_softmax_fusion: bool = True
    attention_dropout: float = 0.1
    fp8: str | None = None                     # FP8 GEMMs (Hopper): hybrid or e4m3
    cp: int = 1                                # context parallelism
    cp_comm_type: str = "p2p"
    etp: int | None = None                     # expert tensor parallelism (None: TP)
    zero_stage: int = 0                        # DeepSpeed ZeRO 1-3 (0: Megatron's optimizer)
    # pipeline sends split over TP, re-gathered by the receiver (Megatron's old default)
    scatter_gather_p2p: bool = False
    # the interleaved schedule's pipeline sends overlap compute (Megatron-LM's
    # overlap_p2p_comm, on by default); off: they block the sender, as in the other schedules
    overlap_p2p_comm: bool = True
    params_dtype: str = "bf16"                 # --bf16 or --fp16 (the training precision)
    accumulate_allreduce_grads_in_fp32: bool = False   # fp16: fp32 main gradients
    grad_reduce_in_bf16: bool = False          # bf16: main gradients (and their reduce) bf16
    # Megatron-core MoE layer (alltoall dispatcher; simulator/generate/moe.py)
    moe_grouped_gemm: bool = False             # one grouped GEMM for all local experts
    moe_router_load_balancing_type: str = "aux_loss"
    moe_aux_loss_coeff: float = 0.0            # Megatron's default: no load-balancing loss
    moe_z_loss_coeff: float | None = None
    moe_router_score_function: str = "softmax"
    moe_expert_capacity_factor: float | None = None   # None: dropless
    moe_pad_expert_input_to_capacity: bool = False
    # ours, not Megatron's: tokens of the busiest EP rank over the mean (1.0: balanced)
    moe_expert_load_imbalance: float = 1.0
    # host reads inside a step (host_sync.py): the loss's NaN check every micro-batch
    # (Megatron-LM's --check-for-nan-in-loss-and-grad, on by default)
    check_for_nan_in_loss: bool = True
    # core: megatron-core's get_batch_on_this_tp_rank (known shapes, no host read); legacy:
    # tensor_parallel.broadcast_data (key sizes broadcast over TP and read back every batch)
    get_batch: str = "core"
    loss_scale: float | None = None            # fp16: a static loss scale (None: dynamic)
    # Megatron-LM's gradient_accumulation_fusion (on by default since early 2022;
    # --no-gradient-accumulation-fusion turns it off): the linear layers' weight-gradient GEMMs
    # accumulate into the main-gradient buffer (beta = 1), so those weights have no separate
    # add after the backward. Needs Megatron's DDP main_grad: off under DeepSpeed ZeRO
    gradient_accumulation_fusion: bool = True
    # ours: the GPU's sustained clock under its power cap (power.py), where the GPU has a
    # fitted model; on by default (closer on the validated H200 steps' median and never worse
    # on their worst or counts: docs/compute-model.md); False prices the kernels at the
    # sweep's rates
    power_cap: bool = True
    # ours: whether clipping's scale runs in the optimizer step (Megatron's clip_grad_norm_fp32
    # scales the main gradients only when their norm is above --clip-grad, which depends on
    # the training state); True prices it every step
    clip_scale: bool = True

    @property
    def grad_bytes(self) -> int:
        """Bytes per gradient element of Megatron's main-gradient buffer, which the
        data-parallel reduction, the SP layer-norm all-reduce and the tied-embedding
        all-reduce move: fp32 (4) with bf16 (Megatron forces fp32 accumulation for bf16
        unless --grad-reduce-in-bf16) or with fp16 and --accumulate-allreduce-grads-in-fp32;
        else the parameters' 2 bytes."""
        if self.params_dtype == "bf16":
            return 2 if self.grad_reduce_in_bf16 else 4
        return 4 if self.accumulate_allreduce_grads_in_fp32 else 2

    @property
    def full_recompute(self) -> bool:
        return self.recompute_granularity == "full"

    def describe(self) -> dict:
        """The features that are on, for the reports (JSON and text)."""
        on: dict = {}
        if self.recompute_granularity:
            on["recompute"] = self.recompute_granularity + (
                f" ({self.recompute_method}, {self.recompute_num_layers} layer(s))"
                if self.full_recompute else " (core attention)")
        if self.overlap_grad_reduce:
            on["overlap_grad_reduce"] = True
        if self.overlap_param_gather:
            on["overlap_param_gather"] = True
        if self.overlap_grad_reduce or self.overlap_param_gather:
            on["bucket_size_params"] = self.bucket_size
        on["attention_backend"] = self.attention_backend
        if self.attention_backend == "unfused":
            on["attention_softmax"] = ("Megatron's fused scale-mask-softmax"
                                       if self.masked_softmax_fusion
                                       else "PyTorch's scale, mask and softmax kernels")
            on["attention_dropout"] = self.attention_dropout
        if self.fp8:
            on["fp8"] = self.fp8
        if self.cp > 1:
            on["context_parallel"] = f"{self.cp} ({self.cp_comm_type})"
        if self.etp is not None:
            on["expert_tensor_parallel"] = self.etp
        if self.zero_stage:
            on["zero_stage"] = self.zero_stage
        else:
            on["grad_reduce_dtype"] = {4: "fp32", 2: self.params_dtype}[self.grad_bytes]
        if self.params_dtype != "bf16":
            on["params_dtype"] = self.params_dtype
        if self.scatter_gather_p2p:
            on["scatter_gather_p2p"] = True
        if not self.overlap_p2p_comm:
            # collsim simulate reads it (provenance.blocking_sends): interleaved sends block
            on["overlap_p2p_comm"] = False
        if self.params_dtype == "fp16":
            on["loss_scale"] = "dynamic" if self.loss_scale is None else self.loss_scale
        if self.get_batch != "core":
            on["get_batch"] = self.get_batch
        on["host_syncs"] = "; ".join(self.host_syncs())
        on["gradient_accumulation"] = self.describe_accumulation()
        if not self.clip_scale:
            on["clip_scale"] = "off: the gradient norm taken at or below --clip-grad"
        if self.power_cap:
            on["power_cap"] = ("on (the default): compute-bound kernels at the clock the step "
                               "sustains under the GPU's power cap, where it has a model")
        return on

    def describe_accumulation(self) -> str:
        """How each micro-batch's weight gradients reach the main gradients, for the reports."""
        if self.gradient_accumulation_fusion:
            return ("fused into the weight-gradient GEMMs of the linear layers (Megatron-LM's "
                    "gradient_accumulation_fusion, its default); layer norms, biases, the "
                    "router and the embedding tables added separately")
        why = " (DeepSpeed ZeRO owns the gradients)" if self.zero_stage else ""
        return ("separate: one add per parameter tensor after each micro-batch's backward"
                + why)

    def describe_moe(self) -> dict:
        """The MoE layer's settings, for the reports of a model with experts."""
        padded = self.moe_expert_capacity_factor is not None \
            and self.moe_pad_expert_input_to_capacity
        on: dict = {"moe_token_dispatcher": "alltoall",
                    "moe_host_sync": "none (padded to capacity: the splits are known)"
                    if padded else "token counts read (.cpu()) before every MoE layer's "
                                   "dispatch",
                    "moe_expert_gemms": "grouped" if self.moe_grouped_gemm
                    else "sequential (one GEMM launch per local expert)",
                    "moe_router": f"{self.moe_router_score_function}, "
                                  f"{self.moe_router_load_balancing_type}"}
        if self.moe_aux_loss_coeff:
            on["moe_aux_loss_coeff"] = self.moe_aux_loss_coeff
        if self.moe_z_loss_coeff:
            on["moe_z_loss_coeff"] = self.moe_z_loss_coeff
        if self.moe_expert_capacity_factor is not None:
            on["moe_expert_capacity_factor"] = self.moe_expert_capacity_factor
            on["moe_capacity"] = ("drop and pad to capacity"
                                  if self.moe_pad_expert_input_to_capacity
                                  else "drop beyond capacity, no padding")
            if not self.moe_pad_expert_input_to_capacity:
                on["moe_expert_load_imbalance"] = self.moe_expert_load_imbalance
        else:
            on["moe_expert_load_imbalance"] = (
                self.moe_expert_load_imbalance if self.moe_expert_load_imbalance != 1.0
                else "1.0 (balanced routing: an assumption; --moe-expert-load-imbalance "
                     "sets the busiest EP rank's tokens over the mean)")
        return on
    def host_syncs(self) -> list[str]:
        """Where the host waits for the GPU inside a step (host_sync.py), for the reports."""
        out = []
        if self.get_batch == "legacy":
            out.append("get_batch: key sizes read back (.cpu()) every micro-batch")
        if self.check_for_nan_in_loss:
            out.append("loss NaN check (.item()) every micro-batch, before its backward "
                       "(last stage)")
        if self.params_dtype == "fp16":
            out.append("fp16 loss scaler: found_inf read (.item()) before the optimizer step")
        out.append("gradient norm read (.item()) before clipping (in the optimizer step)")
        return out


def softmax_fusion_available(micro_batch: int, seq_length: int, heads: int) -> bool:
    """Whether Megatron's fused scale-mask-softmax takes these causal scores: its kernel needs
    16 < keys <= 4096, queries and keys multiples of 4 and micro-batch x heads (of a TP rank)
    a multiple of 4 (megatron-core ``FusedScaleMaskSoftmax.is_kernel_available``, read for
    its rule); else Megatron runs PyTorch's scale, mask and softmax."""
    return 16 < seq_length <= 4096 and seq_length % 4 == 0 and (micro_batch * heads) % 4 == 0


def check_features(f: Features, *, recompute: bool, tp: int, dp: int, pp: int, is_moe: bool,
                   seq_length: int, micro_batch: int, gpu: str,
                   distributed_optimizer: bool) -> tuple[Features, list[str]]:
    """``f`` with defaults filled in, and notes; InputError for what cannot run."""
    from dataclasses import replace

    notes: list[str] = []
    g = f.recompute_granularity
    if recompute and g is None:
        g = "full"
    if g is not None and g not in RECOMPUTE_GRANULARITIES:
        raise InputError(f"expected one of {', '.join(RECOMPUTE_GRANULARITIES)}, got {g!r}",
                         field="recompute_granularity")
    method, n = f.recompute_method, f.recompute_num_layers
    if g != "full" and (method is not None or n is not None):
        # Megatron-LM reads the method and layer count only with full granularity; given
        # alone (run_table_1.sh's later '--recompute-method uniform') they recompute nothing
        # there, silently: refused here, so a table never drops a recompute the user meant
        raise InputError("applies only with recompute_granularity full: Megatron-LM "
                         "recomputes nothing with a method or layer count alone (and selective "
                         "takes neither); add the full granularity (Megatron-LM 2021's "
                         "activations_checkpoint_method turned it on), or drop the option",
                         field="recompute_method" if method is not None
                         else "recompute_num_layers")
    if g == "full":
        if method is None:
            method = "uniform"
        if method not in RECOMPUTE_METHODS:
            raise InputError(f"expected one of {', '.join(RECOMPUTE_METHODS)}, got {method!r}",
                             field="recompute_method")
        if n is None:
            n = 1
        if not isinstance(n, int) or n < 1:
            raise InputError(f"must be a whole number >= 1, got {n!r}",
                             field="recompute_num_layers")
    if f.attention_backend not in ATTENTION_BACKENDS:
        raise InputError(f"expected one of {', '.join(ATTENTION_BACKENDS)}, got "
                         f"{f.attention_backend!r}", field="attention_backend")
    p = f.attention_dropout
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise InputError(f"must be a probability in [0, 1), got {p!r}", field="attention_dropout")
    if f.overlap_param_gather and not (distributed_optimizer or f.zero_stage):
        raise InputError("needs the distributed optimizer (Megatron-LM gathers parameters only "
                         "with --use-distributed-optimizer)", field="overlap_param_gather")
    if f.overlap_param_gather and not f.overlap_grad_reduce and not f.zero_stage:
        raise InputError("needs --overlap-grad-reduce (as in Megatron-LM)",
                         field="overlap_param_gather")
    bucket = f.bucket_size
    if bucket is not None and (not isinstance(bucket, int) or bucket < 1):
        raise InputError(f"must be a whole number of parameters >= 1, got {bucket!r}",
                         field="ddp_bucket_size")
    if (f.overlap_grad_reduce or f.overlap_param_gather) and bucket is None:
        bucket = max(DEFAULT_BUCKET_PARAMS, 1_000_000 * dp)
    if f.zero_stage == 2 and bucket is None:
        bucket = ZERO_REDUCE_BUCKET_PARAMS
    if f.fp8 is not None:
        if f.fp8 not in FP8_FORMATS:
            raise InputError(f"expected one of {', '.join(FP8_FORMATS)}, got {f.fp8!r}",
                             field="fp8")
        if gpu.startswith("a100"):
            raise InputError("FP8 GEMMs need Hopper tensor cores (h100, h200, h800)",
                             field="fp8")
    if not isinstance(f.cp, int) or f.cp < 1:
        raise InputError(f"must be a whole number >= 1, got {f.cp!r}",
                         field="context_parallel_size")
    if f.cp > 1:
        if f.cp_comm_type not in CP_COMM_TYPES:
            raise InputError(f"expected one of {', '.join(CP_COMM_TYPES)}, got "
                             f"{f.cp_comm_type!r}", field="cp_comm_type")
        if is_moe:
            raise InputError("context parallelism with experts is not modelled (its CP ranks "
                             "would share the EP column of the table)",
                             field="context_parallel_size")
        if seq_length % (2 * f.cp * (tp if tp > 1 else 1)):
            raise InputError(f"sequence length {seq_length} is not divisible by 2 x CP x TP "
                             f"= {2 * f.cp * tp} (Megatron splits it into 2 x CP chunks)",
                             field="seq_length")
    if f.etp is not None:
        if not is_moe:
            raise InputError("needs a model with experts", field="expert_tensor_parallel_size")
        if f.etp not in (1, tp):
            raise InputError(f"only 1 or TP ({tp}) is modelled, got {f.etp}",
                             field="expert_tensor_parallel_size")
    if f.etp == 1 and tp > 1:
        notes.append("expert tensor parallelism 1: whole experts on each rank; EP groups are "
                     "still carved out of the DP ranks, and the experts' gradients are reduced "
                     "over DP_EP (Megatron's expert-data-parallel group also spans the TP ranks)")
    _check_moe(f, is_moe)
    if f.get_batch not in GET_BATCH_STYLES:
        raise InputError(f"expected one of {', '.join(GET_BATCH_STYLES)}, got {f.get_batch!r}",
                         field="get_batch")
    if f.loss_scale is not None:
        if f.params_dtype != "fp16":
            raise InputError("a loss scale needs --fp16 (bf16 trains without one, as in "
                             "Megatron-LM)", field="loss_scale")
        if not isinstance(f.loss_scale, (int, float)) or isinstance(f.loss_scale, bool) \
                or not f.loss_scale > 0 or f.loss_scale == float("inf"):
            raise InputError(f"must be a positive number, got {f.loss_scale!r}",
                             field="loss_scale")
    if f.params_dtype not in PARAMS_DTYPES:
        raise InputError(f"expected one of {', '.join(PARAMS_DTYPES)}, got {f.params_dtype!r}",
                         field="params_dtype")
    if f.grad_reduce_in_bf16 and f.params_dtype != "bf16":
        raise InputError("needs bf16 training (as in Megatron-LM)", field="grad_reduce_in_bf16")
    if f.grad_reduce_in_bf16 and f.accumulate_allreduce_grads_in_fp32:
        raise InputError("contradicts --accumulate-allreduce-grads-in-fp32",
                         field="grad_reduce_in_bf16")
    if f.fp8 is not None and f.params_dtype == "fp16":
        raise InputError("FP8 training runs with bf16 (Transformer Engine), not fp16",
                         field="fp8")
    if f.zero_stage not in (0, 1, 2, 3):
        raise InputError(f"expected 0, 1, 2 or 3, got {f.zero_stage!r}", field="zero_stage")
    if f.zero_stage:
        if is_moe:
            raise InputError("ZeRO with experts is not modelled", field="zero_stage")
        if f.overlap_grad_reduce or f.overlap_param_gather:
            raise InputError("Megatron's --overlap-* options belong to its own distributed "
                             "optimizer, not to DeepSpeed ZeRO", field="zero_stage")
    if f.zero_stage >= 2 and pp > 1:
        raise InputError("DeepSpeed's pipeline engine runs ZeRO stage 0 or 1 only",
                         field="zero_stage")
    if f.zero_stage == 3:
        notes.append("ZeRO-3: each layer's parameters are all-gathered before its forward and "
                     "again before its backward, blocking (DeepSpeed's prefetch would hide "
                     "part of it: an upper bound); written as ALLGATHER_DP_EP, the table's "
                     "data-parallel group for forward collectives (EP 1: the DP ranks)")
    if f.cp > 1:
        notes.append(f"context parallelism CP {f.cp} ({f.cp_comm_type}): the table's EP column is "
                     "the CP group, so 'EP' times in collsim simulate are CP's; gradients are "
                     "reduced over DP x CP (the table's DP)")
    if is_moe and f.moe_aux_loss_coeff and tp > 1 and f.moe_router_load_balancing_type != "none":
        notes.append("MoE load-balancing loss with TP > 1: the per-expert token counts are "
                     "all-reduced over TP in every MoE layer's forward (Megatron's "
                     "sequence-partition group, the TP x CP ranks)")
    # the fused weight-gradient GEMM writes Megatron's DDP main_grad; DeepSpeed's engine owns
    # the gradients instead (no main_grad), so its GEMMs write a gradient that it adds
    fusion = f.gradient_accumulation_fusion and not f.zero_stage
    out = replace(f, recompute_granularity=g, recompute_method=method,
                  recompute_num_layers=n, bucket_size=bucket,
                  gradient_accumulation_fusion=fusion)
    return out, notes


def _check_moe(f: Features, is_moe: bool) -> None:
    """The MoE options: in range, and only for a model with experts."""
    defaults = Features()
    given = [name for name in ("moe_grouped_gemm", "moe_router_load_balancing_type",
                               "moe_aux_loss_coeff", "moe_z_loss_coeff",
                               "moe_router_score_function", "moe_expert_capacity_factor",
                               "moe_pad_expert_input_to_capacity", "moe_expert_load_imbalance")
             if getattr(f, name) != getattr(defaults, name)]
    if given and not is_moe:
        raise InputError("needs a model with experts", field=given[0])
    if f.moe_router_load_balancing_type not in MOE_LOAD_BALANCING_TYPES:
        raise InputError(f"expected one of {', '.join(MOE_LOAD_BALANCING_TYPES)}, got "
                         f"{f.moe_router_load_balancing_type!r} (sinkhorn is not modelled)",
                         field="moe_router_load_balancing_type")
    if f.moe_router_score_function not in MOE_SCORE_FUNCTIONS:
        raise InputError(f"expected one of {', '.join(MOE_SCORE_FUNCTIONS)}, got "
                         f"{f.moe_router_score_function!r}", field="moe_router_score_function")
    for name in ("moe_aux_loss_coeff", "moe_z_loss_coeff"):
        v = getattr(f, name)
        if v is not None and not (isinstance(v, (int, float)) and 0 <= v < float("inf")):
            raise InputError(f"must be a number >= 0, got {v!r}", field=name)
    c = f.moe_expert_capacity_factor
    if c is not None and not (isinstance(c, (int, float)) and 0 < c <= 1e6):
        raise InputError(f"must be a number > 0, got {c!r}", field="moe_expert_capacity_factor")
    if f.moe_pad_expert_input_to_capacity and c is None:
        raise InputError("needs --moe-expert-capacity-factor (as in Megatron-LM)",
                         field="moe_pad_expert_input_to_capacity")
    imb = f.moe_expert_load_imbalance
    if not (isinstance(imb, (int, float)) and 1.0 <= imb <= 1e6):
        raise InputError(f"must be a number >= 1 (the busiest EP rank's tokens over the "
                         f"mean), got {imb!r}", field="moe_expert_load_imbalance")
