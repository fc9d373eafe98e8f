"""Compute times of the rows: GEMMs, flash attention and element-wise kernels on one GPU.

Times are for one micro-batch on one rank, in microseconds. Each row kind gets the kernels
that run before its collective (forward), before its input-gradient collective (input
gradient: the dgrad GEMMs and element-wise backward) and its weight-gradient GEMMs.
A forward GEMM m x n x k has the backward GEMMs m x k x n (dgrad) and n x k x m (wgrad).
"""
from __future__ import annotations

import csv
import os
from dataclasses import replace
from typing import NamedTuple

from ..errors import InputError
from .config import TrainConfig
from .gpu import GPUSpec
from .host_sync import replay_step, run, step_tail, sync
from .optimizer_step import step_kernels
from .sizes import ParamCounts, padded_vocab


class Cost(NamedTuple):
    """A kernel sequence: ``kernels`` holds (device us, host us) of each kernel in issue order.

    Its time (:attr:`us`) replays the sequence as the host and the GPU run it: the host issues
    kernel i after spending its dispatch time, the GPU starts it when both it is issued and
    the previous kernel is done. So a sequence is never faster than its launches (the sum of
    the host times) nor than its kernels (the sum of the device times), and a mix of short and
    long kernels pays for the gaps where the GPU waits. Each sequence starts with the host and
    the GPU both idle (the host gets no lead from the row before). A kernel
    ``(0, host, True)`` is a sync point (:func:`~.host_sync.sync`): the host waits for the
    GPU to finish what was issued before it."""

    kernels: tuple = ()

    def __add__(self, other):
        return Cost(self.kernels + other.kernels)

    @property
    def dev(self) -> float:
        return sum(k[0] for k in self.kernels)

    @property
    def host(self) -> float:
        return sum(k[1] for k in self.kernels)

    @property
    def us(self) -> float:
        return run(self.kernels)[1]

    def scaled_host(self, k: float) -> Cost:
        return Cost(tuple((kn[0], kn[1] * k) + tuple(kn[2:]) for kn in self.kernels))


def _k(dev: float, host: float, count: int = 1, compute: bool | str = False) -> Cost:
    """``count`` kernels of ``dev`` / ``host`` microseconds together; ``compute``: tensor-core
    kernels for the power cap (:mod:`.power`): True a GEMM (flagged ``"c"``), or the class
    itself (``"af"`` / ``"ab"``: the fused attention forward / backward)."""
    if count <= 0 or (dev <= 0 and host <= 0):
        return Cost()
    flag = ("c",) if compute is True else (compute,) if compute else ()
    return Cost(((dev / count, host / count) + flag,) * count)


Z = Cost()
Part = tuple  # (forward, input gradient, weight gradient) of Cost


def _sum(*parts: Part) -> Part:
    return (sum((p[0] for p in parts), Z), sum((p[1] for p in parts), Z),
            sum((p[2] for p in parts), Z))


class _Kernels:
    """The kernels of one rank's training step as PyTorch eager issues them (see
    docs/compute-model.md): ``(forward, input-gradient, weight-gradient)`` Costs.

    Host time: each forward op weighs its measured dispatch time (``host_ops``); the forward
    carries ``sf`` times those weights, the backward ``sb`` times them (the backward's nodes
    follow the forward's ops), ``sf`` and ``sb`` scaled so that a GPT layer takes the measured
    host floor of one (:func:`host_scales`).

    ``main_grad_bytes`` > 0: Megatron-LM's gradient accumulation fusion, the weight-gradient
    GEMMs of :meth:`linear` accumulate into main gradients of that many bytes an element
    (apex's ``wgrad_gemm_accum_fp32`` / Transformer Engine's wgrad GEMM with accumulate:
    beta = 1, the output read and written instead of a bf16 gradient written); 0: they write
    a bf16 gradient (added afterwards: :func:`_accumulation`)."""

    def __init__(self, gpu: GPUSpec, sf: float = 1.0, sb: float = 1.0,
                 main_grad_bytes: int = 0):
        self.g, self.sf, self.sb = gpu, sf, sb
        self.main_grad_bytes = main_grad_bytes

    def _host(self, op: str, n: float = 1.0) -> tuple[float, float]:
        w = n * self.g.host_us(f"{op}.fwd")
        return w * self.sf, w * self.sb

    def mem(self, op: str, fwd_bytes: float, bwd_bytes: float = 0.0, kernels: int = 1,
            cols: float | None = None) -> Part:
        g = self.g
        hf, hb = self._host(op, kernels)
        f = _k(g.mem_us(f"{op}.fwd", fwd_bytes, cols), hf, kernels) if fwd_bytes else Z
        b = _k(g.mem_us(f"{op}.bwd", bwd_bytes, cols), hb, kernels) if bwd_bytes else Z
        return (f, b, Z)

    def linear(self, m: int, n: int, k: int, bias: bool, count: int = 1,
               fusable: bool = True) -> Part:
        """``count`` GEMMs m x n x k: forward, dgrad (m x k x n), wgrad (n x k x m) and the
        bias gradient (a reduction over the m rows of dy). ``fusable``: a Megatron linear
        layer, whose wgrad accumulates into the main gradients under the fusion (the MoE
        router's gating GEMM is not one)."""
        g = self.g
        if m <= 0 or n <= 0 or k <= 0 or count <= 0:
            return (Z, Z, Z)
        # fused: the GEMM reads and writes the n x k main gradient (2 x main_grad_bytes an
        # element) where it wrote a bf16 one (2); the same efficiency curve (the epilogue's
        # extra work is assumed hidden), so only a memory-bound wgrad pays for the traffic
        out_bytes = 2.0 * self.main_grad_bytes if fusable and self.main_grad_bytes else 2.0
        wg = _k(g.gemm_us(n, k, m, count, "wgrad", out_bytes), 0.0, count, True)
        if bias:
            wg = wg + _k(count * g.mem_us("bias_grad.fwd", 2.0 * m * n, n), 0.0, count)
        hf, hb = self._host("linear", count)
        fwd = _k(g.gemm_us(m, n, k, count), hf, count, True)
        dgrad = _k(g.gemm_us(m, k, n, count, "dgrad"), hb, count, True)
        if g.gemm_dtype == "fp8":
            cast = g.mem_us
            if g.fp8_transpose == "copy":
                # simulator/measure/paired.py's FP8 linear: the input and the weight cast
                # forward (3 bytes an element); the output gradient cast, and the transposes
                # the backward GEMMs read (W^T, dy^T, x^T: strided copies, 2 bytes an element)
                fwd = fwd + _k(count * (cast("cast_fp8.fwd", 3.0 * m * k, k)
                                        + cast("cast_fp8.fwd", 3.0 * n * k, k)), 0.0, 2 * count)
                dgrad = dgrad + _k(count * (cast("cast_fp8.fwd", 3.0 * m * n, n)
                                            + cast("transpose_fp8.fwd", 2.0 * n * k, k)),
                                   0.0, 2 * count)
                wg = wg + _k(count * (cast("transpose_fp8.fwd", 2.0 * m * n, n)
                                      + cast("transpose_fp8.fwd", 2.0 * m * k, k)), 0.0,
                             2 * count)
            else:
                # Transformer Engine: one cast-transpose per operand (bf16 read, FP8 written in
                # both layouts: 4 bytes an element) at the measured cast's bandwidth: the input
                # and the weight forward, the output gradient backward
                fwd = fwd + _k(count * (cast("cast_fp8.fwd", 4.0 * m * k, k)
                                        + cast("cast_fp8.fwd", 4.0 * n * k, k)), 0.0, 2 * count)
                dgrad = dgrad + _k(count * cast("cast_fp8.fwd", 4.0 * m * n, n), 0.0, count)
            # launched with the GEMMs: their host time is in the FP8 host floor
        return (fwd, dgrad, wg)

    def attention(self, flops: float, seq: int, head_dim: int) -> Part:
        g = self.g
        hf, hb = self._host("sdpa")
        return (_k(g.attention_us(flops, seq=seq, head_dim=head_dim), hf, 1, "af"),
                _k(g.attention_us(2.5 * flops, backward=True, seq=seq, head_dim=head_dim), hb,
                   1, "ab"),
                Z)

    def grad_sum(self, nbytes: float, cols: float | None = None) -> Part:
        """Autograd adding the two gradients of a tensor used twice (a residual branch)."""
        return (Z, _k(self.g.mem_us("add.fwd", nbytes, cols), 0.0), Z)


