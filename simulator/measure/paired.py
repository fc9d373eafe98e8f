"""One GPU, one call: the host floor and the host-bound training steps measured together.

    python -m simulator.measure.paired --out DIR                  # a GPU (cuda:0)
    python -m simulator.measure.paired --out DIR --device cpu --tiny   # a dry run

Host (CPU) times on a cloud VM move by tens of percent between machines and between runs a
minute apart, so the host floor that prices the host-bound steps is measured on the same
machine, in the same process, in ``--rounds`` rounds interleaved with the steps: round r
measures the host floor (``hostfloor`` rows of ``kernels.csv``, ``note`` ``round r``), then
the training steps (``train.csv``, column ``round``). The rounds' spread is what the
measurement itself allows.

* **host floor** (:func:`host_floor`): GPTs of the real models' widths (hidden 768-2048, their
  head counts, the real vocabulary and positions) and of hidden 64, at ``--hostfloor-seq``
  tokens (64), so that every kernel takes a few microseconds and the loop's wall time per
  call is the host's: the forward, the forward + backward + fp32 accumulation, the same with
  full recompute, the optimizer step, at 1-12 layers. ``dev_us`` is the GPU's time per call
  from CUDA events around the loop (to show it is below the host's).
* **steps**: :func:`simulator.measure.train.run_case` on the host-bound cases.
* ``fp8``: FP8 GEMMs (``torch._scaled_mm``, e4m3 x e4m3 forward, e5m2 x e4m3 backward, bf16
  out) for the GPT shapes in the three layouts, and the casts to FP8 (``gemm_fp8`` and
  ``eltwise`` ``cast_fp8`` / ``transpose_fp8`` rows).
* ``unfused``: the unfused causal attention of :func:`unfused_attention` (scores materialised:
  ``q/sqrt(d) @ k^T``, masked fill, softmax, ``@ v``), forward and forward + backward
  (``attention`` ``unfused_mask`` rows); the training steps with it (``variant`` unfused).

Torch is imported inside functions only.
"""
# ruff: noqa: B023 - every closure made in a loop here is called before the loop moves on
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any

from . import kernels, train
from .gpt import GPTModel, MegatronLikeOptimizer, padded_vocab
from .runstart import finish, parser, start_run
from .runstart import log as _log

# host-bound training cases (model, seq, mbs, ga, recompute), as train.DEFAULT_CASES names them
PAIRED_CASES = [
    ("gpt-125m", 1024, 1, 1, False), ("gpt-125m", 1024, 4, 1, False),
    ("gpt-125m", 1024, 4, 1, True), ("gpt-125m", 1024, 4, 4, False),
    ("gpt-125m", 1024, 16, 1, False),
    ("gpt-350m", 1024, 1, 1, False), ("gpt-350m", 1024, 4, 1, False),
    ("gpt-350m", 2048, 4, 1, True),
    ("gpt-760m", 2048, 1, 1, False), ("gpt-1.3b", 2048, 1, 1, False),
]
# (hidden, heads) of the host floor: the models' widths and the tiny one of earlier runs
FLOOR_WIDTHS = [(64, 2), (768, 12), (1024, 16), (1536, 16), (2048, 16)]
VARIANT_CASES = [("gpt-125m", 1024, 4, 1, False), ("gpt-350m", 1024, 4, 1, False),
                 ("gpt-760m", 2048, 1, 1, False), ("gpt-1.3b", 2048, 1, 1, False),
                 ("gpt-1.3b", 2048, 4, 1, False), ("gpt-2.7b", 2048, 2, 1, False)]
TRAIN_EXTRA = ["round", "variant"]


# --------------------------------------------------------------------- model variants

def unfused_attention(q, k, v, mask):
    """Causal attention with the scores materialised (q, k, v: [batch, heads, seq, dim];
    mask: [seq, seq] bool, True above the diagonal)."""
    import torch
    sc = torch.matmul(q * (q.shape[-1] ** -0.5), k.transpose(-1, -2))
    return torch.matmul(torch.softmax(sc.masked_fill(mask, float("-inf")), -1), v)


