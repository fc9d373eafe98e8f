"""The measuring processes behind ``collsim measure`` (needs PyTorch; imported lazily).

One process per GPU. Rank 0 writes the CSV files:

* ``collectives.csv`` -- every collective and the uneven MoE all-to-all at every size;
* ``gemm.csv`` -- bf16 GEMMs on one GPU (rank 0);
* ``moe_step.csv`` -- an expert-parallel MoE step, its compute alone and its all-to-alls
  alone (see :mod:`simulator.measure.moe`).

Timing of one point: ``warmup`` untimed calls, a host barrier, then ``iters`` calls issued
back to back, each bracketed by CUDA events (``time_us`` and its p10/p90: per call the
slowest rank, then the median over calls; when the host issues calls slower than the GPU
runs them, this includes the host's dispatch time, as inside a training framework);
``avg_us``: the span of all timed calls over their number (nccl-tests' way);
``host_us``: host time spent inside the call (the dispatch, not the transfer);
``wall_us``: host time of one call with a device synchronize before and after.
"""
from __future__ import annotations

import csv
import datetime
import math
import os
import socket
import sys
import time
import traceback

COLL_COLUMNS = ["op", "ranks", "bytes", "time_us", "p10_us", "p90_us", "avg_us", "host_us",
                "wall_us", "wall_p10_us", "wall_p90_us", "algbw_GBps", "busbw_GBps", "tflops",
                "dtype", "method", "placement", "share_remote", "m", "n", "k", "layer", "pass",
                "iters", "warmup"]

ELEM_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


