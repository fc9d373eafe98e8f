"""``collsim measure``: real collective and GEMM timings on GPUs (optional extra: torch).

The measuring code lives in simulator.measure and has its own argument parser; this module
only forwards to it so that ``collsim --help`` never imports torch.
"""
from __future__ import annotations

HELP = "measure collectives and GEMMs on real GPUs with torch.distributed/NCCL (needs torch)"


def main(argv: list[str]) -> int:
    from ..measure.cli import main as measure_main

    return measure_main(argv)
