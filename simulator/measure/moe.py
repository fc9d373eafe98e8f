"""An expert-parallel MoE training step, timed whole and in parts (a validation case).

Each rank holds ``tokens`` tokens and ``experts / world`` experts (EP = world). A step is
forward and backward through ``layers`` MoE layers, each: gate GEMM, softmax, top-k,
permutation by expert, a count exchange (all-to-all of int64 counts, then the host reads
the splits), the dispatch all-to-all, the SwiGLU expert FFNs (three GEMMs per expert),
the combine all-to-all and the weighted un-permutation, with a residual add.

Written to ``moe_step.csv``, one row per (case, part, rank) and ``rank=max`` rows (per
step or call, the slowest rank, then the median):

* ``step``/``forward``/``backward`` -- the real step (CUDA events; ``wall_us`` host time);
* ``compute_step``/``compute_forward``/``compute_backward`` -- the same step with every
  all-to-all replaced by a local copy of the same size (same GEMM shapes, same routing);
* ``a2a_counts``, ``a2a_dispatch_lN``, ``a2a_combine_lN`` -- each all-to-all of the step
  alone, same splits, per call; the backward pass repeats dispatch and combine with
  their splits swapped, so a step makes 2 of each;
* ``a2a_per_step`` -- the sum of those per-call medians over one step.
"""
from __future__ import annotations

import os
import time
from typing import Any

from .timing import CsvOut, Ctx, combine_ranks, log, quantile, r4, time_calls, torch_dtype

MOE_COLUMNS = ["case", "part", "rank", "ranks", "time_us", "p10_us", "p90_us", "wall_us",
               "calls_per_step", "bytes", "share_remote", "tokens", "hidden", "ffn",
               "experts", "topk", "layers", "dtype", "steps", "method"]

_FUNCS: dict = {}


def _autograd_funcs():
    """The all-to-all and the local stand-in as autograd functions (built on first use)."""
    if _FUNCS:
        return _FUNCS["a2a"], _FUNCS["local"]
    import torch
    import torch.distributed as dist

    class AllToAll(torch.autograd.Function):
        @staticmethod
        def forward(fctx, x, out_splits, in_splits):
            fctx.splits = (out_splits, in_splits)
            y = x.new_empty((sum(out_splits),) + tuple(x.shape[1:]))
            dist.all_to_all_single(y, x.contiguous(), out_splits, in_splits)
            return y

        @staticmethod
        def backward(fctx, g):
            out_splits, in_splits = fctx.splits
            gx = g.new_empty((sum(in_splits),) + tuple(g.shape[1:]))
            dist.all_to_all_single(gx, g.contiguous(), in_splits, out_splits)
            return gx, None, None

    class LocalCopy(torch.autograd.Function):
        """Stand-in for an all-to-all: a local copy into a buffer of the received size."""

        @staticmethod
        def forward(fctx, x, out_rows):
            fctx.rows = x.shape[0]
            y = x.new_zeros((out_rows,) + tuple(x.shape[1:]))
            m = min(out_rows, x.shape[0])
            y[:m].copy_(x[:m])
            return y

        @staticmethod
        def backward(fctx, g):
            gx = g.new_zeros((fctx.rows,) + tuple(g.shape[1:]))
            m = min(fctx.rows, g.shape[0])
            gx[:m].copy_(g[:m])
            return gx, None

    _FUNCS.update(a2a=AllToAll, local=LocalCopy)
    return AllToAll, LocalCopy


