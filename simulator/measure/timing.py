"""What every measuring module shares: the log line, quantiles, the CSV writer, the
per-rank context and the call timer (needs PyTorch only inside functions).

Timing of one point (:func:`time_calls`): ``warmup`` untimed calls, a host barrier, then
``iters`` calls issued back to back, each bracketed by CUDA events (``time_us`` and its
p10/p90: per call the slowest rank, then the median over calls; when the host issues calls
slower than the GPU runs them, this includes the host's dispatch time, as inside a training
framework); ``avg_us``: the span of all timed calls over their number (nccl-tests' way);
``host_us``: host time spent inside the call (the dispatch, not the transfer); ``wall_us``:
host time of one call with a device synchronize before and after.

This package imports nothing from the rest of ``simulator``, so that a GPU machine can
copy ``simulator/measure/`` alone.
"""
from __future__ import annotations

import csv
import datetime
import math
import time

ELEM_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


def log(msg: str) -> None:
    """One timestamped, flushed line (the end of the log is what one reads)."""
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


def rounded(x: float | None, digits: int = 4):
    """A CSV cell: ``x`` rounded, or empty when there is no value."""
    return "" if x is None else round(x, digits)


def r4(x: float | None):
    return rounded(x, 4)


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

    def __init__(self, cuda: bool, n: int):
        import torch
        self.cuda = cuda
        self.n = n
        if cuda:
            self.starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
            self.stops = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        else:
            self.starts = [0.0] * n
            self.stops = [0.0] * n

    def start(self, i: int) -> None:
        if self.cuda:
            self.starts[i].record()
        else:
            self.starts[i] = time.perf_counter()

    def stop(self, i: int) -> None:
        if self.cuda:
            self.stops[i].record()
        else:
            self.stops[i] = time.perf_counter()

    def sync(self) -> None:
        if self.cuda:
            import torch
            torch.cuda.synchronize()

    def times_us(self, count: int | None = None) -> list[float]:
        n = self.n if count is None else count
        self.sync()
        if self.cuda:
            return [self.starts[i].elapsed_time(self.stops[i]) * 1e3 for i in range(n)]
        return [(self.stops[i] - self.starts[i]) * 1e6 for i in range(n)]

    def span_us(self, count: int | None = None) -> float:
        n = self.n if count is None else count
        self.sync()
        if self.cuda:
            return self.starts[0].elapsed_time(self.stops[n - 1]) * 1e3
        return (self.stops[n - 1] - self.starts[0]) * 1e6


def time_calls(ctx: Ctx, fn, warmup: int, iters: int, wall_iters: int,
               barrier: bool = True) -> dict:
    """Time ``fn`` on this rank (see the module docstring); returns raw per-call lists.

    ``barrier`` lines the ranks up before the timed and the wall-clock calls (off for a
    point that one rank times alone while the others wait elsewhere)."""
    for _ in range(warmup):
        fn()
    ctx.sync()
    if barrier:
        ctx.barrier()
    timer = Timer(ctx.cuda, iters)
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
    if wall_iters and barrier:
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