def _fp8_function():
    import torch

    class FP8Linear(torch.autograd.Function):
        """``x W^T + b`` with FP8 operands (unit scales): e4m3 activations and weights,
        e5m2 output gradients; the backward's operands transposed into the layouts
        ``_scaled_mm`` takes (first row-major, second column-major)."""

        @staticmethod
        def forward(ctx, x, w, b):
            e4 = torch.float8_e4m3fn
            one = torch.ones((), device=x.device, dtype=torch.float32)
            x2 = x.reshape(-1, x.shape[-1])
            xq, wq = x2.to(e4), w.to(e4)
            y = torch._scaled_mm(xq, wq.t(), scale_a=one, scale_b=one, bias=b,
                                 out_dtype=x.dtype)
            ctx.save_for_backward(xq, wq)
            ctx.shape = x.shape
            return y.view(*x.shape[:-1], w.shape[0])

        @staticmethod
        def backward(ctx, dy):
            xq, wq = ctx.saved_tensors
            one = torch.ones((), device=dy.device, dtype=torch.float32)
            g = dy.reshape(-1, dy.shape[-1])
            gq = g.to(torch.float8_e5m2)
            dx = torch._scaled_mm(gq, wq.t().contiguous().t(), scale_a=one, scale_b=one,
                                  out_dtype=dy.dtype)
            dw = torch._scaled_mm(gq.t().contiguous(), xq.t().contiguous().t(), scale_a=one,
                                  scale_b=one, out_dtype=dy.dtype)
            return dx.view(ctx.shape), dw, g.sum(0)
    return FP8Linear


class VariantGPT(GPTModel):
    """:class:`~simulator.measure.gpt.GPTModel` with the unfused attention
    (``attention="unfused"``) or FP8 GEMMs in the layers (``fp8=True``; the output layer
    stays bf16, as Transformer Engine leaves it)."""

    attention = "sdpa"
    fp8 = False
    _mask: Any = None     # the unfused path's causal mask, made for the sequence length

    def _linear(self, x, w, b):
        import torch.nn.functional as F
        if self.fp8:
            return self._fp8.apply(x, self.p[w], self.p[b])
        return F.linear(x, self.p[w], self.p[b])

    def layer(self, i: int, x):
        import torch
        import torch.nn.functional as F
        if self.attention == "sdpa" and not self.fp8:
            return super().layer(i, x)
        if self.fp8 and not hasattr(self, "_fp8"):
            self._fp8 = _fp8_function()
        b, s = x.shape[0], x.shape[1]
        nh, hd = self.heads, self.hd
        y = self._ln(x, f"l{i}.ln1_w", f"l{i}.ln1_b")
        qkv = self._linear(y, f"l{i}.wqkv", f"l{i}.bqkv").view(b, s, 3, nh, hd)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
        if self.attention == "unfused":
            if self._mask is None or self._mask.shape[0] != s:
                self._mask = torch.ones(s, s, device=x.device, dtype=torch.bool).triu(1)
            o = unfused_attention(q, k, v, self._mask)
        else:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(b, s, nh * hd)
        x = x + self._drop(self._linear(o, f"l{i}.wo", f"l{i}.bo"))
        y = self._ln(x, f"l{i}.ln2_w", f"l{i}.ln2_b")
        u = F.gelu(self._linear(y, f"l{i}.w1", f"l{i}.b1"), approximate="tanh")
        return x + self._drop(self._linear(u, f"l{i}.w2", f"l{i}.b2"))


@contextlib.contextmanager
def _variant(attention: str = "sdpa", fp8: bool = False):
    """train.run_case builds ``train.GPTModel``: point it at a variant for the block."""
    cls = type("GPT", (VariantGPT,), {"attention": attention, "fp8": fp8})
    old = train.GPTModel
    vars(train)["GPTModel"] = cls
    try:
        yield
    finally:
        vars(train)["GPTModel"] = old


# ------------------------------------------------------------------------- host floor