def log(msg: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", flush=True)


def torch_dtype(name: str):
    import torch
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of a non-empty list."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def bus_factor(op: str, world: int, share: float | None) -> float:
    if op == "all_reduce":
        return 2.0 * (world - 1) / world
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (world - 1) / world
    if op == "moe_all_to_all":
        return share if share is not None else (world - 1) / world
    return 1.0


def r4(x: float | None):
    return "" if x is None else round(x, 4)


class CsvOut:
    """Append rows to a CSV file (rank 0 only); the header is written once."""

    def __init__(self, path: str, columns: list[str]):
        self.path = path
        self.columns = columns
        with open(path, "w", newline="") as fh:
            csv.writer(fh).writerow(columns)

    def write(self, rows: list[dict]) -> None:
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore")
            for row in rows:
                w.writerow(row)


class Ctx:
    """What every measuring function needs: rank, device, groups, clock, budget."""

    def __init__(self, rank: int, world: int, local_world: int, cfg: dict, host_group,
                 t0: float):
        import torch
        self.rank = rank
        self.world = world
        self.local_world = local_world
        self.cfg = cfg
        self.host_group = host_group
        self.t0 = t0
        self.cuda = cfg["device"] == "cuda"
        self.device = torch.device("cuda", torch.cuda.current_device()) if self.cuda \
            else torch.device("cpu")
        nodes = max(1, world // max(1, local_world))
        self.placement = f"{nodes}x{local_world}"

    # --- host-side coordination (gloo), so idle ranks don't spin a GPU kernel ---
    def barrier(self) -> None:
        import torch.distributed as dist
        dist.barrier(group=self.host_group)

    def gather(self, obj):
        """All ranks' ``obj``, in rank order (on every rank)."""
        import torch.distributed as dist
        out = [None] * self.world
        dist.all_gather_object(out, obj, group=self.host_group)
        return out

    def over_budget(self) -> bool:
        """Rank 0's clock decides for everyone (one decision, broadcast)."""
        import torch
        import torch.distributed as dist
        budget = self.cfg["time_budget_s"]
        if not budget:
            return False
        flag = torch.tensor([1 if time.monotonic() - self.t0 > budget else 0])
        dist.broadcast(flag, src=0, group=self.host_group)
        return bool(flag.item())

    def sync(self) -> None:
        import torch
        if self.cuda:
            torch.cuda.synchronize()


class Timer:
    """Per-call device times: CUDA events on GPUs, the host clock on CPU."""

    def __init__(self, ctx: Ctx, n: int):
        import torch
        self.ctx = ctx
        self.n = n
        if ctx.cuda:
            self.starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
            self.stops = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        else:
            self.starts = [0.0] * n
            self.stops = [0.0] * n

    def start(self, i: int) -> None:
        if self.ctx.cuda:
            self.starts[i].record()
        else:
            self.starts[i] = time.perf_counter()

    def stop(self, i: int) -> None:
        if self.ctx.cuda:
            self.stops[i].record()
        else:
            self.stops[i] = time.perf_counter()

    def times_us(self, count: int | None = None) -> list[float]:
        n = self.n if count is None else count
        self.ctx.sync()
        if self.ctx.cuda:
            return [self.starts[i].elapsed_time(self.stops[i]) * 1e3 for i in range(n)]
        return [(self.stops[i] - self.starts[i]) * 1e6 for i in range(n)]

    def span_us(self, count: int | None = None) -> float:
        n = self.n if count is None else count
        self.ctx.sync()
        if self.ctx.cuda:
            return self.starts[0].elapsed_time(self.stops[n - 1]) * 1e3
        return (self.stops[n - 1] - self.starts[0]) * 1e6


def time_calls(ctx: Ctx, fn, warmup: int, iters: int, wall_iters: int) -> dict:
    """Time ``fn`` on this rank (see the module docstring); returns raw per-call lists."""
    for _ in range(warmup):
        fn()
    ctx.sync()
    ctx.barrier()
    timer = Timer(ctx, iters)
    host = []
    for i in range(iters):
        timer.start(i)
        h0 = time.perf_counter()
        fn()
        h1 = time.perf_counter()
        timer.stop(i)
        host.append((h1 - h0) * 1e6)
    dev = timer.times_us()
    avg = timer.span_us() / iters
    wall = []
    if wall_iters:
        ctx.barrier()
    for _ in range(wall_iters):
        ctx.sync()
        t0 = time.perf_counter()
        fn()
        ctx.sync()
        wall.append((time.perf_counter() - t0) * 1e6)
    return {"dev": dev, "host": host, "wall": wall, "avg": avg}


def combine_ranks(per_rank: list[dict]) -> dict:
    """Per call, the slowest rank; then median, p10, p90 over calls."""
    dev = [max(vals) for vals in zip(*(r["dev"] for r in per_rank))]
    host = [max(vals) for vals in zip(*(r["host"] for r in per_rank))]
    out = {"time_us": quantile(dev, 0.5), "p10_us": quantile(dev, 0.1),
           "p90_us": quantile(dev, 0.9), "host_us": quantile(host, 0.5),
           "avg_us": max(r["avg"] for r in per_rank)}
    if per_rank[0]["wall"]:
        wall = [max(vals) for vals in zip(*(r["wall"] for r in per_rank))]
        out.update(wall_us=quantile(wall, 0.5), wall_p10_us=quantile(wall, 0.1),
                   wall_p90_us=quantile(wall, 0.9))
    return out


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
    unique = {}
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

        def fn():
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
        raw = time_calls_local(ctx, fn, 2, iters)
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


def time_calls_local(ctx: Ctx, fn, warmup: int, iters: int) -> dict:
    """Like :func:`time_calls` for one process (no barrier); wall = 10 synced calls."""
    for _ in range(warmup):
        fn()
    ctx.sync()
    timer = Timer(ctx, iters)
    host = []
    for i in range(iters):
        timer.start(i)
        h0 = time.perf_counter()
        fn()
        host.append((time.perf_counter() - h0) * 1e6)
        timer.stop(i)
    dev = timer.times_us()
    avg = timer.span_us() / iters
    wall = []
    for _ in range(min(10, iters)):
        ctx.sync()
        t0 = time.perf_counter()
        fn()
        ctx.sync()
        wall.append((time.perf_counter() - t0) * 1e6)
    return {"dev": dev, "host": host, "wall": wall, "avg": avg}


def check_gemm(ctx: Ctx, dt) -> None:
    import torch
    a = torch.randn(256, 384, device=ctx.device, dtype=dt)
    b = torch.randn(384, 512, device=ctx.device, dtype=dt)
    got = torch.matmul(a, b).double().cpu()
    ref = a.double().cpu() @ b.double().cpu()
    err = (got - ref).norm() / ref.norm()
    assert err < 2e-2, f"GEMM relative error {err:.2e}"
    log(f"check: bf16 GEMM relative error {err:.1e} against float64")


# ---------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_safe_env() -> None:
    """NVLink multicast off (the lent machines require it); stay on the host's loopback."""
    os.environ["NCCL_NVLS_ENABLE"] = "0"
    os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] = "1"
    os.environ["NVSHMEM_DISABLE_NVLS"] = "1"
    os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")


def run_rank(rank: int, world: int, local_world: int, cfg: dict, init_method: str) -> None:
    import warnings
    import torch
    import torch.distributed as dist
    set_safe_env()
    warnings.filterwarnings("ignore", category=FutureWarning)
    t0 = time.monotonic()
    timeout = datetime.timedelta(seconds=cfg["timeout_s"])
    if cfg["device"] == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        torch.set_num_threads(1)
        backend = "gloo"
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world,
                            timeout=timeout)
    host_group = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" \
        else dist.group.WORLD
    ctx = Ctx(rank, world, local_world, cfg, host_group, t0)
    os.makedirs(cfg["out"], exist_ok=True)
    try:
        if rank == 0:
            write_env(ctx)
        phases = cfg["phases"]
        if "collectives" in phases or "moe_a2a" in phases:
            if world > 1:
                check_collectives(ctx)
        if "collectives" in phases and world > 1:
            out = CsvOut(os.path.join(cfg["out"], "collectives.csv"), COLL_COLUMNS) \
                if rank == 0 else None
            run_collectives(ctx, out, moe=False)
            if rank == 0:
                log(f"collectives done at {time.monotonic() - t0:.0f} s")
        else:
            out = None
        if "moe_a2a" in phases and world > 1:
            if out is None and rank == 0:
                out = CsvOut(os.path.join(cfg["out"], "collectives.csv"), COLL_COLUMNS)
            run_collectives(ctx, out, moe=True)
            if rank == 0:
                log(f"uneven all-to-all done at {time.monotonic() - t0:.0f} s")
        if "gemm" in phases:
            gout = CsvOut(os.path.join(cfg["out"], "gemm.csv"), COLL_COLUMNS) \
                if rank == 0 else None
            run_gemms(ctx, gout)
            if rank == 0:
                log(f"GEMMs done at {time.monotonic() - t0:.0f} s")
        if "moe_step" in phases and world > 1:
            from simulator.measure.moe import run_moe_cases
            run_moe_cases(ctx)
            if rank == 0:
                log(f"MoE step done at {time.monotonic() - t0:.0f} s")
        ctx.barrier()
    finally:
        dist.destroy_process_group()


