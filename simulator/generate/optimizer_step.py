"""The optimizer step as a training step runs it: its kernels and host parts in order
(docs/compute-model.md, "The optimizer step").

Megatron-LM's step on fp32 main gradients (``clip_grad_norm_fp32``, then the optimizer; the
measured :class:`simulator.measure.gpt.MegatronLikeOptimizer` does the same): the norm of
the gradients (``_foreach_norm``, ``stack``, ``vector_norm``), read on the host
(``.item()``: a sync point), clipping's scale (``_foreach_mul_``, the norm above
``--clip-grad``), fused Adam and the bf16 copy of the weights. The foreach kernels launch
in chunks (PyTorch's ``multi_tensor_apply``: at most 320 blocks of 65536 elements and, by
the number of tensor lists, 110 tensors (one list) or 36 (Adam's four) per launch), so
their host and device work is spread over :func:`launches` launches.

The parts' host and device times were measured on one H200 (traces/h200/compute/optstep1,
fitted by :func:`simulator.generate.kernel_fit.fit_optimizer_parts`): host (at the fitted
host floor's speed) per tensor and per launch, device per parameter. Replayed behind the
step's last backward (:func:`simulator.generate.host_sync.replay_step`'s ``after_step``),
the norm's enqueue overlaps what the GPU still has queued; from there on the host and the
GPU alternate as measured.
"""
from __future__ import annotations

import math

from .host_sync import sync

#: multi_tensor_apply's chunk (elements) and blocks per launch (PyTorch's MultiTensorApply)
CHUNK = 65536
BLOCKS = 320
#: tensors per launch by the number of tensor lists: one (norm, scale), four (fused Adam)
MAX_TENSORS = {1: 110, 4: 36}
#: bytes a parameter: fused Adam (fp32 weight, gradient and two moments read, three written)
#: and the bf16 copy of the weights (fp32 read, bf16 written)
ADAM_BYTES, COPY_BYTES = 28, 6


def launches(params: float, tensors: int, lists: int = 1) -> int:
    """Launches of one foreach op over ``tensors`` tensors of ``params`` elements in all:
    a launch per 320 chunks of 65536 (a tensor's last chunk partly filled: half a chunk a
    tensor on average) or per ``MAX_TENSORS[lists]`` tensors, whichever is more."""
    if tensors <= 0:
        return 0
    chunks = params / CHUNK + tensors / 2.0
    return max(1, math.ceil(tensors / MAX_TENSORS[lists]), math.ceil(chunks / BLOCKS))


def step_kernels(gpu, params: float, tensors: int, clip: bool = True,
                 read_us: float | None = None) -> tuple:
    """The step's kernels ``(device us, host us)`` and its sync point, in order, for
    :func:`simulator.generate.host_sync.run`; () where ``gpu`` has no measured parts.

    ``gpu.opt_host``: host microseconds (norm per tensor, per launch; scale per tensor, per
    launch; Adam + copy fixed, per tensor, per Adam launch); ``gpu.opt_dev``: device (norm
    fixed us, ns a parameter; scale + Adam + copy fixed us, ns a parameter). Clipping's scale
    is ``gpu.opt_clip_ns`` of the second; without ``clip`` it is neither run nor paid. Adam's
    device time is ``gpu.opt_adam_factor`` times its share of the second (by bytes)."""
    if not gpu.opt_host or not gpu.opt_dev:
        return ()
    nt, nl, mt, ml, a0, at, al = gpu.opt_host
    d0, dns, p0, pns = gpu.opt_dev
    n1, n4 = launches(params, tensors, 1), launches(params, tensors, 4)
    norm_host = nt * tensors + nl * n1
    norm_dev = d0 + dns * params / 1e3
    mul_dev = gpu.opt_clip_ns * params / 1e3
    rest_dev = max(0.0, p0 + pns * params / 1e3 - mul_dev)
    if gpu.opt_adam_factor != 1.0:   # Adam's share of it by the bytes each moves
        share = ADAM_BYTES / (ADAM_BYTES + COPY_BYTES)
        rest_dev *= 1.0 + (gpu.opt_adam_factor - 1.0) * share
    read = gpu.host_us("float.fwd") if read_us is None else read_us
    out = [(norm_dev / n1, norm_host / n1)] * n1 + [sync(read)]
    if clip:
        out += [(mul_dev / n1, (mt * tensors + ml * n1) / n1)] * n1
    # Adam's Python (its parameter groups, per tensor) runs before its launches
    out += [(0.0, a0 + at * tensors)] + [(rest_dev / n4, al)] * n4
    return tuple(out)
