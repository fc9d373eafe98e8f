"""The string checks that stand for regexes on the default simulate path read exactly what
the regexes read (units, numbers, terminal escapes), so a run need not import ``re``.

Each reference below is the regex code as it was before (the patterns copied verbatim);
the checks under test answer for the texts they know and hand the others to the same
regexes, so every text must give the same value, or the same error message.
"""
from __future__ import annotations

import random
import re

import pytest

from simulator import units
from simulator.readers.numbers import parse_int
from simulator.report.escape import for_terminal

BW_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z/]*)\s*$")
LATENCY_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ns|us|ms|s)?\s*$")
SIZE_RE = re.compile(r"^\s*([0-9]+)\s*([KMGTP]?)(i?B?)\s*$", re.IGNORECASE)
INT_RE = re.compile(r"[-+]?[0-9]+\Z", re.ASCII)
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# what the checks look at, and what only the regexes know (spaces, exponents, non-ASCII
# digits and letters, the Kelvin sign IGNORECASE matches for K, newlines)
ALPHABET = "0123456789..eE+-/ \n\tGgBbMmKkTtPpIiitsnu%x\u212a\u0661\u00e9\u200e\x1b\x7f"
WORDS = ["", "0", "1", "400", "0.05", ".5", "5.", "1.2.3", "1e3", "450", "3600", "1e-310",
         "1" * 31, "1" * 45, "GB/s", "Gbit/s", "Gbps", "gbps", "Gb/s", "Tb/s", "Mb/s", "TB/s",
         "us", "ns", "ms", "s", "K", "KiB", "kib", "MB", "Gi", "PB", "iB", "e", "E5"]


def _texts(n=20000, seed=18):
    rng = random.Random(seed)
    out = [a + b for a in WORDS for b in WORDS]
    for _ in range(n):
        parts = [rng.choice(WORDS) if rng.random() < 0.6 else rng.choice(ALPHABET)
                 for _ in range(rng.randint(1, 4))]
        out.append("".join(parts))
    return out


def _outcome(f, text):
    try:
        return ("value", repr(f(text)))
    except ValueError as exc:
        return ("error", str(exc))


def _bandwidth_before(text):
    m = BW_RE.match(text)
    if not m:
        raise ValueError("expected a bandwidth like 50, 50GB/s or 400Gbit/s, "
                         f"got {units._shown(text)}")
    value, unit = float(m.group(1)), m.group(2)
    key = unit.lower()
    if unit in ("Gb/s", "Tb/s", "Mb/s"):
        key = unit[0].lower() + "bit/s"
    if key not in units._BW_UNITS:
        raise ValueError(f"unknown bandwidth unit {units._shown(unit)} in "
                         f"{units._shown(text)} (use GB/s or Gbit/s)")
    gbps = value * units._BW_UNITS[key]
    if not gbps > 0:
        raise ValueError(f"bandwidth must be positive, got {units._shown(text)}")
    if not 1e-6 <= gbps <= 1e9:
        raise ValueError(f"bandwidth {units._shown(text)} is outside 1e-6 .. 1e9 GB/s")
    return gbps


def _latency_before(text):
    m = LATENCY_RE.match(text)
    if not m:
        raise ValueError(f"expected a latency like 2us or 500ns, got {units._shown(text)}")
    factor = {"ns": 1, "us": 1_000, None: 1_000, "ms": 1_000_000, "s": 1_000_000_000}[m.group(2)]
    ns = float(m.group(1)) * factor
    if not ns <= 2 ** 62:
        raise ValueError(f"latency {units._shown(text)} is too large")
    return round(ns)


def _size_before(text):
    m = SIZE_RE.match(str(text))
    if not m:
        raise ValueError(f"expected a size like 4096, 1K or 1GiB, got {units._shown(text)}")
    if len(m.group(1)) > 30:
        raise ValueError(f"size {units._shown(text)} is too large")
    return int(m.group(1)) * 1024 ** units._SIZE_POW[m.group(2).lower()]


@pytest.mark.parametrize("new, before", [
    (units.parse_bandwidth_gbps, _bandwidth_before),
    (units.parse_latency_ns, _latency_before),
    (units.parse_size_bytes, _size_before),
    (units.is_bare_number, lambda t: (lambda m: m is not None and not m.group(2))(
        BW_RE.match(t))),
])
def test_unit_parsers_read_what_their_regexes_read(new, before):
    texts = _texts()
    assert sum(units._number_unit(t) is not None for t in texts) > 2000  # the checks answer
    for text in texts:
        assert _outcome(new, text) == _outcome(before, text), repr(text)


def test_number_unit_is_the_bandwidth_regexs_groups():
    for text in _texts():
        groups = units._number_unit(text)
        if groups is not None:
            m = BW_RE.match(text)
            assert m is not None and (m.group(1), m.group(2)) == groups, repr(text)


def _parse_int_before(text, lo=1, hi=1 << 22):
    from simulator.readers import numbers
    s = str(text).strip()
    if len(s) > numbers.MAX_DIGITS:
        raise ValueError(f"expected a whole number, got a number of {len(s)} characters")
    if not INT_RE.match(s):
        if numbers._FLOAT_RE.match(s):
            f = numbers.parse_float(s)
            if f.is_integer() and abs(f) < 2 ** 63:
                return numbers._range(int(f), lo, hi)
        raise ValueError(f"expected a whole number, got {numbers.shown(s)}")
    return numbers._range(int(s), lo, hi)


def test_whole_numbers_read_as_before():
    # parse_int's digit check stands for INT_RE; its errors and float forms are unchanged
    for text in _texts() + ["+5", "-0", "+", "-", "0" * 40, "0" * 41, " 7 ", "\u0663", "1_0"]:
        assert _outcome(lambda t: parse_int(t, lo=1, hi=1 << 22), text) == \
            _outcome(_parse_int_before, text), repr(text)


def test_terminal_escapes_as_the_regex_does():
    rng = random.Random(7)
    chars = "ab \n\t\r\x00\x08\x0b\x1b\x1f\x7f\x80\x9f\xa0é\u200e\u200f\u202a\u2066\u2069\u2028"
    texts = ["", "plain text", "tab\tand\nnewline", "\x1b[31mred"]
    texts += ["".join(rng.choice(chars) for _ in range(rng.randint(1, 6))) for _ in range(5000)]
    for text in texts:
        expected = UNSAFE.sub(lambda m: (f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 0x100
                                         else f"\\u{ord(m.group(0)):04x}"), text)
        assert for_terminal(text) == expected, repr(text)