def write_env(ctx: Ctx) -> None:
    import platform
    import torch
    lines = [f"date {datetime.datetime.now(datetime.timezone.utc).isoformat()}",
             f"python {platform.python_version()}", f"torch {torch.__version__}",
             f"world {ctx.world} placement {ctx.placement} device {ctx.cfg['device']}"]
    if ctx.cuda:
        lines.append(f"cuda {torch.version.cuda}")
        try:
            lines.append(f"nccl {'.'.join(str(v) for v in torch.cuda.nccl.version())}")
        except Exception as exc:  # pragma: no cover - depends on the build
            lines.append(f"nccl unknown ({exc})")
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"gpu{i} {p.name} {p.total_memory >> 20} MiB sm{p.major}{p.minor} "
                         f"{p.multi_processor_count} SMs")
    env = {k: os.environ[k] for k in sorted(os.environ)
           if k.startswith(("NCCL_", "TORCH_NCCL", "TORCH_SYMM", "NVSHMEM_"))}
    lines += [f"env {k}={v}" for k, v in env.items()]
    lines.append(f"config {ctx.cfg}")
    with open(os.path.join(ctx.cfg["out"], "measure_env.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    for line in lines[:-1]:
        log(line)


def _spawned(rank: int, world: int, cfg: dict, port: int) -> None:
    try:
        run_rank(rank, world, world, cfg, f"tcp://127.0.0.1:{port}")
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        raise


def launch(cfg: dict) -> int:
    """Start the measuring processes; returns the exit code."""
    import torch
    set_safe_env()
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # under torchrun
        world = int(os.environ["WORLD_SIZE"])
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        run_rank(int(os.environ["RANK"]), world, local, cfg, "env://")
        return 0
    if cfg["device"] == "cuda":
        if not torch.cuda.is_available():
            print("collsim measure: error: no CUDA GPU visible (use --device cpu to test)",
                  file=sys.stderr)
            return 2
        world = cfg["world_size"] or torch.cuda.device_count()
        if world > torch.cuda.device_count():
            print(f"collsim measure: error: --world-size {world} but only "
                  f"{torch.cuda.device_count()} GPUs", file=sys.stderr)
            return 2
    else:
        world = cfg["world_size"] or 2
    os.makedirs(cfg["out"], exist_ok=True)
    log(f"measuring with {world} process(es) into {cfg['out']}")
    if world == 1:
        run_rank(0, 1, 1, cfg, f"tcp://127.0.0.1:{free_port()}")
        return 0
    import torch.multiprocessing as mp
    try:
        mp.spawn(_spawned, args=(world, cfg, free_port()), nprocs=world, join=True)
    except Exception as exc:
        print(f"collsim measure: error: a measuring process failed: {exc}", file=sys.stderr)
        summarize(cfg["out"])
        return 1
    summarize(cfg["out"])
    return 0


def summarize(out_dir: str) -> None:
    """Print a short table of what was written (the end of the log is what one reads)."""
    path = os.path.join(out_dir, "collectives.csv")
    if os.path.exists(path):
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        by_op: dict = {}
        for row in rows:
            key = row["op"] + (f" f={row['share_remote']}" if row["share_remote"] else "")
            by_op.setdefault(key, []).append(row)
        print("summary: op | smallest size: time_us (host_us) | largest size: time_us, "
              "busbw GB/s", flush=True)
        for key, rs in by_op.items():
            lo = min(rs, key=lambda r: int(r["bytes"]))
            hi = max(rs, key=lambda r: int(r["bytes"]))
            print(f"  {key:<22} {lo['bytes']:>6} B: {lo['time_us']:>9} ({lo['host_us']})"
                  f" | {hi['bytes']:>10} B: {hi['time_us']:>10}, {hi['busbw_GBps']}",
                  flush=True)
    path = os.path.join(out_dir, "gemm.csv")
    if os.path.exists(path):
        with open(path, newline="") as fh:
            tf = sorted(float(r["tflops"]) for r in csv.DictReader(fh) if r["tflops"])
        if tf:
            print(f"summary: {len(tf)} GEMMs, TFLOP/s min {tf[0]:.1f}, median "
                  f"{quantile(tf, 0.5):.1f}, max {tf[-1]:.1f}", flush=True)
    path = os.path.join(out_dir, "moe_step.csv")
    if os.path.exists(path):
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                if r["rank"] == "max" and r["part"] in ("step", "compute_step",
                                                        "a2a_per_step"):
                    print(f"summary: moe {r['case']} {r['part']}: {r['time_us']} us",
                          flush=True)