#: the forward ops of the measured GPT layer (simulator/measure/gpt.py), for the host scale
GPT_LAYER_OPS = (("layer_norm", 2), ("linear", 4), ("sdpa", 1), ("dropout", 2), ("add", 2),
                 ("gelu", 1), ("float", 1))
#: those of them that :class:`_Kernels` gives a backward dispatch (the residual adds and the
#: layout copy have none: their gradients are the wgrad/gradient-sum kernels, host-free)
GPT_LAYER_BWD_OPS = (("layer_norm", 2), ("linear", 4), ("sdpa", 1), ("dropout", 2),
                     ("gelu", 1))


#: parameter tensors of the measured GPT layer: their fp32 accumulation is in the host floor's
#: backward (``fwdbwd_accumulate``), and in the embedding/head floor the 4 fixed tensors'
GPT_LAYER_TENSORS = 12
GPT_FIXED_TENSORS = 4


def host_scales(gpu: GPUSpec) -> tuple[float, float]:
    """(forward, backward) factors on the per-op host weights that give a GPT layer the
    measured host floor of one (1, 1 where it was not measured): the forward's weights add
    up to ``host_layer_fwd_us``, those of the ops with a backward dispatch to
    ``host_layer_bwd_us`` less the fp32 accumulation of the layer's 12 tensors (measured
    with it, dispatched after the backward: :meth:`ComputeModel._host_lead`)."""
    wf = sum(n * gpu.host_us(f"{op}.fwd") for op, n in GPT_LAYER_OPS)
    wb = sum(n * gpu.host_us(f"{op}.fwd") for op, n in GPT_LAYER_BWD_OPS)
    if not gpu.host_layer_fwd_us or wf <= 0 or wb <= 0:
        return 1.0, 1.0
    return gpu.host_layer_fwd_us / wf, layer_bwd_host_us(gpu) / wb


def layer_bwd_host_us(gpu: GPUSpec) -> float:
    """A GPT layer's backward host floor without its 12 tensors' fp32 accumulation (the floor
    GPT measures the two together; the accumulation's host time per tensor,
    ``host_accum_us``, was measured on its own). At least a tenth of the floor."""
    b = gpu.host_layer_bwd_us
    return max(0.1 * b, b - GPT_LAYER_TENSORS * gpu.host_accum_us)


def _host_variant(gpu: GPUSpec, cfg) -> GPUSpec:
    """``gpu`` with the host floor of the GPT whose layers this configuration runs: FP8
    GEMMs (a spec of :func:`~simulator.generate.builder.fp8_gpu`) or the unfused attention,
    where that floor was measured (FP8 and unfused together: FP8's)."""
    features = getattr(cfg, "features", None)
    variant = "fp8" if gpu.gemm_dtype == "fp8" else (
        "unfused" if getattr(features, "attention_backend", "") == "unfused" else "")
    ratio = gpu.host_variant(variant) if variant else None
    if not ratio:
        return gpu
    return replace(gpu, host_layer_fwd_us=gpu.host_layer_fwd_us * ratio[0],
                   host_layer_bwd_us=gpu.host_layer_bwd_us * ratio[1],
                   host_layer_recompute_us=gpu.host_layer_recompute_us * ratio[2])


def _rescale_host(parts: list[Part], fwd_us: float, bwd_us: float) -> list[Part]:
    """Scale the host times of ``parts`` so that they add up to fwd_us / bwd_us."""
    hf = sum(p[0].host for p in parts)
    hb = sum(p[1].host + p[2].host for p in parts)
    kf = fwd_us / hf if hf > 0 else 0.0
    kb = bwd_us / hb if hb > 0 else 0.0
    return [(p[0].scaled_host(kf), p[1].scaled_host(kb), p[2].scaled_host(kb)) for p in parts]


