"""Collectives, the uneven MoE all-to-all and GEMMs, timed on real GPUs (needs PyTorch;
imported lazily). :mod:`simulator.measure.processes` starts one process per GPU and calls
these; rank 0 writes the CSV files:

* ``collectives.csv`` -- every collective and the uneven MoE all-to-all at every size;
* ``gemm.csv`` -- bf16 GEMMs on one GPU (rank 0).

How one point is timed: :mod:`simulator.measure.timing`.
"""
from __future__ import annotations

import math
import time

from .timing import ELEM_BYTES, CsvOut, Ctx, combine_ranks, log, r4, time_calls, torch_dtype

COLL_COLUMNS = ["op", "ranks", "bytes", "time_us", "p10_us", "p90_us", "avg_us", "host_us",
                "wall_us", "wall_p10_us", "wall_p90_us", "algbw_GBps", "busbw_GBps", "tflops",
                "dtype", "method", "placement", "share_remote", "m", "n", "k", "layer", "pass",
                "iters", "warmup"]


def bus_factor(op: str, world: int, share: float | None) -> float:
    if op == "all_reduce":
        return 2.0 * (world - 1) / world
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (world - 1) / world
    if op == "moe_all_to_all":
        return share if share is not None else (world - 1) / world
    return 1.0


# ---------------------------------------------------------------- collectives

