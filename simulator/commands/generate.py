"""``collsim generate``: write a workload table from a model and a parallel configuration."""
from __future__ import annotations

import argparse
import sys

from .arguments import large_positive_int, positive_int

HELP = ("Write a SimAI/AICB workload table (readable by 'collsim simulate' and by SimAI) for a "
        "model preset or YAML model file and a parallel configuration. Communication sizes "
        "follow Megatron-LM (--style megatron, default) or reproduce AICB's generator "
        "(--style aicb); compute times come from a GPU model (--gpu), a profile "
        "(--compute-profile) or are 1 ns placeholders (--no-compute).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..generate.gpu import GPUS
    from ..generate.models import preset_names

    p.add_argument("--model", required=True, metavar="NAME|FILE.yaml",
                   help=f"preset ({', '.join(preset_names())}) or a YAML model file")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="workload file to write ('-' for stdout)")
    g = p.add_argument_group("parallelism and batch (AICB's and Megatron-LM's names)")
    g.add_argument("--world-size", "--gpus", dest="world_size", type=positive_int, required=True,
                   metavar="N", help="number of GPUs")
    g.add_argument("--tp", "--tensor-model-parallel-size", dest="tp", type=positive_int,
                   metavar="N", help="tensor parallelism (default: the AICB preset's, else 1)")
    g.add_argument("--pp", "--pipeline-model-parallel-size", "--pipeline-model-parallel",
                   dest="pp", type=positive_int, default=1, metavar="N",
                   help="pipeline stages (default 1)")
    g.add_argument("--ep", "--expert-model-parallel-size", dest="ep", type=positive_int,
                   default=1, metavar="N", help="expert parallelism (default 1)")
    g.add_argument("--sp", "--sequence-parallel", "--enable-sequence-parallel", dest="sp",
                   action="store_true",
                   help="sequence parallelism (always on for MoE with TP > 1)")
    g.add_argument("--vpp", "--virtual-pipeline-model-parallel-size",
                   "--num-virtual-stages-per-pipeline-rank", dest="vpp",
                   type=positive_int, metavar="N",
                   help="virtual pipeline chunks per stage (interleaved 1F1B); written as the "
                        "header's vpp (AICB writes the layers per stage there)")
    g.add_argument("--num-layers-per-virtual-pipeline-stage", dest="layers_per_vstage",
                   type=positive_int, metavar="N",
                   help="Megatron-LM's older way to ask for interleaving: N layers per model "
                        "chunk, so --vpp = layers / PP / N")
    g.add_argument("--micro-batch", "--micro-batch-size", dest="micro_batch",
                   type=positive_int, default=1, metavar="N", help="micro-batch size (default 1)")
    g.add_argument("--global-batch", "--global-batch-size", dest="global_batch",
                   type=positive_int, metavar="N",
                   help="global batch (default: micro-batch x DP, one micro-batch per replica)")
    g.add_argument("--seq-length", type=positive_int, default=4096, metavar="N",
                   help="sequence length (default 4096)")
    g.add_argument("--use-distributed-optimizer", dest="dist_opt", action="store_true",
                   default=False, help="Megatron's distributed optimizer: gradients "
                   "reduce-scattered and parameters all-gathered over DP, optimizer states "
                   "sharded (default off, as in Megatron-LM: gradients all-reduced)")
    # the old default was on: accepted for a release, changes nothing (the default is off)
    g.add_argument("--no-distributed-optimizer", dest="dist_opt", action="store_false",
                   help="the default (gradients all-reduced, as Megatron-LM without "
                        "--use-distributed-optimizer); kept for a release from when the "
                        "distributed optimizer was on by default here")
    g.add_argument("--recompute", "--checkpoint-activations", dest="recompute",
                   action="store_true",
                   help="full activation recompute of every layer (checkpoint rows in the header)")
    f = p.add_argument_group("Megatron-LM features (Megatron's flag names)")
    f.add_argument("--recompute-activations", dest="recompute_granularity",
                   action="store_const", const="selective",
                   help="Megatron-LM's shorthand for --recompute-granularity selective")
    f.add_argument("--recompute-granularity", choices=["full", "selective"],
                   help="activation recompute: full (whole layers, see --recompute-method) or "
                        "selective (the core attention kernel only); --recompute = full")
    f.add_argument("--recompute-method", choices=["uniform", "block"],
                   help="with full recompute: uniform (checkpoint every group of "
                        "--recompute-num-layers layers, default) or block (recompute only the "
                        "first --recompute-num-layers layers of each model chunk)")
    f.add_argument("--recompute-num-layers", "--activations-checkpoint-num-layers",
                   dest="recompute_num_layers", type=positive_int, metavar="N",
                   help="layers per recompute group (uniform) or recomputed layers (block); "
                        "default 1 (--activations-checkpoint-num-layers: Megatron-LM 2021's "
                        "name)")
    f.add_argument("--activations-checkpoint-method", dest="legacy_checkpoint_method",
                   choices=["uniform", "block"],
                   help="Megatron-LM 2021's name: full recompute with this "
                        "--recompute-method (the method alone turned recompute on then)")
    f.add_argument("--overlap-grad-reduce", action="store_true",
                   help="reduce the gradients in buckets during the last micro-batch's "
                        "backward, overlapped with it (default: all after the backward)")
    f.add_argument("--overlap-param-gather", action="store_true",
                   help="distributed optimizer, with --overlap-grad-reduce: gather the updated "
                        "parameters in buckets before the next forward uses them (default: all "
                        "at once after the step); "
                        "written before the first forward, blocking (overlap not modelled)")
    f.add_argument("--ddp-bucket-size", type=large_positive_int, metavar="PARAMS",
                   help="parameters per gradient bucket (default Megatron's max(40M, 1M x DP))")
    f.add_argument("--DDP-impl", "--ddp-impl", dest="ddp_impl", choices=["local", "torch"],
                   default="local",
                   help="Megatron-LM 2021's data-parallel wrapper: local (default: gradients "
                        "all-reduced after the backward, as megatron-core without "
                        "--overlap-grad-reduce) or torch (PyTorch DDP: all-reduced in 25 MiB "
                        "buckets during the last micro-batch's backward, i.e. "
                        "--overlap-grad-reduce with 13,107,200-parameter buckets)")
    f.add_argument("--context-parallel-size", "--cp", dest="cp", type=positive_int, default=1,
                   metavar="N", help="context parallelism: each rank holds 1/N of the sequence "
                                     "(dense models; the table's EP column is the CP group)")
    f.add_argument("--cp-comm-type", choices=["p2p", "a2a", "allgather"], default="p2p",
                   help="CP collectives: p2p ring (default) and allgather move K and V around "
                        "the CP group; a2a (Ulysses) all-to-alls Q, K, V and the output")
    f.add_argument("--scatter-gather-tensors-in-pipeline", dest="scatter_gather",
                   action="store_true", default=None,
                   help="pipeline sends split over TP (each TP rank sends 1/TP of the "
                        "activation) and all-gathered over TP by the receiver, as Megatron-LM "
                        "before megatron-core did by default; no effect with --sp (default off: "
                        "megatron-core sends the whole activation from every TP rank; on with "
                        "--deepspeed, whose pipeline engine partitions its sends)")
    f.add_argument("--no-scatter-gather-tensors-in-pipeline", dest="scatter_gather",
                   action="store_false", help="every TP rank sends the whole activation "
                   "(the default without --deepspeed)")
    f.add_argument("--no-overlap-p2p-communication", dest="overlap_p2p_comm",
                   action="store_false", default=True,
                   help="interleaved schedule: pipeline sends block the sender (default: "
                        "overlapped with compute, Megatron-LM's overlap_p2p_comm); recorded in "
                        "FILE.meta.json for collsim simulate's --blocking-sends auto")
    f.add_argument("--untie-embeddings-and-output-weights", action="store_true",
                   help="the output layer has its own weights: no word-embedding gradient "
                        "all-reduce between the first and last stage (default: the model's)")
    f.add_argument("--fp16", dest="params_dtype", action="store_const", const="fp16",
                   default="bf16", help="fp16 training: main gradients fp16 (2 bytes on the "
                                        "wire) unless --accumulate-allreduce-grads-in-fp32")
    f.add_argument("--bf16", dest="params_dtype", action="store_const", const="bf16",
                   help="bf16 training (default): main gradients fp32 (4 bytes on the wire), "
                        "as Megatron-LM forces, unless --grad-reduce-in-bf16")
    f.add_argument("--accumulate-allreduce-grads-in-fp32", action="store_true",
                   help="with --fp16: fp32 main gradients, reduced as 4 bytes")
    f.add_argument("--grad-reduce-in-bf16", action="store_true",
                   help="with bf16: bf16 main gradients, reduced as 2 bytes")
    f.add_argument("--expert-tensor-parallel-size", dest="etp", type=positive_int, metavar="N",
                   help="tensor parallelism of the experts: 1 (whole experts, no TP gather of "
                        "the routed tokens) or TP (default)")
    f.add_argument("--zero-stage", type=int, choices=[0, 1, 2, 3], default=0,
                   help="DeepSpeed ZeRO instead of Megatron's optimizer: 1 (optimizer states "
                        "sharded), 2 (+ gradients, reduced in buckets every backward), 3 (+ "
                        "parameters, gathered per layer); default 0")
    # Megatron-DeepSpeed's switches: its ZeRO engine is described by --zero-stage, its
    # activation checkpointing by the recompute flags; with PP > 1 the pipeline is
    # DeepSpeed's PipelineEngine, whose sends are partitioned over TP by default
    # (pipe_partitioned / grad_partitioned when the model-parallel size is > 1)
    f.add_argument("--deepspeed", action="store_true",
                   help="Megatron-DeepSpeed's switch: ZeRO is what --zero-stage says; with PP "
                        "> 1 and TP > 1 DeepSpeed's pipeline engine sends 1/TP of each "
                        "activation and gradient and all-gathers it (pipe_partitioned, "
                        "grad_partitioned: on by default), i.e. "
                        "--scatter-gather-tensors-in-pipeline unless --no-... is given")
    f.add_argument("--no-pipeline-parallel", action="store_true",
                   help="Megatron-DeepSpeed: no DeepSpeed pipeline engine (needs PP 1); "
                        "accepted, changing nothing")
    f.add_argument("--deepspeed-activation-checkpointing", action="store_true",
                   help="Megatron-DeepSpeed: DeepSpeed's implementation of the recompute that "
                        "--checkpoint-activations asks for; accepted, changing nothing")
    f.add_argument("--fp8-format", "--fp8", dest="fp8", choices=["hybrid", "e4m3"],
                   help="FP8 GEMMs in the transformer layers (Transformer Engine on Hopper): "
                        "twice the bf16 tensor-core rate; attention, embedding and output layer "
                        "stay bf16")
    f.add_argument("--attention-backend", choices=["flash", "fused", "unfused"],
                   default=None,
                   help="flash/fused (default flash): no score matrix; unfused: the scores are "
                        "materialised (QK^T, fused softmax, PV as batched GEMMs) and kept for "
                        "the backward")
    e = p.add_argument_group("Megatron-core MoE layer (alltoall token dispatcher)")
    e.add_argument("--moe-grouped-gemm", action="store_true",
                   help="one grouped GEMM for all local experts (default: one GEMM launch per "
                        "local expert, each with its host dispatch)")
    e.add_argument("--moe-router-load-balancing-type", default="aux_loss",
                   choices=["aux_loss", "seq_aux_loss", "none"],
                   help="the router's load balancing (default aux_loss; its kernels run only "
                        "with --moe-aux-loss-coeff > 0)")
    e.add_argument("--moe-aux-loss-coeff", type=float, default=0.0, metavar="C",
                   help="load-balancing loss coefficient (default 0, as Megatron-LM: no loss "
                        "kernels and no count all-reduce)")
    e.add_argument("--moe-z-loss-coeff", type=float, metavar="C",
                   help="router z-loss coefficient (default: none)")
    e.add_argument("--moe-router-score-function", default="softmax",
                   choices=["softmax", "sigmoid"], help="router scores (default softmax)")
    e.add_argument("--moe-expert-capacity-factor", type=float, metavar="F",
                   help="expert capacity = ceil(k x tokens / experts x F) per source rank; "
                        "tokens beyond it are dropped (default: dropless)")
    e.add_argument("--moe-pad-expert-input-to-capacity", action="store_true",
                   help="with a capacity factor: every expert computes exactly its capacity")
    e.add_argument("--moe-expert-load-imbalance", type=float, default=1.0, metavar="RATIO",
                   help="expected tokens of the busiest EP rank over the mean (default 1.0: "
                        "balanced routing, an assumption); bounded by the capacity factor")
    # Megatron-LM's older attention flags, mapped onto --attention-backend
    f.add_argument("--use-flash-attn", dest="attention_backend", action="store_const",
                   const="flash", help="Megatron-LM's legacy flag: FlashAttention "
                   "(= --attention-backend flash, the default)")
    f.add_argument("--transformer-impl", choices=["local", "transformer_engine"],
                   help="Megatron-LM's layer implementation, for its attention: local = "
                        "Megatron's own core attention, scores materialised with its fused "
                        "softmax (--attention-backend unfused) unless --use-flash-attn; "
                        "transformer_engine = TE's fused/flash attention (--attention-backend "
                        "flash, the default). Nothing else of the layers changes")
    f.add_argument("--no-masked-softmax-fusion", dest="masked_softmax_fusion",
                   action="store_false", default=True,
                   help="unfused attention: PyTorch's scale, mask and softmax kernels (as "
                        "measured) instead of Megatron's fused scale-mask-softmax (the "
                        "default, one kernel each way)")
    f.add_argument("--attention-dropout", type=float, default=0.1, metavar="P",
                   help="dropout on the attention probabilities (default 0.1, Megatron-LM's); "
                        "priced with unfused attention (flash kernels apply it inside)")
    f.add_argument("--no-check-for-nan-in-loss-and-grad", dest="check_for_nan",
                   action="store_false", default=True,
                   help="no NaN check of the loss: the host does not wait for the GPU "
                        "between a micro-batch's forward and backward (default: the check, "
                        "Megatron-LM's default since the flag appeared in late 2023, reads "
                        "the loss on the host every micro-batch)")
    f.add_argument("--check-for-nan-in-loss-and-grad", dest="check_for_nan",
                   action="store_true", help="the default (see above)")
    f.add_argument("--get-batch", choices=["core", "legacy"], default="core",
                   help="how each micro-batch's tokens reach the TP ranks: core (default: "
                        "megatron-core's get_batch_on_this_tp_rank, Megatron-LM's pretrain_gpt "
                        "from 2024: known shapes broadcast, no host read) or legacy "
                        "(tensor_parallel.broadcast_data, Megatron-LM before: the key sizes "
                        "broadcast over TP and read back on the host, a host wait every "
                        "micro-batch, then the tokens broadcast; BROADCAST rows on TP)")
    f.add_argument("--no-gradient-accumulation-fusion", dest="gradient_accumulation_fusion",
                   action="store_false", default=None,
                   help="every parameter tensor's gradient added to its fp32 main gradient by "
                        "a kernel of its own after each micro-batch's backward (plain "
                        "PyTorch's way; default: Megatron-LM's gradient accumulation fusion, "
                        "on since early 2022: the QKV, projection, MLP, expert and output "
                        "layers' weight-gradient GEMMs accumulate into the main gradients, "
                        "reading and writing them, and only the layer norms, biases, router "
                        "and embedding tables keep their add; off with --deepspeed or "
                        "--zero-stage, whose engine owns the gradients)")
    f.add_argument("--gradient-accumulation-fusion", dest="gradient_accumulation_fusion",
                   action="store_true", help="the default without --deepspeed (see above)")
    f.add_argument("--loss-scale", type=float, metavar="SCALE",
                   help="with --fp16: a static loss scale (default: dynamic loss scaling, "
                        "Megatron-LM's default). Either way fp16 unscales the main gradients, "
                        "checks them for inf/NaN, all-reduces found_inf (MAX, 4 bytes, the "
                        "table's TP group; also DP with the distributed optimizer) and reads "
                        "it on the host before the optimizer step")
    m = p.add_argument_group("model overrides (applied to the preset or YAML model)")
    m.add_argument("--num-layers", type=positive_int, metavar="N")
    m.add_argument("--hidden-size", type=positive_int, metavar="N")
    m.add_argument("--ffn-hidden-size", type=positive_int, metavar="N")
    m.add_argument("--num-attention-heads", type=positive_int, metavar="N")
    m.add_argument("--num-query-groups", type=positive_int, metavar="N")
    m.add_argument("--vocab-size", type=positive_int, metavar="N")
    m.add_argument("--max-position-embeddings", type=int, metavar="N",
                   help="learned position table's rows (0: none)")
    m.add_argument("--num-experts", type=int, metavar="N")
    m.add_argument("--topk", "--moe-router-topk", dest="topk", type=positive_int, metavar="K")
    m.add_argument("--moe-ffn-hidden-size", type=positive_int, metavar="N")
    c = p.add_argument_group("sizes and compute")
    c.add_argument("--style", choices=["megatron", "aicb"], default="megatron",
                   help="megatron: the collectives and sizes Megatron-LM issues (default); "
                        "aicb: reproduce AICB's SimAI generator, its quirks included")
    c.add_argument("--gpu", choices=sorted(GPUS), default="h100",
                   help="GPU of the compute model and the memory check (default h100)")
    c.add_argument("--no-compute", action="store_true",
                   help="write AICB's 1 ns compute placeholders instead of modelled times")
    c.add_argument("--compute-profile", metavar="CSV",
                   help="measured row times: name,fwd_us,ig_us,wg_us (rows it names override "
                        "the model)")
    c.add_argument("--power-cap", dest="power_cap", action="store_true", default=True,
                   help="price compute-bound kernels at the clock the step sustains under the "
                        "GPU's power cap, where the GPU has a fitted model (H200; H100 and "
                        "H800 take it as an assumption), GEMMs referred to the boost clock "
                        "(the default; docs/compute-model.md)")
    c.add_argument("--no-power-cap", dest="power_cap", action="store_false",
                   help="price every kernel at the kernel sweep's rates instead (its GEMMs "
                        "ran partly under the cap)")
    c.add_argument("--no-memory-check", action="store_true",
                   help="write the file even when the memory estimate exceeds the GPU's HBM")
    p.add_argument("--json", metavar="PATH",
                   help="the summary (sizes, memory, assumptions, notes) as JSON ('-' for "
                        "stdout); the assumptions are also written beside the table as "
                        "FILE.meta.json, which 'collsim simulate' reports")
    p.add_argument("--quiet", action="store_true", help="do not print the summary")


