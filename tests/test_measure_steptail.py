"""The step-in-parts measurement's case list and columns (no torch needed)."""
from simulator.measure import steptail


def test_cases_are_model_seq_and_micro_batch():
    assert steptail.parse_cases("gpt-125m:1024x4, gpt-1.3b:2048x1") == [
        ("gpt-125m", 1024, 4), ("gpt-1.3b", 2048, 1)]


def test_every_part_has_a_host_and_a_gpu_time():
    # the tail's split needs the host's and the GPU's time at each part of one step, beside
    # the floor call made right before it
    for p in ("enq", "norm", "read", "clip", "adam", "copy"):
        assert f"host_{p}_ms" in steptail.COLUMNS and f"gpu_{p}_ms" in steptail.COLUMNS
    for col in ("floor_host_ms", "step_ms", "grad_norm", "clipped", "round"):
        assert col in steptail.COLUMNS
