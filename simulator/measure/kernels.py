"""Kernel sweep on one GPU: what a GPT training step is made of, timed kernel by kernel.

Every point is timed twice in one pass:

* **device time** (``dev_us``): the GPU is first kept busy by a spin kernel
  (``torch.cuda._sleep``) long enough for the host to enqueue ``reps`` calls behind it; the
  calls then run back to back on the GPU, and two CUDA events around them give the device
  time per call without host gaps. ``status`` says ``host_bound`` when the host had not
  finished enqueueing before the spin ended (the device time then includes host gaps).
* **host time** (``host_us``): the host clock around the enqueueing of those ``reps`` calls,
  per call: what PyTorch's dispatcher, autograd and the CUDA launch cost on the CPU.

Groups (``group`` column): ``gemm`` (``F.linear`` forward ``x W^T``, and the backward GEMMs
as autograd issues them: ``dgrad = dy W``, ``wgrad = dy^T x``), ``eltwise`` (layer norm,
GELU, dropout, add, casts: forward, and forward+backward with autograd), ``attention``
(``F.scaled_dot_product_attention``, causal, forward and forward+backward), ``loss``
(fp32 upcast and cross entropy over the padded vocabulary), ``embedding``, ``optimizer``
(the Megatron-like step of :mod:`simulator.measure.gpt` over flat buffers of N parameters)
and ``host`` (tiny tensors: the dispatch floor of one op).

Torch is imported inside functions only.
"""
from __future__ import annotations

import csv
import os
import time
import traceback

from .runstart import free_gpu

COLUMNS = ["group", "op", "phase", "m", "n", "k", "rows", "cols", "batch", "seq", "heads",
           "head_dim", "numel", "tensors", "dtype", "dev_us", "host_us", "reps", "bytes",
           "flops", "status", "note"]


class Timer:
    """Device and host time per call of a function (see the module docstring)."""

    def __init__(self, cuda: bool, clock_hz: float = 1.98e9, max_spin_us: float = 200_000):
        self.cuda = cuda
        self.clock_hz = clock_hz
        self.max_spin_us = max_spin_us

    def __call__(self, fn, reps: int, warmup: int = 2, before=None):
        """(dev_us, host_us, status) per call."""
        import torch
        for _ in range(warmup):
            if before:
                before()
            fn()
        if not self.cuda:
            t0 = time.perf_counter()
            for _ in range(reps):
                if before:
                    before()
                fn()
            dt = (time.perf_counter() - t0) * 1e6 / reps
            return dt, dt, "cpu"
        torch.cuda.synchronize()
        # host estimate from one untimed call (GPU idle first: the host pays its own time)
        t0 = time.perf_counter()
        if before:
            before()
        fn()
        host_est = (time.perf_counter() - t0) * 1e6
        torch.cuda.synchronize()
        spin_us = min(self.max_spin_us, 3.0 * host_est * reps + 500.0)
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        spin_end = torch.cuda.Event(enable_timing=True)
        t_spin = torch.cuda.Event(enable_timing=True)
        t_spin.record()
        torch.cuda._sleep(int(spin_us * self.clock_hz / 1e6))
        spin_end.record()
        t0 = time.perf_counter()
        start.record()
        for _ in range(reps):
            if before:
                before()
            fn()
        stop.record()
        host_us = (time.perf_counter() - t0) * 1e6 / reps
        torch.cuda.synchronize()
        dev_us = start.elapsed_time(stop) * 1e3 / reps
        spun_us = t_spin.elapsed_time(spin_end) * 1e3
        status = "ok" if host_us * reps < 0.9 * spun_us else "host_bound"
        return dev_us, host_us, status


def _reps_for(est_us: float, budget_us: float = 40_000, lo: int = 3, hi: int = 100) -> int:
    return int(max(lo, min(hi, budget_us / max(est_us, 1.0))))


