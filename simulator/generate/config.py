"""The training configuration of ``collsim generate``: parallelism, batch and checks.

:func:`resolve` turns what the user asked into a checked :class:`TrainConfig`; every
impossible combination is an :class:`~simulator.errors.InputError` naming the flag.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from ..errors import InputError
from ..parallel import ParallelConfig
from .features import Features, check_features, softmax_fusion_available
from .gpu import GPUSpec, fp16_spec, get_gpu
from .models import ModelSpec, check_model

STYLES = ("megatron", "aicb")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSpec
    world: int
    tp: int = 1
    pp: int = 1
    ep: int = 1
    sp: bool = False
    vpp: int | None = None          # virtual pipeline chunks per stage (interleaved 1F1B)
    micro_batch: int = 1
    global_batch: int = 1
    seq_length: int = 4096
    distributed_optimizer: bool = False  # Megatron-LM's default (--use-distributed-optimizer)
    recompute: bool = False         # full activation recompute of every layer
    gpu: str = "h100"
    style: str = "megatron"
    features: Features = Features()  # Megatron/DeepSpeed features (recompute, overlap, ...)
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def cp(self) -> int:
        return self.features.cp

    @property
    def parallel(self) -> ParallelConfig:
        """The engine's layout: DP and DP_EP follow from the one rule in simulator.parallel.

        With context parallelism (dense models) the table's EP column is the CP group: Megatron
        orders ranks TP, CP, DP, PP, so the CP ranks sit where the engine carves EP groups.
        """
        return ParallelConfig(world=self.world, tp=self.tp, pp=self.pp,
                              ep=self.ep if self.cp == 1 else self.cp)

    @property
    def dp(self) -> int:
        """The gradient-reduction group: data-parallel x context-parallel ranks."""
        return self.parallel.dp

    @property
    def data_parallel(self) -> int:
        """Model replicas that take different samples (DP without CP)."""
        return self.parallel.dp // self.cp

    @property
    def dp_ep(self) -> int:
        return self.parallel.dp_ep

    @property
    def ga(self) -> int:
        return self.global_batch // (self.micro_batch * self.data_parallel)

    @property
    def layers_per_stage(self) -> int:
        return math.ceil(self.model.layers / self.pp)

    @property
    def gpu_spec(self) -> GPUSpec:
        """The GPU's compute model; with ``--fp16`` its fp16 kernels (gpu.fp16_spec)."""
        if self.features.params_dtype == "fp16":
            return fp16_spec(get_gpu(self.gpu))
        return get_gpu(self.gpu)

    @property
    def tokens(self) -> int:
        """Tokens of one micro-batch on one rank (the whole sequence, or its 1/CP share)."""
        return self.micro_batch * self.seq_length // self.cp

    def describe(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.name
        d.pop("notes")
        d.update(dp=self.dp, dp_ep=self.dp_ep, ga=self.ga)
        return d


def resolve(model: ModelSpec, world: int, tp: int | None = None, pp: int = 1, ep: int = 1,
            sp: bool = False, vpp: int | None = None, micro_batch: int = 1,
            global_batch: int | None = None, seq_length: int = 4096,
            distributed_optimizer: bool = False, recompute: bool = False, gpu: str = "h100",
            style: str = "megatron", features: Features | None = None) -> TrainConfig:
    """Apply the style's rules and check that the configuration can exist. The distributed
    optimizer is off unless asked for, as in Megatron-LM and `collsim generate`."""
    notes: list[str] = []
    if style not in STYLES:
        raise InputError(f"unknown style {style!r}; expected one of {', '.join(STYLES)}",
                         field="style")
    get_gpu(gpu)
    if style == "aicb":
        if model.aicb:
            model = replace(model, **model.aicb)
        if model.aicb_tp is not None and tp not in (None, model.aicb_tp):
            notes.append(f"AICB's {model.name} preset forces TP {model.aicb_tp} "
                         f"(asked for {tp})")
        if model.aicb_tp is not None:
            tp = model.aicb_tp
    check_model(model)
    tp = tp or model.aicb_tp or 1
    for name, value in (("gpus", world), ("tp", tp), ("pp", pp), ("ep", ep),
                        ("micro_batch", micro_batch), ("seq_length", seq_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"must be a whole number >= 1, got {value!r}", field=name)
    if vpp is not None and (not isinstance(vpp, int) or vpp < 1):
        raise InputError(f"must be a whole number >= 1, got {vpp!r}", field="vpp")
    cp = features.cp if features is not None else 1
    if not isinstance(cp, int) or isinstance(cp, bool) or cp < 1:
        raise InputError(f"must be a whole number >= 1, got {cp!r}",
                         field="context_parallel_size")
    if world % (tp * pp * cp):
        raise InputError(f"{world} GPUs are not divisible by TP x PP"
                         + (f" x CP = {tp} x {pp} x {cp}" if cp > 1 else f" = {tp} x {pp}"),
                         field="gpus")
    dp = world // (tp * pp * cp)
    if global_batch is None:
        global_batch = micro_batch * dp
    if global_batch < 1:
        raise InputError(f"must be a whole number >= 1, got {global_batch!r}",
                         field="global_batch")
    if ep > 1 and not model.is_moe:
        raise InputError(f"EP {ep} needs a model with experts ({model.name} is dense)",
                         field="ep")
    if dp % ep:
        raise InputError(f"DP = {world}/({tp}x{pp}) = {dp} is not divisible by EP {ep} "
                         "(expert-parallel groups are carved out of the data-parallel replicas)",
                         field="ep")
    if model.is_moe and model.experts % ep:
        raise InputError(f"{model.experts} experts cannot be split evenly over EP {ep}",
                         field="ep")
    if model.heads % tp:
        raise InputError(f"{model.heads} attention heads are not divisible by TP {tp}",
                         field="tp")
    if style == "megatron":
        if model.kv % tp:
            raise InputError(f"{model.kv} key/value groups are not divisible by TP {tp}",
                             field="tp")
        if model.ffn % tp or (model.is_moe and model.expert_ffn % tp):
            size = model.ffn if model.ffn % tp else model.expert_ffn
            raise InputError(f"the MLP hidden size ({size}) "
                             f"is not divisible by TP {tp}", field="tp")
    if global_batch % (micro_batch * dp):
        raise InputError(f"global batch {global_batch} is not a multiple of micro-batch x DP = "
                         f"{micro_batch} x {dp} = {micro_batch * dp}", field="global_batch")
    if model.layers % pp:
        if style == "aicb":
            raise InputError(f"{model.layers} layers are not divisible by PP {pp}", field="pp")
        notes.append(f"{model.layers} layers over PP {pp}: uneven stages; the file describes the "
                     f"largest ({math.ceil(model.layers / pp)} layers)")
    lps = math.ceil(model.layers / pp)
    if vpp is not None and vpp > 1:
        if pp == 1:
            raise InputError("virtual pipeline chunks need PP > 1", field="vpp")
        if lps % vpp:
            raise InputError(f"{lps} layers per stage cannot be split into {vpp} equal chunks",
                             field="vpp")
        ga = global_batch // (micro_batch * dp)
        if ga % pp:
            raise InputError(f"the interleaved schedule needs the number of micro-batches "
                             f"({ga}) to be a multiple of PP {pp}", field="vpp")
    if model.is_moe and tp > 1 and not sp:
        sp = True
        notes.append("MoE with TP > 1 runs with sequence parallelism (as Megatron-LM and AICB "
                     "require): --sp turned on")
    if sp and tp == 1 and style == "megatron":
        sp = False
    if sp and seq_length % tp:
        raise InputError(f"sequence length {seq_length} is not divisible by TP {tp} "
                         "(sequence parallelism splits it)", field="seq_length")
    features, fnotes = check_features(
        features or Features(), recompute=recompute, tp=tp, dp=dp, pp=pp, is_moe=model.is_moe,
        seq_length=seq_length, micro_batch=micro_batch, gpu=gpu.strip().lower(),
        distributed_optimizer=distributed_optimizer)
    notes.extend(fnotes)
    if (features.attention_backend == "unfused" and features.masked_softmax_fusion
            and not softmax_fusion_available(micro_batch, seq_length, model.heads // tp)):
        features = replace(features, masked_softmax_fusion=False)
        notes.append(f"Megatron's fused scale-mask-softmax does not take {seq_length} keys x "
                     f"{micro_batch * model.heads // tp} heads a rank (16 < keys <= 4096, "
                     "micro-batch x heads a multiple of 4): PyTorch's scale, mask and "
                     "softmax kernels priced instead")
    recompute = features.full_recompute
    if features.zero_stage:
        distributed_optimizer = True  # ZeRO shards the optimizer states over DP
    if features.cp > 1 and features.cp_comm_type == "a2a" and (model.heads // tp) % features.cp:
        raise InputError(f"all-to-all context parallelism splits the {model.heads // tp} heads "
                         f"of a TP rank over CP {features.cp}: not divisible",
                         field="cp_comm_type")
    # the power cap and the gradient accumulation price the compute times, not the rows:
    # AICB's rows take them too
    if style == "aicb" and (features.describe().keys() - {"recompute", "attention_backend",
                                                          "grad_reduce_dtype", "host_syncs",
                                                          "gradient_accumulation",
                                                          "power_cap"}
                            or features.grad_bytes != 4
                            or features.attention_backend != "flash"
                            or features.recompute_granularity == "selective"):
        raise InputError("Megatron features other than full recompute need style megatron "
                         "(AICB's generator has none of them)", field="style")
    return TrainConfig(model=model, world=world, tp=tp, pp=pp, ep=ep, sp=sp, vpp=vpp,
                       micro_batch=micro_batch, global_batch=global_batch,
                       seq_length=seq_length, distributed_optimizer=distributed_optimizer,
                       recompute=recompute, gpu=gpu.strip().lower(), style=style,
                       features=features, notes=tuple(notes))