def host_floor(sw: kernels.Sweep, widths, layer_counts, seq: int, reps: int, round_no: int,
               vocab: int, max_position: int, variant: str = "default"):
    """Host time per call (the loop's wall time; GPU kernels of microseconds) of the
    forward, forward + backward + accumulation, the same with full recompute and the
    optimizer step of GPTs of ``layer_counts`` layers at each (hidden, heads) width."""
    import torch
    dev, dt, cuda = sw.device, sw.dtype, sw.cuda
    for h, heads in widths:
        v = 512 if h <= 64 else vocab
        mp = 64 if h <= 64 else max_position
        s = 32 if h <= 64 else seq
        for L in layer_counts:
            if sw.over():
                sw.log(f"hostfloor: budget spent at hidden {h}, {L} layers")
                return
            cls = GPTModel if variant == "default" else type(
                "GPT", (VariantGPT,), {"attention": "unfused" if variant == "unfused"
                                       else "sdpa", "fp8": variant == "fp8"})
            model = cls(L, h, 4 * h, heads, v, mp, dev, dt, seed=3)
            opt = MegatronLikeOptimizer(model)
            ids = torch.randint(0, v, (1, s), device=dev)
            tgt = torch.randint(0, v, (1, s), device=dev)

            # bound: model and opt are deleted after this width's loop, to free the GPU
            def fwd(model=model):
                model.loss(ids, tgt)

            def fb(model=model, opt=opt):
                model.loss(ids, tgt).backward()
                opt.accumulate()

            def step(opt=opt):
                with torch.no_grad():
                    opt.step()
            base = {"group": "hostfloor", "phase": "fwd", "rows": L, "cols": h, "seq": s,
                    "heads": heads, "numel": model.numel, "m": v, "tensors": len(model.names),
                    "reps": reps, "status": "host_wall",
                    "note": f"round {round_no}" + ("" if variant == "default"
                                                   else f"; variant {variant}")}
            for op, fn, rc in (("forward", fwd, False), ("fwdbwd_accumulate", fb, False),
                               ("fwdbwd_accumulate_recompute", fb, True),
                               ("optimizer_step", step, False)):
                model.recompute = rc
                for _ in range(3):
                    fn()
                if cuda:
                    torch.cuda.synchronize()
                    e0, e1 = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                    e0.record()
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn()
                if cuda:
                    e1.record()
                    torch.cuda.synchronize()
                wall = (time.perf_counter() - t0) * 1e6 / reps
                d = e0.elapsed_time(e1) * 1e3 / reps if cuda else wall
                sw.rows.append({**base, "op": op, "dev_us": kernels._r(d),
                                "host_us": kernels._r(wall)})
            model.recompute = False
            del model, opt
    if cuda:
        torch.cuda.empty_cache()
    sw.flush()


# ------------------------------------------------------------------------- kernels

def run_fp8_gemm(sw: kernels.Sweep, shapes):
    """FP8 GEMMs as an FP8 linear layer issues them (see :func:`_fp8_function`): forward
    ``x W^T`` (e4m3 x e4m3), dgrad ``dy W`` and wgrad ``dy^T x`` (e5m2 x e4m3), bf16 out;
    and the casts of a bf16 tensor to FP8 and of an FP8 tensor's transpose."""
    import torch
    dev = sw.device
    e4, e5 = torch.float8_e4m3fn, torch.float8_e5m2
    one = torch.ones((), device=dev, dtype=torch.float32)
    for (m, n, k) in shapes:
        if sw.over():
            sw.log(f"gemm_fp8: time budget spent at {m}x{n}x{k}")
            break
        try:
            x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
            w = torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02
            dy = torch.randn(m, n, device=dev, dtype=torch.bfloat16)
            xq, wq, gq = x.to(e4), w.to(e4), dy.to(e5)
            wq_t = wq.t().contiguous().t()       # (n, k) column-major
            gq_t = gq.t().contiguous()           # (n, m) row-major
            xq_t = xq.t().contiguous().t()       # (m, k) column-major
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        flops = 2.0 * m * n * k
        est = flops / 1.2e9 + 10
        base = {"group": "gemm_fp8", "op": "scaled_mm", "m": m, "n": n, "k": k,
                "flops": f"{flops:.6g}", "bytes": m * k + n * k + 2 * m * n}
        sw.add({**base, "phase": "fwd", "dtype": "e4m3xe4m3"},
               lambda: torch._scaled_mm(xq, wq.t(), scale_a=one, scale_b=one,
                                        out_dtype=torch.bfloat16), est)
        sw.add({**base, "phase": "dgrad", "dtype": "e5m2xe4m3"},
               lambda: torch._scaled_mm(gq, wq_t, scale_a=one, scale_b=one,
                                        out_dtype=torch.bfloat16), est)
        sw.add({**base, "phase": "wgrad", "dtype": "e5m2xe4m3"},
               lambda: torch._scaled_mm(gq_t, xq_t, scale_a=one, scale_b=one,
                                        out_dtype=torch.bfloat16), est)
        x = w = dy = xq = wq = gq = wq_t = gq_t = xq_t = None
    if sw.cuda:
        torch.cuda.empty_cache()
    sw.flush()