def generate_options(args: argparse.Namespace):
    """The command line as :class:`~simulator.config.GenerateOptions` (the keys a sweep spec
    writes): flags -> fields, nothing else."""
    from ..config import GenerateOptions

    return GenerateOptions(
        model=args.model, gpus=args.world_size, tp=args.tp, pp=args.pp, ep=args.ep,
        sp=args.sp, vpp=args.vpp,
        num_layers_per_virtual_pipeline_stage=getattr(args, "layers_per_vstage", None),
        micro_batch=args.micro_batch,
        global_batch=args.global_batch, seq_length=args.seq_length,
        distributed_optimizer=args.dist_opt, recompute=args.recompute, gpu=args.gpu,
        style=args.style, compute="none" if args.no_compute else "model",
        recompute_granularity=getattr(args, "recompute_granularity", None) or (
            "full" if getattr(args, "legacy_checkpoint_method", None) else None),
        recompute_method=getattr(args, "recompute_method", None)
        or getattr(args, "legacy_checkpoint_method", None),
        recompute_num_layers=getattr(args, "recompute_num_layers", None),
        overlap_grad_reduce=getattr(args, "overlap_grad_reduce", False),
        overlap_param_gather=getattr(args, "overlap_param_gather", False),
        ddp_bucket_size=getattr(args, "ddp_bucket_size", None),
        ddp_impl=getattr(args, "ddp_impl", "local"),
        scatter_gather_tensors_in_pipeline=_scatter_gather(args),
        overlap_p2p_communication=getattr(args, "overlap_p2p_comm", True),
        untie_embeddings_and_output_weights=getattr(
            args, "untie_embeddings_and_output_weights", False),
        params_dtype=getattr(args, "params_dtype", "bf16"),
        accumulate_allreduce_grads_in_fp32=getattr(
            args, "accumulate_allreduce_grads_in_fp32", False),
        grad_reduce_in_bf16=getattr(args, "grad_reduce_in_bf16", False),
        context_parallel_size=getattr(args, "cp", 1),
        cp_comm_type=getattr(args, "cp_comm_type", "p2p"),
        expert_tensor_parallel_size=getattr(args, "etp", None),
        fp8=getattr(args, "fp8", None),
        attention_backend=_attention_backend(args),
        masked_softmax_fusion=getattr(args, "masked_softmax_fusion", True),
        attention_dropout=getattr(args, "attention_dropout", 0.1),
        zero_stage=getattr(args, "zero_stage", 0),
        moe_grouped_gemm=getattr(args, "moe_grouped_gemm", False),
        moe_router_load_balancing_type=getattr(args, "moe_router_load_balancing_type",
                                               "aux_loss"),
        moe_aux_loss_coeff=getattr(args, "moe_aux_loss_coeff", 0.0),
        moe_z_loss_coeff=getattr(args, "moe_z_loss_coeff", None),
        moe_router_score_function=getattr(args, "moe_router_score_function", "softmax"),
        moe_expert_capacity_factor=getattr(args, "moe_expert_capacity_factor", None),
        moe_pad_expert_input_to_capacity=getattr(args, "moe_pad_expert_input_to_capacity",
                                                 False),
        moe_expert_load_imbalance=getattr(args, "moe_expert_load_imbalance", 1.0),
        check_for_nan_in_loss_and_grad=getattr(args, "check_for_nan", True),
        get_batch=getattr(args, "get_batch", "core"),
        loss_scale=getattr(args, "loss_scale", None),
        power_cap=getattr(args, "power_cap", True),
        gradient_accumulation_fusion=_accumulation_fusion(args),
        num_layers=args.num_layers, hidden_size=args.hidden_size,
        ffn_hidden_size=args.ffn_hidden_size, num_attention_heads=args.num_attention_heads,
        num_query_groups=args.num_query_groups, vocab_size=args.vocab_size,
        max_position_embeddings=getattr(args, "max_position_embeddings", None),
        num_experts=args.num_experts, topk=args.topk,
        moe_ffn_hidden_size=args.moe_ffn_hidden_size)


