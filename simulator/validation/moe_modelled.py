"""Cases: the measured EP MoE steps (H200 x2 and x4) with their compute modelled too.

:mod:`.moe_step` and :mod:`.h200x4` price those steps from the measured compute-only step;
here the compute comes from ``collsim generate``'s kernel model instead
(:func:`simulator.generate.moe.moe_parts` on the H200 fit, the same pieces a generated
Megatron-core MoE layer gets), so the cases test the MoE kernel model: the per-expert GEMMs
at their small token counts, one launch per local expert with its host dispatch, the router
and permutation kernels. The measured layer (``simulator/measure/moe.py``) is not
Megatron's, and the differences are modelled as Megatron's: its first expert linear layer is
two GEMMs (gate and up) where Megatron's is one of twice the width; it has no layer norm and
no dropout (none priced here), a plain residual add; its count exchange is an all-to-all
(priced from the measured bytes as in :mod:`.moe_step`).

The forward and the backward are each one kernel chain over the layers; in each layer's
forward the host reads the split sizes before the dispatch (the sync point the generated
layer carries, :func:`simulator.generate.moe.host_sync_per_layer`), as the measured layer
does (``.tolist()``), so its lead is gone there. The all-to-alls are priced as in
:mod:`.moe_step` (blocking). Diagnostic, not counted: the counted cases take the measured
compute.
"""
from __future__ import annotations

from ..cluster import Cluster
from .common import TRACES, CaseResult, rel

RUNS = [("H200x2", TRACES / "h200x2" / "moe_step.csv", None),
        ("H200x4", TRACES / "h200x4" / "moe_step.csv", TRACES / "h200x4" / "calib_h200x4.yaml")]


def modelled_compute_us(parts: dict) -> dict:
    """(forward, backward) microseconds of the case's layers from the kernel model."""
    from ..generate.compute import Cost, Z, _Kernels, _sum, host_scales
    from ..generate.config import resolve
    from ..generate.features import Features
    from ..generate.models import ModelSpec
    from ..generate.moe import moe_parts

    first = next(iter(parts.values()))
    h, f, e, k = (int(first[c]) for c in ("hidden", "ffn", "experts", "topk"))
    tokens, layers, ranks = int(first["tokens"]), int(first["layers"]), int(first["ranks"])
    model = ModelSpec("moe-step", layers=layers, hidden=h, ffn=f, heads=max(1, h // 128),
                      vocab=1024, max_position=0, gated_mlp=True, tied_embeddings=False,
                      experts=e, topk=k)
    # the measured step is plain PyTorch: no gradient accumulation fusion
    cfg = resolve(model, ranks, tp=1, ep=ranks, seq_length=tokens, global_batch=ranks,
                  gpu="h200", distributed_optimizer=True,
                  features=Features(gradient_accumulation_fusion=False))
    gpu = cfg.gpu_spec
    K = _Kernels(gpu, *host_scales(gpu))
    T = tokens
    resid = _sum(K.mem("add", 6 * T * h, cols=h), K.grad_sum(6 * T * h, h))
    p = moe_parts(K, cfg, 2, (Z, Z, Z), resid)
    order = [p["moe_router"], p["moe_permute"], p["moe_experts"], p["moe_unpermute"]]
    fwd_layer = sum((q[0] for q in order), Z)
    bwd_layer = sum((q[1] + q[2] for q in order[::-1]), Z)
    fwd = Cost(fwd_layer.kernels * layers).us
    bwd = Cost(bwd_layer.kernels * layers).us
    return {"fwd_us": fwd, "bwd_us": bwd, "fwd_device_us": layers * fwd_layer.dev,
            "bwd_device_us": layers * bwd_layer.dev,
            "fwd_host_us": layers * fwd_layer.host, "bwd_host_us": layers * bwd_layer.host}


def run(cost_model, cluster: Cluster) -> list[CaseResult]:
    from ..calibration import load_calibration
    from .moe_step import _parts, predict_case

    out = []
    for label, path, calibration in RUNS:
        if not path.exists():
            continue
        cost = load_calibration(calibration, cluster=cluster) \
            if calibration is not None and calibration.exists() else cost_model
        data = _parts(path)
        for name in sorted(data, key=lambda n: (n != "mixtral", n)):
            parts = data[name]
            c = modelled_compute_us(parts)
            p = predict_case(parts, cost, cluster, compute_us=(c["fwd_us"], c["bwd_us"]))
            measured_c = float(parts["compute_step"]["time_us"]) / 1e3
            cfg = parts["step"]
            out.append(CaseResult(
                case=f"{label} EP MoE step '{name}' (run 2), compute modelled",
                quantity="step (slowest rank, median)",
                measured=float(cfg["time_us"]) / 1e3, predicted=p["step_ms"], primary=False,
                inputs=("modelled: every kernel (collsim generate's MoE layer on the H200 fit: "
                        "sequential expert GEMMs, router, permutations, host dispatch) and the "
                        "all-to-alls (calibration); measured: the all-to-all sizes"),
                note=(f"{rel(path)}; modelled compute {p['compute_ms']:.2f} ms (device "
                      f"{(c['fwd_device_us'] + c['bwd_device_us']) / 1e3:.2f}, host "
                      f"{(c['fwd_host_us'] + c['bwd_host_us']) / 1e3:.2f}) against the "
                      f"measured compute-only step {measured_c:.2f} ms (with its local "
                      f"stand-ins, {p['standins_ms']:.2f} ms modelled)"),
                extra={**p, **c}))
    return out


def source_files() -> list[str]:
    return [rel(p) for _, p, _ in RUNS if p.exists()]