class Sweep:
    def __init__(self, out: str, device, dtype, cuda: bool, log=print, budget_s: float = 0):
        self.out, self.device, self.dtype, self.cuda = out, device, dtype, cuda
        self.timer = Timer(cuda)
        self.rows: list[dict] = []
        self.log = log
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.path = os.path.join(out, "kernels.csv")
        self.failed: list[str] = []   # the phases that raised (runstart.finish: exit 1)

    def over(self) -> bool:
        return bool(self.budget_s) and time.monotonic() - self.t0 > self.budget_s

    def add(self, fields: dict, fn, est_us: float, before=None, warmup: int = 2):
        import torch
        reps = _reps_for(est_us)
        try:
            dev, host, status = self.timer(fn, reps, warmup=warmup, before=before)
        except torch.cuda.OutOfMemoryError:
            dev = host = None
            status = "oom"
            torch.cuda.empty_cache()
        except RuntimeError as exc:
            dev = host = None
            status = f"error: {str(exc).splitlines()[0][:100]}"
        row = dict(fields)
        row.update(dev_us=_r(dev), host_us=_r(host), reps=reps, status=status,
                   dtype=row.get("dtype", str(self.dtype).replace("torch.", "")))
        self.rows.append(row)
        return dev

    def phase(self, name: str, fn, budget_s: float) -> None:
        """Run ``fn``, one phase of a script, with ``budget_s`` seconds of its own (``over``),
        and flush the rows. A phase that fails is logged, named in ``failed`` and the GPU
        synchronised and its cache emptied, so that the script's other phases still run."""
        self.t0 = time.monotonic()
        self.budget_s = budget_s
        self.log(f"{name}: start ({budget_s:.0f} s)")
        try:
            fn()
        except Exception:  # noqa: BLE001 - keep the other phases; the run ends nonzero
            self.log(f"{name}: failed\n{traceback.format_exc()}")
            self.failed.append(name)
            free_gpu(self.cuda)
        self.flush()

    def flush(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)


def _r(x):
    return "" if x is None else round(x, 3)


# ------------------------------------------------------------------------- groups

def gemm_shapes(models, tokens, grid: bool = True) -> list[tuple[int, int, int]]:
    """(m, n, k) forward GEMMs of the GPT layers and output layer at the given token counts,
    plus a coarse grid."""
    shapes = set()
    for h, ffn, vocab in models:
        for T in tokens:
            shapes.update({(T, 3 * h, h), (T, h, h), (T, ffn, h), (T, h, ffn), (T, vocab, h)})
    for m in (512, 2048, 8192, 32768) if grid else ():
        for n in (1024, 4096, 16384):
            for k in (1024, 4096):
                shapes.add((m, n, k))
    return sorted(shapes)


def run_gemm(sw: Sweep, shapes):
    import torch
    import torch.nn.functional as F
    dt, dev = sw.dtype, sw.device
    for (m, n, k) in shapes:
        if sw.over():
            sw.log(f"gemm: time budget spent at {m}x{n}x{k}")
            break
        flops = 2.0 * m * n * k
        est = flops / 6e8 + 10  # us at ~600 TFLOP/s
        try:
            x = torch.randn(m, k, device=dev, dtype=dt)
            w = torch.randn(n, k, device=dev, dtype=dt)
            dy = torch.randn(m, n, device=dev, dtype=dt)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        base = {"group": "gemm", "m": m, "n": n, "k": k, "flops": f"{flops:.6g}"}
        sw.add({**base, "op": "linear", "phase": "fwd",
                "bytes": 2 * (m * k + n * k + m * n)}, lambda: F.linear(x, w), est)
        sw.add({**base, "op": "linear", "phase": "dgrad",
                "bytes": 2 * (m * n + n * k + m * k)}, lambda: dy @ w, est)
        sw.add({**base, "op": "linear", "phase": "wgrad",
                "bytes": 2 * (m * n + m * k + n * k)}, lambda: dy.t() @ x, est)
        del x, w, dy
    torch.cuda.empty_cache() if sw.cuda else None
    sw.flush()