def _scatter_gather(args: argparse.Namespace) -> bool:
    """--scatter-gather-tensors-in-pipeline or --no-...; else on with --deepspeed, whose
    PipelineEngine partitions pipeline sends over TP by default (it only matters with PP and
    TP > 1, which is where DeepSpeed does it)."""
    asked = getattr(args, "scatter_gather", None)
    if asked is not None:
        return bool(asked)
    return bool(getattr(args, "deepspeed", False))


def _accumulation_fusion(args: argparse.Namespace) -> bool:
    """--gradient-accumulation-fusion or --no-...; else on, as Megatron-LM, except with
    --deepspeed: DeepSpeed's engine owns the gradients (no main_grad for a GEMM to accumulate
    into), so its weight gradients are added as before. Asking for fusion with --deepspeed is
    refused."""
    from ..errors import InputError

    asked = getattr(args, "gradient_accumulation_fusion", None)
    deepspeed = bool(getattr(args, "deepspeed", False))
    if asked and deepspeed:
        raise InputError("needs Megatron-LM's own data-parallel main gradients: with "
                         "--deepspeed DeepSpeed's engine owns the gradients",
                         field="--gradient-accumulation-fusion")
    return bool(asked) if asked is not None else not deepspeed


def _attention_backend(args: argparse.Namespace) -> str:
    """--attention-backend, or what Megatron's legacy flags say: --transformer-impl local
    without --use-flash-attn is Megatron's own unfused attention; else flash (the default)."""
    backend = getattr(args, "attention_backend", None)
    if backend is None and getattr(args, "transformer_impl", None) == "local":
        return "unfused"
    return backend or "flash"


