"""The one place that maps option keys to command-line flags.

The library names the key a user writes in YAML (``tp``, ``nic_bw``) in its errors; the CLI
(``simulator/cli.py``) translates an error's key to the flag the user typed (``--tp``,
``--nic-bw``) with :func:`for_cli`, here and nowhere else. A key not in the table is left as
it is (file fields such as ``scale_up.bandwidth``, Cluster fields without a flag).
"""
from __future__ import annotations

from ..errors import InputError

#: option key -> flag, for every key that has one
FLAGS: dict[str, str] = {
    # cluster and cost model (commands/arguments.add_cluster_arguments)
    "gpus_per_server": "--gpus-per-server",
    "nvlink_bw": "--nvlink-bw",
    "nic_bw": "--nic-bw",
    "nics_per_server": "--nics-per-server",
    "base_latency_ns": "--base-latency",
    "topology": "--topology",
    "fabric": "--fabric",
    "oversubscription": "--oversubscription",
    "servers_per_leaf": "--servers-per-leaf",
    "ecmp": "--ecmp",
    "cost_model": "--cost-model",
    "calibration": "--calibration",
    "algorithm": "--algorithm",
    "protocol": "--protocol",
    # generate (commands/generate.py); sweep points use the same keys
    "model": "--model",
    "gpus": "--gpus",
    "tp": "--tp",
    "pp": "--pp",
    "ep": "--ep",
    "vpp": "--vpp",
    "num_layers_per_virtual_pipeline_stage": "--num-layers-per-virtual-pipeline-stage",
    "ddp_impl": "--DDP-impl",
    "max_position": "--max-position-embeddings",
    "micro_batch": "--micro-batch",
    "global_batch": "--global-batch",
    "seq_length": "--seq-length",
    "style": "--style",
    "gpu": "--gpu",
    "context_parallel_size": "--context-parallel-size",
    "cp_comm_type": "--cp-comm-type",
    "recompute_granularity": "--recompute-granularity",
    "recompute_method": "--recompute-method",
    "recompute_num_layers": "--recompute-num-layers",
    "attention_backend": "--attention-backend",
    "masked_softmax_fusion": "--no-masked-softmax-fusion",
    "attention_dropout": "--attention-dropout",
    "overlap_param_gather": "--overlap-param-gather",
    "ddp_bucket_size": "--ddp-bucket-size",
    "overlap_grad_reduce": "--overlap-grad-reduce",
    "scatter_gather_tensors_in_pipeline": "--scatter-gather-tensors-in-pipeline",
    "untie_embeddings_and_output_weights": "--untie-embeddings-and-output-weights",
    "params_dtype": "--fp16",
    "accumulate_allreduce_grads_in_fp32": "--accumulate-allreduce-grads-in-fp32",
    "grad_reduce_in_bf16": "--grad-reduce-in-bf16",
    "fp8": "--fp8-format",
    "expert_tensor_parallel_size": "--expert-tensor-parallel-size",
    "zero_stage": "--zero-stage",
    "gradient_accumulation_fusion": "--no-gradient-accumulation-fusion",
    "num_experts": "--num-experts",
    "moe_grouped_gemm": "--moe-grouped-gemm",
    "moe_router_load_balancing_type": "--moe-router-load-balancing-type",
    "moe_aux_loss_coeff": "--moe-aux-loss-coeff",
    "moe_z_loss_coeff": "--moe-z-loss-coeff",
    "moe_router_score_function": "--moe-router-score-function",
    "moe_expert_capacity_factor": "--moe-expert-capacity-factor",
    "moe_pad_expert_input_to_capacity": "--moe-pad-expert-input-to-capacity",
    "moe_expert_load_imbalance": "--moe-expert-load-imbalance",
    # what-ifs that make ranks differ (commands/simulate.py)
    "stragglers": "--straggler",
    "degrades": "--degrade",
    "failure": "--fail",
    "jitter": "--jitter",
    "co_jobs": "--co-job",
    "placement": "--placement",
    "draws": "--draws",
    "sensitivity": "--sensitivity",
    "contention": "--contention",
    # how a run is replayed (commands/simulate.py)
    "pp_schedule": "--pp-schedule",
    "compat": "--compat",
    # simulated nccl-tests (commands/bench.py)
    "ranks": "--ranks",
    # how a sweep runs (commands/sweep.py)
    "executor": "--executor",
    "scheduler": "--scheduler",
    "cache_dir": "--cache-dir",
}

#: where one command spells a key differently (generate's world size is --world-size)
COMMAND_FLAGS: dict[str, dict[str, str]] = {
    "generate": {"gpus": "--world-size"},
}

#: the Cluster field a cluster key sets (the Cluster keeps GB/s and ns in its names)
CLUSTER_FIELDS: dict[str, str] = {
    "gpus_per_server": "gpus_per_server",
    "nvlink_bw": "nvlink_gbps",
    "nic_bw": "nic_gbps",
    "nics_per_server": "nics_per_server",
    "base_latency_ns": "base_latency_ns",
}


def flag_for(key: str, command: str | None = None) -> str:
    """The flag of ``key`` (``key`` itself when it has none)."""
    return COMMAND_FLAGS.get(command or "", {}).get(key) or FLAGS.get(key, key)


def for_cli(exc: InputError, command: str | None = None) -> InputError:
    """The error as a CLI user should read it: an option key becomes its flag. Errors about
    a file (a path is set) keep the key written in that file."""
    if exc.path is not None or not exc.field or exc.field.startswith("-"):
        return exc
    flag = flag_for(exc.field, command)
    if flag == exc.field:
        return exc
    return InputError(exc.message, field=flag)