class MoEModel:
    """``layers`` MoE layers; gate weights equal on all ranks, expert e seeded by its id."""

    def __init__(self, ctx: Ctx, case: dict, dtype):
        import torch
        self.ctx = ctx
        self.case = case
        h, f, e = case["hidden"], case["ffn"], case["experts"]
        world = ctx.world
        if e % world:
            raise ValueError(f"{e} experts do not divide over {world} ranks")
        self.local = e // world
        dev = ctx.device
        self.dtype = dtype

        def rand(shape, seed, scale):
            g = torch.Generator(device=dev)
            g.manual_seed(seed)
            return (torch.randn(shape, generator=g, device=dev, dtype=torch.float32)
                    * scale).to(dtype).requires_grad_()
        self.wg, self.w1, self.w3, self.w2 = [], [], [], []
        for layer in range(case["layers"]):
            self.wg.append(rand((h, e), 17 + 1000 * layer, h ** -0.5))
            first = ctx.rank * self.local
            ids = range(first, first + self.local)
            base = 100000 * (layer + 1)
            self.w1.append([rand((h, f), base + 3 * i, h ** -0.5) for i in ids])
            self.w3.append([rand((h, f), base + 3 * i + 1, h ** -0.5) for i in ids])
            self.w2.append([rand((f, h), base + 3 * i + 2, f ** -0.5) for i in ids])
        self.record: dict[int, tuple[list[int], list[int]]] = {}

    def params(self):
        for layer in range(self.case["layers"]):
            yield self.wg[layer]
            yield from self.w1[layer]
            yield from self.w3[layer]
            yield from self.w2[layer]

    def route(self, layer: int, x):
        import torch
        k = self.case["topk"]
        logits = x @ self.wg[layer]
        probs = torch.softmax(logits.float(), dim=-1)
        topv, topi = probs.topk(k, dim=-1)
        topv = (topv / topv.sum(-1, keepdim=True)).to(x.dtype)
        return topv, topi

    def layer_forward(self, layer: int, x, comm: bool, debug: dict | None = None):
        import torch
        import torch.distributed as dist
        import torch.nn.functional as F
        AllToAll, LocalCopy = _autograd_funcs()
        world, el, k = self.ctx.world, self.local, self.case["topk"]
        e_total = self.case["experts"]
        tokens = x.shape[0]
        topv, topi = self.route(layer, x)
        flat = topi.reshape(-1)
        order = torch.argsort(flat, stable=True)
        tok = order // k
        xs = x.index_select(0, tok)
        counts = torch.bincount(flat, minlength=e_total)
        if comm:
            recv_counts = torch.empty_like(counts)
            dist.all_to_all_single(recv_counts, counts)
            both = torch.cat([counts.view(world, el).sum(1), recv_counts]).tolist()
            in_splits, recv = both[:world], both[world:]
            self.record[layer] = (in_splits, recv)
        else:
            counts.tolist()  # the real step's host read of the splits
            in_splits, recv = self.record[layer]
        out_splits = [sum(recv[s * el:(s + 1) * el]) for s in range(world)]
        y = AllToAll.apply(xs, out_splits, in_splits) if comm \
            else LocalCopy.apply(xs, sum(out_splits))
        pieces = torch.split(y, recv)
        outs = [None] * len(pieces)
        for e in range(el):
            idx = [s * el + e for s in range(world)]
            ye = torch.cat([pieces[i] for i in idx])
            hid = F.silu(ye @ self.w1[layer][e]) * (ye @ self.w3[layer][e])
            oe = hid @ self.w2[layer][e]
            for i, part in zip(idx, torch.split(oe, [recv[i] for i in idx])):
                outs[i] = part
        z = torch.cat(outs)
        z = AllToAll.apply(z, in_splits, out_splits) if comm \
            else LocalCopy.apply(z, tokens * k)
        zw = z * topv.reshape(-1).index_select(0, order).unsqueeze(1)
        delta = torch.zeros_like(x).index_add(0, tok, zw)
        if debug is not None:
            debug.update(topv=topv, topi=topi, delta=delta)
        return x + delta

    def forward(self, x, comm: bool):
        for layer in range(self.case["layers"]):
            x = self.layer_forward(layer, x, comm)
        return x