def run_fp8_casts(sw: kernels.Sweep, numels, cols=(1024, 4096)):
    import torch
    dev = sw.device
    for c in cols:
        for numel in numels:
            if sw.over():
                break
            rows = max(1, numel // c)
            n = rows * c
            x = torch.randn(rows, c, device=dev, dtype=torch.bfloat16)
            xq = x.to(torch.float8_e4m3fn)
            base = {"group": "eltwise", "phase": "fwd", "rows": rows, "cols": c, "numel": n}
            sw.add({**base, "op": "cast_fp8", "bytes": 3 * n, "dtype": "bf16->e4m3"},
                   lambda: x.to(torch.float8_e4m3fn), 3 * n / 3.5e6 + 5)
            sw.add({**base, "op": "transpose_fp8", "bytes": 2 * n, "dtype": "e4m3"},
                   lambda: xq.t().contiguous(), 2 * n / 3.5e6 + 5)
            x = xq = None
    sw.flush()


def run_unfused_attention(sw: kernels.Sweep, cases):
    """cases: (batch, seq, heads, head_dim): :func:`unfused_attention` forward and
    forward + backward (``attention`` ``unfused_mask`` rows; flops: the causal half, as the
    flash rows count them)."""
    import torch
    dev, dt = sw.device, sw.dtype
    for (b, s, nh, hd) in cases:
        if sw.over():
            sw.log("unfused attention: time budget spent")
            break
        try:
            qkv = torch.randn(b, s, 3, nh, hd, device=dev, dtype=dt, requires_grad=True)
            do = torch.randn(b, nh, s, hd, device=dev, dtype=dt)
            mask = torch.ones(s, s, device=dev, dtype=torch.bool).triu(1)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue

        def f():
            q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
            return unfused_attention(q, k, v, mask)

        def clear():
            qkv.grad = None
        flops = 4.0 * b * s * s * nh * hd * 0.5
        base = {"group": "attention", "op": "unfused_mask", "batch": b, "seq": s, "heads": nh,
                "head_dim": hd, "flops": f"{flops:.6g}", "numel": b * nh * s * s}
        est = 2 * flops / 3e8 + b * nh * s * s * 10 / 3.5e6 + 20
        try:
            sw.add({**base, "phase": "fwd"}, f, est, before=clear)
            sw.add({**base, "phase": "fwdbwd"}, lambda: f().backward(do), 3 * est,
                   before=clear)
            # the kernels' own durations (CUPTI): the spin timer reads host gaps where the
            # host falls behind (status host_bound)
            for phase, fn in (("fwd", f), ("fwdbwd", lambda: f().backward(do))):
                d, c, w = kernels._profiled_us(fn, 3, sw.cuda, before=clear)
                sw.rows.append({**base, "group": "attention_prof", "phase": phase,
                                "dev_us": kernels._r(d), "host_us": kernels._r(w),
                                "tensors": c, "reps": 3, "status": "profiler",
                                "note": "dev_us: sum of kernel durations per call; host_us: "
                                        "wall per call; tensors: kernels per call"})
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
        qkv = do = mask = None
    if sw.cuda:
        torch.cuda.empty_cache()
    sw.flush()


# ------------------------------------------------------------------------- driver

def _train(cases, device, dtype, cuda, steps, warm, vocab, max_position, round_no, variant,
           rows, path):
    attention = "unfused" if variant == "unfused" else "sdpa"
    with _variant(attention, fp8=variant == "fp8"):
        for spec in cases:
            try:
                r = train.run_case(spec, device, dtype, cuda, steps, warm, vocab=vocab,
                                   max_position=max_position, log=_log)
            except Exception as exc:  # noqa: BLE001 - keep the other cases
                r = {"case": train.case_name(*spec), "status": f"error: {exc}"[:120]}
            r["round"], r["variant"] = round_no, variant
            if variant != "default":
                r["case"] = f"{r['case']}-{variant}"
            rows.append(r)
            _log(f"train r{round_no} {r['case']}: {r.get('status')} step {r.get('step_ms')} "
                 f"ms (p10 {r.get('step_p10_ms')}, p90 {r.get('step_p90_ms')}; fwd+bwd "
                 f"{r.get('fwdbwd_ms')}, host enqueue {r.get('host_fwdbwd_ms')})")
            train.write_csv(path, train.COLUMNS + TRAIN_EXTRA, rows)


def main(argv=None) -> int:
    ap = parser("paired", __doc__)
    ap.add_argument("--phases", default="paired,unfused,fp8,variants")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variant-rounds", type=int, default=1)
    ap.add_argument("--hostfloor-variants", default="default",
                    help="host floor of these models: default, fp8, unfused (comma list)")
    ap.add_argument("--paired-variants", default="",
                    help="train these variants (fp8, unfused) in every paired round too")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per case and round")
    ap.add_argument("--hostfloor-layers", default="1,2,4,8,12")
    ap.add_argument("--hostfloor-widths", default="",
                    help="hidden:heads,... of the host floor (default: 64:2 and the models')")
    ap.add_argument("--hostfloor-seq", type=int, default=64)
    ap.add_argument("--hostfloor-reps", type=int, default=10)
    ap.add_argument("--budget-s", type=float, default=480.0)
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    device, dtype, cuda = start_run(args, "paired")
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    sw = kernels.Sweep(args.out, device, dtype, cuda, log=_log)
    left = lambda: args.budget_s - (time.monotonic() - t0)  # noqa: E731
    train_path = os.path.join(args.out, "train.csv")
    rows: list[dict] = []
    tiny = args.tiny
    vocab, maxpos = train.vocab_positions(tiny)
    widths: list[tuple[int, ...]] = [(64, 2), (128, 4)] if tiny else list(FLOOR_WIDTHS)
    if args.hostfloor_widths and not tiny:
        widths = [tuple(int(v) for v in w.split(":")) for w in args.hostfloor_widths.split(",")]
    layers = (1, 2) if tiny else tuple(int(x) for x in args.hostfloor_layers.split(","))
    cases = PAIRED_CASES
    vcases = VARIANT_CASES
    if tiny:
        train.MODELS.update({"tiny": (2, 64, 4), "tiny2": (3, 128, 4)})
        cases = [("tiny", 64, 1, 1, False), ("tiny2", 64, 2, 1, True)]
        vcases = [("tiny", 64, 2, 1, False)]

    def guarded(name, fn, seconds):
        if left() <= 5:
            _log(f"{name}: skipped, budget spent")
            return
        sw.phase(name, fn, max(5.0, min(seconds, left() - 5)))
        _log(f"{name}: done, {left():.0f} s left")

    if "paired" in phases:
        for rno in range(1, args.rounds + 1):
            for variant in args.hostfloor_variants.split(","):
                guarded(f"hostfloor {variant} round {rno}", lambda: host_floor(
                    sw, widths, layers, args.hostfloor_seq, args.hostfloor_reps, rno, vocab,
                    maxpos, variant), 60)
            _log(f"host floor, {max(layers)} layers, forward + backward + accumulation: "
                 + ", ".join(
                f"hidden {r['cols']} {r['host_us']:.0f} us" for r in sw.rows
                if r.get("group") == "hostfloor" and r["op"] == "fwdbwd_accumulate"
                and r["rows"] == max(layers) and r["note"].startswith(f"round {rno}")))
            guarded(f"train round {rno}", lambda: _train(
                cases, device, dtype, cuda, args.steps, 3, vocab, maxpos, rno, "default",
                rows, train_path), 120)
            for variant in args.paired_variants.split(",") if args.paired_variants else ():
                guarded(f"train {variant} round {rno}", lambda: _train(
                    vcases, device, dtype, cuda, args.steps, 3, vocab, maxpos, rno, variant,
                    rows, train_path), 60)
    models = [(h, 4 * h, padded_vocab(vocab)) for _, h, _ in train.MODELS.values()]
    if tiny:
        models = [(64, 256, padded_vocab(vocab))]
    if "unfused" in phases:
        att = [(1, 64, 2, 32), (2, 128, 4, 32)] if tiny else sorted(
            {(b, s, nh, h // nh) for _, h, nh in list(train.MODELS.values())[:5]
             for s in (1024, 2048) for b in (1, 4)})
        guarded("unfused attention", lambda: run_unfused_attention(sw, att), 40)
    if "fp8" in phases:
        shapes = kernels.gemm_shapes(models, [64, 256] if tiny else [1024, 2048, 4096, 8192],
                                     grid=not tiny)
        guarded("fp8 gemm", lambda: run_fp8_gemm(sw, shapes), 60)
        guarded("fp8 casts", lambda: run_fp8_casts(
            sw, [2 ** 14, 2 ** 18] if tiny else [2 ** 16, 2 ** 18, 2 ** 20, 2 ** 22, 2 ** 24,
                                                 2 ** 26]), 15)
    if "variants" in phases:
        for rno in range(1, args.variant_rounds + 1):
            for variant in ("unfused", "fp8"):
                guarded(f"train {variant}", lambda: _train(
                    vcases, device, dtype, cuda, args.steps, 3, vocab, maxpos, rno, variant,
                    rows, train_path), 60)
    return finish(t0, sw.failed)


if __name__ == "__main__":
    sys.exit(main())
