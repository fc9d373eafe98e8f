"""The GPU-bound step cases' names (simulator/measure/gpubound.py): the recompute cases that
traces/h200/compute/recompute1 measured are named as ``--cases`` asked for them."""
from __future__ import annotations

from simulator.measure import gpubound


def test_case_names_carry_recompute_and_dtype():
    # written by hand from train.case_name's pattern: model-sSEQ-bMBS[-gaGA][-rc]-DTYPE
    assert gpubound._step_case_name(("gpt-2.7b", 2048, 4, 1, "bf16")) == "gpt-2.7b-s2048-b4-bf16"
    assert gpubound._step_case_name(("gpt-2.7b", 2048, 4, 1, "bf16", True)) == \
        "gpt-2.7b-s2048-b4-rc-bf16"
    assert gpubound._step_case_name(("gpt-6.7b", 2048, 2, 4, "fp16", False)) == \
        "gpt-6.7b-s2048-b2-ga4-fp16"


def test_recompute1_cases_are_selectable():
    """The five cases of recompute1's command line are all in the pool ``--cases`` picks from,
    and none of them is in the default set (the default run is gpubound1's)."""
    asked = ("gpt-2.7b-s2048-b4-bf16,gpt-2.7b-s2048-b4-rc-bf16,gpt-6.7b-s2048-b2-rc-bf16,"
             "gpt-6.7b-s2048-b1-rc-bf16,gpt-2.7b-s2048-b8-rc-bf16").split(",")
    pool = {gpubound._step_case_name(c) for c in gpubound.RECOMPUTE_CASES}
    default = {gpubound._step_case_name(c) for c in gpubound.STEP_CASES}
    assert set(asked) <= pool
    assert not set(asked) & default
