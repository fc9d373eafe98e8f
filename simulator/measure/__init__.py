"""Measure collectives, uneven MoE all-to-alls, GEMMs and an EP MoE step on real GPUs.

Needs PyTorch (the ``measure`` extra); every module here imports torch inside functions
only, so ``collsim measure --help`` works without it. Entry point:
:func:`simulator.measure.cli.main` (``python -m simulator.measure``).

Self-contained: nothing here imports the rest of ``simulator`` (modules import each other
relatively), so a GPU machine can copy this folder alone and run it
(``tests/test_measure_package.py`` checks that). Module layering, without cycles:
``timing`` (shared helpers) <- ``bench`` (collectives, GEMMs), ``moe`` (the EP MoE step)
<- ``processes`` (one process per GPU, the phases) <- ``cli``; ``runstart`` (the start every
one-GPU script shares: flags, log, environment, warm clocks), ``layer``, ``gpt``,
``kernels``, ``train`` <- ``compute_run`` (one-GPU compute sweeps) <- ``paired`` (host
floor and steps in rounds) <- ``interleaved`` (each case beside its own host floor) <-
``fp8host`` (an FP8 layer's host dispatch by tokens), ``steptail`` (a step in its parts, each
beside a floor call);
``compute_run``, ``hostcause``, ``powercap`` (its NVML sampler) <- ``gpubound`` (GPU-bound
steps profiled, GEMM layouts and fp16's kernels) <- ``idle`` (the idle gaps between a
GPU-bound step's kernels, by the host's phase), ``turnaround`` (the device's turnaround
between queued kernels without the profiler, and a step's idle unprofiled).
"""
