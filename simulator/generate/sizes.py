"""Parameter counts, memory estimate and model FLOPs of a configuration.

Counts are per GPU for the largest pipeline stage (the one the workload file describes).
``megatron`` counts the real architecture as Megatron-LM shards it; ``aicb`` counts what
AICB's mocked Megatron model holds (so that AICB's data-parallel sizes are reproduced): a
word-embedding table of 4 x padded vocab / TP rows, a position table of seq rows on every
stage, multi-head QKV, two matrices per MLP/expert, and with sequence parallelism one
layer-norm per layer plus the output layer.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config import TrainConfig
from .gpu import GIB


def padded_vocab(vocab: int, tp: int, multiple: int = 128) -> int:
    """Megatron pads the vocabulary to a multiple of 128 x TP."""
    step = multiple * tp
    return -(-vocab // step) * step


@dataclass(frozen=True)
class ParamCounts:
    dense: int         # parameters per GPU reduced over DP (incl. replicated norms, router)
    expert: int        # routed-expert parameters per GPU, reduced over DP_EP
    norms: int         # layer-norm parameters per GPU (all-reduced over TP with SP)
    total_model: int   # the whole model, all ranks together (for reports)

    @property
    def per_gpu(self) -> int:
        return self.dense + self.expert


def stage_layers(cfg: TrainConfig) -> list[int]:
    """0-based indices of the layers of the largest stage (the last one, MoE-heaviest)."""
    L = cfg.model.layers
    lps = cfg.layers_per_stage
    return list(range(L - lps, L))


@dataclass(frozen=True)
class LayerParams:
    """Parameters of one layer on one GPU, by the part of the layer that holds them."""
    attn: int          # QKV and output projection
    norm: int          # one layer norm (a layer has two)
    dense_mlp: int
    router: int
    shared: int        # shared experts
    experts: int       # the local routed experts


def layer_params(cfg: TrainConfig) -> LayerParams:
    m, tp, ep = cfg.model, cfg.tp, cfg.ep
    etp = cfg.features.etp if cfg.features.etp is not None else tp
    h, hd = m.hidden, m.hd
    mats = 3 if m.gated_mlp else 2
    return LayerParams(
        attn=h * (m.heads + 2 * m.kv) * hd // tp + m.heads * hd * h // tp, norm=h,
        dense_mlp=mats * h * m.ffn // tp, router=h * m.experts,
        shared=m.shared_experts * mats * h * m.expert_ffn // tp,
        experts=(m.experts // ep) * mats * h * m.expert_ffn // etp if m.is_moe else 0)


def megatron_params(cfg: TrainConfig) -> ParamCounts:
    m, tp = cfg.model, cfg.tp
    h, hd = m.hidden, m.hd
    mats = 3 if m.gated_mlp else 2
    lp = layer_params(cfg)
    attn, norms_layer, dense_mlp = lp.attn, 2 * lp.norm, lp.dense_mlp
    router, experts, shared = lp.router, lp.experts, lp.shared
    vp = padded_vocab(m.vocab, tp)
    dense = expert = norms = 0
    for i in stage_layers(cfg):
        dense += attn + norms_layer
        norms += norms_layer
        if m.moe_layer(i):
            dense += router + shared
            expert += experts
        else:
            dense += dense_mlp
    table = vp // tp * h
    if cfg.pp == 1:
        dense += table + (table if not m.tied_embeddings else 0) + m.max_position * h
    else:
        dense += table  # the last stage's output layer (or the first stage's embedding)
    dense += h          # final norm
    norms += h
    # whole model
    full_attn = h * (m.heads + 2 * m.kv) * hd + m.heads * hd * h
    total = 0
    for i in range(m.layers):
        total += full_attn + norms_layer
        if m.moe_layer(i):
            total += router + (m.experts + m.shared_experts) * mats * h * m.expert_ffn
        else:
            total += mats * h * m.ffn
    total += vp * h * (1 if m.tied_embeddings else 2) + m.max_position * h + h
    return ParamCounts(dense=dense, expert=expert, norms=norms, total_model=total)


def aicb_params(cfg: TrainConfig) -> ParamCounts:
    """What AICB's mocked model holds per GPU (its 'total' and 'moe' parameter counts)."""
    m, tp, ep = cfg.model, cfg.tp, cfg.ep
    h = m.hidden
    vp = padded_vocab(m.vocab, tp)
    lps = cfg.layers_per_stage
    emb = 4 * (vp // tp) * h + cfg.seq_length * h
    qkv = h * (3 * h // tp)
    proj = h * (h // tp)
    moe = 0
    if cfg.sp:
        per_layer = qkv + proj + 2 * h  # column, row, the fused layer-norm
        if m.is_moe:
            local = m.experts // ep
            moe = lps * 2 * h * (m.ffn * local // tp)
        else:
            per_layer += 2 * h * (m.ffn // tp)
        total = emb + lps * per_layer + moe + h * (vp // tp)  # + output column
        norms = lps * 2 * h
    else:
        total = emb + lps * (qkv + proj + 2 * h * (m.ffn // tp))
        norms = 0
    full = megatron_params(cfg).total_model
    return ParamCounts(dense=total - moe, expert=moe, norms=norms, total_model=full)


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gib: float
    grads_gib: float
    optimizer_gib: float
    activations_gib: float
    overhead_gib: float

    @property
    def total_gib(self) -> float:
        return (self.weights_gib + self.grads_gib + self.optimizer_gib + self.activations_gib
                + self.overhead_gib)


def activation_bytes_per_layer(cfg: TrainConfig, moe: bool) -> float:
    """Bytes kept for backward by one layer and one micro-batch (flash attention, bf16).

    After Korthikanti et al. (2022): the attention block keeps about 11 s*b*h bytes, a
    4h MLP about 19 s*b*h, scaled by the MLP width (x1.5 for gated MLPs) and, for routed
    experts, by top-k. With sequence parallelism everything is split over TP; without it
    the layer-norm and dropout parts (about 5 s*b*h) are replicated.
    """
    m = cfg.model
    sbh = cfg.tokens * m.hidden
    width = lambda f: f * (1.5 if m.gated_mlp else 1.0) / (4 * m.hidden)  # noqa: E731
    attn = 11.0
    if moe:
        mlp = 3.0 + m.topk * (2.0 + 16.0 * width(m.expert_ffn)) \
            + m.shared_experts * 16.0 * width(m.expert_ffn)
    else:
        mlp = 3.0 + 16.0 * width(m.ffn)
    a = attn + mlp
    if cfg.sp or cfg.tp == 1:
        kept = sbh * a / cfg.tp
    else:
        kept = sbh * (5.0 + (a - 5.0) / cfg.tp)
    f = cfg.features
    if f.attention_backend == "unfused" and f.recompute_granularity != "selective":
        # the softmax output, bf16, of this rank's heads and queries against every key; with
        # the attention dropout also its 1-byte mask and its 2-byte output (Korthikanti et
        # al.'s 5 a s^2 b bytes a layer)
        per_score = 2.0 + (3.0 if f.attention_dropout > 0 else 0.0)
        kept += per_score * cfg.micro_batch * (m.heads // cfg.tp) * cfg.seq_length ** 2 / cfg.cp
    return kept


def memory_estimate(cfg: TrainConfig, params: ParamCounts | None = None) -> MemoryEstimate:
    """Per-GPU memory of the largest stage: weights, fp32 gradients, Adam states, activations."""
    p = params or megatron_params(cfg)
    m = cfg.model
    weights = 2.0 * p.per_gpu
    grads = 4.0 * p.per_gpu
    zero = cfg.features.zero_stage
    if zero >= 2:   # gradients partitioned over DP
        grads /= cfg.dp
    if zero >= 3:   # parameters partitioned (one layer gathered at a time, ignored)
        weights /= cfg.dp
    if cfg.distributed_optimizer:
        optim = 12.0 * (p.dense / cfg.dp + p.expert / cfg.dp_ep)
    else:
        optim = 12.0 * p.per_gpu
    layers = stage_layers(cfg)
    per_mb = sum(activation_bytes_per_layer(cfg, m.moe_layer(i)) for i in layers)
    in_flight = min(cfg.pp, cfg.ga)  # 1F1B: the first stage holds pp micro-batches
    if cfg.vpp and cfg.vpp > 1:
        in_flight = min(cfg.ga, cfg.pp + (cfg.pp - 1) // cfg.vpp + 1)
    f = cfg.features
    if cfg.recompute:
        div = cfg.tp if (cfg.sp or cfg.tp == 1) else 1
        layer_input = 2.0 * cfg.tokens * m.hidden / div
        per_layer = per_mb / max(1, len(layers))
        n = min(f.recompute_num_layers or 1, len(layers))
        if f.recompute_method == "block":
            # the first n layers keep their input, the others everything
            kept = n * layer_input + (len(layers) - n) * per_layer
            act = in_flight * kept + per_layer
        else:
            # one input per group of n layers; one group recomputed at a time
            groups = -(-len(layers) // n)
            act = in_flight * groups * layer_input + n * per_layer
    else:
        act = in_flight * per_mb
    logits = cfg.tokens * padded_vocab(m.vocab, cfg.tp) / cfg.tp * 6.0  # bf16 + fp32 copy
    act += logits
    return MemoryEstimate(weights / GIB, grads / GIB, optim / GIB, act / GIB, overhead_gib=2.0)


def model_flops_per_iteration(cfg: TrainConfig) -> float:
    """Model FLOPs of one iteration (forward + backward = 3x forward, no recompute).

    Matrix multiplies of every layer (routed experts at top-k), causal attention scores and
    the output layer, for global batch x sequence tokens.
    """
    m = cfg.model
    h, hd, s = m.hidden, m.hd, cfg.seq_length
    mats = 3 if m.gated_mlp else 2
    per_token = 0.0
    for i in range(m.layers):
        per_token += 2 * (h * (m.heads + 2 * m.kv) * hd + m.heads * hd * h)
        per_token += 2 * 2 * s * m.heads * hd * 0.5  # QK^T and PV, causal
        if m.moe_layer(i):
            per_token += 2 * (h * m.experts + (m.topk + m.shared_experts) * mats * h
                              * m.expert_ffn)
        else:
            per_token += 2 * mats * h * m.ffn
    per_token += 2 * h * m.vocab
    return 3.0 * per_token * cfg.global_batch * s
