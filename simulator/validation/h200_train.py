"""GPT training steps measured on one H200 against ``collsim generate`` + ``simulate``.

Measured: ``traces/h200/compute/run*/train.csv`` (:mod:`simulator.measure.train`: GPT-like
models of 125M-6.7B parameters, micro-batch 1-16, with and without full recompute, bf16,
fp32 main gradients and Adam, one GPU; each run's median over its timed steps). The measured
value of a case is the median over the runs that measured it; the runs' values are in the
note.

Predicted: the same configuration written by ``collsim generate`` (``--model gpt-7b`` with
``--num-layers``, ``--hidden-size``, ``--ffn-hidden-size``, ``--num-attention-heads``,
``--seq-length``, ``--micro-batch``, ``--global-batch``, ``--recompute``, ``--world-size 1
--tp 1 --gpu h200``) and replayed by the engine. Nothing of these runs enters the model:
its kernel parameters come from the kernel sweep (``kernels.csv``,
:mod:`simulator.generate.kernel_fit`), never from a step time.
"""
from __future__ import annotations

import statistics
from collections import defaultdict

from .common import MS, TRACES, CaseResult, read_csv_rows, rel

RUNS = TRACES / "h200" / "compute"


def measured_cases() -> dict[str, dict]:
    """case -> {"row": first row, "steps_ms": [one median per run], "runs": [names]}."""
    out: dict[str, dict] = defaultdict(lambda: {"steps_ms": [], "runs": []})
    for path in sorted(RUNS.glob("run*/train.csv")):
        for r in read_csv_rows(path):
            if r.get("status") != "ok":
                continue
            c = out[r["case"]]
            c.setdefault("row", r)
            c["steps_ms"].append(float(r["step_ms"]))
            c["runs"].append(path.parent.name)
    return dict(out)


def config_for(r: dict):
    from ..generate import get_preset, resolve, with_overrides
    model = with_overrides(get_preset("gpt-7b"), layers=int(r["layers"]),
                           hidden=int(r["hidden"]), ffn=int(r["ffn"]), heads=int(r["heads"]),
                           vocab=int(r["vocab"]))
    mbs, ga = int(r["mbs"]), int(r["ga"])
    return resolve(model, 1, tp=1, micro_batch=mbs, global_batch=mbs * ga,
                   seq_length=int(r["seq"]), recompute=bool(int(r["recompute"])), gpu="h200")


def predict(r: dict, cost_model, cluster) -> float:
    from ..engine import SimulationOptions, simulate
    from ..generate import generate
    gen = generate(config_for(r), check_memory=False, path=f"h200-{r['case']}")
    res = simulate(gen.workload, cluster, cost_model, SimulationOptions())
    return res.iteration_ns / MS


def run(cost_model, cluster) -> list[CaseResult]:
    out = []
    cases = measured_cases()
    order = sorted(cases, key=lambda c: (float(cases[c]["row"]["params"]), c))
    for case in order:
        c = cases[case]
        r = c["row"]
        measured = statistics.median(c["steps_ms"])
        runs = ", ".join(f"{n} {v:.2f}" for n, v in zip(c["runs"], c["steps_ms"]))
        spread = max(c["steps_ms"]) / min(c["steps_ms"]) - 1
        out.append(CaseResult(
            case=f"H200 GPT step {case}", quantity="training step (median)",
            measured=measured, predicted=predict(r, cost_model, cluster),
            inputs="modelled: every kernel (H200 kernel fit) and its host dispatch; "
                   "measured: nothing of these runs",
            note=(f"{int(float(r['params'])) / 1e6:.0f}M parameters, {r['layers']} layers, "
                  f"hidden {r['hidden']}, {r['heads']} heads, seq {r['seq']}, micro-batch "
                  f"{r['mbs']} x {r['ga']}{', full recompute' if int(r['recompute']) else ''}; "
                  f"runs: {runs} ms (spread {100 * spread:.0f}%)"),
            extra={"group": "h200_train", "spread": spread,
                   "recompute": bool(int(r["recompute"]))}))
    return out


def source_files() -> list[str]:
    return [rel(p) for p in sorted(RUNS.glob("run*/train.csv"))]
