"""simulator/randomwords.py: numpy.random.default_rng(seed).integers(1, 2**63, ...) without
numpy.random, word for word (the reference is numpy's own generator, a separate
implementation in C)."""
import numpy as np
import pytest

from simulator.randomwords import Words


@pytest.mark.parametrize("seed", [0, 1, 0xFAB, 0x5EED, 2**32 + 5, 2**70 + 3])
def test_the_words_are_numpys_in_order_across_calls(seed):
    rng, words = np.random.default_rng(seed), Words(seed)
    for n in (1, 7, 300, 0, 5):
        want = rng.integers(1, 2**63, size=n, dtype=np.uint64).tolist()
        assert words.integers(1, 2**63, n) == want


def test_other_wide_ranges_are_numpys_too():
    # [0, 2**64 - 1), the widest range numpy draws by Lemire's method, and [5, 2**40)
    for low, high in ((0, 2**64 - 1), (5, 2**40)):
        rng, words = np.random.default_rng(99), Words(99)
        assert words.integers(low, high, 200) == rng.integers(
            low, high, size=200, dtype=np.uint64).tolist()


def test_a_narrow_range_is_refused():
    # numpy draws 32-bit words for ranges that fit 32 bits: another stream, not made here
    with pytest.raises(ValueError):
        Words(1).integers(0, 2**20, 3)