def build_from_args(args: argparse.Namespace):
    """(GeneratedWorkload) from parsed arguments; shared with tests."""
    from ..errors import InputError
    from ..generate import generate
    from ..generate.compute import profile_path_ok, read_compute_profile

    options = generate_options(args)
    if getattr(args, "no_pipeline_parallel", False) and (options.pp or 1) > 1:
        raise InputError(f"Megatron-DeepSpeed's --no-pipeline-parallel runs without pipeline "
                         f"stages: it needs PP 1, got {options.pp}",
                         field="--no-pipeline-parallel")
    if options.num_experts is not None and options.num_experts < 0:
        raise InputError("must not be negative", field="num_experts")
    cfg = options.train_config()
    profile = None
    if args.compute_profile:
        profile = read_compute_profile(profile_path_ok(args.compute_profile))
    out = args.output if args.output != "-" else "<stdout>"
    return generate(cfg, compute=options.compute, profile=profile,
                    check_memory=not args.no_memory_check, path=out,
                    profile_path=args.compute_profile)


def _readable_by_simulate(table: str, path: str) -> None:
    """Never write a table `collsim simulate` would refuse: read it back with its reader."""
    import warnings

    from ..errors import InputError
    from ..readers.workload import read_workload_text

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_workload_text(table, path=path, strict=True)
    except InputError as exc:
        raise InputError(f"the generated table would be refused by 'collsim simulate' "
                         f"({exc.message}); not writing it", path=path,
                         field=exc.field) from None


