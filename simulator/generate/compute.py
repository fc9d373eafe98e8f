"""Compute times of the rows: GEMMs, flash attention and element-wise kernels on one GPU.

Times are for one micro-batch on one rank, in microseconds. Each row kind gets the kernels
that run before its collective (forward), before its input-gradient collective (input
gradient: the dgrad GEMMs and element-wise backward) and its weight-gradient GEMMs.
A forward GEMM m x n x k has the backward GEMMs m x k x n (dgrad) and n x k x m (wgrad).
"""
from __future__ import annotations

import csv
import os

from ..errors import InputError
from .config import TrainConfig
from .gpu import GPUSpec
from .sizes import ParamCounts, padded_vocab


def _gemm3(gpu: GPUSpec, m: int, n: int, k: int, count: int = 1) -> tuple[float, float, float]:
    """(forward, dgrad, wgrad) microseconds of ``count`` GEMMs m x n x k."""
    return (gpu.gemm_us(m, n, k, count), gpu.gemm_us(m, k, n, count),
            gpu.gemm_us(n, k, m, count))


class ComputeModel:
    """Per-row-kind compute times for one configuration."""

    def __init__(self, cfg: TrainConfig, params: ParamCounts):
        self.cfg = cfg
        self.gpu = gpu = cfg.gpu_spec
        m = cfg.model
        tp = cfg.tp
        T = cfg.tokens                       # tokens in the TP region (whole sequence)
        Ts = T // tp if cfg.sp else T        # tokens outside it (split with SP)
        h, hd = m.hidden, m.hd
        nh, nkv = m.heads // tp, max(1, m.kv // tp)
        mats_in = 2 if m.gated_mlp else 1
        st = gpu.stream_us
        t: dict[str, tuple[float, float, float]] = {}

        ln = (st(4 * Ts * h), st(8 * Ts * h), 0.0)
        resid = (st(6 * Ts * h), st(6 * Ts * h), 0.0)
        rot = (st(4 * T * (nh + nkv) * hd, 2), st(4 * T * (nh + nkv) * hd, 2), 0.0) \
            if m.max_position == 0 else (0.0, 0.0, 0.0)
        attn_f = 4.0 * cfg.micro_batch * cfg.seq_length ** 2 * nh * hd * 0.5
        core = (gpu.attention_us(attn_f), gpu.attention_us(2.5 * attn_f, backward=True), 0.0)
        qkv = _gemm3(gpu, T, (nh + 2 * nkv) * hd, h)
        proj = _gemm3(gpu, T, h, nh * hd)
        t["ln"], t["resid"] = ln, resid
        t["attn_in"] = ln
        t["attn_body"] = _add(qkv, rot, core, proj, resid)
        t["attn_core"] = core  # the attention kernel alone (selective recompute replays it)
        # dense MLP
        F = m.ffn // tp
        fc1 = _gemm3(gpu, T, mats_in * F, h)
        fc2 = _gemm3(gpu, T, h, F)
        act = (st(2 * T * F * (mats_in + 1)), st(4 * T * F * (mats_in + 1)), 0.0)
        t["mlp_body"] = _add(fc1, act, fc2, resid)
        # MoE
        if m.is_moe:
            E, k = m.experts, m.topk
            Tl = Ts
            local = E // cfg.ep
            Fe = m.expert_ffn // tp
            per_expert = max(1, -(-cfg.ep * T * k // E))
            router = _gemm3(gpu, Tl, E, h)
            topk = (st(16 * Tl * E, 3), st(16 * Tl * E, 3), 0.0)
            permute = (st(4 * k * Tl * h, 2), st(4 * k * Tl * h, 2), 0.0)
            e1 = _gemm3(gpu, per_expert, mats_in * Fe, h, local)
            e2 = _gemm3(gpu, per_expert, h, Fe, local)
            eact = (st(2 * local * per_expert * Fe * (mats_in + 1)),
                    st(4 * local * per_expert * Fe * (mats_in + 1)), 0.0)
            experts = _add(e1, eact, e2)
            if m.shared_experts:
                Fs = m.shared_experts * m.expert_ffn // tp
                experts = _add(experts, _gemm3(gpu, T, mats_in * Fs, h), _gemm3(gpu, T, h, Fs),
                               (st(2 * T * Fs * (mats_in + 1)), st(4 * T * Fs * (mats_in + 1)),
                                0.0))
            t["moe_router"] = _add(ln, router, topk)
            t["moe_permute"] = permute
            t["moe_experts"] = experts
            t["moe_unpermute"] = _add(permute, resid)
        # embedding, output layer and loss
        V = padded_vocab(m.vocab, tp) // tp
        emb_bytes = 4 * T * h + (6 * T * h if m.max_position else 0)
        t["embedding"] = (st(emb_bytes, 2), 0.0, st(6 * T * h, 2))
        out = _gemm3(gpu, T, V, h)
        loss = (st(10 * T * V, 4), st(10 * T * V, 2), 0.0)
        t["output"] = _add(ln, out, loss)
        # optimizer step: Adam over the local shard (fp32 master, moments, grads; bf16 params)
        if cfg.distributed_optimizer:
            local_params = params.dense / cfg.dp + params.expert / cfg.dp_ep
        else:
            local_params = params.per_gpu
        t["optimizer"] = (st(34.0 * local_params, 8), 0.0, 0.0)
        self.parts = t

    def core_attention_us(self) -> tuple[float, float, float]:
        """(forward, backward, 0) microseconds of one layer's attention kernel alone, the part
        of the attention rows that selective recompute replays and that the generator rescales
        for context parallelism, FP8 and the unfused backend (builder.py)."""
        return tuple(float(getattr(x, "us", x)) for x in self.parts["attn_core"])

    def row(self, kind: str, slot: int = 0) -> tuple[float, float, float]:
        """(forward, input-gradient, weight-gradient) microseconds of a row kind.

        Kinds: ``attention_layer``/``mlp_layer`` (no SP: the whole block),
        ``attention_column``/``attention_row``/``mlp_column``/``mlp_row`` (SP: the column row
        carries the layer-norm before the all-gather and the backward GEMMs after the
        reduce-scatter, the row row the forward GEMMs), ``mlp_moelayer`` slots 0-4 (router,
        dispatch, TP all-gather, experts, combine), ``embedding_layer``, ``final_column``,
        ``optimizer``.
        """
        p = self.parts
        z = (0.0, 0.0, 0.0)
        if kind == "attention_layer":
            return _add(p["attn_in"], p["attn_body"])
        if kind == "mlp_layer":
            return _add(p["ln"], p["mlp_body"])
        if kind in ("attention_column", "mlp_column"):
            body = p["attn_body"] if kind == "attention_column" else p["mlp_body"]
            return (p["ln"][0], body[1] + p["ln"][1], body[2])
        if kind in ("attention_row", "mlp_row"):
            body = p["attn_body"] if kind == "attention_row" else p["mlp_body"]
            return (body[0], 0.0, 0.0)
        if kind == "mlp_moelayer":
            if slot == 0:
                return p["moe_router"]
            if slot == 1:
                return p["moe_permute"]
            if slot == 2:
                return (0.0,) + p["moe_experts"][1:]
            if slot == 3:
                return (p["moe_experts"][0], 0.0, 0.0)
            return p["moe_unpermute"]
        if kind == "embedding_layer":
            return p["embedding"]
        if kind == "final_column":
            return p["output"]
        if kind == "optimizer":
            return p["optimizer"]
        return z


def unfused_attention_us(gpu: GPUSpec, batch: int, seq: int, heads: int,
                         head_dim: int) -> tuple[float, float, float]:
    """(forward, backward, 0) microseconds of attention that materialises its scores.

    Megatron's unfused path: batched QK^T (batch x heads GEMMs of seq x seq x head_dim, the
    whole square: the causal mask is applied after), the fused scale-mask-softmax kernel
    (reads and writes the bf16 scores, 4 bytes an element), the batched PV GEMM. Backward:
    dV and dP, the softmax backward (reads probabilities and their gradient, writes the
    scores' gradient: 6 bytes an element), dQ and dK. No attention dropout.
    """
    n = batch * heads
    scores = float(n) * seq * seq
    qk = gpu.gemm_us(seq, seq, head_dim, n)
    pv = gpu.gemm_us(seq, head_dim, seq, n)
    fwd = qk + gpu.stream_us(4 * scores) + pv
    bwd = (gpu.gemm_us(seq, head_dim, seq, n) + gpu.gemm_us(seq, seq, head_dim, n)
           + gpu.stream_us(6 * scores) + 2 * gpu.gemm_us(seq, head_dim, seq, n))
    return (fwd, bwd, 0.0)


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
        reader = _guarded(csv.reader(seen.append(i) or ln for i, ln in lines), path, seen)
        header = [c.strip().lower() for c in next(reader, [])]
        unit = None
        for u, scale in (("us", 1000.0), ("ns", 1.0), ("ms", 1e6)):
            if all(f"{p}_{u}" in header for p in ("fwd", "ig", "wg")):
                unit = (u, scale)
                break
        if "name" not in header or unit is None:
            raise InputError("expected columns name,fwd_us,ig_us,wg_us (or _ns/_ms), got "
                             + shown(",".join(header), 120), path=path, line=lines[0][0])
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
            out[name] = tuple(vals)
    return out


def profile_path_ok(path: str) -> str:
    if not os.path.isfile(path):
        raise InputError("no such file", path=path, field="--compute-profile")
    return path
