"""Where the host waits for the GPU inside a training step, and the step's kernel chain
replayed across those waits (docs/compute-model.md, "Host synchronisation").

A kernel of a chain is ``(device us, host us)``: the host spends its dispatch time, then the
GPU runs it once it is issued and the previous kernel is done. A *sync point* is
``(0, host us, True)``: the host first waits until the GPU has finished everything issued
before it (a ``.item()``, ``.cpu()``, ``torch.cuda.synchronize()``), then spends ``host us``
(reading the value back, the next host-side work). So the host's lead is gone at a sync: the
GPU's queue is empty when the host resumes, and the GPU waits for its next dispatches.
Nothing here is fitted: the waits follow from the kernels' own device and host times.

Megatron-LM's host reads that fall inside a step (its source, read for semantics):

* the legacy ``get_batch`` (``tensor_parallel.broadcast_data``) broadcasts the batch's key
  sizes over TP and moves them to the CPU (``.cpu()``) every micro-batch, before the
  forward; megatron-core's ``get_batch_on_this_tp_rank`` (pretrain_gpt.py from 2024)
  broadcasts tensors of known shapes and reads nothing back;
* ``--check-for-nan-in-loss-and-grad`` (on by default since late 2023): the loss function
  tests ``loss.isnan()`` on the host every micro-batch, between its forward and backward;
* pipeline parallelism: the batched p2p exchange is followed by ``torch.cuda.synchronize()``
  (``batch_p2p_sync``, on by default), so with PP > 1 every forward and backward of a
  micro-batch starts from a drained GPU;
* the MoE alltoall token dispatcher reads the split sizes on the host once per MoE layer's
  forward, before the dispatch all-to-all (none when the input is padded to capacity):
  :mod:`.moe` puts that sync point in the permutation's kernels;
* fp16 with a loss scaler: ``found_inf`` all-reduced (MAX) and read on the host before the
  optimizer step (:mod:`.compute` prices its kernels); the gradient norm's ``.item()`` before
  clipping (in the measured optimizer step, :mod:`.compute`).
"""
from __future__ import annotations

#: micro-batches replayed at most; later ones repeat the last (see :func:`replay_step`)
MAX_REPLAYED = 64


def sync(host_us: float = 0.0) -> tuple:
    """A sync point: the host waits for the GPU, then spends ``host_us``."""
    return (0.0, float(host_us), True)


def run(kernels, issued: float = 0.0, gpu_free: float = 0.0) -> tuple[float, float]:
    """(host clock, GPU-free time) after replaying ``kernels`` from that state."""
    for k in kernels:
        if len(k) > 2 and k[2] is True:   # a sync point: the host waits for the GPU's queue
            issued = max(issued, gpu_free)
        issued += k[1]
        gpu_free = max(gpu_free, issued) + k[0]
    return issued, gpu_free


def replay_step(forward, backward, micro_batches: int, before_forward=(),
                before_backward=(), before_step=()) -> tuple[float, float]:
    """(forward, backward) time of a micro-batch, averaged over a step of ``micro_batches``
    replayed as one chain: ``before_forward + forward``, then ``before_backward +
    backward``, micro-batch after micro-batch, the host's lead carried from one to the next
    except where a sync point drains it; ``before_step`` (the main gradients' zeroing) opens
    the first micro-batch's forward. A part's time is the GPU-free time at its end less
    that at the end of the part before (the first starts at 0 from an idle host and GPU), so
    the parts add up to the chain.

    At most :data:`MAX_REPLAYED` micro-batches are replayed; the replay stops early once a
    micro-batch takes what the one before took (the lead has settled: host-bound chains
    settle after one, GPU-bound ones once the lead covers every host-bound stretch), and the
    remaining micro-batches repeat the last one replayed."""
    f, b, _ = _replay(forward, backward, micro_batches, before_forward, before_backward,
                      before_step)
    return f, b


def step_tail(forward, backward, micro_batches: int, after_step, before_forward=(),
              before_backward=(), before_step=()) -> float:
    """What ``after_step`` (the optimizer step's kernels) adds to the step of
    :func:`replay_step` when it is replayed behind the last micro-batch's backward: the
    GPU-free time after it less that before it. The host starts it where it left the
    backward, so what the GPU still has queued then hides the host's first dispatches. Where
    the replay stopped early (the micro-batches settled), it starts from the last replayed
    micro-batch's end, whose host lead the rest repeat."""
    _, _, (issued, gpu) = _replay(forward, backward, micro_batches, before_forward,
                                  before_backward, before_step)
    _, end = run(after_step, issued, gpu)
    return end - gpu


def _replay(forward, backward, micro_batches, before_forward, before_backward, before_step):
    """(forward, backward averages, (host clock, GPU-free time) at the last replayed
    micro-batch's end) of :func:`replay_step`."""
    n = max(1, int(micro_batches))
    fwd = tuple(before_forward) + tuple(forward)
    bwd = tuple(before_backward) + tuple(backward)
    issued = gpu = 0.0
    total_f = total_b = 0.0
    last = None
    for i in range(min(n, MAX_REPLAYED)):
        start = gpu
        if i == 0:
            issued, gpu = run(before_step, issued, gpu)
        issued, gpu = run(fwd, issued, gpu)
        f = gpu - start
        mid = gpu
        issued, gpu = run(bwd, issued, gpu)
        b = gpu - mid
        total_f += f
        total_b += b
        if last is not None and abs(f - last[0]) <= 1e-9 * max(f, 1.0) \
                and abs(b - last[1]) <= 1e-9 * max(b, 1.0):
            rest = n - i - 1
            total_f += rest * f
            total_b += rest * b
            break
        last = (f, b)
    else:
        rest = n - min(n, MAX_REPLAYED)
        total_f += rest * f
        total_b += rest * b
    return total_f / n, total_b / n, (issued, gpu)
