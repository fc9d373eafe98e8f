"""The published architectures as presets: each one's parameter count is the published one."""
from __future__ import annotations

import pytest

from simulator.generate import get_preset, resolve
from simulator.generate.sizes import megatron_params

# Narayanan et al. 2021, Table 1: (preset, published billions). The paper counts
# P = 12 l h^2 (1 + 13/(12h) + (V+s)/(12 l h)) with V = 51200, s = 2048; worked by hand:
#   1.7B:  l 24,  h 2304:  12*24*2304^2 = 1,528,823,808 x (1 + 0.00047 + 53248/663552)
#          = 1,652,226,048
#   3.6B:  l 30,  h 3072:  3,397,386,240 x 1.04850            = 3,562,162,176
#   7.5B:  l 36,  h 4096:  7,247,757,312 x 1.03036            = 7,467,778,048
#   18.4B: l 40,  h 6144:  18,119,393,280 x 1.01823           = 18,449,743,872
#   39.1B: l 48,  h 8192:  38,654,705,664 x 1.01142           = 39,096,025,088
#   76.1B: l 60,  h 10240: 75,497,472,000 x 1.00733           = 76,050,718,720
#   145.6B: l 80, h 12288: 144,955,146,240 x 1.00460          = 145,622,237,184
#   310.1B: l 96, h 16384: 309,237,645,312 x 1.00289          = 310,130,507,776
#   529.6B: l 105, h 20480: 528,482,304,000 x 1.00212         = 529,600,778,240
#   1008.0B: l 128, h 25600: 1,006,632,960,000 x 1.00140      = 1,008,038,707,200
# The simulator counts no biases (13h per layer in the formula, 2h of norm weights here) and
# one final norm (h): exactly 11 l h - h fewer, 11/(12h) of the model (0.04% at h 2304).
MEGATRON_2021 = [
    ("gpt-1.7b", 1.7, 1_652_226_048), ("gpt-3.6b", 3.6, 3_562_162_176),
    ("gpt-7.5b", 7.5, 7_467_778_048), ("gpt-18b", 18.4, 18_449_743_872),
    ("gpt-39b", 39.1, 39_096_025_088), ("gpt-76b", 76.1, 76_050_718_720),
    ("gpt-145b", 145.6, 145_622_237_184), ("gpt-310b", 310.1, 310_130_507_776),
    ("gpt-530b", 529.6, 529_600_778_240), ("gpt-1t", 1008.0, 1_008_038_707_200),
]

# GPT-3 (Brown et al. 2020, Table 2.1), the same formula with V = 50257 (the simulator pads
# it to 50304 at TP 1: 47 h more), s = 2048:
#   125M: 12 l h^2 = 84,934,656; + 13 l h = 119,808; + (V+s) h = 40,170,240 -> 125,224,704
#   350M: 301,989,888 + 319,488 + 53,560,320 = 355,869,696 (published "350M": 1.7% low)
#   760M: 679,477,248 + 479,232 + 80,340,480 = 760,296,960
#   1.3B: 1,207,959,552 + 638,976 + 107,120,640 = 1,315,719,168
#   2.7B: 2,516,582,400 + 1,064,960 + 133,900,800 = 2,651,548,160
#   6.7B: 6,442,450,944 + 1,703,936 + 214,241,280 = 6,658,396,160
#   13B: 12,582,912,000 + 2,662,400 + 267,801,600 = 12,853,376,000
#   175B: 173,946,175,488 + 15,335,424 + 642,723,840 = 174,604,234,752
# The paper's names are rounded loosely (350M for 356M), so within 2% of the name; exactly
# the formula less 11 l h - h (as above) plus the padding's 47 h.
GPT3 = [
    ("gpt3-125m", 0.125, 125_224_704), ("gpt3-350m", 0.35, 355_869_696),
    ("gpt3-760m", 0.76, 760_296_960), ("gpt3-1.3b", 1.3, 1_315_719_168),
    ("gpt3-2.7b", 2.7, 2_651_548_160), ("gpt3-6.7b", 6.7, 6_658_396_160),
    ("gpt3-13b", 13.0, 12_853_376_000), ("gpt3-175b", 175.0, 174_604_234_752),
]

# BLOOM: the exact counts its model cards publish, which are l (12 h^2 + 13 h) + V h + 4 h
# (biases, the embedding and final norms; V = 250880, ALiBi: no position table), e.g.
# 176B: 70 x (12 x 14336^2 + 13 x 14336) + 250880 x 14336 + 4 x 14336 = 176,247,271,424.
BLOOM = [
    ("bloom-560m", 559_214_592), ("bloom-1b1", 1_065_314_304), ("bloom-1b7", 1_722_408_960),
    ("bloom-3b", 3_002_557_440), ("bloom-7b1", 7_069_016_064),
    ("bloom-176b", 176_247_271_424),
]


def _no_biases(name: str, formula: int, padding: int = 0) -> int:
    """The formula's count without the biases, with the final norm and the padded rows."""
    m = get_preset(name)
    return formula - 11 * m.layers * m.hidden + m.hidden + padding * m.hidden


def _count(name: str) -> int:
    cfg = resolve(get_preset(name), 1, tp=1, global_batch=1, seq_length=2048)
    return megatron_params(cfg).total_model


@pytest.mark.parametrize("name,published_b,formula", MEGATRON_2021)
def test_megatron_2021_sizes(name, published_b, formula):
    n = _count(name)
    assert round(formula / 1e9, 1) == published_b      # the hand derivation above
    assert n == _no_biases(name, formula)
    # so within the published rounding (0.05 B) and the biases (76.1B: 76.044 B)
    m = get_preset(name)
    assert abs(n / 1e9 - published_b) <= 0.05 + 11 * m.layers * m.hidden / 1e9


@pytest.mark.parametrize("name,published_b,formula", GPT3)
def test_gpt3_sizes(name, published_b, formula):
    n = _count(name)
    assert abs(n / (published_b * 1e9) - 1) < 0.02
    assert n == _no_biases(name, formula, padding=50304 - 50257)


@pytest.mark.parametrize("name,published", BLOOM)
def test_bloom_sizes(name, published):
    # without the biases and the embedding norm: 11 l h + 3 h fewer (250880 needs no padding)
    m = get_preset(name)
    assert _count(name) == published - 11 * m.layers * m.hidden - 3 * m.hidden
    assert abs(_count(name) / published - 1) < 1e-3


def test_the_papers_printed_sizes_name_the_presets():
    assert get_preset("gpt-529.6B").name == "gpt-530b"
    assert get_preset("GPT-1T").name == "gpt-1t"
    assert get_preset("gpt-145.6b") == get_preset("gpt-145b")
    m = get_preset("gpt-1t")
    assert (m.layers, m.hidden, m.heads, m.ffn, m.vocab, m.max_position) == \
        (128, 25600, 160, 102400, 51200, 2048)
