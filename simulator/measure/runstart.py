"""The frame every one-GPU measuring script shares: its first flags, its log line, its folder,
its recorded environment (``compute_env.txt``) and the GPU's clocks brought up at the start;
its phases guarded, its budget checked and the GPU's memory freed between cases; its exit
status at the end (nonzero when a phase failed).

One copy, so that every script's ``compute_env.txt`` records the same fields and a new script
cannot forget one, nor end 0 on a run that lost a phase. Torch is imported inside functions
only.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import traceback


def log(msg: str) -> None:
    print(f"[{datetime.datetime.now(datetime.timezone.utc).strftime('%H:%M:%S')}] {msg}",
          flush=True)


def parser(tool: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m simulator.measure.<tool>`` with the flags ``start_run`` reads
    (``--out``, ``--device``) and ``--tiny``; the script adds its own after them."""
    ap = argparse.ArgumentParser(prog=f"python -m simulator.measure.{tool}",
                                 description=doc.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes (a dry run on a CPU)")
    return ap


def warm_clocks(device, dtype, gemms_per_sync: int = 10, seconds: float = 1.0) -> None:
    """Run 8192^3 GEMMs for ``seconds`` so the GPU's clocks are up before the first timed case."""
    import torch
    a = torch.randn(8192, 8192, device=device, dtype=dtype)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(gemms_per_sync):
            a @ a
        torch.cuda.synchronize()
    del a


def start_run(args, tool: str):
    """(device, dtype, cuda) of a measuring run whose ``args`` give ``out`` and ``device``:
    its folder made, its environment written and (on a GPU) the clocks brought up. Exits 2
    after a one-line error naming ``tool`` when CUDA was asked for and no GPU is visible."""
    import torch
    os.makedirs(args.out, exist_ok=True)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print(f"{tool}: error: no CUDA GPU visible (use --device cpu --tiny)")
        raise SystemExit(2)
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    write_env(args.out, args)
    if cuda:  # before the first timed case
        warm_clocks(device, torch.bfloat16)
    return device, torch.bfloat16, cuda


def write_env(out: str, args) -> None:
    import torch
    lines = [f"date {datetime.datetime.now(datetime.timezone.utc).isoformat()}",
             f"python {platform.python_version()}", f"torch {torch.__version__}",
             f"platform {platform.platform()}", f"cpus {os.cpu_count()}",
             f"argv {' '.join(sys.argv)}"]
    if args.device == "cuda":
        p = torch.cuda.get_device_properties(0)
        lines += [f"cuda {torch.version.cuda}", f"cudnn {torch.backends.cudnn.version()}",
                  f"gpu0 {p.name} {p.total_memory >> 20} MiB sm{p.major}{p.minor} "
                  f"{p.multi_processor_count} SMs",
                  f"matmul allow_tf32 {torch.backends.cuda.matmul.allow_tf32}, bf16 reduced "
                  f"precision reduction "
                  f"{torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction}"]
    with open(os.path.join(out, "compute_env.txt"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    for line in lines:
        log(line)


def attempt(name: str, failed: list[str], fn, *args) -> bool:
    """``fn(*args)``, one phase or case of a run, and whether it ran through; when it raises,
    its traceback is logged and ``name`` added to ``failed``, so that the run goes on to its
    other phases and :func:`finish` ends it nonzero (its rows are missing: the run's results
    are incomplete)."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - keep the other phases; finish() reports this one
        log(f"{name}: failed\n{traceback.format_exc()}")
        failed.append(name)
        return False
    return True


def finish(t0: float, failed: list[str]) -> int:
    """The run's exit status after its last line: 0, or 1 naming the phases that failed."""
    took = f"all done in {time.monotonic() - t0:.0f} s"
    if failed:
        log(f"{took}; {len(failed)} failed: {', '.join(failed)}")
        return 1
    log(took)
    return 0


def budget_spent(t0: float, budget_s: float, what: str) -> bool:
    """Whether the run's ``budget_s`` since ``t0`` is spent (then ``what`` is logged as
    skipped, with all after it)."""
    if time.monotonic() - t0 <= budget_s:
        return False
    log(f"budget spent: {what} and later skipped")
    return True


def free_gpu(cuda: bool) -> None:
    """After a case: wait for its kernels and give its cached blocks back, so that the next
    case's peak memory is its own."""
    if cuda:
        import torch
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
