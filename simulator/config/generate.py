"""Options of ``collsim generate`` and of a sweep point's workload: model, parallelism,
batch, Megatron-LM/DeepSpeed features and model overrides (one field each)."""
from __future__ import annotations

from ..records import record
from .schema import option


#: PyTorch DistributedDataParallel's default bucket_cap_mb (25 MiB of gradients)
TORCH_DDP_BUCKET_BYTES = 25 * 2 ** 20


def virtual_stages(layers: int, pp: int, per_chunk: int, vpp: int | None) -> int:
    """Megatron-LM's --num-layers-per-virtual-pipeline-stage as model chunks per stage, with
    its checks: the layers divide over the stages, a stage's layers over the chunks."""
    from ..errors import InputError

    key = "num_layers_per_virtual_pipeline_stage"
    if per_chunk < 1:
        raise InputError(f"must be at least 1, got {per_chunk}", field=key)
    if layers % pp:
        raise InputError(f"{layers} layers are not divisible by PP {pp} (Megatron-LM requires "
                         "it with virtual stages)", field=key)
    if (layers // pp) % per_chunk:
        raise InputError(f"{layers // pp} layers per stage are not divisible into chunks of "
                         f"{per_chunk}", field=key)
    chunks = layers // pp // per_chunk
    if vpp is not None and vpp != chunks:
        raise InputError(f"{per_chunk} layers per chunk make {chunks} chunks per stage, but "
                         f"vpp is {vpp}: give one of them", field="vpp")
    return chunks


@record(frozen=True)
class GenerateOptions:
    """The options of `collsim generate` (and of a sweep point's workload)."""

    # model and training
    model: str | None = option(None, "a model preset or a model YAML file", "", "str")
    gpus: int | None = option(None, "world size", "GPUs", "int")
    tp: int | None = option(None, "tensor-parallel size (default: 1, or AICB's)", "GPUs", "int?")
    pp: int = option(1, "pipeline stages", "stages", "int")
    ep: int = option(1, "expert-parallel size", "GPUs", "int")
    sp: bool = option(False, "sequence parallelism", "", "bool")
    vpp: int | None = option(None, "virtual pipeline chunks per stage", "chunks", "int?")
    num_layers_per_virtual_pipeline_stage: int | None = option(
        None, "layers per model chunk (Megatron-LM's way to ask for vpp = layers per stage / "
        "this)", "layers", "int?")
    micro_batch: int = option(1, "micro-batch size", "samples", "int")
    global_batch: int | None = option(
        None, "global batch (default: micro_batch x DP)", "samples", "int?")
    seq_length: int = option(4096, "sequence length", "tokens", "int")
    distributed_optimizer: bool = option(
        False, "Megatron's distributed optimizer (off by default, as in Megatron-LM)", "", "bool")
    recompute: bool = option(False, "full activation recompute of every layer", "", "bool")
    gpu: str = option("h100", "GPU whose kernels are modelled", "", "str")
    style: str = option("megatron", "generator whose rules apply: megatron or aicb", "", "str")
    compute: str = option("model", "compute times: model or none", "", "str")
    # Megatron-LM / DeepSpeed features (docs/generate-and-sweep.md)
    recompute_granularity: str | None = option(None, "full or selective", "", "str?")
    recompute_method: str | None = option(None, "uniform or block (full recompute)", "", "str?")
    recompute_num_layers: int | None = option(None, "layers per recompute group", "layers",
                                              "int?")
    overlap_grad_reduce: bool = option(False, "reduce gradient buckets during the backward",
                                       "", "bool")
    overlap_param_gather: bool = option(
        False, "gather the updated parameters in buckets before the next forward (needs the "
        "distributed optimizer)", "", "bool")
    ddp_bucket_size: int | None = option(None, "parameters per DDP bucket", "parameters",
                                         "int?")
    ddp_impl: str = option(
        "local", "Megatron-LM 2021's --DDP-impl: local (all-reduce after the backward) or "
        "torch (PyTorch DDP: 25 MiB buckets during the last backward)", "", "str",
        choices=("local", "torch"))
    scatter_gather_tensors_in_pipeline: bool = option(
        False, "pipeline sends split over TP, re-gathered by the receiver (Megatron's old "
        "default; no effect with SP)", "", "bool")
    overlap_p2p_communication: bool = option(
        True, "interleaved schedule: pipeline sends overlapped with compute (Megatron-LM's "
        "default; false: --no-overlap-p2p-communication, the sender waits for them)", "",
        "bool")
    untie_embeddings_and_output_weights: bool = option(
        False, "separate output-layer weights (no embedding all-reduce between stages)", "",
        "bool")
    params_dtype: str = option("bf16", "training precision: bf16 or fp16", "", "str",
                               choices=("bf16", "fp16"))
    accumulate_allreduce_grads_in_fp32: bool = option(
        False, "fp16: fp32 main gradients (reduced as 4 bytes)", "", "bool")
    grad_reduce_in_bf16: bool = option(
        False, "bf16: bf16 main gradients (reduced as 2 bytes)", "", "bool")
    context_parallel_size: int = option(1, "context-parallel size", "GPUs", "int")
    cp_comm_type: str = option("p2p", "context-parallel exchange: p2p, a2a or allgather", "",
                               "str")
    expert_tensor_parallel_size: int | None = option(
        None, "expert tensor-parallel size (default: TP)", "GPUs", "int?")
    fp8: str | None = option(None, "FP8 GEMMs: hybrid or e4m3", "", "str?")
    attention_backend: str = option("flash", "flash, fused or unfused", "", "str")
    masked_softmax_fusion: bool = option(
        True, "unfused attention: Megatron's fused scale-mask-softmax (false: PyTorch's "
        "scale, mask and softmax kernels)", "", "bool")
    attention_dropout: float = option(
        0.1, "dropout on the attention probabilities (unfused attention; Megatron's 0.1)",
        "", "float", lo=0)
    zero_stage: int = option(0, "DeepSpeed ZeRO stage 0-3", "", "int", lo=0, hi=3)
    # Megatron-core MoE layer (simulator/generate/moe.py)
    moe_grouped_gemm: bool = option(False, "one grouped GEMM for all local experts (default: "
                                    "one GEMM launch per local expert)", "", "bool")
    moe_router_load_balancing_type: str = option(
        "aux_loss", "aux_loss, seq_aux_loss or none", "", "str",
        choices=("aux_loss", "seq_aux_loss", "none"))
    moe_aux_loss_coeff: float = option(0.0, "load-balancing loss coefficient (0: no loss "
                                       "kernels, as Megatron's default)", "", "float", lo=0)
    moe_z_loss_coeff: float | None = option(None, "router z-loss coefficient", "", "float?",
                                            lo=0)
    moe_router_score_function: str = option("softmax", "softmax or sigmoid", "", "str",
                                            choices=("softmax", "sigmoid"))
    moe_expert_capacity_factor: float | None = option(
        None, "expert capacity factor (None: dropless)", "", "float?")
    moe_pad_expert_input_to_capacity: bool = option(
        False, "pad every expert's input to its capacity", "", "bool")
    moe_expert_load_imbalance: float = option(
        1.0, "tokens of the busiest EP rank over the mean (1.0: balanced routing)", "ratio",
        "float", lo=1)
    # host reads inside a step (simulator/generate/host_sync.py)
    check_for_nan_in_loss_and_grad: bool = option(
        True, "the loss's NaN check read on the host every micro-batch (Megatron-LM's "
        "default: on)", "", "bool")
    get_batch: str = option(
        "core", "core (get_batch_on_this_tp_rank: no host read) or legacy (broadcast_data: "
        "key sizes read back every micro-batch)", "", "str", choices=("core", "legacy"))
    loss_scale: float | None = option(
        None, "fp16: a static loss scale (default: dynamic)", "", "float?")
    gradient_accumulation_fusion: bool = option(
        True, "Megatron-LM's gradient accumulation fusion: the linear layers' weight-gradient "
        "GEMMs accumulate into the fp32 main gradients, so those weights get no separate add "
        "after each micro-batch's backward (Megatron-LM's default; false: "
        "--no-gradient-accumulation-fusion, one add per parameter tensor as plain PyTorch; "
        "DeepSpeed ZeRO never fuses)", "", "bool")
    power_cap: bool = option(
        True, "price compute-bound kernels at the clock the step sustains under the GPU's "
        "power cap where the GPU has a fitted model (H200; H100 and H800 take it as an "
        "assumption: GEMMs referred to the boost clock, then slowed by the step's factor; "
        "docs/compute-model.md); default on, false: the kernel sweep's rates (its GEMMs ran "
        "partly under the cap)", "", "bool")
    # model overrides
    num_layers: int | None = option(None, "override the model's layers", "layers", "int?")
    hidden_size: int | None = option(None, "override the hidden size", "", "int?")
    ffn_hidden_size: int | None = option(None, "override the FFN hidden size", "", "int?")
    num_attention_heads: int | None = option(None, "override the attention heads", "heads",
                                             "int?")
    num_query_groups: int | None = option(None, "override the KV groups", "groups", "int?")
    vocab_size: int | None = option(None, "override the vocabulary", "tokens", "int?")
    max_position_embeddings: int | None = option(
        None, "override the learned position table's rows (0: none, rotary/ALiBi)", "tokens",
        "int?", lo=0)
    num_experts: int | None = option(None, "override the experts (0: dense)", "experts",
                                     "int?", lo=0)
    topk: int | None = option(None, "override the experts per token", "experts", "int?")
    moe_ffn_hidden_size: int | None = option(None, "override the expert FFN hidden size", "",
                                             "int?")

    def features(self):
        from ..generate.features import Features
        torch_ddp = self.ddp_impl == "torch"
        bucket = self.ddp_bucket_size
        if torch_ddp and bucket is None:
            # PyTorch DDP's bucket_cap_mb 25, of the gradients' dtype (the module's: fp16 or
            # bf16, 2 bytes)
            bucket = TORCH_DDP_BUCKET_BYTES // 2
        return Features(
            recompute_granularity=self.recompute_granularity,
            recompute_method=self.recompute_method,
            recompute_num_layers=self.recompute_num_layers,
            overlap_grad_reduce=self.overlap_grad_reduce or torch_ddp,
            overlap_param_gather=self.overlap_param_gather, bucket_size=bucket,
            scatter_gather_p2p=self.scatter_gather_tensors_in_pipeline,
            overlap_p2p_comm=self.overlap_p2p_communication,
            params_dtype=self.params_dtype,
            accumulate_allreduce_grads_in_fp32=self.accumulate_allreduce_grads_in_fp32,
            grad_reduce_in_bf16=self.grad_reduce_in_bf16,
            cp=self.context_parallel_size, cp_comm_type=self.cp_comm_type,
            etp=self.expert_tensor_parallel_size, fp8=self.fp8,
            attention_backend=self.attention_backend, zero_stage=self.zero_stage,
            masked_softmax_fusion=self.masked_softmax_fusion,
            attention_dropout=self.attention_dropout,
            moe_grouped_gemm=self.moe_grouped_gemm,
            moe_router_load_balancing_type=self.moe_router_load_balancing_type,
            moe_aux_loss_coeff=self.moe_aux_loss_coeff, moe_z_loss_coeff=self.moe_z_loss_coeff,
            moe_router_score_function=self.moe_router_score_function,
            moe_expert_capacity_factor=self.moe_expert_capacity_factor,
            moe_pad_expert_input_to_capacity=self.moe_pad_expert_input_to_capacity,
            moe_expert_load_imbalance=self.moe_expert_load_imbalance,
            check_for_nan_in_loss=self.check_for_nan_in_loss_and_grad,
            get_batch=self.get_batch, loss_scale=self.loss_scale, power_cap=self.power_cap,
            gradient_accumulation_fusion=self.gradient_accumulation_fusion)

    def model_spec(self, base_dir: str = "."):
        """(model, notes on derived values): the preset or file with the overrides applied."""
        import os

        from ..generate import get_preset, load_model_yaml
        from ..generate.models import with_derived_overrides

        name = self.model or ""
        if name.endswith((".yaml", ".yml")) or os.path.sep in name:
            path = name if os.path.isabs(name) else os.path.join(base_dir, name)
            model = load_model_yaml(path)
        else:
            model = get_preset(name)
        return with_derived_overrides(
            model, layers=self.num_layers, hidden=self.hidden_size, ffn=self.ffn_hidden_size,
            heads=self.num_attention_heads, kv_groups=self.num_query_groups,
            vocab=self.vocab_size, experts=self.num_experts, topk=self.topk,
            max_position=self.max_position_embeddings,
            moe_ffn=self.moe_ffn_hidden_size,
            tied_embeddings=False if self.untie_embeddings_and_output_weights else None)

    def train_config(self, base_dir: str = ".", derived_notes: bool = True):
        """The checked :class:`~simulator.generate.config.TrainConfig` (errors name keys);
        ``derived_notes``: say which model values the overrides derived."""
        from dataclasses import replace

        from ..generate import resolve

        if self.gpus is None:
            from ..errors import InputError
            raise InputError("needs a GPU count", field="gpus")
        model, derived = self.model_spec(base_dir)
        vpp = self.vpp
        if self.num_layers_per_virtual_pipeline_stage is not None:
            vpp = virtual_stages(model.layers, self.pp, self.num_layers_per_virtual_pipeline_stage,
                                 self.vpp)
        cfg = resolve(model, self.gpus, tp=self.tp, pp=self.pp, ep=self.ep, sp=self.sp,
                      vpp=vpp, micro_batch=self.micro_batch,
                      global_batch=self.global_batch, seq_length=self.seq_length,
                      distributed_optimizer=self.distributed_optimizer,
                      recompute=self.recompute, gpu=self.gpu, style=self.style,
                      features=self.features())
        if derived and derived_notes:
            cfg = replace(cfg, notes=tuple(derived) + cfg.notes)
        return cfg
