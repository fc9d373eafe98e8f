#!/usr/bin/env python3
"""`collsim validate` with the kernel-price candidate in place of the shipped H200 fit.

    PYTHONPATH=$PWD python3 scripts/kernel_prices_validate.py [--turnaround] [--power-cap off]
        [--json PATH]

The candidate (``simulator.generate.gpu.h200_kernel_prices``: the attention fitted on its own
kernels from a rested GPU, the QKV split's kernels and the bias gradient measured over the
GPT's shapes, the element-wise kernels slowed under the power cap; traces/h200/compute/
kernelprice1) replaces ``GPUS["h200"]`` in this process only; every other argument goes to
``collsim validate`` as given. docs/compute-model.md ("The kernel-level prices") gives what
it printed and why the candidate is not the default.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.cli import main as cli_main  # noqa: E402
from simulator.generate import gpu  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    turnaround = "--turnaround" in args   # the CUPTI-timed prices plus the kernels' turnaround
    args = [a for a in args if a != "--turnaround"]
    gpu.GPUS["h200"] = gpu.h200_kernel_prices(turnaround=turnaround)
    return cli_main(["validate"] + args)


if __name__ == "__main__":
    sys.exit(main())
