"""GPT training steps measured on one H200 against ``collsim generate`` + ``simulate``.

Measured: ``traces/h200/compute/run*/train.csv`` (:mod:`simulator.measure.train`: GPT-like
models of 125M-6.7B parameters, micro-batch 1-16, with and without full recompute, bf16,
fp32 main gradients and Adam, one GPU; each row the median over its timed steps; variants
with FP8 GEMMs and with the unfused attention).

Two kinds of run:

* **paired** runs (run5 on; :mod:`simulator.measure.paired`) measured the host floor and the
  host-bound steps in interleaved rounds on one machine: each case is compared run by run
  (``case (runN)``), its measured value the median over the run's rounds, its prediction
  made with the host floor fitted on that run's ``kernels.csv`` alone. Host (CPU) speed
  differs by some 50% between the lent machines, and a host-bound step is the host's time.
  From run8 on (:mod:`simulator.measure.interleaved`) each case was measured beside floor
  GPTs of its own model (1 layer and its layer count, the same variant) in 10-12 rounds
  seconds apart, and is predicted with that floor alone. An FP8 or unfused-attention step is
  counted only where its machine measured that model's floor (runs 7 on): the ratio of two
  floors measured on one machine does not carry to another.
* the other runs (run1-run3) measured steps without a host floor of their own: a case that
  no paired run measured is compared once, its measured value the median over those runs,
  predicted with the H200 fit's host floor (every run's). For a case a paired run measured,
  those other runs' median is shown as well, not counted (``case (runs without a floor)``).

Predicted: the same configuration written by ``collsim generate`` (``--model gpt-7b`` with
``--num-layers``, ``--hidden-size``, ``--ffn-hidden-size``, ``--num-attention-heads``,
``--seq-length``, ``--micro-batch``, ``--global-batch``, ``--recompute``, ``--fp8-format
hybrid``, ``--attention-backend unfused``, ``--world-size 1 --tp 1 --gpu h200``) and
replayed by the engine (the FP8 steps with the measured layer's strided transposes, see
:func:`_on_machine`). Nothing of these steps enters the model: its kernel parameters
come from the kernel sweep and the host floor (``kernels.csv``,
:mod:`simulator.generate.kernel_fit`), never from a step time.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import statistics
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from .common import MS, TRACES, CaseResult, read_csv_rows, rel

RUNS = TRACES / "h200" / "compute"
VARIANTS = ("fp8", "unfused")


def _variant(r: dict) -> str:
    v = r.get("variant") or "default"
    return v if v in VARIANTS else "default"


def is_paired(run_dir: Path) -> bool:
    """A run that measured its steps in rounds and its host floor beside them."""
    rows = read_csv_rows(run_dir / "train.csv")
    if not rows or not any((r.get("round") or "").strip() for r in rows):
        return False
    k = run_dir / "kernels.csv"
    return k.exists() and any(r.get("group") == "hostfloor" for r in read_csv_rows(k))


def _floors(run_dir: Path) -> tuple[set, set]:
    """(cases measured beside a host floor of their own, variants with a floor) of a run."""
    from ..generate.kernel_fit import floor_case, floor_variant
    k = run_dir / "kernels.csv"
    rows = [r for r in read_csv_rows(k) if r.get("group") == "hostfloor"] if k.exists() else []
    return {floor_case(r) for r in rows} - {""}, {floor_variant(r) for r in rows}


def measured_cases() -> dict[str, dict]:
    """key -> {"row", "steps_ms" (one value per run or round), "runs", "run" (the paired run
    or None), "counted"}: ``case (runN)`` per paired run, ``case`` for the cases only other
    runs measured, ``case (runs without a floor)`` (not counted) for the rest of those."""
    paired: dict[tuple[str, str], dict] = {}
    other: dict[str, dict] = defaultdict(lambda: {"steps_ms": [], "runs": []})
    for path in sorted(RUNS.glob("run*/train.csv")):
        run = path.parent.name
        pair = is_paired(path.parent)
        own, variants = _floors(path.parent) if pair else (set(), set())
        for r in read_csv_rows(path):
            if r.get("status") != "ok":
                continue
            if pair:
                # a variant's host-bound steps need that variant's floor from the same
                # machine: the ratio of two floors measured on one machine does not carry to
                # another (run7's FP8 / unfused ratios put run6's steps 20-30% short)
                counted = _variant(r) in variants
                c = paired.setdefault((r["case"], run), {
                    "row": r, "steps_ms": [], "runs": [], "run": run, "counted": counted,
                    "case_floor": r["case"] in own})
                c["steps_ms"].append(float(r["step_ms"]))
                c["runs"].append(f"round {r.get('round')}")
            else:
                c = other[r["case"]]
                c.setdefault("row", r)
                c["steps_ms"].append(float(r["step_ms"]))
                c["runs"].append(run)
    out: dict[str, dict] = {}
    with_pair = {case for case, _ in paired}
    for (case, run), c in sorted(paired.items()):
        out[f"{case} ({run})"] = c   # not counted: a diagnostic, its note says why
    for case, c in other.items():
        c.update(run=None, counted=case not in with_pair)
        out[case if c["counted"] else f"{case} (runs without a floor)"] = c
    return out


#: ``collsim validate --power-cap on|off``: the power-cap model for every H200 GPT step
#: (this module's and h200_hostsync's); None: ``Features``' default
POWER_CAP: contextvars.ContextVar[bool | None] = contextvars.ContextVar("power_cap",
                                                                         default=None)


def config_for(r: dict):
    from ..generate import get_preset, resolve, with_overrides
    from ..generate.features import Features
    model = with_overrides(get_preset("gpt-7b"), layers=int(r["layers"]),
                           hidden=int(r["hidden"]), ffn=int(r["ffn"]), heads=int(r["heads"]),
                           vocab=int(r["vocab"]))
    mbs, ga = int(r["mbs"]), int(r["ga"])
    v = _variant(r)
    # the measured unfused layer is plain PyTorch (paired.unfused_attention): separate scale,
    # mask and softmax kernels, no attention dropout. The measured FP8 steps never clip: their
    # gradient norm (e5m2 output gradients at unit scale) was 0.39-0.99 in all 48 steps of
    # traces/h200/compute/steptail1 and their profiled steps (runs 8-10) launch no clipping
    # scale, where every bf16 step there clipped (norm 1.6-20)
    # Our scripts' steps (plain PyTorch) add every weight's gradient to its fp32 main
    # gradient after the backward: no gradient accumulation fusion
    features = Features(fp8="hybrid" if v == "fp8" else None, check_for_nan_in_loss=False,
                        gradient_accumulation_fusion=False,
                        attention_backend="unfused" if v == "unfused" else "flash",
                        masked_softmax_fusion=False, attention_dropout=0.0,
                        clip_scale=v != "fp8")
    if POWER_CAP.get() is not None:
        features = replace(features, power_cap=bool(POWER_CAP.get()))
    return resolve(model, 1, tp=1, micro_batch=mbs, global_batch=mbs * ga,
                   seq_length=int(r["seq"]), recompute=bool(int(r["recompute"])), gpu="h200",
                   features=features)


@contextlib.contextmanager
def _on_machine(run: str | None, variant: str = "default", case: str | None = None):
    """While the block runs, the H200 spec with the host floor of ``run``'s machine (its
    kernels.csv alone; the shipped fit's where ``run`` is None; the floor GPTs measured
    beside ``case`` alone where the run has them) and, for the FP8 steps, the FP8 step as it
    was measured: plain PyTorch, its transposes strided copies (``--fp8`` prices Transformer
    Engine's fused cast-transpose), its fused Adam at :func:`fp8_adam_factor`."""
    from dataclasses import replace

    from ..generate import gpu as gpus
    from ..generate.kernel_fit import case_floor_spec, floor_case, host_floor_spec, read_kernels
    old = gpus.GPUS["h200"]
    spec = host_floor_spec(old, [RUNS / run / "kernels.csv"]) if run else old
    if run and case:
        rows = [r for r in read_kernels([RUNS / run / "kernels.csv"]) if floor_case(r) == case]
        spec = case_floor_spec(old, rows, variant) or spec
    if variant == "fp8":
        spec = replace(spec, fp8_transpose="copy", opt_adam_factor=fp8_adam_factor())
    gpus.GPUS["h200"] = spec
    try:
        yield
    finally:
        gpus.GPUS["h200"] = old


@functools.lru_cache(maxsize=1)
def fp8_adam_factor() -> float:
    """Fused Adam's device time in the measured FP8 steps over a bf16 step's of the same
    model on the same machine: the profiled steps' ``FusedAdamMathFunctor`` kernels
    (``run*/profile.csv``, CUPTI durations, the same parameters), median over every FP8
    case profiled and each bf16 case of its model in that run; 1.0 where there is none.
    Runs 8-10: 1.13-1.23 over 12 pairs, median 1.17. Why the same kernel over the same
    tensors is slower on the FP8 steps' gradients was not measured."""
    ratios = []
    for path in sorted(RUNS.glob("run*/profile.csv")):
        adam: dict[str, float] = defaultdict(float)
        for r in read_csv_rows(path):
            if r.get("device_type") == "CUDA" and "FusedAdamMathFunctor" in r.get("kernel", ""):
                adam[r["case"]] += float(r["device_us"])
        for case, us in adam.items():
            if not case.endswith("-fp8"):
                continue
            model = case.split("-s")[0] + "-s"
            ratios += [us / ref for other, ref in adam.items() if other.startswith(model)
                       and not other.endswith("-fp8") and " floor" not in other and ref > 0]
    return statistics.median(ratios) if ratios else 1.0


def predict(r: dict, cost_model, cluster, run: str | None = None,
            case: str | None = None) -> float:
    from ..engine import SimulationOptions, simulate
    from ..generate import generate
    with _on_machine(run, _variant(r), case):
        gen = generate(config_for(r), check_memory=False, path=f"h200-{r['case']}")
    res = simulate(gen.workload, cluster, cost_model, SimulationOptions())
    return res.iteration_ns / MS


def run(cost_model, cluster) -> list[CaseResult]:
    out = []
    cases = measured_cases()
    order = sorted(cases, key=lambda c: (cases[c]["run"] is not None, _variant(cases[c]["row"]),
                                         float(cases[c]["row"]["params"]), c))
    for key in order:
        c = cases[key]
        r = c["row"]
        measured = statistics.median(c["steps_ms"])
        vals = ", ".join(f"{n} {v:.2f}" for n, v in zip(c["runs"], c["steps_ms"]))
        spread = max(c["steps_ms"]) / min(c["steps_ms"]) - 1
        iqr = _iqr(c["steps_ms"]) / measured
        v = _variant(r)
        own = c.get("case_floor")
        host = (f"the host floor measured beside the case's steps in each round ({c['run']})"
                if own else f"the host floor of {c['run']} (its kernels.csv)" if c["run"]
                else "the H200 fit's host floor")
        out.append(CaseResult(
            case=f"H200 GPT step {key}", quantity="training step (median)",
            measured=measured,
            predicted=predict(r, cost_model, cluster, c["run"], r["case"] if own else None),
            primary=c["counted"],
            inputs=f"modelled: every kernel (H200 kernel fit) and its host dispatch ({host}); "
                   + ("FP8: no clipping scale (steptail1's FP8 norms below 1), fused Adam at "
                      f"x{fp8_adam_factor():.3f} (profiled FP8 / bf16 Adam kernels); "
                      if v == "fp8" else "")
                   + "measured: nothing of these steps' times",
            note=(f"{int(float(r['params'])) / 1e6:.0f}M parameters, {r['layers']} layers, "
                  f"hidden {r['hidden']}, {r['heads']} heads, seq {r['seq']}, micro-batch "
                  f"{r['mbs']} x {r['ga']}{', full recompute' if int(r['recompute']) else ''}"
                  f"{', FP8 GEMMs' if v == 'fp8' else ''}"
                  f"{', unfused attention' if v == 'unfused' else ''}; "
                  f"{'rounds' if c['run'] else 'runs'}: {vals} ms (spread {100 * spread:.0f}%"
                  + (f", interquartile {100 * iqr:.0f}% of the median"
                     if len(c["steps_ms"]) > 3 else "")
                  + ")" + ("" if c["counted"] else
                           "; not counted: the machine's host floor of this model was not "
                           "measured with the steps")),
            extra={"group": "h200_train", "spread": spread, "iqr": iqr, "variant": v,
                   "run": c["run"], "recompute": bool(int(r["recompute"]))},
            repeats=tuple(c["steps_ms"])))
    return out


def _iqr(xs: list[float]) -> float:
    """Interquartile range (linear interpolation between order statistics)."""
    if len(xs) < 2:
        return 0.0
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[2] - q[0]


def source_files() -> list[str]:
    return [rel(p) for p in sorted(RUNS.glob("run*/train.csv"))
            + sorted(RUNS.glob("run*/profile.csv"))]