def check_moe(ctx: Ctx, dtype) -> None:
    """A tiny EP layer against a float64 reference that holds every expert."""
    import torch
    import torch.nn.functional as F
    case: dict[str, Any] = {"name": "check", "hidden": 128, "ffn": 256, "tokens": 64,
            "experts": 2 * ctx.world, "topk": 2, "layers": 1}
    model = MoEModel(ctx, case, dtype)
    g = torch.Generator(device=ctx.device)
    g.manual_seed(7 + ctx.rank)
    x = torch.randn(64, 128, generator=g, device=ctx.device).to(dtype)
    dbg: dict = {}
    model.layer_forward(0, x, comm=True, debug=dbg)
    h, f = case["hidden"], case["ffn"]

    def weight(shape, seed, scale):
        gg = torch.Generator(device=ctx.device)
        gg.manual_seed(seed)
        return (torch.randn(shape, generator=gg, device=ctx.device) * scale).to(dtype).double()
    xd = x.double()
    ref = torch.zeros_like(xd)
    for e in range(case["experts"]):
        w1 = weight((h, f), 100000 + 3 * e, h ** -0.5)
        w3 = weight((h, f), 100000 + 3 * e + 1, h ** -0.5)
        w2 = weight((f, h), 100000 + 3 * e + 2, f ** -0.5)
        gate = (dbg["topv"].double() * (dbg["topi"] == e)).sum(-1, keepdim=True)
        ref += gate * ((F.silu(xd @ w1) * (xd @ w3)) @ w2)
    err = ((dbg["delta"].double() - ref).norm() / ref.norm()).item()
    assert err < 3e-2, f"EP MoE layer relative error {err:.2e} against a float64 reference"
    # the all-to-all's backward: d(sum(y * c))/dx must be c sent back
    AllToAll, _ = _autograd_funcs()
    in_splits, recv = model.record[0]
    el = model.local
    out_splits = [sum(recv[s * el:(s + 1) * el]) for s in range(ctx.world)]
    xs = torch.randn(sum(in_splits), 8, device=ctx.device, dtype=torch.float32,
                     requires_grad=True)
    y = AllToAll.apply(xs, out_splits, in_splits)
    back = AllToAll.apply(y, in_splits, out_splits)
    assert torch.equal(back, xs), "all-to-all there and back changed the data"
    back.sum().backward()
    assert torch.equal(xs.grad, torch.ones_like(xs)), "all-to-all backward wrong"
    ctx.sync()
    if ctx.rank == 0:
        log(f"check: EP MoE layer relative error {err:.1e} against float64; "
            "all-to-all forward/backward exact")


def time_steps(ctx: Ctx, model: MoEModel, x, comm: bool, warmup: int, steps: int) -> dict:
    import torch
    fwd, bwd, step, wall = [], [], [], []
    for it in range(warmup + steps):
        for p in model.params():
            p.grad = None
        ctx.sync()
        ctx.barrier()
        if ctx.cuda:
            e0, e1, e2 = (torch.cuda.Event(enable_timing=True) for _ in range(3))
            e0.record()
        t0 = time.perf_counter()
        y = model.forward(x, comm)
        loss = y.float().square().mean()
        if ctx.cuda:
            e1.record()
        else:
            t1 = time.perf_counter()
        loss.backward()
        if ctx.cuda:
            e2.record()
        ctx.sync()
        t2 = time.perf_counter()
        if it < warmup:
            continue
        if ctx.cuda:
            f_us, b_us = e0.elapsed_time(e1) * 1e3, e1.elapsed_time(e2) * 1e3
        else:
            f_us, b_us = (t1 - t0) * 1e6, (t2 - t1) * 1e6
        fwd.append(f_us)
        bwd.append(b_us)
        step.append(f_us + b_us)
        wall.append((t2 - t0) * 1e6)
        if not torch.isfinite(loss):
            raise RuntimeError("MoE step loss is not finite")
    return {"forward": fwd, "backward": bwd, "step": step, "wall": wall}


