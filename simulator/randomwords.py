"""The random 64-bit words the rank classes and the fabric's link classes hash with, without
``numpy.random``.

``numpy.random.default_rng(seed).integers(1, 2**63, size=n, dtype=np.uint64)`` (numpy's
SeedSequence seeding a PCG64, 128-bit LCG with the XSL-RR output, and Lemire's bounded
integers) in plain Python: the same words in the same order, so the hashes, and with them
the numbering of link classes, stay what they were. Importing ``numpy.random`` is about 3%
of a 9216-GPU ``--contention`` run's instructions; these runs draw a few hundred words.
tests/test_randomwords.py holds the words to numpy's own.
"""
from __future__ import annotations

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_M128 = (1 << 128) - 1
# numpy/random/bit_generator.pyx (SeedSequence)
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4
# PCG_DEFAULT_MULTIPLIER_128 (numpy/random/src/pcg64/pcg64.h)
_PCG_MULT = (2549297995355413924 << 64) | 4865540595714422341


def _seed_state(seed: int) -> list[int]:
    """SeedSequence(seed).generate_state(4, np.uint64): four 64-bit words."""
    entropy = []
    while True:                         # the int as 32-bit words, least significant first
        entropy.append(seed & _M32)
        seed >>= 32
        if not seed:
            break
    h = [_INIT_A]

    def hashmix(value: int) -> int:
        value ^= h[0]
        h[0] = (h[0] * _MULT_A) & _M32
        value = (value * h[0]) & _M32
        return value ^ (value >> 16)

    def mix(x: int, y: int) -> int:
        r = (_MIX_L * x - _MIX_R * y) & _M32
        return r ^ (r >> 16)

    pool = [hashmix(entropy[i] if i < len(entropy) else 0) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, len(entropy)):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(entropy[src]))
    words32 = []
    hc = _INIT_B
    for i in range(8):
        v = pool[i % _POOL] ^ hc
        hc = (hc * _MULT_B) & _M32
        v = (v * hc) & _M32
        words32.append(v ^ (v >> 16))
    # viewed as uint64 on a little-endian machine: the low word first
    return [words32[2 * i] | (words32[2 * i + 1] << 32) for i in range(4)]


class Words:
    """``numpy.random.default_rng(seed)`` as far as :meth:`integers` draws from it."""

    __slots__ = ("_state", "_inc")

    def __init__(self, seed: int):
        s = _seed_state(seed)
        initstate, initseq = (s[0] << 64) | s[1], (s[2] << 64) | s[3]
        # pcg_setseq_128_srandom_r: state 0, one step (to the increment), the seed added,
        # one more step
        self._inc = ((initseq << 1) | 1) & _M128
        self._state = (self._inc + initstate) & _M128
        self._state = (self._state * _PCG_MULT + self._inc) & _M128

    def _next64(self) -> int:
        state = self._state = (self._state * _PCG_MULT + self._inc) & _M128
        x = ((state >> 64) ^ state) & _M64
        rot = state >> 122
        return ((x >> rot) | (x << ((64 - rot) & 63))) & _M64

    def integers(self, low: int, high: int, n: int) -> list[int]:
        """``integers(low, high, size=n, dtype=np.uint64)`` (high excluded; a range wider
        than 32 bits, as the callers' [1, 2**63), where numpy uses Lemire's method)."""
        rng = high - 1 - low
        if not _M32 < rng < _M64:
            raise ValueError("only ranges wider than 32 bits and narrower than 64")
        excl = rng + 1
        out = []
        for _ in range(n):
            m = self._next64() * excl
            leftover = m & _M64
            if leftover < excl:
                threshold = (_M64 - rng) % excl
                while leftover < threshold:
                    m = self._next64() * excl
                    leftover = m & _M64
            out.append(low + (m >> 64))
        return out
