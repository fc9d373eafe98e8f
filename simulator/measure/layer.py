"""One dense transformer layer on one GPU, timed forward and forward + backward.

A validation case for ``collsim generate``'s compute model (``simulator/generate/compute.py``):
a Megatron-like decoder layer in bf16, built from plain PyTorch operations, no communication:

* attention block: pre-norm (``F.layer_norm``), QKV projection (``F.linear``), rotary
  embedding for Llama-style cases (``q*cos + roll(q)*sin``: three element-wise kernels over
  the query and key heads together), ``F.scaled_dot_product_attention`` (causal; grouped
  query attention through ``enable_gqa``), output projection, residual add;
* MLP block: pre-norm, up projection (GPT: GELU (tanh) over ``ffn``; Llama: SwiGLU, gate and
  up in one GEMM of ``2 x ffn``), down projection, residual add.

GPT-style cases have biases (LayerNorm and linear layers) and learned positions (no rotary);
Llama-style cases have no biases, a weight-only LayerNorm (for RMSNorm; same traffic) and
rotary embeddings. A TP case (``tp > 1``) is one rank's shard of a tensor-parallel layer:
``heads / tp`` query heads, ``kv_groups / tp`` key/value heads, ``ffn / tp`` MLP columns, the
full hidden size and the whole sequence on every rank (no sequence parallelism), and no
all-reduce: what one rank computes between its collectives.

Timing of one loop: ``warmup`` untimed calls, then ``iters`` calls issued back to back, each
bracketed by CUDA events (the host clock on CPU); median, p10 and p90 over the calls. Before
every call the gradients of the weights and of the input are set to ``None`` (outside the
events), so the weight gradients are written, not accumulated. ``fwd``: the layer's forward
with autograd recording (as in training); ``fwdbwd``: forward, then ``backward`` of a fixed
random output gradient; ``bwd`` = median(fwdbwd) - median(fwd). The two blocks are timed the
same way on their own (``attn_*``, ``mlp_*``), and the attention kernel alone (``core_*``)
with every SDPA backend that accepts the shapes (``layers_attention.csv``).

This module imports torch inside functions only.
"""
from __future__ import annotations

import datetime
import os
import platform
import time

from .timing import Timer, log, quantile, rounded
from .train import write_csv

STYLES = ("gpt", "llama")
# name:hidden:ffn:heads:kv_groups:tp:style[:preset] (the preset of collsim generate's model)
DEFAULT_LAYER_CASES = ("gpt-7b:4096:16384:32:32:1:gpt,"
                       "gpt-13b:5120:20480:40:40:1:gpt,"
                       "llama-2-7b:4096:11008:32:32:1:llama,"
                       "llama-3-8b:4096:14336:32:8:1:llama,"
                       "gpt-175b-tp8:12288:49152:96:96:8:gpt:gpt-175b")
DEFAULT_LAYER_SEQS = "2048,4096"
DEFAULT_LAYER_MBS = "1"

LAYER_COLUMNS = [
    "case", "hidden", "ffn", "heads", "kv_groups", "seq", "mbs", "tp",
    "fwd_us", "bwd_us", "fwd_p10_us", "fwd_p90_us", "fwdbwd_us", "fwdbwd_p10_us",
    "fwdbwd_p90_us", "attn_fwd_us", "attn_bwd_us", "mlp_fwd_us", "mlp_bwd_us",
    "core_fwd_us", "core_bwd_us", "attn_backend", "preset", "style", "head_dim",
    "heads_local", "kv_local", "ffn_local", "flops_fwd", "tflops_fwd", "tflops_fwdbwd",
    "max_mem_mib", "dtype", "device", "iters", "warmup", "method"]

ATTN_COLUMNS = ["case", "seq", "mbs", "heads_local", "kv_local", "head_dim", "backend",
                "default", "fwd_us", "bwd_us", "fwd_p10_us", "fwd_p90_us", "fwdbwd_us",
                "flops_fwd", "tflops_fwd", "tflops_bwd", "status"]


