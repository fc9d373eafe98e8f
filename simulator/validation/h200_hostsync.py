"""GPT steps measured on one H200 with a host read per micro-batch and with fp16 dynamic
loss scaling, beside plain steps, against ``collsim generate`` + ``simulate``: a check of
the host synchronisation model (simulator/generate/host_sync.py). Shown, not counted.

Measured: ``traces/h200/compute/*/train.csv`` of runs whose README says they measured
"host sync" (``simulator.measure.hostcause``'s ``sync`` phase): per case three modes in
interleaved rounds, ``plain`` (the bf16 step of ``simulator.measure.interleaved``),
``hostsync`` (plus, at the start of each micro-batch, a two-integer tensor copied to the GPU
and read back: legacy Megatron-LM's ``get_batch`` sizes read) and ``fp16`` (fp16
parameters, the loss scaled, the main gradients unscaled and checked, ``found_inf`` read on
the host before the optimizer). Each mode's measured value is the median over its rounds.

Predicted: the case as :mod:`.h200_train` configures it (the loop reads nothing back
between micro-batches: no loss check), priced with the host floor GPTs measured beside the
case in the same rounds, then ``hostsync`` as ``--get-batch legacy`` (which also prices
broadcast_data's token copy, split and mask kernels, about 0.1 ms of host dispatch a
micro-batch that the measured read does not have) and ``fp16`` as ``--fp16
--accumulate-allreduce-grads-in-fp32`` (fp32 main gradients, as measured). Compared are the
steps and each mode's ratio to the plain step of the same rounds.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from .common import MS, CaseResult, read_csv_rows, rel
from .h200_train import RUNS, _on_machine, config_for

MODES = ("plain", "hostsync", "fp16")


def runs() -> list[Path]:
    """The measured run folders whose README says they measured host syncs."""
    out = []
    for d in sorted(RUNS.glob("*")):
        readme = d / "README.md"
        if (d / "train.csv").is_file() and readme.is_file() \
                and "host sync" in readme.read_text(encoding="utf-8").lower():
            out.append(d)
    return out


def _base(case: str) -> str:
    for suffix in ("-hostsync", "-fp16"):
        if case.endswith(suffix):
            return case[:-len(suffix)]
    return case


def measured(run_dir: Path) -> dict[str, dict]:
    """case -> {"row": a plain row, mode: [step ms per round]}."""
    out: dict[str, dict] = defaultdict(dict)
    for r in read_csv_rows(run_dir / "train.csv"):
        mode = (r.get("mode") or "").strip()
        if r.get("status") != "ok" or mode not in MODES:
            continue
        c = out[_base(r["case"])]
        c.setdefault(mode, []).append(float(r["step_ms"]))
        if mode == "plain":
            c.setdefault("row", r)
    return {k: v for k, v in out.items() if "row" in v and all(m in v for m in MODES)}


def predict(r: dict, mode: str, cost_model, cluster, run: str) -> float:
    from ..engine import SimulationOptions, simulate
    from ..generate import generate
    cfg = config_for(r)
    if mode == "hostsync":
        cfg = replace(cfg, features=replace(cfg.features, get_batch="legacy"))
    elif mode == "fp16":
        cfg = replace(cfg, features=replace(cfg.features, params_dtype="fp16",
                                            accumulate_allreduce_grads_in_fp32=True))
    with _on_machine(run, "default", r["case"]):
        gen = generate(cfg, check_memory=False, path=f"h200-{r['case']}-{mode}")
    return simulate(gen.workload, cluster, cost_model, SimulationOptions()).iteration_ns / MS


def run(cost_model, cluster) -> list[CaseResult]:
    out = []
    for d in runs():
        for case, c in sorted(measured(d).items()):
            r = c["row"]
            pred = {m: predict(r, m, cost_model, cluster, d.name) for m in MODES}
            meas = {m: statistics.median(c[m]) for m in MODES}
            spread = max(c["plain"]) / min(c["plain"]) - 1
            for m in MODES:
                label = case if m == "plain" else f"{case}-{m}"
                ratio = "" if m == "plain" else (
                    f"; {m} / plain measured {meas[m] / meas['plain']:.3f}, predicted "
                    f"{pred[m] / pred['plain']:.3f}")
                out.append(CaseResult(
                    case=f"H200 host-sync check {label} ({d.name})",
                    quantity="training step (median)",
                    measured=meas[m], predicted=pred[m], primary=False,
                    inputs="modelled: every kernel (H200 kernel fit), its host dispatch (the "
                           "host floor measured beside the case) and the host syncs; "
                           "measured: nothing of these steps",
                    note=f"{len(c[m])} rounds; plain rounds spread {100 * spread:.0f}%"
                         + ratio + " (a check of the host-sync model, not counted)",
                    extra={"group": "h200_hostsync", "mode": m, "run": d.name,
                           "ratio_measured": meas[m] / meas["plain"],
                           "ratio_predicted": pred[m] / pred["plain"]}))
    return out


def source_files() -> list[str]:
    return [rel(d / "train.csv") for d in runs()]
