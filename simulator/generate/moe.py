"""The kernels of one Megatron-core MoE layer on one rank (alltoall token dispatcher).

What one rank runs per MoE layer and micro-batch, in issue order (docs/compute-model.md,
*MoE layers*; read from Megatron-core's router, token dispatcher and experts):

* the router: the gating GEMM (tokens x experts x hidden), the optional z-loss on the
  logits (log-sum-exp, square, mean), the top-k routing (top-k of the logits, softmax of the
  k values, scattered into dense probabilities and a routing map; ``sigmoid`` scores a
  sigmoid and a normalisation first; a capacity factor adds a top-k over the tokens of each
  expert and a mask), and, with a load-balancing loss coefficient, the loss's own scores
  (a second fp32 softmax, top-k and routing map) and its reductions;
* the dispatcher's preprocessing: the per-expert token counts, their all-gather (a
  collective of the table) and the copies of the splits to the host, which the host waits
  for before it can issue the all-to-all (a host synchronisation per MoE layer);
* permutation 1 (tokens grouped by expert, an index-select of k x tokens rows), the
  dispatch all-to-all, the expert-TP all-gather, permutation 2 (the received chunks sorted
  by local expert, when a rank holds more than one expert);
* the experts: per local expert the first linear layer, the activation and the second
  (sequential: one launch each per expert, each paying its host dispatch), or one grouped
  GEMM for all local experts (``--moe-grouped-gemm``: one dispatch, one fixed cost);
* the reverse: chunks unsorted, reduce-scatter, combine all-to-all, the un-permutation
  (the routing probabilities applied and the k copies of each token added back).

Every local expert of the busiest EP rank computes :attr:`MoELoad.per_expert` tokens: the
balanced share times the expected imbalance (``moe_expert_load_imbalance``, 1.0 unless
given), bounded by the capacity when a capacity factor drops tokens, or exactly the
capacity when the input is padded to it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

#: int64 per-expert token counts (the dispatcher's all-gather, the aux-loss all-reduce)
COUNT_BYTES = 8


class MoELoad(NamedTuple):
    """Tokens of one MoE layer on the busiest EP rank, one micro-batch."""
    router_tokens: int       # tokens this rank routes (the sequence's 1/TP share with SP)
    per_expert: int          # tokens each local expert computes (after the expert-TP gather)
    received: int            # routed tokens the rank receives in the dispatch all-to-all
    sent: int                # routed tokens the rank sends in it (k x tokens, or capacity)
    capacity: int | None     # per expert and source rank (None: dropless)
    load: float              # per_expert over the balanced share


def expert_load(cfg) -> MoELoad:
    """The busiest EP rank's tokens (see the module's docstring).

    Balanced, each of the E experts gets k x (tokens routed over the EP x ETP ranks that feed
    it) / E; Megatron's capacity is ceil(k x router tokens / E x factor) per expert and source
    rank (``get_capacity``), so an expert computes at most capacity x EP x ETP tokens, exactly
    that when padded."""
    m, f = cfg.model, cfg.features
    tp = cfg.tp
    etp = f.etp or tp
    ts = cfg.tokens // tp if cfg.sp else cfg.tokens
    E, k, ep = m.experts, m.topk, cfg.ep
    local = E // ep
    sources = ep * etp
    mean = sources * ts * k / E
    cf = f.moe_expert_capacity_factor
    cap = None if cf is None else max(1, math.ceil(ts * k / E * cf))
    if cap is not None and f.moe_pad_expert_input_to_capacity:
        per_expert = cap * sources
        sent = cap * E
    else:
        per_expert = max(1, math.ceil(mean * f.moe_expert_load_imbalance - 1e-9))
        if cap is not None:
            per_expert = min(per_expert, cap * sources)
        sent = ts * k
    received = max(1, math.ceil(per_expert * local / etp - 1e-9))
    return MoELoad(ts, per_expert, received, sent, cap, per_expert / mean if mean else 1.0)


def host_sync_per_layer(cfg) -> bool:
    """Whether the dispatcher reads token counts on the host in every MoE layer's forward:
    always (the split sizes of the all-to-all, or the tokens per expert of the experts'
    split), except when the input is padded to a capacity, whose sizes are known."""
    f = cfg.features
    return not (f.moe_expert_capacity_factor is not None
                and f.moe_pad_expert_input_to_capacity)


def _one_launch(part, gemm_t0_us: float, count: int):
    """``count`` launches of the same GEMM (with their casts) as one grouped kernel: the
    device times added with the fixed cost paid once, the host dispatch of one."""
    from .compute import Cost
    out = []
    for cost in part:
        if not cost.kernels:
            out.append(cost)
            continue
        dev = max(0.0, cost.dev - (count - 1) * gemm_t0_us)
        # compute-bound (the power cap's class, power.py) when its kernels were
        flag = ("c",) if any(len(k) > 2 and k[2] == "c" for k in cost.kernels) else ()
        out.append(Cost(((dev, cost.host / count) + flag,)))
    return tuple(out)


def moe_parts(K, cfg, mats_in: int, ln, resid) -> dict:
    """(forward, input-gradient, weight-gradient) Costs of the MoE layer's pieces:
    ``moe_router`` (layer norm, gating, routing, losses, the dispatcher's preprocessing),
    ``moe_permute`` (permutations 1 and 2), ``moe_experts`` (the expert GEMMs and
    activations, shared experts included), ``moe_unpermute`` (chunks unsorted, the
    un-permutation and the residual). ``K`` is compute.py's kernel pricer."""
    from .compute import Z, _sum
    m, f = cfg.model, cfg.features
    g = K.g
    h, E, k = m.hidden, m.experts, m.topk
    tp = cfg.tp
    etp = f.etp or tp
    load = expert_load(cfg)
    ts, pe = load.router_tokens, load.per_expert
    local = E // cfg.ep
    fe = m.expert_ffn // etp
    rows = pe * local                    # tokens the rank's experts compute together
    te = ts * E                          # elements of a dense [tokens, experts] tensor
    kt = load.sent                       # routed rows leaving permutation 1
    none = (Z, Z, Z)

    # ---- router
    # (Megatron's router_gating_linear returns its weight gradient for the hook to add: not
    # fused into the main gradient)
    gating = K.linear(ts, E, h, False, fusable=False)
    zloss = K.mem("float", 2 * te + 12 * ts, 8 * te, kernels=4) if f.moe_z_loss_coeff \
        else none
    # top-k of the bf16 logits, softmax of the k values, scattered into dense fp32 probs and
    # a bool routing map (zeros + scatter each); backward: the scatter's gather, the small
    # softmax's backward, scattered into the logits' gradient
    if f.moe_router_score_function == "sigmoid":
        # sigmoid scores (2 bytes read, 4 written), top-k over them, the k scores normalised
        routing = K.mem("float", 13 * te + 30 * k * ts, 18 * te + 20 * k * ts, kernels=8)
    else:
        routing = K.mem("float", 7 * te + 30 * k * ts, 6 * te + 20 * k * ts, kernels=6)
    if load.capacity is not None:
        # the capacity: top-k over each expert's tokens, its mask scattered, and-ed with the
        # routing map, the probabilities masked
        routing = _sum(routing, K.mem("float", 20 * te, 8 * te, kernels=4))
    aux = none
    if f.moe_aux_loss_coeff and f.moe_router_load_balancing_type != "none":
        # the loss's own scores: fp32 softmax (2 + 4 bytes), top-k (4), an int map zeroed,
        # scattered and made bool (4 + 5), its per-expert sum (1); the loss: the
        # probabilities summed per expert (4), multiplied, summed, scaled; backward: the
        # loss's gradient broadcast (4), the softmax's backward (8 + 4), added into the
        # logits' gradient (4)
        aux = K.mem("float", 24 * te, 20 * te, kernels=10)
    # the dispatcher's preprocessing (EP or expert TP > 1): the per-expert counts, their
    # sums per rank and per local expert, the host copies of the splits (non-blocking copies,
    # then a stream sync before the all-to-all)
    pre = K.mem("float", te + 64 * E * cfg.ep, 0.0, kernels=8) \
        if cfg.ep > 1 or etp > 1 else none
    # permutation 1 (unfused): the routing map transposed, the token indices and the
    # probabilities masked out of it, k x tokens rows gathered (2 bytes read + 2 written an
    # element); backward: the rows added back into a zeroed gradient (2 + 4 per routed
    # element, 2 per token element), the probabilities' gradient scattered
    perm1 = K.mem("float", 4 * kt * h + 23 * te, 6 * kt * h + 2 * ts * h + 8 * te, kernels=6)
    if host_sync_per_layer(cfg):
        # the host reads the split sizes (the copies above, then a stream sync) before it
        # issues the all-to-all: its lead is gone (host_sync.py); the read's own host time
        # is a copy's dispatch, as the step's other reads
        from .compute import Cost
        from .host_sync import sync
        perm1 = (perm1[0] + Cost((sync(g.host_us("float.fwd")),)), perm1[1], perm1[2])
    router = _sum(ln, gating, zloss, routing, aux, pre)

    # ---- permutation 2: the received chunks sorted by local expert (a split and a cat of
    # the rows and of their probabilities); backward: the cat of the gradient
    sort = K.mem("float", 4 * rows * h + 8 * rows, 4 * rows * h + 8 * rows, kernels=2) \
        if local > 1 else none

    # ---- experts
    e1 = K.linear(pe, mats_in * fe, h, False, local)
    e2 = K.linear(pe, h, fe, False, local)
    act_f, act_b = 2 * rows * fe * (mats_in + 1), 3 * rows * fe * (mats_in + 1)
    if f.moe_grouped_gemm:
        e1 = _one_launch(e1, g.gemm_t0_us, local)
        e2 = _one_launch(e2, g.gemm_t0_us, local)
        eact = K.mem("gelu", act_f, act_b, kernels=mats_in, cols=fe)
    else:
        eact = K.mem("gelu", act_f, act_b, kernels=local * mats_in, cols=fe)
    experts = _sum(e1, eact, e2)
    if m.shared_experts:
        T = cfg.tokens
        fs = m.shared_experts * m.expert_ffn // tp
        experts = _sum(experts, K.linear(T, mats_in * fs, h, False),
                       K.linear(T, h, fs, False),
                       K.mem("gelu", 2 * T * fs * (mats_in + 1), 3 * T * fs * (mats_in + 1),
                             kernels=mats_in))

    # ---- un-permutation: chunks unsorted (as permutation 2), the k copies of each token
    # weighted by their probabilities (2 + 2 bytes), added into a zeroed output (2 + 2 per
    # routed element, 2 + 2 per token element); backward: the gradient gathered per copy,
    # weighted, and the probabilities' gradient reduced over the hidden size
    unperm = K.mem("float", 6 * kt * h + 6 * ts * h, 12 * kt * h, kernels=3)
    unpermute = _sum(sort, unperm, resid)
    return {"moe_router": router, "moe_permute": _sum(perm1, sort), "moe_experts": experts,
            "moe_unpermute": unpermute}
