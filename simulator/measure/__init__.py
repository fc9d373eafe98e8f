"""Measure collectives, uneven MoE all-to-alls, GEMMs and an EP MoE step on real GPUs.

Needs PyTorch (the ``measure`` extra); every module here imports torch inside functions
only, so ``collsim measure --help`` works without it. Entry point:
:func:`simulator.measure.cli.main`.
"""
