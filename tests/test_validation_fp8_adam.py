"""The validation's FP8 steps as measured: their fused Adam's kernels over a bf16 step's of
the same model (simulator/validation/h200_train.py fp8_adam_factor)."""
from __future__ import annotations

import csv

from simulator.validation import h200_train


def _profile(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case", "kernel", "count", "device_us", "device_type", "cpu_us"])
        w.writerows(rows)


def test_fp8_adam_factor_is_the_median_of_same_model_pairs(tmp_path, monkeypatch):
    """runA: the FP8 125M step's two FusedAdam kernel rows 600 + 600 us against the bf16
    125M step's 1000 (1.2) and the unfused one's 1100 (1.0909); the floor's and the other
    model's kernels and the CPU rows do not count. runB: 1.3B FP8 1300 against 1000 (1.3).
    Median of 1.0909, 1.2, 1.3: 1.2."""
    adam = "void multi_tensor_apply_kernel<FusedOptimizerTensorListMetadata<4>, " \
           "FusedAdamMathFunctor<float, 4>>"
    _profile(tmp_path / "runA" / "profile.csv", [
        ["gpt-125m-s1024-b4-fp8", adam, 4, 600, "CUDA", 0],
        ["gpt-125m-s1024-b4-fp8", adam, 3, 600, "CUDA", 0],
        ["gpt-125m-s1024-b4-fp8", "aten::_fused_adam_", 1, 9999, "CPU", 50],
        ["gpt-125m-s1024-b4-fp8 floor 12L", adam, 7, 5000, "CUDA", 0],
        ["gpt-125m-s1024-b4", adam, 7, 1000, "CUDA", 0],
        ["gpt-125m-s1024-b4-unfused", adam, 7, 1100, "CUDA", 0],
        ["gpt-350m-s1024-b1", adam, 18, 400, "CUDA", 0]])
    _profile(tmp_path / "runB" / "profile.csv", [
        ["gpt-1.3b-s2048-b1-fp8", adam, 64, 1300, "CUDA", 0],
        ["gpt-1.3b-s2048-b4-unfused", adam, 64, 1000, "CUDA", 0]])
    monkeypatch.setattr(h200_train, "RUNS", tmp_path)
    h200_train.fp8_adam_factor.cache_clear()
    try:
        assert h200_train.fp8_adam_factor() == 1.2
        (tmp_path / "runB" / "profile.csv").unlink()
        (tmp_path / "runA" / "profile.csv").unlink()
        h200_train.fp8_adam_factor.cache_clear()
        assert h200_train.fp8_adam_factor() == 1.0   # nothing profiled: as optstep1 timed it
    finally:
        h200_train.fp8_adam_factor.cache_clear()


def test_bundled_profiles_give_the_fp8_steps_slower_adam():
    # runs 8-10: 12 pairs between 1.13 and 1.23 (traces/h200/compute/run*/profile.csv)
    h200_train.fp8_adam_factor.cache_clear()
    assert 1.13 <= h200_train.fp8_adam_factor() <= 1.23