def run(args: argparse.Namespace) -> int:
    from ..report.output import write_all
    from ..writers.workload_text import render_workload

    import json

    from ..provenance import sidecar_path

    from .common import check_outputs
    sidecar = sidecar_path(args.output) if args.output != "-" else None
    inputs = check_outputs(args, {"output": "--output", "json": "--json"},
                           extra_outputs={"the assumptions file": sidecar} if sidecar else None)
    gen = build_from_args(args)
    table = render_workload(gen.workload)
    _readable_by_simulate(table, args.output)
    outputs = {args.output: table}
    if args.output != "-":
        # what the table assumed, beside it, for 'collsim simulate' to report
        outputs[sidecar_path(args.output)] = json.dumps(gen.assumptions(), indent=2) + "\n"
    if getattr(args, "json", None):
        outputs[args.json] = json.dumps(gen.info(), indent=2) + "\n"
    write_all(outputs, inputs=inputs)
    if not args.quiet:
        i = gen.info()
        stream = sys.stderr if args.output == "-" else sys.stdout
        print(f"wrote {args.output}: {i['rows']} rows, {i['model']} ({i['style']} sizes) on "
              f"{i['world']} x {i['gpu'].upper()}: TP {i['tp']} PP {i['pp']} EP {i['ep']} "
              f"DP {i['dp']}{' CP ' + str(i['cp']) if i['cp'] > 1 else ''}"
              f"{' SP' if i['sp'] else ''}, {i['ga']} micro-batches of "
              f"{i['micro_batch']} x {i['seq_length']}", file=stream)
        print(f"  parameters: model {i['params_model'] / 1e9:.2f} B; per GPU dense "
              f"{i['params_per_gpu_dense'] / 1e9:.3f} B, experts "
              f"{i['params_per_gpu_expert'] / 1e9:.3f} B; memory estimate "
              f"{i['memory_gib']:.1f} GiB", file=stream)
        if gen.compute_modelled:
            print(f"  compute per micro-batch (one rank, fwd+bwd): "
                  f"{i['microbatch_compute_ms']:.2f} ms", file=stream)
        a = i["assumptions"]
        feats = ", ".join(f"{k} {v}" if v is not True else k for k, v in a["features"].items())
        print(f"  assumed: {a['gpu'].upper()} ({a['gpu_peak_bf16_tflops']:g} TFLOPS bf16, "
              f"{a['gpu_hbm_gb_per_s']:g} GB/s HBM); compute: {a['compute']}; "
              f"{a['optimizer']}; features: {feats}", file=stream)
        for note in i["notes"]:
            print(f"  note: {note}", file=stream)
    return 0