def run_moe_case(ctx: Ctx, case: dict) -> list[dict]:
    import torch
    import torch.distributed as dist
    cfg = ctx.cfg
    dtype = torch_dtype(cfg["dtype"])
    es = torch.tensor([], dtype=dtype).element_size()
    model = MoEModel(ctx, case, dtype)
    g = torch.Generator(device=ctx.device)
    g.manual_seed(99 + ctx.rank)
    x = torch.randn(case["tokens"], case["hidden"], generator=g, device=ctx.device).to(dtype)
    steps = cfg["moe_steps"]
    real = time_steps(ctx, model, x, True, 3, steps)
    compute = time_steps(ctx, model, x, False, 3, steps)
    # every all-to-all of the step alone, with its splits
    h, layers = case["hidden"], case["layers"]
    a2a: dict[str, tuple[dict, int, float | None]] = {}
    counts = torch.zeros(case["experts"], dtype=torch.int64, device=ctx.device)
    counts_out = torch.empty_like(counts)
    a2a["a2a_counts"] = (time_calls(ctx, lambda: dist.all_to_all_single(counts_out, counts),
                                    5, 30, 10), counts.numel() * 8, None)
    el = model.local
    for layer in range(layers):
        in_splits, recv = model.record[layer]
        out_splits = [sum(recv[s * el:(s + 1) * el]) for s in range(ctx.world)]
        for name, si, so in (("dispatch", in_splits, out_splits),
                             ("combine", out_splits, in_splits)):
            src = torch.randn(sum(si), h, device=ctx.device).to(dtype)
            dst = torch.empty(sum(so), h, device=ctx.device, dtype=dtype)
            raw = time_calls(ctx, lambda dst=dst, src=src, so=so, si=si:
                             dist.all_to_all_single(dst, src, so, si), 5, 30, 10)
            sent = sum(si)
            share = (sent - si[ctx.rank]) / sent if sent else 0.0
            a2a[f"a2a_{name}_l{layer}"] = (raw, sent * h * es, share)
    mine = {"real": real, "compute": compute, "a2a": a2a}
    everyone = ctx.gather(mine)
    if ctx.rank != 0:
        return []
    base = {"case": case["name"], "ranks": ctx.world, "tokens": case["tokens"],
            "hidden": h, "ffn": case["ffn"], "experts": case["experts"],
            "topk": case["topk"], "layers": layers, "dtype": cfg["dtype"], "steps": steps,
            "method": "torch.distributed/" + ("nccl" if ctx.cuda else "gloo")}
    rows = []

    def stat_row(part, rank, vals, wall=None, **more):
        row = dict(base, part=part, rank=rank, time_us=r4(quantile(vals, 0.5)),
                   p10_us=r4(quantile(vals, 0.1)), p90_us=r4(quantile(vals, 0.9)), **more)
        if wall:
            row["wall_us"] = r4(quantile(wall, 0.5))
        return row
    for kind, prefix in (("real", ""), ("compute", "compute_")):
        for part in ("step", "forward", "backward"):
            per = [everyone[r][kind][part] for r in range(ctx.world)]
            walls = [everyone[r][kind]["wall"] for r in range(ctx.world)]
            for r in range(ctx.world):
                rows.append(stat_row(prefix + part, r, per[r],
                                     walls[r] if part == "step" else None, calls_per_step=1))
            rows.append(stat_row(prefix + part, "max", [max(v) for v in zip(*per)],
                                 [max(v) for v in zip(*walls)] if part == "step" else None,
                                 calls_per_step=1))
    total: dict[int | str, float] = {r: 0.0 for r in [*range(ctx.world), "max"]}
    for name in a2a:
        calls = layers if name == "a2a_counts" else 2
        for r in range(ctx.world):
            raw, nbytes, share = everyone[r]["a2a"][name]
            st = combine_ranks([raw])
            rows.append(dict(base, part=name, rank=r, calls_per_step=calls, bytes=nbytes,
                             share_remote="" if share is None else round(share, 4),
                             **{k: r4(st[k]) for k in ("time_us", "p10_us", "p90_us",
                                                       "wall_us")}))
            total[r] += calls * st["time_us"]
        st = combine_ranks([everyone[r]["a2a"][name][0] for r in range(ctx.world)])
        rows.append(dict(base, part=name, rank="max", calls_per_step=calls,
                         bytes=max(everyone[r]["a2a"][name][1] for r in range(ctx.world)),
                         **{k: r4(st[k]) for k in ("time_us", "p10_us", "p90_us", "wall_us")}))
        total["max"] += calls * st["time_us"]
    for rank, t in total.items():
        rows.append(dict(base, part="a2a_per_step", rank=rank, time_us=r4(t),
                         calls_per_step=5 * layers))
    get = {(row["part"], row["rank"]): row["time_us"] for row in rows}
    log(f"moe {case['name']}: step {get[('step', 'max')]} us (fwd {get[('forward', 'max')]}, "
        f"bwd {get[('backward', 'max')]}), compute-only {get[('compute_step', 'max')]} us, "
        f"all-to-alls alone {get[('a2a_per_step', 'max')]} us per step")
    return rows


def run_moe_cases(ctx: Ctx) -> None:
    import torch
    cfg = ctx.cfg
    out = CsvOut(os.path.join(cfg["out"], "moe_step.csv"), MOE_COLUMNS) \
        if ctx.rank == 0 else None
    check_moe(ctx, torch_dtype(cfg["dtype"]))
    for case in cfg["moe_cases"]:
        if ctx.over_budget():
            if ctx.rank == 0:
                log(f"time budget spent: skipping MoE case {case['name']}")
            break
        if case["experts"] % ctx.world:
            if ctx.rank == 0:
                log(f"skipping MoE case {case['name']}: {case['experts']} experts over "
                    f"{ctx.world} ranks")
            continue
        rows = run_moe_case(ctx, case)
        if out is not None:
            out.write(rows)
        if ctx.cuda:
            torch.cuda.empty_cache()