def run_eltwise(sw: Sweep, numels, hiddens=(1024, 4096)):
    import torch
    import torch.nn.functional as F
    dev, dt = sw.device, sw.dtype
    bw = 3.5e6  # bytes per us, for repetition estimates
    for h in hiddens:
        for numel in numels:
            if sw.over():
                sw.log("eltwise: time budget spent")
                sw.flush()
                return
            rows = max(1, numel // h)
            n = rows * h
            x = torch.randn(rows, h, device=dev, dtype=dt, requires_grad=True)
            dy = torch.randn(rows, h, device=dev, dtype=dt)
            w = torch.ones(h, device=dev, dtype=dt, requires_grad=True)
            b = torch.zeros(h, device=dev, dtype=dt, requires_grad=True)
            y2 = torch.randn(rows, h, device=dev, dtype=dt, requires_grad=True)
            base = {"group": "eltwise", "rows": rows, "cols": h, "numel": n}

            def clear():
                x.grad = w.grad = b.grad = y2.grad = None
            ops = {
                "layer_norm": (lambda: F.layer_norm(x, (h,), w, b, 1e-5), 4 * n, 8 * n),
                "gelu": (lambda: F.gelu(x, approximate="tanh"), 4 * n, 6 * n),
                "dropout": (lambda: F.dropout(x, 0.1, training=True), 5 * n, 5 * n),
                "add": (lambda: x + y2, 6 * n, 4 * n),
                "float": (lambda: x.float(), 6 * n, 6 * n),
            }
            for op, (f, bf, bb) in ops.items():
                sw.add({**base, "op": op, "phase": "fwd", "bytes": bf}, f, bf / bw + 5,
                       before=clear)
                g = dy.float() if op == "float" else dy
                sw.add({**base, "op": op, "phase": "fwdbwd", "bytes": bf + bb},
                       lambda f=f, g=g: f().backward(g),
                       (bf + bb) / bw + 10, before=clear)
            # gradient accumulation into fp32 (Megatron's main_grad) and a plain fp32 copy
            g32 = torch.zeros(rows, h, device=dev, dtype=torch.float32)
            xd = x.detach()
            sw.add({**base, "op": "accum_fp32", "phase": "fwd", "bytes": 10 * n},
                   lambda: g32.add_(xd), 10 * n / bw + 5)
            sw.add({**base, "op": "zero_fp32", "phase": "fwd", "bytes": 4 * n},
                   lambda: g32.zero_(), 4 * n / bw + 5)
            sw.add({**base, "op": "bias_grad", "phase": "fwd", "bytes": 2 * n},
                   lambda: dy.sum(0), 2 * n / bw + 5)
            del x, dy, w, b, y2, g32, xd
    if sw.cuda:
        torch.cuda.empty_cache()
    sw.flush()


def run_attention(sw: Sweep, cases):
    """cases: (batch, seq, heads, head_dim)."""
    import torch
    import torch.nn.functional as F
    dev, dt = sw.device, sw.dtype
    for (b, s, nh, hd) in cases:
        if sw.over():
            sw.log("attention: time budget spent")
            break
        flops = 4.0 * b * s * s * nh * hd * 0.5
        try:
            qkv = torch.randn(b, s, 3, nh, hd, device=dev, dtype=dt, requires_grad=True)
            do = torch.randn(b, nh, s, hd, device=dev, dtype=dt)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue

        def f():
            q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def clear():
            qkv.grad = None
        base = {"group": "attention", "op": "sdpa_causal", "batch": b, "seq": s, "heads": nh,
                "head_dim": hd, "flops": f"{flops:.6g}"}
        est = flops / 3e8 + 20
        sw.add({**base, "phase": "fwd"}, f, est, before=clear)
        sw.add({**base, "phase": "fwdbwd"}, lambda: f().backward(do), 4 * est, before=clear)
        if s <= 2048 and b * nh * s * s <= 2 ** 31:  # the unfused path: scores materialised
            def g():
                q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
                sc = (q @ k.transpose(-1, -2)) * hd ** -0.5
                mask = torch.ones(s, s, device=dev, dtype=torch.bool).triu(1)
                return torch.softmax(sc.masked_fill(mask, float("-inf")), -1) @ v
            base2 = dict(base, op="unfused_causal")
            try:
                sw.add({**base2, "phase": "fwd"}, g, 3 * est, before=clear)
                sw.add({**base2, "phase": "fwdbwd"}, lambda: g().backward(do), 9 * est,
                       before=clear)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
        del qkv, do
    if sw.cuda:
        torch.cuda.empty_cache()
    sw.flush()


def run_loss(sw: Sweep, tokens, vocab: int, hiddens=(768, 2048, 4096)):
    import torch
    import torch.nn.functional as F
    dev, dt = sw.device, sw.dtype
    for T in tokens:
        if sw.over():
            sw.log("loss: time budget spent")
            break
        try:
            logits = torch.randn(T, vocab, device=dev, dtype=dt, requires_grad=True)
            tgt = torch.randint(0, vocab, (T,), device=dev)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue

        def clear():
            logits.grad = None
        f = lambda: F.cross_entropy(logits.float(), tgt)  # noqa: E731
        base = {"group": "loss", "op": "cross_entropy_fp32", "rows": T, "cols": vocab,
                "numel": T * vocab}
        est = T * vocab * 12 / 3.5e6 + 20
        sw.add({**base, "phase": "fwd", "bytes": 14 * T * vocab}, f, est, before=clear)
        sw.add({**base, "phase": "fwdbwd", "bytes": 30 * T * vocab},
               lambda: f().backward(), 3 * est, before=clear)
        del logits
        for h in hiddens:  # embedding lookup + position add, and its backward (index add)
            try:
                wte = torch.randn(vocab, h, device=dev, dtype=dt, requires_grad=True)
                wpe = torch.randn(T, h, device=dev, dtype=dt, requires_grad=True)
                ids = torch.randint(0, vocab, (1, T), device=dev)
                dy = torch.randn(1, T, h, device=dev, dtype=dt)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                continue

            def clear2():
                wte.grad = wpe.grad = None
            g = lambda: F.embedding(ids, wte) + wpe  # noqa: E731
            b2 = {"group": "embedding", "op": "embedding_pos", "rows": T, "cols": h,
                  "numel": T * h, "m": vocab}
            sw.add({**b2, "phase": "fwd", "bytes": 8 * T * h}, g, 8 * T * h / 3.5e6 + 20,
                   before=clear2)
            sw.add({**b2, "phase": "fwdbwd", "bytes": 8 * T * h + 2 * vocab * h},
                   lambda: g().backward(dy), vocab * h * 4 / 3.5e6 + 50, before=clear2)
            del wte, wpe, ids, dy
    if sw.cuda:
        torch.cuda.empty_cache()
    sw.flush()


def run_optimizer(sw: Sweep, configs, vocab: int = 50257):
    """configs: (layers, hidden, ffn) GPT shapes: the Megatron-like optimizer step over them."""
    import torch
    from .gpt import GPTModel, MegatronLikeOptimizer
    for (L, h, ffn) in configs:
        if sw.over():
            sw.log("optimizer: time budget spent")
            break
        try:
            model = GPTModel(L, h, ffn, max(1, h // 64), vocab, 4096 if vocab > 1000 else 128,
                             sw.device, sw.dtype, seed=1)
            opt = MegatronLikeOptimizer(model)
            for p in model.params():
                p.grad = torch.randn_like(p) * 1e-3
            opt.accumulate()
            opt.step()   # allocates Adam's states
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        n = model.numel
        tensors = len(model.names)
        base = {"group": "optimizer", "rows": L, "cols": h, "numel": n, "tensors": tensors,
                "note": f"GPT L{L} h{h} ffn{ffn}"}
        est = n * 60 / 3.5e6 + 50 * tensors
        with torch.no_grad():
            sw.add({**base, "op": "step", "phase": "fwd", "bytes": 50 * n,
                    "note": base["note"] + "; foreach_norm + .item() + clip + fused Adam + "
                                           "bf16 copy"}, opt.step, est, warmup=1)
            sw.add({**base, "op": "adam_fused", "phase": "fwd", "bytes": 28 * n},
                   opt.adam.step, n * 28 / 3.5e6 + 20 * tensors, warmup=1)
            sw.add({**base, "op": "zero_grad", "phase": "fwd", "bytes": 4 * n}, opt.zero_grad,
                   n * 4 / 3.5e6 + 10, warmup=1)
            for p in model.params():
                p.grad = None
            grads = [torch.randn_like(p) for p in model.params()]

            def acc():
                torch._foreach_add_(opt.grads, grads)
            sw.add({**base, "op": "accumulate_fp32", "phase": "fwd", "bytes": 10 * n}, acc,
                   n * 10 / 3.5e6 + 10 * tensors, warmup=1)
            del grads
        del model, opt
        if sw.cuda:
            torch.cuda.empty_cache()
    sw.flush()


def run_host(sw: Sweep):
    """The dispatch floor: tiny tensors, one op per call, forward and with autograd."""
    import torch
    import torch.nn.functional as F
    dev, dt = sw.device, sw.dtype
    x = torch.randn(8, 64, device=dev, dtype=dt, requires_grad=True)
    w = torch.randn(64, 64, device=dev, dtype=dt, requires_grad=True)
    b = torch.zeros(64, device=dev, dtype=dt, requires_grad=True)
    lw = torch.ones(64, device=dev, dtype=dt, requires_grad=True)
    y = torch.randn(8, 64, device=dev, dtype=dt)
    xd = x.detach()

    def clear():
        x.grad = w.grad = b.grad = lw.grad = None
    base = {"group": "host", "rows": 8, "cols": 64, "numel": 512}
    ops = {
        "add_nograd": (lambda: xd + y, False),
        "linear": (lambda: F.linear(x, w, b), True),
        "layer_norm": (lambda: F.layer_norm(x, (64,), lw, b, 1e-5), True),
        "gelu": (lambda: F.gelu(x, approximate="tanh"), True),
        "dropout": (lambda: F.dropout(x, 0.1, training=True), True),
        "add": (lambda: x + y, True),
    }
    for op, (f, grad) in ops.items():
        sw.add({**base, "op": op, "phase": "fwd"}, f, 10, before=clear, warmup=5)
        if grad:
            sw.add({**base, "op": op, "phase": "fwdbwd"}, lambda f=f: f().sum().backward(), 40,
                   before=clear, warmup=5)
    # attention: the smallest causal SDPA
    qkv = torch.randn(1, 16, 3, 2, 64, device=dev, dtype=dt, requires_grad=True)

    def att():
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    sw.add({**base, "op": "sdpa", "phase": "fwd"}, att, 20, warmup=5)
    sw.add({**base, "op": "sdpa", "phase": "fwdbwd"}, lambda: att().sum().backward(), 60,
           warmup=5)
    sw.flush()


def profiled_kernels(fn, reps: int, cuda: bool, before=None, warmup: int = 3
                     ) -> tuple[list[tuple[str, float]], float]:
    """((kernel name, device us), ...) of ``reps`` calls under torch.profiler (CUPTI: the
    kernels' own durations, whatever the host does between them; ``before``'s kernels
    included), and the wall us per call."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    for _ in range(warmup):
        if before:
            before()
        fn()
    if cuda:
        torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    t0 = time.perf_counter()
    with profile(activities=acts) as prof:
        for _ in range(reps):
            if before:
                before()
            fn()
        if cuda:
            torch.cuda.synchronize()
    wall = (time.perf_counter() - t0) * 1e6 / reps
    out = [(str(e.name), float(getattr(e, "device_time", 0) or getattr(e, "cuda_time", 0) or 0))
           for e in prof.events() if str(getattr(e, "device_type", "")).endswith("CUDA")]
    return out, wall


def _profiled_us(fn, reps: int, cuda: bool, before=None) -> tuple[float, int, float]:
    """(kernel device us per call, kernels per call, wall us per call) under torch.profiler:
    the kernels' own durations (CUPTI), whatever the host does between them."""
    ks, wall = profiled_kernels(fn, reps, cuda, before=before)
    return sum(us for _, us in ks) / reps, len(ks) // reps, wall


#: the QKV split's backward kernels by name (PyTorch's element-wise kernels): the zero
#: fills of the fused gradient, the copies into its slices (select_backward), the adds
SPLIT_KINDS = (("fill", ("fill",)), ("copy", ("copy",)), ("add", ("add",)))


def kernel_kind(name: str) -> str:
    """``fill``, ``copy`` or ``add`` for the QKV split's element-wise kernels, ``attention``
    for any other kernel (cuDNN's or flash's fused attention and its small helpers)."""
    low = name.lower()
    for kind, keys in SPLIT_KINDS:
        if any(k in low for k in keys):
            return kind
    return "attention"


def split_shapes(models, tokens_seq) -> list[tuple[int, int, int, int]]:
    """(batch, seq, heads, head_dim) of the QKV split at each model's heads and the token
    counts (batch, seq) given."""
    return sorted({(b, s, nh, h // nh) for h, nh in models for b, s in tokens_seq})


def run_split(sw: Sweep, shapes) -> None:
    """The QKV split's backward kernels as their own ops, over ``shapes`` (batch, seq, heads,
    head_dim): as autograd's ``select_backward`` runs them for ``q, k, v = qkv[:, :, j]`` of
    a fused [b, s, 3, heads, head] tensor, per chunk a zero fill of the full-width gradient
    and the copy of the chunk's gradient (as the fused attention's backward returns it: its
    layout, taken from one backward through such views) into its slice, then the adds that
    sum the three. Device time by the spin timer (``Timer``), as the sweep's element-wise
    ops; ``bytes`` as the model counts them: the fill 2 x the fused width, the copy 4 x the
    chunk (read and written), the add 6 x the fused width."""
    import torch
    import torch.nn.functional as F
    dev, dt = sw.device, sw.dtype
    for (b, s, nh, hd) in shapes:
        if sw.over():
            sw.log("split: time budget spent")
            break
        try:
            qkv = torch.randn(b, s, 3, nh, hd, device=dev, dtype=dt, requires_grad=True)
            q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            dq = torch.autograd.grad(o, (q,), torch.randn_like(o))[0]
            del o, q, k, v
            g = dq.transpose(1, 2)       # the select's output gradient, in the kernel's layout
            z = torch.zeros(b, s, 3, nh, hd, device=dev, dtype=dt)
            z2 = torch.zeros_like(z)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        n = b * s * nh * hd
        base = {"group": "qkv_split", "batch": b, "seq": s, "heads": nh, "head_dim": hd,
                "rows": b * s, "cols": 3 * nh * hd, "numel": 3 * n,
                "note": f"copy source strides {tuple(g.stride())}"}
        bw = 3.0e6
        sw.add({**base, "op": "fill", "phase": "fwd", "bytes": 6 * n}, z.zero_, 6 * n / bw + 5)
        sw.add({**base, "op": "copy", "phase": "fwd", "bytes": 4 * n},
               lambda z=z, g=g: z.select(2, 1).copy_(g), 4 * n / bw + 5)
        sw.add({**base, "op": "add", "phase": "fwd", "bytes": 18 * n}, lambda: z.add_(z2),
               18 * n / bw + 5)
        del qkv, dq, g, z, z2
    if sw.cuda:
        torch.cuda.empty_cache()
    sw.flush()


def bias_shapes(hiddens, tokens) -> list[tuple[int, int]]:
    """(rows, n) of a GPT layer's bias gradients: the QKV (3h), projection and fc2 (h) and
    fc1 (4h) outputs' gradient summed over the tokens."""
    return sorted({(T, n) for h in hiddens for T in tokens for n in (h, 3 * h, 4 * h)})


def run_bias_grad(sw: Sweep, shapes) -> None:
    """The bias gradient as autograd computes it for ``F.linear`` with a bias: ``dy.sum(0)``
    over the rows of a [tokens, n] output gradient (``aten::sum``), at the GPT's shapes;
    ``bytes`` 2 x tokens x n (the read), ``cols`` n."""
    import torch
    for (T, n) in shapes:
        if sw.over():
            sw.log("bias_grad: time budget spent")
            break
        dy = torch.randn(T, n, device=sw.device, dtype=sw.dtype)
        sw.add({"group": "bias_grad", "op": "bias_grad", "phase": "fwd", "rows": T, "cols": n,
                "numel": T * n, "bytes": 2 * T * n}, lambda dy=dy: dy.sum(0),
               2 * T * n / 3.0e6 + 5)
        del dy
    sw.flush()


def run_profiled_attention(sw: Sweep, cases, reps: int = 5):
    """The attention kernels (and the embedding backward) timed by the profiler: the spin
    timer cannot time calls that synchronise with the host."""
    import torch
    import torch.nn.functional as F
    dev, dt = sw.device, sw.dtype
    for (b, s, nh, hd) in cases:
        if sw.over():
            break
        flops = 4.0 * b * s * s * nh * hd * 0.5
        qkv = torch.randn(b, s, 3, nh, hd, device=dev, dtype=dt, requires_grad=True)
        do = torch.randn(b, nh, s, hd, device=dev, dtype=dt)

        def f():
            q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

        def clear():
            qkv.grad = None
        base = {"group": "attention_prof", "op": "sdpa_causal", "batch": b, "seq": s,
                "heads": nh, "head_dim": hd, "flops": f"{flops:.6g}", "reps": reps}
        for phase, fn in (("fwd", f), ("fwdbwd", lambda: f().backward(do))):
            d, c, w = _profiled_us(fn, reps, sw.cuda, before=clear)
            sw.rows.append({**base, "phase": phase, "dev_us": _r(d), "host_us": _r(w),
                            "tensors": c, "status": "profiler",
                            "note": "dev_us: sum of kernel durations per call; host_us: wall "
                                    "per call; tensors: kernels per call"})
        del qkv, do
    sw.flush()


def run_profiled_embedding(sw: Sweep, tokens, vocab: int, hiddens, reps: int = 5):
    import torch
    import torch.nn.functional as F
    dev, dt = sw.device, sw.dtype
    for T in tokens:
        for h in hiddens:
            if sw.over():
                break
            wte = torch.randn(vocab, h, device=dev, dtype=dt, requires_grad=True)
            wpe = torch.randn(T, h, device=dev, dtype=dt, requires_grad=True)
            ids = torch.randint(0, vocab, (1, T), device=dev)
            dy = torch.randn(1, T, h, device=dev, dtype=dt)

            def clear():
                wte.grad = wpe.grad = None
            g = lambda: F.embedding(ids, wte) + wpe  # noqa: E731
            base = {"group": "embedding_prof", "op": "embedding_pos", "rows": T, "cols": h,
                    "numel": T * h, "m": vocab, "reps": reps}
            for phase, fn, nb in (("fwd", g, 8 * T * h),
                                  ("fwdbwd", lambda: g().backward(dy), 8 * T * h + 2 * vocab * h)):
                d, c, w = _profiled_us(fn, reps, sw.cuda, before=clear)
                sw.rows.append({**base, "phase": phase, "dev_us": _r(d), "host_us": _r(w),
                                "tensors": c, "bytes": nb, "status": "profiler"})
            del wte, wpe, ids, dy
    sw.flush()


def run_host_floor(sw: Sweep, layer_counts=(1, 2, 4, 8, 16), reps: int = 20):
    """Tiny GPTs (hidden 64, 2 heads, 32 tokens, vocabulary 512) whose kernels take a few
    microseconds: the host time of the forward, backward, gradient accumulation and optimizer
    per layer count, with the kernels launched per call (profiler)."""
    import torch
    from .gpt import GPTModel, MegatronLikeOptimizer
    dev, dt = sw.device, sw.dtype
    for L in layer_counts:
        if sw.over():
            break
        model = GPTModel(L, 64, 256, 2, 512, 64, dev, dt, seed=3)
        opt = MegatronLikeOptimizer(model)
        ids = torch.randint(0, 512, (1, 32), device=dev)
        tgt = torch.randint(0, 512, (1, 32), device=dev)
        state = {}

        def fwd():
            state["loss"] = model.loss(ids, tgt)

        def bwd_prep():
            for p in model.params():
                p.grad = None
            state["loss"] = model.loss(ids, tgt)

        def bwd():
            state["loss"].backward()

        def fb():
            model.loss(ids, tgt).backward()
            opt.accumulate()
        base = {"group": "hostfloor", "rows": L, "cols": 64, "seq": 32, "heads": 2,
                "numel": model.numel, "m": 512}
        for op, fn, before in (("forward", fwd, None), ("backward", bwd, bwd_prep),
                               ("fwdbwd_accumulate", fb, None)):
            d, c, w = _profiled_us(fn, reps, sw.cuda, before=before)
            # host time without the profiler: the loop's wall time per call (GPU idle-ish)
            if sw.cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                if before:
                    before()
                fn()
            if sw.cuda:
                torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) * 1e6 / reps
            sw.rows.append({**base, "op": op, "phase": "fwd", "dev_us": _r(d),
                            "host_us": _r(wall), "tensors": c, "reps": reps,
                            "status": "host_wall",
                            "note": "host_us: wall per call, no profiler (with the "
                                    "forward where the op is backward: see op); dev_us: "
                                    "kernel time per call; tensors: kernels per call"})
        # the same with full recompute (torch.utils.checkpoint around every layer)
        model.recompute = True
        d, c, w = _profiled_us(fb, reps, sw.cuda)
        if sw.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fb()
        if sw.cuda:
            torch.cuda.synchronize()
        wall = (time.perf_counter() - t0) * 1e6 / reps
        sw.rows.append({**base, "op": "fwdbwd_accumulate_recompute", "phase": "fwd",
                        "dev_us": _r(d), "host_us": _r(wall), "tensors": c, "reps": reps,
                        "status": "host_wall"})
        model.recompute = False
        with torch.no_grad():
            d, c, w = _profiled_us(opt.step, reps, sw.cuda)
            t0 = time.perf_counter()
            for _ in range(reps):
                opt.step()
            if sw.cuda:
                torch.cuda.synchronize()
            wall = (time.perf_counter() - t0) * 1e6 / reps
        sw.rows.append({**base, "op": "optimizer_step", "phase": "fwd", "dev_us": _r(d),
                        "host_us": _r(wall), "tensors": c, "reps": reps, "status": "host_wall"})
        del model, opt
    sw.flush()


def sync_check(device, dtype, log=print) -> None:
    """Which of the attention and embedding backward synchronise with the host."""
    import torch
    import torch.nn.functional as F
    if device.type != "cuda":
        return
    qkv = torch.randn(1, 128, 3, 4, 64, device=device, dtype=dtype, requires_grad=True)
    q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            y.backward(torch.ones_like(y))
            wte = torch.randn(512, 64, device=device, dtype=dtype, requires_grad=True)
            ids = torch.randint(0, 512, (1, 128), device=device)
            F.embedding(ids, wte).sum().backward()
        for x in w:
            log(f"sync_check: {str(x.message).splitlines()[0][:200]}")
        log(f"sync_check: {len(w)} synchronising calls in sdpa + embedding backward")
    finally:
        torch.cuda.set_sync_debug_mode(0)