class LayerCaseError(ValueError):
    """A bad layer case on the command line."""


def parse_layer_cases(text: str) -> list[dict]:
    """``name:hidden:ffn:heads:kv_groups:tp:style[:preset]``, comma-separated."""
    cases = []
    for part in text.split(","):
        if not part.strip():
            continue
        f = [x.strip() for x in part.split(":")]
        if len(f) not in (7, 8):
            raise LayerCaseError(f"bad layer case {part!r} "
                                 "(expected name:hidden:ffn:heads:kv_groups:tp:style[:preset])")
        try:
            h, ffn, heads, kv, tp = (int(x) for x in f[1:6])
        except ValueError:
            raise LayerCaseError(f"bad layer case {part!r}: numbers expected") from None
        style = f[6].lower()
        if style not in STYLES:
            raise LayerCaseError(f"bad layer case {part!r}: style must be one of "
                                 f"{', '.join(STYLES)}")
        if min(h, ffn, heads, kv, tp) < 1 or h % heads or heads % kv or heads % tp \
                or kv % tp or ffn % tp or (h // heads) % 2:
            raise LayerCaseError(f"bad layer case {part!r}: need heads | hidden, kv_groups | "
                                 "heads, tp | heads, kv_groups and ffn, an even head size")
        cases.append({"name": f[0], "hidden": h, "ffn": ffn, "heads": heads, "kv": kv,
                      "tp": tp, "style": style, "preset": f[7] if len(f) == 8 else f[0]})
    if not cases:
        raise LayerCaseError("no layer cases given")
    return cases


def parse_ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LayerCaseError(f"bad {what} {text!r} (expected whole numbers)") from None
    if not vals or min(vals) < 1:
        raise LayerCaseError(f"bad {what} {text!r} (expected whole numbers >= 1)")
    return vals


def layer_flops(case: dict, seq: int, mbs: int) -> float:
    """Forward FLOPs of one rank's layer: the GEMMs and causal attention (half the scores)."""
    tp = case["tp"]
    h, hd = case["hidden"], case["hidden"] // case["heads"]
    nh, nkv, F = case["heads"] // tp, case["kv"] // tp, case["ffn"] // tp
    T = seq * mbs
    mats = 2 if case["style"] == "llama" else 1
    gemm = 2.0 * T * (h * (nh + 2 * nkv) * hd + nh * hd * h + h * mats * F + F * h)
    attn = 4.0 * mbs * seq * seq * nh * hd * 0.5
    return gemm + attn


def _r3(x):
    return rounded(x, 3)


# ------------------------------------------------------------------------- the layer

class DenseLayer:
    """One rank's shard of a decoder layer, functional over its weight tensors."""

    def __init__(self, case: dict, seq: int, mbs: int, device, dtype, seed: int = 0):
        import torch
        self.case, self.seq, self.mbs = case, seq, mbs
        tp = case["tp"]
        self.h = h = case["hidden"]
        self.hd = hd = h // case["heads"]
        self.nh, self.nkv, self.F = case["heads"] // tp, case["kv"] // tp, case["ffn"] // tp
        self.gpt = case["style"] == "gpt"
        self.device, self.dtype = device, dtype
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)

        def w(shape, scale):
            return (torch.randn(shape, generator=gen, device=device, dtype=torch.float32)
                    * scale).to(dtype).requires_grad_()

        def ones(n):
            return torch.ones(n, device=device, dtype=dtype).requires_grad_()

        def zeros(n):
            return torch.zeros(n, device=device, dtype=dtype).requires_grad_()
        nq = (self.nh + 2 * self.nkv) * hd
        mats = 1 if self.gpt else 2
        p = {"ln1_w": ones(h), "wqkv": w((nq, h), h ** -0.5),
             "wo": w((h, self.nh * hd), (self.nh * hd) ** -0.5), "ln2_w": ones(h),
             "w1": w((mats * self.F, h), h ** -0.5), "w2": w((h, self.F), self.F ** -0.5)}
        if self.gpt:
            p.update(ln1_b=zeros(h), bqkv=zeros(nq), bo=zeros(h), ln2_b=zeros(h),
                     b1=zeros(mats * self.F), b2=zeros(h))
        self.p = p
        self.cos = self.sin = None
        if not self.gpt:  # rotary tables [s, 1, hd]; sin signed so that roll() rotates half
            inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=device,
                                                  dtype=torch.float32) / hd))
            ang = torch.outer(torch.arange(seq, device=device, dtype=torch.float32), inv)
            ang = torch.cat([ang, ang], dim=-1)
            sign = torch.cat([-torch.ones(hd // 2, device=device),
                              torch.ones(hd // 2, device=device)])
            self.cos = ang.cos()[:, None, :].to(dtype)
            self.sin = (ang.sin() * sign)[:, None, :].to(dtype)
        self.gqa = self.nkv != self.nh
        self.backend = None   # a torch.nn.attention.SDPBackend to force, or None

    def params(self):
        return list(self.p.values())

    def _norm(self, x, w, b):
        import torch.nn.functional as F
        return F.layer_norm(x, (self.h,), self.p[w], self.p.get(b), 1e-5)

    def attention(self, q, k, v):
        import torch.nn.functional as F
        kw = {"enable_gqa": True} if self.gqa else {}
        if self.backend is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)
        from torch.nn.attention import sdpa_kernel
        with sdpa_kernel(self.backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, **kw)

    def qkv_heads(self, x):
        """q, k, v as [b, heads, s, hd] views (rotary applied to q and k)."""
        import torch
        import torch.nn.functional as F
        b, s = x.shape[0], x.shape[1]
        nh, nkv, hd = self.nh, self.nkv, self.hd
        y = self._norm(x, "ln1_w", "ln1_b")
        qkv = F.linear(y, self.p["wqkv"], self.p.get("bqkv")).view(b, s, nh + 2 * nkv, hd)
        qk = qkv[:, :, :nh + nkv]
        if self.cos is not None:
            qk = torch.addcmul(qk * self.cos, torch.roll(qk, hd // 2, dims=-1), self.sin)
        q, k, v = qk[:, :, :nh], qk[:, :, nh:nh + nkv], qkv[:, :, nh + nkv:]
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def attn_block(self, x):
        import torch.nn.functional as F
        b, s = x.shape[0], x.shape[1]
        o = self.attention(*self.qkv_heads(x))
        o = o.transpose(1, 2).reshape(b, s, self.nh * self.hd)
        return x + F.linear(o, self.p["wo"], self.p.get("bo"))

    def mlp_block(self, x):
        import torch.nn.functional as F
        y = self._norm(x, "ln2_w", "ln2_b")
        u = F.linear(y, self.p["w1"], self.p.get("b1"))
        if self.gpt:
            u = F.gelu(u, approximate="tanh")
        else:
            gate, up = u.chunk(2, dim=-1)
            u = F.silu(gate) * up
        return x + F.linear(u, self.p["w2"], self.p.get("b2"))

    def forward(self, x):
        return self.mlp_block(self.attn_block(x))


def backend_names() -> dict:
    """SDPBackend members by their integer value (``torch._fused_sdp_choice``'s answer)."""
    from torch.nn.attention import SDPBackend
    out = {}
    for name in ("MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION"):
        member = getattr(SDPBackend, name, None)
        if member is not None:
            out[int(member.value) if hasattr(member, "value") else int(member)] = name
    return out


def default_backend(q, k, v, gqa: bool) -> str:
    import torch
    try:
        kw = {"enable_gqa": True} if gqa else {}
        choice = torch._fused_sdp_choice(q, k, v, is_causal=True, **kw)
        return backend_names().get(int(choice), f"backend{int(choice)}").lower()
    except Exception as exc:  # private API: record that we could not tell
        return f"unknown ({type(exc).__name__})"


# ------------------------------------------------------------------------- timing

def time_loop(fn, before, warmup: int, iters: int, cuda: bool) -> list[float]:
    """Per-call microseconds of ``fn`` (``before`` runs outside the timed span)."""
    for _ in range(warmup):
        before()
        fn()
    timer = Timer(cuda, iters)
    timer.sync()
    for i in range(iters):
        before()
        timer.start(i)
        fn()
        timer.stop(i)
    return timer.times_us()


def time_fwd_bwd(f, x, dy, params, warmup: int, iters: int, cuda: bool) -> tuple[list, list]:
    """(forward times, forward+backward times) of ``f`` on ``x``."""
    def clear():
        x.grad = None
        for p in params:
            p.grad = None

    def fwd():
        f(x)

    def fwdbwd():
        f(x).backward(dy)
    a = time_loop(fwd, clear, warmup, iters, cuda)
    b = time_loop(fwdbwd, clear, warmup, iters, cuda)
    clear()
    return a, b


def check_layer(device, dtype) -> float:
    """The bf16 layer against the same weights in float32 (both styles, GQA, rotary):
    the largest relative error of outputs and input gradients; also checks causality."""
    import torch
    worst = 0.0
    for style, kv in (("gpt", 4), ("llama", 2)):
        case = {"name": "check", "hidden": 256, "ffn": 512, "heads": 4, "kv": kv, "tp": 1,
                "style": style, "preset": ""}
        lo = DenseLayer(case, 64, 2, device, dtype, seed=1)
        hi = DenseLayer(case, 64, 2, device, torch.float32, seed=1)
        for name in lo.p:
            hi.p[name] = lo.p[name].detach().float().requires_grad_()
        x = torch.randn(2, 64, 256, device=device)
        xl, xh = x.to(dtype).requires_grad_(), x.clone().requires_grad_()
        yl, yh = lo.forward(xl), hi.forward(xh)
        dy = torch.randn_like(yh)
        yl.backward(dy.to(dtype))
        yh.backward(dy)
        for a, b in ((yl, yh), (xl.grad, xh.grad), (lo.p["wqkv"].grad, hi.p["wqkv"].grad)):
            err = ((a.float() - b).norm() / b.norm()).item()
            worst = max(worst, err)
        # causality: changing the last token leaves the earlier outputs alone
        x2 = xh.detach().clone()
        x2[:, -1] += 1.0
        with torch.no_grad():
            y2 = hi.forward(x2)
            assert torch.allclose(y2[:, :-1], yh.detach()[:, :-1], atol=1e-5), \
                "attention is not causal"
    assert worst < 5e-2, f"bf16 layer differs from float32 by {worst:.2e}"
    return worst


def measure_case(case: dict, seq: int, mbs: int, device, dtype, warmup: int, iters: int,
                 cuda: bool) -> tuple[dict, list[dict]]:
    import torch
    from torch.nn.attention import SDPBackend
    layer = DenseLayer(case, seq, mbs, device, dtype)
    params = layer.params()
    h = case["hidden"]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    x = torch.randn(mbs, seq, h, device=device, dtype=dtype).requires_grad_()
    dy = torch.randn(mbs, seq, h, device=device, dtype=dtype)
    with torch.no_grad():
        q, k, v = layer.qkv_heads(x)
    backend = default_backend(q, k, v, layer.gqa)
    fwd, fb = time_fwd_bwd(layer.forward, x, dy, params, warmup, iters, cuda)
    afwd, afb = time_fwd_bwd(layer.attn_block, x, dy, params, warmup, iters, cuda)
    mfwd, mfb = time_fwd_bwd(layer.mlp_block, x, dy, params, warmup, iters, cuda)
    max_mem = torch.cuda.max_memory_allocated() / 2 ** 20 if cuda else None
    def med(xs):
        return quantile(xs, 0.5)
    flops = layer_flops(case, seq, mbs)
    row = {"case": case["name"], "hidden": h, "ffn": case["ffn"], "heads": case["heads"],
           "kv_groups": case["kv"], "seq": seq, "mbs": mbs, "tp": case["tp"],
           "fwd_us": _r3(med(fwd)), "bwd_us": _r3(med(fb) - med(fwd)),
           "fwd_p10_us": _r3(quantile(fwd, 0.1)), "fwd_p90_us": _r3(quantile(fwd, 0.9)),
           "fwdbwd_us": _r3(med(fb)), "fwdbwd_p10_us": _r3(quantile(fb, 0.1)),
           "fwdbwd_p90_us": _r3(quantile(fb, 0.9)),
           "attn_fwd_us": _r3(med(afwd)), "attn_bwd_us": _r3(med(afb) - med(afwd)),
           "mlp_fwd_us": _r3(med(mfwd)), "mlp_bwd_us": _r3(med(mfb) - med(mfwd)),
           "attn_backend": backend, "preset": case["preset"], "style": case["style"],
           "head_dim": layer.hd, "heads_local": layer.nh, "kv_local": layer.nkv,
           "ffn_local": layer.F, "flops_fwd": f"{flops:.6g}",
           "tflops_fwd": _r3(flops / med(fwd) / 1e6),
           "tflops_fwdbwd": _r3(3 * flops / med(fb) / 1e6),
           "max_mem_mib": _r3(max_mem), "dtype": str(dtype).replace("torch.", ""),
           "device": str(device), "iters": iters, "warmup": warmup,
           "method": "torch (F.linear, F.layer_norm, F.scaled_dot_product_attention); "
                     "CUDA events per call; median"}
    # the attention kernel alone, with each SDPA backend that takes these shapes
    attn_rows = []
    nh, nkv = layer.nh, layer.nkv
    # q, k, v as strided views of one [b, s, heads, hd] tensor, as the QKV GEMM leaves them
    base = torch.randn(mbs, seq, nh + 2 * nkv, layer.hd, device=device,
                       dtype=dtype).requires_grad_()

    def core(_x, layer=layer, base=base):   # bound: both are deleted after the loop below
        return layer.attention(base[:, :, :nh].transpose(1, 2),
                               base[:, :, nh:nh + nkv].transpose(1, 2),
                               base[:, :, nh + nkv:].transpose(1, 2))
    do = torch.randn(mbs, nh, seq, layer.hd, device=device, dtype=dtype)
    af = 4.0 * mbs * seq * seq * layer.nh * layer.hd * 0.5
    todo = [("default", None)]
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
        if hasattr(SDPBackend, name):
            todo.append((name.lower(), getattr(SDPBackend, name)))
    for name, be in todo:
        layer.backend = be
        arow = {"case": case["name"], "seq": seq, "mbs": mbs, "heads_local": layer.nh,
                "kv_local": layer.nkv, "head_dim": layer.hd, "backend": name,
                "default": 1 if name in ("default", backend) else 0,
                "flops_fwd": f"{af:.6g}"}
        try:
            a, b = time_fwd_bwd(core, base, do, [], max(2, warmup // 2), iters, cuda)
        except Exception as exc:  # a backend that refuses these shapes
            arow["status"] = f"refused: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            attn_rows.append(arow)
            if cuda:
                torch.cuda.synchronize()
            continue
        fa, fba = med(a), med(b)
        arow.update(fwd_us=_r3(fa), bwd_us=_r3(fba - fa), fwd_p10_us=_r3(quantile(a, 0.1)),
                    fwd_p90_us=_r3(quantile(a, 0.9)), fwdbwd_us=_r3(fba),
                    tflops_fwd=_r3(af / fa / 1e6),
                    tflops_bwd=_r3(2.5 * af / (fba - fa) / 1e6) if fba > fa else "",
                    status="ok")
        attn_rows.append(arow)
        if name == "default":
            row["core_fwd_us"], row["core_bwd_us"] = arow["fwd_us"], arow["bwd_us"]
    layer.backend = None
    del layer, x, dy, q, k, v, base, do
    if cuda:
        torch.cuda.empty_cache()
    return row, attn_rows


def write_env(out: str, cfg: dict) -> None:
    import torch
    lines = [f"date {datetime.datetime.now(datetime.timezone.utc).isoformat()}",
             f"python {platform.python_version()}", f"torch {torch.__version__}",
             f"device {cfg['device']}"]
    if cfg["device"] == "cuda":
        lines.append(f"cuda {torch.version.cuda}")
        try:
            lines.append(f"cudnn {torch.backends.cudnn.version()}")
        except Exception:  # pragma: no cover - depends on the build
            pass
        p = torch.cuda.get_device_properties(0)
        lines.append(f"gpu0 {p.name} {p.total_memory >> 20} MiB sm{p.major}{p.minor} "
                     f"{p.multi_processor_count} SMs")
        cuda = torch.backends.cuda
        lines.append(f"sdp enabled: flash {cuda.flash_sdp_enabled()}, "
                     f"mem_efficient {cuda.mem_efficient_sdp_enabled()}, "
                     f"cudnn {getattr(cuda, 'cudnn_sdp_enabled', lambda: 'n/a')()}, "
                     f"math {cuda.math_sdp_enabled()}")
    lines.append(f"config {cfg}")
    with open(os.path.join(out, "layers_env.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    for line in lines[:-1]:
        log(line)


def run_layers(cfg: dict) -> int:
    """Measure every (case, seq, mbs) on one device; writes ``layers.csv``,
    ``layers_attention.csv`` and ``layers_env.txt`` into ``cfg['out']``."""
    import torch
    cuda = cfg["device"] == "cuda"
    if cuda and not torch.cuda.is_available():
        print("collsim measure: error: no CUDA GPU visible (use --device cpu to test)")
        return 2
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(0)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[cfg["dtype"]]
    out = cfg["out"]
    os.makedirs(out, exist_ok=True)
    t0 = time.monotonic()
    write_env(out, cfg)
    err = check_layer(device, dtype)
    log(f"check: layer in {cfg['dtype']} against float32: relative error {err:.1e}; causal")
    if cuda:  # bring the clocks up before the first timed case
        from .runstart import warm_clocks
        warm_clocks(device, dtype, gemms_per_sync=20)
    rows, arows = [], []
    budget = cfg.get("time_budget_s") or 0
    for case in cfg["layer_cases"]:
        for seq in cfg["layer_seqs"]:
            for mbs in cfg["layer_mbs"]:
                if budget and time.monotonic() - t0 > budget:
                    log(f"time budget spent: skipping {case['name']} seq {seq} mbs {mbs}")
                    continue
                row, ar = measure_case(case, seq, mbs, device, dtype, cfg["warmup"],
                                       cfg["iters"], cuda)
                rows.append(row)
                arows.extend(ar)
                log(f"layer {case['name']} seq {seq} mbs {mbs}: fwd {row['fwd_us']} us, "
                     f"bwd {row['bwd_us']} us ({row['tflops_fwdbwd']} TFLOP/s fwd+bwd); "
                     f"attention {row['attn_backend']} {row.get('core_fwd_us')}/"
                     f"{row.get('core_bwd_us')} us")
                write_csv(os.path.join(out, "layers.csv"), LAYER_COLUMNS, rows)
                write_csv(os.path.join(out, "layers_attention.csv"), ATTN_COLUMNS, arows)
    log(f"layers done at {time.monotonic() - t0:.0f} s")
    return 0


