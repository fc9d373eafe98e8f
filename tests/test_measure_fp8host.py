"""The FP8 host-dispatch measurement's shapes and its columns (no torch needed)."""
from simulator.measure import fp8host


def test_layer_shapes_are_the_four_gemms_of_a_gpt_layer():
    # 125M: hidden 768, MLP 4 x 768 = 3072; y[T, n] = x[T, k] W[n, k]^T:
    # QKV 2304 x 768 (3 x 768), projection 768 x 768, MLP in 3072 x 768, MLP out 768 x 3072
    assert fp8host.layer_shapes(768, 3072) == [("qkv", 2304, 768), ("proj", 768, 768),
                                               ("fc1", 3072, 768), ("fc2", 768, 3072)]


def test_every_op_is_timed_per_token_count_and_round():
    # the ratio of one op's host time at two token counts needs both in one row's keys
    for col in ("op", "tokens", "round", "host_us"):
        assert col in fp8host.OPS_COLUMNS
    # the FP8 layer's three GEMM layouts and its bf16 counterparts are all measured
    assert {"fp8_fwd", "fp8_dgrad", "fp8_wgrad", "bf16_fwd", "bf16_dgrad",
            "bf16_wgrad"} <= set(fp8host.OPS)
