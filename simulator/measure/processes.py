"""The measuring processes behind ``collsim measure``: one per GPU (or torchrun's), each
runs the phases asked for; rank 0 writes ``measure_env.txt`` and the CSV files
(:mod:`simulator.measure.bench`: collectives and GEMMs, :mod:`simulator.measure.moe`: the
expert-parallel MoE step) and prints a summary at the end.
"""
from __future__ import annotations

import csv
import datetime
import os
import socket
import sys
import time
import traceback

from .bench import COLL_COLUMNS, check_collectives, run_collectives, run_gemms
from .moe import run_moe_cases
from .timing import CsvOut, Ctx, log, quantile


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
