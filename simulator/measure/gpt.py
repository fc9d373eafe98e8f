"""A GPT-like model and a Megatron-like training step in plain PyTorch (one GPU).

What ``collsim generate --model gpt-*`` describes, at world size 1: learned position
embeddings (``max_position`` rows), a word embedding tied with the output layer (vocabulary
padded to a multiple of 128), pre-LayerNorm decoder layers with biases, multi-head attention
through ``F.scaled_dot_product_attention`` (causal; PyTorch's backend choice, cuDNN's fused
attention on an H200 with PyTorch 2.11), a GELU (tanh) MLP of ``ffn`` columns, hidden dropout
(after the embedding, the attention projection and the MLP; no attention dropout), a final
LayerNorm, and the loss as Megatron computes it: logits upcast to float32, cross entropy.

The step follows Megatron-LM's mixed-precision optimizer (bf16 parameters, fp32 main
gradients, fp32 master weights, Adam):

1. zero the fp32 main-gradient buffer (one flat buffer);
2. per micro-batch: forward, backward (autograd writes bf16 gradients), then add them into
   the fp32 main gradients (``torch._foreach_add_``; Megatron fuses this into its wgrad GEMMs
   or a per-parameter hook);
3. gradient norm over the main gradients (``torch._foreach_norm``), read on the host
   (Megatron's ``clip_grad_norm_fp32`` calls ``.item()``), scale when above 1.0;
4. Adam (``torch.optim.Adam(fused=True)``) on the fp32 master weights;
5. copy the master weights into the bf16 parameters (one flat copy).

Full recompute (``recompute=True``) checkpoints every layer's input
(``torch.utils.checkpoint``, non-reentrant), as Megatron's ``--recompute-granularity full
--recompute-method uniform --recompute-num-layers 1`` does.

Torch is imported inside functions only.
"""
from __future__ import annotations

import math
from typing import Any