class ComputeModel:
    """Per-row-kind compute times for one configuration."""

    def __init__(self, cfg: TrainConfig, params: ParamCounts, gpu: GPUSpec | None = None):
        """``gpu``: price the kernels on this GPU instead of ``cfg.gpu_spec`` (FP8 GEMMs).

        The kernels are priced as the kernel sweep timed them. Where the GPU has a power-cap
        model (``power_cap``, :mod:`.power`) and the configuration turns it on, the GEMMs are
        referred to the boost clock (``gemm_boost``), the step's own timeline at that clock
        gives the factor its compute-bound kernels run slower at the clock the step sustains
        (``power_factor``), and the step is priced again with it."""
        base = _host_variant(gpu if gpu is not None else cfg.gpu_spec, cfg)
        self._build(cfg, params, base)
        #: compute-bound kernels' time factor under the power cap (1: boost clock, or off)
        self.power_factor = 1.0
        #: memory-bound ops' time factors under the power cap ((op, factor), ...; () none)
        self.mem_scales: tuple = ()
        self.power_cap = base.power_cap if getattr(
            getattr(cfg, "features", None), "power_cap", False) else None
        if self.power_cap is not None:
            from .power import step_factor, step_mem_scales
            # GEMMs at the boost clock (the sweep's curve carries part of the cap: power.py);
            # an FP8 spec's curve, timed the same way, by the same ratio (not measured cold)
            boost = replace(base, gemm_emax=base.gemm_emax * self.power_cap.gemm_boost)
            self._build(cfg, params, boost)
            segments = self.step_segments()
            k = step_factor(self.power_cap, segments)
            # the element-wise kernels that slow under the cap (kernelprice1's mixes)
            mem = step_mem_scales(self.power_cap, segments)
            self.mem_scales = mem
            if k > 1.0 + 1e-9 or mem:
                self.power_factor = max(k, 1.0)
                self._build(cfg, params, replace(boost, compute_scale=max(k, 1.0),
                                                 mem_scales=mem))

    def step_segments(self) -> list:
        """The step at the boost clock as the GPU runs it, (us, class) segments (power.py):
        the zeroing, each micro-batch's forward (twice with full recompute) and backward with
        their drains and the fp32 accumulation (at most 8 micro-batches: the filter settles
        within them), then the optimizer step."""
        from .power import timeline
        fwd, bwd, before_f, before_b = self._chains
        # full recompute: the engine replays the layers' forward inside the backward (the
        # rows' checkpoints); here the whole forward chain again before the backward
        features = getattr(self.cfg, "features", None)
        again = fwd if features is not None and features.full_recompute else ()
        chain = tuple(self.step_start.kernels)
        for _ in range(min(8, max(1, self.cfg.ga))):
            chain += (tuple(before_f) + fwd + tuple(before_b) + again + bwd
                      + self.accumulation.kernels)
        chain += tuple(self.opt_kernels) if self.opt_kernels else self._opt_alone.kernels
        return timeline(chain)[0]

    def _build(self, cfg: TrainConfig, params: ParamCounts, gpu: GPUSpec) -> None:
        self.cfg = cfg
        self.gpu = gpu
        #: the same model at the FP8 rate, for the rows --fp8 moves to FP8 (builder.py)
        self.fp8_model: ComputeModel | None = None
        sf, sb = host_scales(gpu)
        fused = accumulation_fused(cfg)
        K = _Kernels(gpu, sf, sb, getattr(cfg.features, "grad_bytes", 4) if fused else 0)
        m = cfg.model
        tp = cfg.tp
        T = cfg.tokens                       # tokens in the TP region (whole sequence)
        Ts = T // tp if cfg.sp else T        # tokens outside it (split with SP)
        h, hd = m.hidden, m.hd
        nh, nkv = m.heads // tp, max(1, m.kv // tp)
        mats_in = 2 if m.gated_mlp else 1
        bias = m.max_position > 0            # GPT-style presets: biases and LayerNorm
        drop = getattr(cfg, "hidden_dropout", 0.1) > 0   # Megatron's default 0.1
        t: dict[str, Part] = {}

        ln = K.mem("layer_norm", 4 * Ts * h, 8 * Ts * h, cols=h)
        dropout = K.mem("dropout", 5 * Ts * h, 5 * Ts * h, cols=h) if drop else (Z, Z, Z)
        resid = _sum(K.mem("add", 6 * Ts * h, cols=h), dropout, K.grad_sum(6 * Ts * h, h))
        rot = K.mem("add", 4 * T * (nh + nkv) * hd, 4 * T * (nh + nkv) * hd, kernels=3) \
            if m.max_position == 0 else (Z, Z, Z)
        attn_f = 4.0 * cfg.micro_batch * cfg.seq_length ** 2 * nh * hd * 0.5
        # the attention kernel stays bf16 under --fp8 (its GEMMs are not Transformer Engine's
        # FP8 linear layers): priced on the bf16 spec
        attn_gpu = replace(cfg.gpu_spec, compute_scale=gpu.compute_scale) \
            if gpu.gemm_dtype == "fp8" else gpu
        if getattr(getattr(cfg, "features", None), "attention_backend", "") == "unfused":
            # the materialised scores' kernels in the chain, dispatched where the fused
            # kernel would be (the unfused GPT's measured host floor carries their extra ops)
            uf, ub, _ = config_unfused_attention_us(attn_gpu, cfg)
            hf, hb = K._host("sdpa")
            core = (_k(uf, hf), _k(ub, hb), Z)
        else:
            core = _Kernels(attn_gpu, sf, sb).attention(attn_f, cfg.seq_length, hd)
        qkv = K.linear(T, (nh + 2 * nkv) * hd, h, bias)
        proj = K.linear(T, h, nh * hd, bias)
        t["ln"], t["resid"] = ln, resid
        t["attn_in"] = ln
        # the attention output to [tokens, heads x head size] and its gradient back are views
        # (the fused kernel writes and reads that layout: no kernel in the profiled steps),
        # their dispatch kept in the forward's host weights. The QKV split's backward
        # (autograd's select_backward of q, k, v = qkv[:, :, j]) zero-fills one full-width
        # [b, s, 3, heads, head] gradient per chunk, copies the chunk's gradient into its
        # slice (a strided write) and adds the three up: each priced as the measured op
        # (kernelprice1: qkv_fill, qkv_copy, qkv_add)
        width = T * (nh + 2 * nkv) * hd
        if gpu.has_mem_op("qkv_copy.fwd"):
            copies = (_k(0.0, K._host("float")[0]), Z, Z)
            split = (Z, _k(3 * gpu.mem_us("qkv_fill.fwd", 2 * width), 0.0, 3)
                     + _k(gpu.mem_us("qkv_copy.fwd", 4 * T * nh * hd)
                          + 2 * gpu.mem_us("qkv_copy.fwd", 4 * T * nkv * hd), 0.0, 3)
                     + _k(2 * gpu.mem_us("qkv_add.fwd", 6 * width), 0.0, 2), Z)
        else:
            # the sweep's fit (shipped): three layout copies at the contiguous cast's rate (one
            # forward), the fills and adds at the fp32 zeroing's and the add's; its attention
            # backward, fitted over a fused QKV, holds these kernels too (docs/compute-model.md)
            copies = K.mem("float", 4 * T * nh * hd, 0.0)
            copies = _sum(copies, (Z, _k(2 * gpu.mem_us("float.fwd", 4 * T * nh * hd), 0.0, 2),
                                   Z))
            split = (Z, _k(3 * gpu.mem_us("zero_fp32.fwd", 2 * width), 0.0, 3)
                     + _k(2 * gpu.mem_us("add.fwd", 6 * width), 0.0, 2), Z)
        if (getattr(getattr(cfg, "features", None), "attention_backend", "") == "unfused"
                and cfg.micro_batch > 1):
            # the batched matmuls of the unfused attention flatten (batch, heads) of strided
            # operands: a copy each where micro-batch > 1 (4 a layer, profiled: hostcause1),
            # dispatched like a layout copy (its measured host time, not floor-scaled: the
            # clone runs inside the matmul's dispatch)
            n_el = T * nh * hd
            copies = _sum(copies, (_k(4 * gpu.mem_us("float.fwd", 4 * n_el),
                                      4 * gpu.host_us("float.fwd"), 4), Z, Z))
        calls = _extra_driver_calls(gpu, cfg, T)
        if calls:
            # host-only driver calls (workspace memsets of the reductions, split-K launches)
            # beyond the floor GPT's: half in each body, a third forward, two thirds backward
            per_body = calls * DRIVER_CALL_US / 2.0
            driver = (_k(0.0, per_body / 3.0), _k(0.0, 2.0 * per_body / 3.0), Z)
        else:
            driver = (Z, Z, Z)
        t["attn_body"] = _sum(qkv, rot, core, copies, split, proj, resid, driver)
        t["attn_core"] = core  # the attention kernel alone (selective recompute replays it)
        # dense MLP
        F = m.ffn // tp
        fc1 = K.linear(T, mats_in * F, h, bias)
        fc2 = K.linear(T, h, F, bias)
        act = K.mem("gelu", 2 * T * F * (mats_in + 1), 3 * T * F * (mats_in + 1),
                    kernels=mats_in, cols=F)
        t["mlp_body"] = _sum(fc1, act, fc2, resid, driver)
        # MoE (simulator/generate/moe.py: Megatron-core's router, dispatcher and experts)
        if m.is_moe:
            from .moe import moe_parts
            t.update(moe_parts(K, cfg, mats_in, ln, resid))
        # embedding (lookup + positions, dropout), output layer and loss
        V = padded_vocab(m.vocab, tp) // tp
        emb_fwd = 4 * T * h + (4 * T * h if m.max_position else 0)
        emb = K.mem("embedding_pos", emb_fwd, 2 * (V * tp) * h // tp, cols=h)
        emb = (emb[0], Z, emb[1])            # its backward is a weight gradient
        edrop = K.mem("dropout", 5 * T * h, 5 * T * h, cols=h) if drop else (Z, Z, Z)
        t["embedding"] = _sum(emb, (edrop[0], Z, edrop[1]))
        out = K.linear(T, V, h, False)
        loss = K.mem("cross_entropy_fp32", 14 * T * V, 16 * T * V, cols=V)
        t["output"] = _sum(K.mem("layer_norm", 4 * T * h, 8 * T * h, cols=h), out, loss)
        if gpu.host_fixed_fwd_us:   # the measured host floor of embedding, head and loss
            # (its backward less the fp32 accumulation of the 4 fixed tensors, priced after
            # the backward with the layers')
            fixed_bwd = max(0.1 * gpu.host_fixed_bwd_us, gpu.host_fixed_bwd_us
                            - GPT_FIXED_TENSORS * gpu.host_accum_us)
            t["embedding"], t["output"] = _rescale_host(
                [t["embedding"], t["output"]], gpu.host_fixed_fwd_us, fixed_bwd)
            if T > EMBEDDING_SORT_TOKENS:
                # PyTorch's embedding backward over more than 3072 indices sorts them (radix
                # sort, scan, segment kernels): 19 more launches than at the floor's 64
                # tokens (hostcause1 profile.csv, 1024 -> 4096 tokens)
                t["embedding"] = _sum(t["embedding"],
                                      (Z, Z, _k(0.0, EMBEDDING_SORT_CALLS * DRIVER_CALL_US)))
        else:
            t["output"] = _sum(t["output"], (Z, _k(0.0, gpu.host_us("backward_call")), Z))
        if fused and m.tied_embeddings and cfg.pp == 1:
            # the output layer shares the word embedding's weight on one stage: Megatron-LM
            # returns a zero-filled dummy wgrad (zero_out_wgrad) so that autograd's sum with
            # the embedding's own gradient, added to the main gradient after the backward,
            # holds no garbage: a V/TP x h bf16 fill each micro-batch, priced as the zeroing
            # kernel over its 2 bytes an element and an element-wise op's dispatch (beyond
            # the measured floor, whose PyTorch GPT has no such op)
            t["output"] = _sum(t["output"], (Z, Z, _k(gpu.mem_us("zero_fp32.fwd", 2.0 * V * h),
                                                      gpu.host_us("add.fwd"))))
        if cfg.recompute and gpu.host_layer_recompute_us:
            # a checkpointed layer's host cost beyond its forward, which the engine replays
            extra = max(0.0, gpu.host_layer_recompute_us - gpu.host_layer_fwd_us)
            total = t["attn_body"][0].host + t["mlp_body"][0].host
            for key in ("attn_body", "mlp_body"):
                f, ig, wg = t[key]
                share = f.host / total if total > 0 else 0.5
                t[key] = (f, ig + _k(0.0, share * extra), wg)
        # optimizer: fp32 main gradients zeroed, accumulated per micro-batch, then norm,
        # clipping, Adam over the local shard and the bf16 copy
        if cfg.distributed_optimizer:
            local_params = params.dense / cfg.dp + params.expert / cfg.dp_ep
        else:
            local_params = params.per_gpu
        per_layer = (12 if bias else 6)
        tensors = cfg.layers_per_stage * per_layer + 4
        # the fp32 accumulation after each micro-batch's backward: one kernel per parameter
        # tensor (PyTorch's per-tensor path for bf16 into fp32), in parameter order; under
        # the fusion only the tensors no linear layer's wgrad GEMM writes
        self.accumulation = _accumulation(gpu, cfg, params, per_layer, bias, mats_in, fused)
        # the main gradients' zeroing opens the step (Megatron's zero_grad_buffer before the
        # first micro-batch): the host dispatches the first forward while it runs
        self.step_start = _k(params.per_gpu * gpu.opt_zero_ns / 1e3, gpu.host_us("add.fwd"))
        # the step in its measured parts (optimizer_step.py: the norm's enqueue, its read,
        # clipping's scale, Adam), replayed behind the last backward (_host_lead); else the
        # kernel sweep's back-to-back step as device time
        self.opt_kernels = step_kernels(
            gpu, local_params, tensors,
            clip=getattr(getattr(cfg, "features", None), "clip_scale", True))
        if self.opt_kernels:
            t["optimizer"] = (Cost(self.opt_kernels), Z, Z)
        else:
            t["optimizer"] = (_k(gpu.optimizer_us(local_params, tensors), 0.0), Z, Z)
        self._opt_alone = t["optimizer"][0]
        t.update(_sync_work(gpu, cfg, local_params, params.per_gpu, tensors))
        if getattr(getattr(cfg, "features", None), "params_dtype", "") == "fp16":
            # found_inf, all-reduced after the unscale (the loss_scale row), read on the host
            t["optimizer"] = (Cost((sync(gpu.host_us("float.fwd")),)) + t["optimizer"][0],
                              Z, Z)
        self.tensors = tensors
        self.costs = t
        #: the optimizer step's own Cost, before the step's chain prices what it adds
        self._opt_cost = t["optimizer"][0]
        self._chain_step(cfg, self)

    def link_fp8(self, fp8: ComputeModel) -> None:
        """Price the step as ``--fp8`` runs it: the layers' rows from ``fp8`` (this model at
        the FP8 rate), the embedding, output layer and loss from this one (bf16, as
        Transformer Engine and the measured FP8 GPT keep them). Both models' lead factors
        and this model's accumulation, zeroing and optimizer tail are replayed on that one
        chain; before, each model replayed its own: the FP8 rows' factors came from a chain
        whose output layer ran at the FP8 rate with its casts and transposes (a vocabulary
        projection's worth of GPU time the bf16 output row never has), and the accumulation
        and the optimizer followed a backward of bf16 layers."""
        self._chain_step(self.cfg, fp8)
        fp8.lead = self.lead

    def _chain_step(self, cfg: TrainConfig, layers: ComputeModel) -> None:
        """The lead factors and the optimizer row from the step's chain, its layers' kernels
        from ``layers`` (this model, or the FP8 one: :meth:`link_fp8`)."""
        t = self.costs
        self.lead, accum_us, opt_tail = self._host_lead(cfg, layers)
        # what the accumulation adds after the backward, once per micro-batch, in the
        # optimizer row (after the last micro-batch, before its host reads); the measured
        # parts' step as it runs behind the backward (fp16's starts with found_inf's read:
        # from a drained GPU, as priced on its own)
        opt_cost = self._opt_cost
        if opt_tail is not None:
            opt_cost = _k(opt_tail, 0.0)
        t["optimizer"] = (_k(cfg.ga * accum_us, 0.0) + opt_cost, Z, Z)
        self.parts = {k: tuple(c.us for c in v) for k, v in t.items()}

    def _host_lead(self, cfg: TrainConfig, layers: ComputeModel | None = None
                   ) -> tuple[tuple[float, float], float, float | None]:
        """((forward, backward) factors that carry the host's lead from row to row, the time
        the fp32 accumulation adds after a micro-batch's backward, the time the optimizer
        step adds behind the last backward and its accumulation, or None where it is priced
        on its own: no measured parts, or fp16's found_inf read before it).

        Each row's kernel sequence is replayed from an idle host and GPU (:class:`Cost`);
        in a step the host runs ahead through GPU-bound rows and the GPU drains that queue
        in host-bound ones. The micro-batch's forward (embedding, every layer, output layer
        and loss) and backward (in reverse) are replayed once as one chain each; the factor
        is the chain's time over the sum of its rows' own times, applied to every row, so
        the rows add up to the chained micro-batch.

        The accumulation is replayed behind the backward's chain: what it adds is
        chain(backward + accumulation) - chain(backward). A host-bound step pays its
        dispatch (its kernels run while the host issues the next ones: ~10 us host, ~4-120
        us device a tensor); a GPU-bound one its kernels, queued behind the backward."""
        t = self.costs
        lt = (layers or self).costs   # the layers' kernels (FP8's under --fp8: link_fp8)
        m = cfg.model
        if m.is_moe:
            mlp = _sum(lt["moe_router"], lt["moe_permute"], lt["moe_experts"],
                       lt["moe_unpermute"])
        else:
            mlp = _sum(lt["ln"], lt["mlp_body"])
        layer = [_sum(lt["attn_in"], lt["attn_body"]), mlp]
        seq_f = [t["get_batch0"], t["get_batch1"], t["embedding"]] \
            + layer * cfg.layers_per_stage + [t["output"]]
        seq_b = [t["output"]] + layer[::-1] * cfg.layers_per_stage + [t["embedding"]]
        chains, alone = [], []
        for seq, sides in ((seq_f, (0,)), (seq_b, (1, 2))):
            parts = [sum((p[i] for i in sides), Z) for p in seq]
            alone.append(sum(c.us for c in parts))
            chains.append(tuple(k for c in parts for k in c.kernels))
        # the step as one chain over its micro-batches (host_sync.py): with PP > 1 every
        # forward and backward starts drained (Megatron's batched p2p is followed by a
        # synchronize); else the loss's NaN check drains the queue before each backward
        before_f: tuple = (sync(),) if cfg.pp > 1 else ()
        before_b: tuple = (sync(),) if cfg.pp > 1 else t["loss_check"][0].kernels
        self._chains = (chains[0], chains[1], before_f, before_b)
        f, b = replay_step(chains[0], chains[1], cfg.ga, before_f, before_b)
        # the zeroing's exposed part (what it adds to the chain) goes to the optimizer row,
        # so the layers' rows keep their own times
        fz, bz = replay_step(chains[0], chains[1], cfg.ga, before_f, before_b,
                             self.step_start.kernels)
        self.zeroing_us = max(0.0, cfg.ga * (fz + bz - f - b))
        # the same step with each micro-batch's accumulation behind its backward: what it
        # adds per micro-batch (its tail can also delay the next micro-batch's forward)
        fa, ba = replay_step(chains[0], chains[1] + self.accumulation.kernels, cfg.ga,
                             before_f, before_b, self.step_start.kernels)
        lead = (f / alone[0] if alone[0] > 0 else 1.0, b / alone[1] if alone[1] > 0 else 1.0)
        opt_tail = None
        fp16 = getattr(getattr(cfg, "features", None), "params_dtype", "") == "fp16"
        if self.opt_kernels and not fp16:
            # the norm's enqueue runs while the GPU works off the backward's queue
            opt_tail = step_tail(chains[0], chains[1] + self.accumulation.kernels, cfg.ga,
                                 self.opt_kernels, before_f, before_b, self.step_start.kernels)
        return lead, max(0.0, fa + ba - fz - bz), opt_tail

    def core_attention_us(self) -> tuple[float, float, float]:
        """(forward, backward, 0) device microseconds of one layer's attention kernel alone,
        the part of the attention rows that selective recompute replays and that the
        generator rescales for context parallelism, FP8 and the unfused backend (builder.py).

        Device time only: the kernel's host dispatch stays in its row. Before, the replayed
        time (dispatch + kernel) was swapped out, so a backend swap removed the dispatch
        from rows that do pay it (every unfused / FP8 layer lost ~0.3-0.5 ms on an H200:
        their GPU-bound steps ran 4-8% short, traces/h200/compute/run5-run7)."""
        fwd, bwd, zero = (c.dev for c in self.costs["attn_core"])
        return fwd, bwd, zero

    def row(self, kind: str, slot: int = 0) -> tuple[float, float, float]:
        """(forward, input-gradient, weight-gradient) microseconds of a row kind.

        Kinds: ``attention_layer``/``mlp_layer`` (no SP: the whole block),
        ``attention_column``/``attention_row``/``mlp_column``/``mlp_row`` (SP: the column row
        carries the layer-norm before the all-gather and the backward GEMMs after the
        reduce-scatter, the row row the forward GEMMs), ``mlp_moelayer`` slots 0-4 (router,
        dispatch, TP all-gather, experts, combine), ``embedding_layer``, ``final_column``,
        ``optimizer``.
        """
        f, ig, wg = self.row_costs(kind, slot)
        if kind in ("optimizer", "loss_scale"):   # after the backward's end: no lead
            extra = self.zeroing_us if kind == "optimizer" else 0.0
            return (f.us + extra,) + _split_backward(ig, wg)
        lf, lb = self.lead
        b = _split_backward(ig, wg)
        return (f.us * lf, b[0] * lb, b[1] * lb)

    def row_costs(self, kind: str, slot: int = 0) -> Part:
        """:meth:`row` as (device, host) Costs."""
        p = self.costs
        z = (Z, Z, Z)
        if kind == "attention_layer":
            return _sum(p["attn_in"], p["attn_body"])
        if kind == "mlp_layer":
            return _sum(p["ln"], p["mlp_body"])
        if kind in ("attention_column", "mlp_column"):
            body = p["attn_body"] if kind == "attention_column" else p["mlp_body"]
            return (p["ln"][0], body[1] + p["ln"][1], body[2])
        if kind in ("attention_row", "mlp_row"):
            body = p["attn_body"] if kind == "attention_row" else p["mlp_body"]
            return (body[0], Z, Z)
        if kind == "mlp_moelayer":
            if slot == 0:
                return p["moe_router"]
            if slot == 1:
                return p["moe_permute"]
            if slot == 2:
                return (Z,) + p["moe_experts"][1:]
            if slot == 3:
                return (p["moe_experts"][0], Z, Z)
            return p["moe_unpermute"]
        if kind == "embedding_layer":
            return p["embedding"]
        if kind == "final_column":
            return p["output"]
        if kind == "optimizer":
            return p["optimizer"]
        if kind == "get_batch":
            return p[f"get_batch{min(slot, 1)}"]
        if kind == "loss_scale":
            return p["loss_scale"]
        return z


def _sync_work(gpu: GPUSpec, cfg, local_params: float, params_per_gpu: float,
               tensors: int) -> dict[str, Part]:
    """The kernels around the step's host reads (host_sync.py), each priced as its own op:
    a copy's or an element-wise op's measured dispatch (``float`` / ``add``) and the
    memory-bound model over its bytes; the reads themselves are sync points whose host time
    is the copy's dispatch (``.item()`` / ``.cpu()`` is a device-to-host copy).

    ``get_batch0`` / ``get_batch1``: the legacy ``broadcast_data`` (the key sizes copied to
    the GPU for their TP broadcast; then read back, the tokens copied over, the tokens and
    labels split, the causal mask, positions and loss mask built on the GPU); ``loss_check``:
    ``loss.isnan()`` and its read; ``loss_scale``: fp16's copy of fp16 main gradients to
    fp32 (without fp32 accumulation: a per-tensor ``.float()``), ``found_inf`` zeroed, the
    fused unscale-and-check over the optimizer's main gradients (fp32 read and written);
    the optimizer row then starts with ``found_inf``'s read."""
    f = getattr(cfg, "features", None)
    copy_h, op_h = gpu.host_us("float.fwd"), gpu.host_us("add.fwd")
    out: dict[str, Part] = {"get_batch0": (Z, Z, Z), "get_batch1": (Z, Z, Z),
                            "loss_check": (Z, Z, Z), "loss_scale": (Z, Z, Z)}
    if f is None:
        return out
    b, s = cfg.micro_batch, cfg.seq_length
    if f.get_batch == "legacy":
        out["get_batch0"] = (_k(gpu.mem_us("float.fwd", 40.0), copy_h), Z, Z)
        data = 8.0 * b * (s + 1)
        kernels = (_k(gpu.mem_us("float.fwd", data), copy_h)        # tokens to the GPU
                   + _k(2 * gpu.mem_us("float.fwd", 2 * data), 2 * copy_h, 2)   # split
                   # ones, tril and < 0.5 of the s x s mask (fp32, then bool)
                   + _k(gpu.mem_us("add.fwd", 4.0 * s * s) + gpu.mem_us("add.fwd", 8.0 * s * s)
                        + gpu.mem_us("add.fwd", 5.0 * s * s), 3 * op_h, 3)
                   + _k(gpu.mem_us("add.fwd", 8.0 * s) + gpu.mem_us("add.fwd", 4.0 * b * s),
                        2 * op_h, 2))                                 # positions, loss mask
        out["get_batch1"] = (Cost((sync(copy_h),)) + kernels, Z, Z)
    if f.check_for_nan_in_loss:
        out["loss_check"] = (_k(gpu.mem_us("add.fwd", 5.0), op_h) + Cost((sync(copy_h),)),
                             Z, Z)
    if f.params_dtype == "fp16":
        work = _k(gpu.mem_us("zero_fp32.fwd", 4.0), op_h)               # found_inf = 0
        if f.grad_bytes == 2 and not cfg.distributed_optimizer:
            work = work + _k(gpu.mem_us("float.fwd", 6.0 * params_per_gpu), tensors * copy_h,
                             tensors)
        # the fused unscale-and-check: measured per parameter (traces/h200/compute/
        # gpubound1, fp16_opt), else an add over its 8 bytes a parameter
        unscale = (local_params * gpu.opt_unscale_ns / 1e3 if gpu.opt_unscale_ns
                   else gpu.mem_us("add.fwd", 8.0 * local_params))
        work = work + _k(unscale, op_h)
        out["loss_scale"] = (work, Z, Z)
    return out


#: host time of one CUDA driver call of a step (cudaMemsetAsync; cudaLaunchKernel alike):
#: median self time of the call in 69 profiled steps and floor GPTs on the H200 machines
#: (traces/h200/compute/run8-run10, hostcause1 profile.csv: 8.85 us; launches 9.1 us)
DRIVER_CALL_US = 8.85
#: driver calls of a GPT layer beyond its kernels' launches, by tokens per micro-batch
#: (hostcause1 profile.csv, PyTorch 2.11 / cuBLAS 13.1 on an H200, the same per layer for
#: the 125M-760M widths and for FP8 and unfused layers from 1024 tokens): the reductions over
#: the tokens (4 bias gradients, 2 layer-norm weight gradients) take a two-pass path with a
#: memset from 1024 tokens on (6 a layer), more at 4096 (9.4); at the floor GPT's 64 tokens
#: the bf16 GEMMs split K instead (a second launch: 5 a layer with the memsets, FP8 GEMMs 2,
#: unfused attention's 3)
DRIVER_CALLS_LARGE = ((1024, 6.0), (4096, 9.4))
DRIVER_CALLS_FLOOR = {"default": 5.0, "fp8": 2.0, "unfused": 3.0}
FLOOR_TOKENS = 64
EMBEDDING_SORT_TOKENS = 3072
EMBEDDING_SORT_CALLS = 19


def _extra_driver_calls(gpu: GPUSpec, cfg: TrainConfig, tokens: int) -> float:
    """Driver calls a layer makes at ``tokens`` tokens beyond those of the 64-token floor GPT
    that measured its host time (0 without a measured floor): the floor's count of the
    layer's variant at 64 tokens, the large-token counts from 1024 on, log-linear between
    (the 256-token counts measured lie below both ends: 1-3 a layer; not modelled)."""
    import math
    if not gpu.host_layer_fwd_us or tokens <= FLOOR_TOKENS:
        return 0.0
    features = getattr(cfg, "features", None)
    variant = "fp8" if gpu.gemm_dtype == "fp8" else (
        "unfused" if getattr(features, "attention_backend", "") == "unfused" else "default")
    floor = DRIVER_CALLS_FLOOR[variant]
    pts = [(FLOOR_TOKENS, floor), *DRIVER_CALLS_LARGE]
    calls = pts[-1][1]
    for (t0, c0), (t1, c1) in zip(pts, pts[1:]):
        if tokens <= t1:
            f = math.log(tokens / t0) / math.log(t1 / t0)
            calls = c0 + f * (c1 - c0)
            break
    return calls - floor


def accumulation_fused(cfg) -> bool:
    """Whether the configuration's linear layers accumulate their weight gradients inside
    the wgrad GEMMs (Megatron-LM's gradient_accumulation_fusion; a configuration without
    features: no)."""
    return bool(getattr(getattr(cfg, "features", None), "gradient_accumulation_fusion", False))


def _accumulation(gpu: GPUSpec, cfg: TrainConfig, params: ParamCounts, per_layer: int,
                  bias: bool, mats_in: int, fused: bool = False) -> Cost:
    """The fp32 gradient accumulation of one micro-batch: a kernel per parameter tensor
    (host: ``host_accum_us``), in the order of the parameters (embedding, each layer's, the
    final norm; device time: ``opt_accum_t0_us`` + ``opt_accum_ns`` a parameter, fitted on the
    measured whole accumulations, else the ``accum_fp32`` kernel at 10 bytes a parameter).
    Each layer has ``per_layer`` tensors: its four weight matrices (QKV, projection,
    MLP in and out, sized from the model's widths) and ``per_layer - 4`` vectors of the
    hidden size; the matrices are scaled so that all tensors hold ``params.per_gpu``
    (MoE experts, a pipeline stage's share of the embedding).

    ``fused`` (Megatron-LM's gradient accumulation fusion): the matrices' gradients are
    accumulated by their wgrad GEMMs (``_Kernels.linear``), as are those of the untied output
    layer, the experts and the shared experts that the scaled matrices hold; what keeps a
    kernel (and its host dispatch) of its own is what Megatron returns as a plain gradient
    for its backward hook to add: the word and position embedding tables (the lookup's
    gradient; tied at PP 1 the output layer's share comes as a zeroed dummy, so the table is
    still added), each layer's norms and biases, the final norm, and each MoE layer's
    router weight (its gating GEMM is not a Megatron linear layer)."""
    m = cfg.model
    h, tp = m.hidden, cfg.tp
    nh, nkv = m.heads // tp, max(1, m.kv // tp)
    F = (m.expert_ffn * max(1, m.experts // cfg.ep) if m.is_moe else m.ffn) // tp
    mats = [(nh + 2 * nkv) * m.hd * h, h * nh * m.hd, mats_in * F * h, h * F]
    vec = [h] * max(0, per_layer - 4)
    L = cfg.layers_per_stage
    V = padded_vocab(m.vocab, tp) // tp
    fixed = [V * h] + ([m.max_position * h] if m.max_position else [])
    tail = [h] * (4 - len(fixed))
    rest = params.per_gpu - sum(fixed) - sum(tail) - L * sum(vec)
    scale = rest / (L * sum(mats)) if rest > 0 and sum(mats) > 0 else 1.0
    sizes: list[float]
    if fused:
        from .sizes import stage_layers
        router = [h * m.experts] if m.is_moe else []
        layers = [[*vec, *(router if m.moe_layer(i) else [])] for i in stage_layers(cfg)]
        sizes = [*fixed, *(x for layer in layers for x in layer), *tail]
    else:
        sizes = [*fixed, *(x for _ in range(L) for x in [*(n * scale for n in mats), *vec]),
                 *tail]
    host = gpu.host_accum_us

    def dev(n: float) -> float:
        if gpu.opt_accum_ns or gpu.opt_accum_t0_us:   # fitted on whole accumulations
            return gpu.opt_accum_t0_us + n * gpu.opt_accum_ns / 1e3
        return gpu.mem_us("accum_fp32.fwd", 10.0 * n)
    return Cost(tuple((dev(n), host) for n in sizes if n > 0))


def batched_gemm_us(gpu: GPUSpec, m: int, n: int, k: int, count: int) -> float:
    """One batched GEMM kernel of ``count`` m x n x k products: one fixed cost."""
    if count <= 0:
        return 0.0
    return gpu.gemm_t0_us + count * (gpu.gemm_us(m, n, k) - gpu.gemm_t0_us)


def unfused_gemms_us(gpu: GPUSpec, batch: int, seq: int, heads: int,
                     head_dim: int) -> tuple[float, float]:
    """(forward, backward) microseconds of the batched GEMMs of unfused attention: QK^T
    (seq x seq x head_dim, the whole square: the causal mask is applied after) and PV
    (seq x head_dim x seq); backward dV = P^T dO and dQ = dS K and dK = dS^T Q (seq x
    head_dim x seq each) and dP = dO V^T (seq x seq x head_dim)."""
    n = batch * heads
    square = batched_gemm_us(gpu, seq, seq, head_dim, n)
    thin = batched_gemm_us(gpu, seq, head_dim, seq, n)
    return (square + thin, square + 3 * thin)


def unfused_attention_us(gpu: GPUSpec, batch: int, seq: int, heads: int,
                         head_dim: int, fused_softmax: bool = False,
                         dropout: float = 0.0) -> tuple[float, float, float]:
    """(forward, backward, 0) device microseconds of attention that materialises its scores.

    Its batched GEMMs (:func:`unfused_gemms_us`) and the passes over the ``batch x heads x
    seq^2`` scores:

    * ``fused_softmax`` False: PyTorch's scale, mask and softmax as separate kernels, as
      measured (``unfused_fwd`` / ``unfused_bwd``: a fixed time and ns per score element;
      without that fit, streaming traffic of 4 and 6 bytes an element);
    * ``fused_softmax`` True: Megatron's fused scale-mask-softmax, one kernel each way that
      reads the 2-byte scores and writes the 2-byte probabilities (4 bytes an element) and,
      backward, reads the probabilities and their gradient and writes one (6 bytes). Priced
      as the measured row-reduction kernel that moves its bytes the same way, the layer
      norm (``layer_norm.fwd`` / ``.bwd``: one kernel, rows of ``seq`` elements);
    * ``dropout`` > 0: the dropout on the probabilities (Megatron's ``attention_dropout``),
      the measured dropout kernels over 5 bytes an element each way (2-byte values in and
      out, a 1-byte mask).
    """
    scores = float(batch * heads) * seq * seq
    gf, gb = unfused_gemms_us(gpu, batch, seq, heads, head_dim)
    if fused_softmax:
        sf = gpu.mem_us("layer_norm.fwd", 4 * scores, cols=seq)
        sb = gpu.mem_us("layer_norm.bwd", 6 * scores, cols=seq)
    elif gpu.unfused_fwd and gpu.unfused_bwd:
        (t0f, nsf), (t0b, nsb) = gpu.unfused_fwd, gpu.unfused_bwd
        sf, sb = t0f + scores * nsf / 1e3, t0b + scores * nsb / 1e3
    else:
        sf, sb = gpu.stream_us(4 * scores), gpu.stream_us(6 * scores)
    if dropout > 0:
        sf += gpu.mem_us("dropout.fwd", 5 * scores, cols=seq)
        sb += gpu.mem_us("dropout.bwd", 5 * scores, cols=seq)
    return (gf + sf, gb + sb, 0.0)


def config_unfused_attention_us(gpu: GPUSpec, cfg) -> tuple[float, float, float]:
    """:func:`unfused_attention_us` of one layer of ``cfg`` (its TP rank's heads), with the
    softmax and the attention dropout its features say."""
    f = cfg.features
    m = cfg.model
    return unfused_attention_us(gpu, cfg.micro_batch, cfg.seq_length, m.heads // cfg.tp,
                                m.hd, fused_softmax=f.masked_softmax_fusion,
                                dropout=f.attention_dropout)


def _split_backward(ig: Cost, wg: Cost) -> tuple[float, float]:
    """The backward's time, input and weight gradients replayed together (the weight-gradient
    GEMMs run while the host dispatches), split as each one's device time plus a share of the
    host's excess in proportion to its dispatch time."""
    total = (ig + wg).us
    if total <= 0:
        return (0.0, 0.0)
    excess = max(0.0, total - ig.dev - wg.dev)
    host = ig.host + wg.host
    share = ig.host / host if host > 0 else 1.0
    return (ig.dev + excess * share, wg.dev + excess * (1.0 - share))


def _add(*parts: tuple[float, float, float]) -> tuple[float, float, float]:
    return (sum(p[0] for p in parts), sum(p[1] for p in parts), sum(p[2] for p in parts))


# ------------------------------------------------------------------ user compute profiles

def read_compute_profile(path: str) -> dict[str, tuple[float, float, float]]:
    """A profile of measured row times: CSV ``name,fwd_us,ig_us,wg_us`` (or ``*_ns``).

    ``name`` is a row name (``attention_column``, ``mlp_moelayer``, ...) and applies to every
    row of that name; ``name.N`` (1-based) targets the N-th of consecutive rows of that name
    inside a layer (``mlp_moelayer.4`` is the expert computation). Returns nanoseconds.
    """
    import io

    from ..readers.numbers import parse_float, shown
    from ..readers.source import read_text

    fh = io.StringIO(read_text(path, "compute profile CSV", limit=64 * 2 ** 20), newline="")
    out: dict[str, tuple[float, float, float]] = {}
    with fh:
        lines = [(i, ln) for i, ln in enumerate(fh, start=1)
                 if ln.strip() and not ln.lstrip().startswith("#")]
        if not lines:
            raise InputError("empty profile: expected a header name,fwd_us,ig_us,wg_us",
                             path=path, line=1)
        from ..readers.measurement_csv import _guarded
        seen: list[int] = []

        def numbered():   # the reader's lines, noting each one's number as it is read
            for i, ln in lines:
                seen.append(i)
                yield ln
        reader = _guarded(csv.reader(numbered()), path, seen)
        header = [c.strip().lower() for c in next(reader, [])]
        unit = None
        for u, scale in (("us", 1000.0), ("ns", 1.0), ("ms", 1e6)):
            if all(f"{p}_{u}" in header for p in ("fwd", "ig", "wg")):
                unit = (u, scale)
                break
        if "name" not in header or unit is None:
            raise InputError("expected columns name,fwd_us,ig_us,wg_us (or _ns/_ms), got "
                             + shown(",".join(header), 50), path=path, line=lines[0][0])
        u, scale = unit
        cols = [header.index(f"{p}_{u}") for p in ("fwd", "ig", "wg")]
        ni = header.index("name")
        for (lineno, _), row in zip(lines[1:], reader):
            if len(row) != len(header):
                raise InputError(f"expected {len(header)} fields, got {len(row)}", path=path,
                                 line=lineno)
            vals = []
            for c in cols:
                try:  # at most 2^62 ns in all, as the workload reader's times
                    v = parse_float(row[c], lo=0, hi=2.0 ** 62 / scale)
                except ValueError as exc:
                    raise InputError(str(exc), path=path, line=lineno,
                                     field=header[c]) from None
                vals.append(v * scale)
            name = row[ni].strip()
            if name in out:
                raise InputError(f"row {shown(name)} given twice", path=path, line=lineno,
                                 field="name")
            out[name] = (vals[0], vals[1], vals[2])
    return out


def profile_path_ok(path: str) -> str:
    if not os.path.isfile(path):
        raise InputError("no such file", path=path, field="--compute-profile")
    return path