def make_collective(ctx: Ctx, op: str, nbytes: int, share: float | None = None):
    """Buffers and a zero-argument callable for one collective, or None if the size doesn't
    divide into whole elements per rank."""
    import torch
    import torch.distributed as dist
    dt = torch_dtype(ctx.cfg["dtype"])
    es = ELEM_BYTES[ctx.cfg["dtype"]]
    world, rank, dev = ctx.world, ctx.rank, ctx.device
    if nbytes % (es * world):
        return None
    n = nbytes // es

    def rand(count):
        # tiny values: repeated in-place sums stay finite for hundreds of calls
        return (torch.randn(count, device=dev, dtype=torch.float32) * 1e-20).to(dt)

    if op == "all_reduce":
        t = rand(n)
        return lambda: dist.all_reduce(t)
    if op == "all_gather":
        inp, out = rand(n // world), torch.empty(n, device=dev, dtype=dt)
        return lambda: dist.all_gather_into_tensor(out, inp)
    if op == "reduce_scatter":
        inp, out = rand(n), torch.empty(n // world, device=dev, dtype=dt)
        return lambda: dist.reduce_scatter_tensor(out, inp)
    if op == "all_to_all":
        inp, out = rand(n), torch.empty(n, device=dev, dtype=dt)
        return lambda: dist.all_to_all_single(out, inp)
    if op == "broadcast":
        t = rand(n)
        return lambda: dist.broadcast(t, src=0)
    if op == "sendrecv":
        send, recv = rand(n), torch.empty(n, device=dev, dtype=dt)
        nxt, prv = (rank + 1) % world, (rank - 1) % world
        ops = [dist.P2POp(dist.isend, send, nxt), dist.P2POp(dist.irecv, recv, prv)]

        def f():
            for req in dist.batch_isend_irecv(ops):
                req.wait()
        return f
    if op == "moe_all_to_all":
        if share is None:
            raise ValueError("moe_all_to_all needs the remote share (--shares)")
        splits = moe_splits(n, world, rank, share)
        inp, out = rand(n), torch.empty(n, device=dev, dtype=dt)
        return lambda: dist.all_to_all_single(out, inp, splits, splits)
    raise ValueError(op)


def moe_splits(n: int, world: int, rank: int, share: float) -> list[int]:
    """Element splits of an uneven all-to-all: ``share`` of ``n`` spread over the other
    ranks, the rest kept (a local copy). Symmetric, so input and output splits agree."""
    if world == 1:
        return [n]
    # Whole multiples of 8 elements per peer, as real MoE splits (whole token rows) are:
    # chunks that start at 2- or 4-byte offsets measure NCCL's misaligned copies, not the
    # share (traces/h200x4/README.md).
    align = 8
    per_peer = int(round(n * share / (world - 1) / align)) * align
    per_peer = min(per_peer, (n // (world - 1)) // align * align)
    splits = [per_peer] * world
    splits[rank] = n - per_peer * (world - 1)
    return splits


def check_collectives(ctx: Ctx) -> None:
    """Right answers first: each op once on small known data."""
    import torch
    import torch.distributed as dist
    w, r, dev = ctx.world, ctx.rank, ctx.device
    dt = torch_dtype(ctx.cfg["dtype"])
    n = 64 * w
    t = torch.full((n,), float(r + 1), device=dev, dtype=dt)
    dist.all_reduce(t)
    assert torch.all(t == w * (w + 1) / 2), "all_reduce gave a wrong sum"
    out = torch.empty(n * w, device=dev, dtype=dt)
    dist.all_gather_into_tensor(out, torch.full((n,), float(r), device=dev, dtype=dt))
    assert torch.equal(out.view(w, n)[:, 0].float().cpu(), torch.arange(w).float()), \
        "all_gather wrong"
    inp = torch.arange(n, device=dev, dtype=torch.float32).to(dt)
    rs = torch.empty(n // w, device=dev, dtype=dt)
    if "reduce_scatter" in ctx.cfg["ops"]:
        dist.reduce_scatter_tensor(rs, inp)
        assert torch.equal(rs.float(), (inp.view(w, -1)[r] * w).float()), "reduce_scatter wrong"
    inp = torch.full((n,), float(r), device=dev, dtype=dt)
    out = torch.empty(n, device=dev, dtype=dt)
    dist.all_to_all_single(out, inp)
    assert torch.equal(out.view(w, -1)[:, 0].float().cpu(), torch.arange(w).float()), \
        "all_to_all wrong"
    splits = moe_splits(n, w, r, 0.25)
    out = torch.empty(n, device=dev, dtype=dt)
    dist.all_to_all_single(out, inp, splits, splits)
    got = out.float().cpu()
    off = 0
    for src, cnt in enumerate(splits):
        assert torch.all(got[off:off + cnt] == src), "uneven all_to_all wrong"
        off += cnt
    b = torch.full((n,), float(r + 7), device=dev, dtype=dt)
    dist.broadcast(b, src=0)
    assert torch.all(b == 7), "broadcast wrong"
    ctx.sync()
    if r == 0:
        log("check: all_reduce, all_gather, reduce_scatter, all_to_all, uneven all_to_all, "
            "broadcast give the right values")


def run_collectives(ctx: Ctx, out: CsvOut | None, moe: bool) -> None:
    import torch
    cfg = ctx.cfg
    if moe:
        points = [("moe_all_to_all", s, sh) for sh in cfg["shares"] for s in cfg["moe_sizes"]]
    else:
        points = [(op, s, None) for op in cfg["ops"] for s in cfg["sizes"]]
    done = []
    for op, size, share in points:
        if ctx.over_budget():
            if ctx.rank == 0:
                log(f"time budget spent: skipping the rest from {op} {size}")
            break
        fn = make_collective(ctx, op, size, share)
        if fn is None:
            continue
        raw = time_calls(ctx, fn, cfg["warmup"], cfg["iters"], cfg["wall_iters"])
        done.append((op, size, share, raw))
        del fn
        if ctx.cuda and size >= (256 << 20):
            torch.cuda.empty_cache()
    # one gather per phase: the timed loops stay free of host-side traffic
    everyone = ctx.gather([d[3] for d in done])
    if ctx.rank != 0:
        return
    rows = []
    method = "torch.distributed/" + ("nccl" if ctx.cuda else "gloo")
    for i, (op, size, share, _) in enumerate(done):
        stats = combine_ranks([everyone[r][i] for r in range(ctx.world)])
        algbw = size / stats["time_us"] / 1e3
        row = {"op": op, "ranks": ctx.world, "bytes": size, "dtype": cfg["dtype"],
               "method": method, "placement": ctx.placement,
               "share_remote": "" if share is None else share,
               "algbw_GBps": r4(algbw), "busbw_GBps": r4(algbw * bus_factor(op, ctx.world,
                                                                             share)),
               "iters": cfg["iters"], "warmup": cfg["warmup"]}
        row.update({k: r4(v) for k, v in stats.items()})
        rows.append(row)
        if size in (1 << 10, 1 << 20, 1 << 30) or size == points[-1][1]:
            label = op if share is None else f"{op} f={share}"
            log(f"{label:>24} {size:>11} B  {stats['time_us']:9.2f} us "
                f"(host {stats['host_us']:.1f}, wall {stats.get('wall_us', 0):.1f})  "
                f"busbw {row['busbw_GBps']} GB/s")
    if out is not None:
        out.write(rows)


# ---------------------------------------------------------------- GEMMs

def default_gemm_shapes() -> list[tuple[int, int, int, str, str]]:
    """(m, n, k, layer, pass): dense transformer layers (QKV, attention output, MLP up and
    down with a 4x MLP) for tokens 1024..16384 and hidden 1024..8192, and Mixtral-like
    expert FFNs (hidden 4096, ffn 14336) for 256..8192 tokens per expert; each forward
    GEMM with its two backward GEMMs (input gradient: m x k x n, weight gradient:
    n x k x m)."""
    shapes = []
    for h in (1024, 2048, 4096, 8192):
        for t in (1024, 2048, 4096, 8192, 16384):
            for layer, n, k in (("qkv", 3 * h, h), ("proj", h, h), ("fc1", 4 * h, h),
                                ("fc2", h, 4 * h)):
                shapes += [(t, n, k, f"h{h}_{layer}", "fwd"), (t, k, n, f"h{h}_{layer}", "dgrad"),
                           (n, k, t, f"h{h}_{layer}", "wgrad")]
    for t in (256, 512, 1024, 2048, 4096, 8192):
        for layer, n, k in (("expert_w13", 14336, 4096), ("expert_w2", 4096, 14336)):
            shapes += [(t, n, k, layer, "fwd"), (t, k, n, layer, "dgrad"),
                       (n, k, t, layer, "wgrad")]
    return shapes


def run_gemms(ctx: Ctx, out: CsvOut | None) -> None:
    """bf16 GEMMs on rank 0's GPU; other ranks wait at a host barrier."""
    import torch
    cfg = ctx.cfg
    if ctx.rank != 0:
        ctx.barrier()
        return
    dt = torch_dtype(cfg["dtype"])
    es = ELEM_BYTES[cfg["dtype"]]
    if cfg["gemm_shapes"]:
        shapes = [(m, n, k, "", "") for m, n, k in cfg["gemm_shapes"]]
    else:
        shapes = default_gemm_shapes()
    rows = []
    budget = cfg["time_budget_s"]
    check_gemm(ctx, dt)
    unique: dict[tuple[int, int, int], tuple] = {}
    for m, n, k, layer, pas in shapes:
        unique.setdefault((m, n, k), (m, n, k, layer, pas))  # first label of a shape
    for m, n, k, layer, pas in unique.values():
        if budget and time.monotonic() - ctx.t0 > budget:
            log(f"time budget spent: skipping GEMMs from {m}x{n}x{k}")
            break
        per_set = (m * k + k * n + m * n) * es
        # rotate among input sets so small shapes are not timed out of the L2 cache
        nsets = max(1, min(8, math.ceil(192e6 / per_set)))
        a = [torch.randn(m, k, device=ctx.device, dtype=dt) for _ in range(nsets)]
        b = [torch.randn(k, n, device=ctx.device, dtype=dt) for _ in range(nsets)]
        c = [torch.empty(m, n, device=ctx.device, dtype=dt) for _ in range(nsets)]
        state = [0]

        def fn(a=a, b=b, c=c, state=state, nsets=nsets):   # this shape's sets
            j = state[0] % nsets
            state[0] += 1
            torch.matmul(a[j], b[j], out=c[j])
        # estimate, then size the timed run to about gemm_target_ms
        for _ in range(3):
            fn()
        ctx.sync()
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        ctx.sync()
        est_us = max(1.0, (time.perf_counter() - t0) / 3 * 1e6)
        iters = int(min(200, max(10, cfg["gemm_target_ms"] * 1e3 / est_us)))
        raw = time_calls(ctx, fn, 2, iters, min(10, iters), barrier=False)
        stats = combine_ranks([raw])
        tflops = 2.0 * m * n * k / stats["time_us"] / 1e6
        rows.append({"op": "gemm", "ranks": 1, "bytes": per_set, "dtype": cfg["dtype"],
                     "method": "torch.matmul", "placement": "1x1", "m": m, "n": n, "k": k,
                     "layer": layer, "pass": pas, "tflops": r4(tflops), "iters": iters,
                     "warmup": 5, **{kk: r4(v) for kk, v in stats.items()}})
        if (layer.endswith("fc1") or layer == "expert_w13" or not layer) \
                and pas in ("fwd", ""):
            log(f"gemm {m}x{n}x{k} {layer} {pas}: {stats['time_us']:.1f} us, "
                f"{tflops:.0f} TFLOP/s")
        del a, b, c
    if out is not None:
        out.write(rows)
    ctx.barrier()


def check_gemm(ctx: Ctx, dt) -> None:
    import torch
    a = torch.randn(256, 384, device=ctx.device, dtype=dt)
    b = torch.randn(384, 512, device=ctx.device, dtype=dt)
    got = torch.matmul(a, b).double().cpu()
    ref = a.double().cpu() @ b.double().cpu()
    err = (got - ref).norm() / ref.norm()
    assert err < 2e-2, f"GEMM relative error {err:.2e}"
    log(f"check: bf16 GEMM relative error {err:.1e} against float64")