def padded_vocab(vocab: int, multiple: int = 128) -> int:
    return -(-vocab // multiple) * multiple


def param_shapes(layers: int, hidden: int, ffn: int, vocab: int, max_position: int):
    """(name, shape) of every parameter, in order (the flat buffers' layout)."""
    h = hidden
    shapes: list[tuple[str, tuple[int, ...]]] = [("wte", (padded_vocab(vocab), h)),
                                                 ("wpe", (max_position, h))]
    for i in range(layers):
        shapes += [(f"l{i}.ln1_w", (h,)), (f"l{i}.ln1_b", (h,)),
                   (f"l{i}.wqkv", (3 * h, h)), (f"l{i}.bqkv", (3 * h,)),
                   (f"l{i}.wo", (h, h)), (f"l{i}.bo", (h,)),
                   (f"l{i}.ln2_w", (h,)), (f"l{i}.ln2_b", (h,)),
                   (f"l{i}.w1", (ffn, h)), (f"l{i}.b1", (ffn,)),
                   (f"l{i}.w2", (h, ffn)), (f"l{i}.b2", (h,))]
    shapes += [("lnf_w", (h,)), ("lnf_b", (h,))]
    return shapes


def param_count(layers: int, hidden: int, ffn: int, vocab: int, max_position: int) -> int:
    return sum(math.prod(s) for _, s in param_shapes(layers, hidden, ffn, vocab, max_position))


class GPTModel:
    """Functional GPT over views of one flat bf16 parameter buffer."""

    def __init__(self, layers: int, hidden: int, ffn: int, heads: int, vocab: int,
                 max_position: int, device, dtype, hidden_dropout: float = 0.1,
                 recompute: bool = False, seed: int = 0):
        import torch
        self.L, self.h, self.ffn, self.heads = layers, hidden, ffn, heads
        self.hd = hidden // heads
        self.vocab = vocab
        self.p_drop = hidden_dropout
        self.recompute = recompute
        shapes = param_shapes(layers, hidden, ffn, vocab, max_position)
        n = sum(math.prod(s) for _, s in shapes)
        self.numel = n
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        # master weights (fp32) first: initialised there, copied to the bf16 parameters
        self.master_flat = torch.empty(n, device=device, dtype=torch.float32)
        self.flat = torch.empty(n, device=device, dtype=dtype)
        self.main_grad_flat = torch.zeros(n, device=device, dtype=torch.float32)
        self.p, self.master, self.main_grad = {}, {}, {}
        off = 0
        for name, shape in shapes:
            k = math.prod(shape)
            mv = self.master_flat[off:off + k].view(shape)
            base = name.split(".")[-1]
            if base.startswith(("ln", "lnf")) and base.endswith("_w"):
                mv.fill_(1.0)
            elif base.startswith("b") or base.endswith("_b"):
                mv.zero_()
            else:
                mv.normal_(0.0, 0.02, generator=gen)
            self.master[name] = mv
            self.main_grad[name] = self.main_grad_flat[off:off + k].view(shape)
            off += k
        self.flat.copy_(self.master_flat)
        off = 0
        for name, shape in shapes:
            k = math.prod(shape)
            self.p[name] = self.flat[off:off + k].view(shape).requires_grad_()
            off += k
        self.names = [name for name, _ in shapes]

    # -- forward ---------------------------------------------------------------------
    def _ln(self, x, w, b):
        import torch.nn.functional as F
        return F.layer_norm(x, (self.h,), self.p[w], self.p[b], 1e-5)

    def _drop(self, x):
        import torch.nn.functional as F
        return F.dropout(x, self.p_drop, training=True) if self.p_drop > 0 else x

    def layer(self, i: int, x):
        import torch.nn.functional as F
        p = self.p
        b, s = x.shape[0], x.shape[1]
        nh, hd = self.heads, self.hd
        y = self._ln(x, f"l{i}.ln1_w", f"l{i}.ln1_b")
        qkv = F.linear(y, p[f"l{i}.wqkv"], p[f"l{i}.bqkv"]).view(b, s, 3, nh, hd)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o = o.transpose(1, 2).reshape(b, s, nh * hd)
        x = x + self._drop(F.linear(o, p[f"l{i}.wo"], p[f"l{i}.bo"]))
        y = self._ln(x, f"l{i}.ln2_w", f"l{i}.ln2_b")
        u = F.gelu(F.linear(y, p[f"l{i}.w1"], p[f"l{i}.b1"]), approximate="tanh")
        return x + self._drop(F.linear(u, p[f"l{i}.w2"], p[f"l{i}.b2"]))

    def loss(self, ids, targets):
        import torch.nn.functional as F
        from torch.utils.checkpoint import checkpoint
        s = ids.shape[1]
        x = F.embedding(ids, self.p["wte"]) + self.p["wpe"][:s]
        x = self._drop(x)
        for i in range(self.L):
            if self.recompute:
                x = checkpoint(self.layer, i, x, use_reentrant=False)
            else:
                x = self.layer(i, x)
        x = self._ln(x, "lnf_w", "lnf_b")
        logits = F.linear(x, self.p["wte"])
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))

    def params(self):
        return [self.p[n] for n in self.names]


class MegatronLikeOptimizer:
    """fp32 main gradients, gradient clipping, fused Adam on fp32 master weights."""

    def __init__(self, model: GPTModel, lr: float = 1e-4, clip: float = 1.0):
        import torch
        self.model = model
        self.clip = clip
        self.masters = [torch.nn.Parameter(model.master[n]) for n in model.names]
        for mp, n in zip(self.masters, model.names):
            mp.grad = model.main_grad[n]
        self.grads = [model.main_grad[n] for n in model.names]
        self.adam = torch.optim.Adam(self.masters, lr=lr, betas=(0.9, 0.95), eps=1e-8,
                                     fused=True)

    def zero_grad(self):
        self.model.main_grad_flat.zero_()

    def accumulate(self):
        import torch
        ps = self.model.params()
        torch._foreach_add_(self.grads, [p.grad for p in ps])
        for p in ps:
            p.grad = None

    def step(self):
        import torch
        norms = torch._foreach_norm(self.grads)
        total = torch.linalg.vector_norm(torch.stack(norms)).item()   # host sync, as Megatron
        coef = self.clip / (total + 1e-6)
        if coef < 1.0:
            torch._foreach_mul_(self.grads, coef)
        self.adam.step()
        self.model.flat.copy_(self.model.master_flat)


def train_step(model: GPTModel, opt: MegatronLikeOptimizer, batches) -> Any:
    """One iteration over ``batches`` (list of (ids, targets)); returns the last loss
    (a device tensor: read it after the timing)."""
    opt.zero_grad()
    loss = None
    for ids, tgt in batches:
        loss = model.loss(ids, tgt) / len(batches)
        loss.backward()
        opt.accumulate()
    opt.step()
    if loss is None:
        raise ValueError("train_step needs at least one batch")
    return loss
