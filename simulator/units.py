"""Unit conversions for what users type.

Inside the simulator time is an integer count of nanoseconds and sizes are bytes.
Users see bandwidth in GB/s (10^9 bytes/s, as nccl-tests and SimAI report it) and may type
an explicit suffix where they think in bits: ``400Gbit/s``, ``400Gbps``, ``50GB/s``.
"""
from __future__ import annotations

from .lazyre import LazyPattern

_BW_RE = LazyPattern(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z/]*)\s*$")
_LATENCY_RE = LazyPattern(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ns|us|ms|s)?\s*$")
_UNIT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz/")


def _number_unit(text: str) -> tuple[str, str] | None:
    r"""``('400', 'Gbit/s')`` for ``'400Gbit/s'``: the two groups ``_BW_RE`` finds in a text of
    ASCII digits, one point and a unit of letters and ``/`` (no space, no exponent: what
    presets and flags hold); None for any other text, which the regex then reads.

    Why these are its groups: with no whitespace both ``\s*`` are empty; the number
    ``[0-9]*\.?[0-9]+`` must take every digit and point before the unit (neither may start
    the unit), so it is the whole run when the run has at most one point and ends in a
    digit; the exponent needs a digit or sign after its ``e``, which a unit of letters
    and ``/`` never has; ``[A-Za-z/]*`` takes the rest."""
    i = 0
    n = len(text)
    while i < n and text[i] in "0123456789.":
        i += 1
    number, unit = text[:i], text[i:]
    if (not number or not "0" <= number[-1] <= "9" or number.count(".") > 1
            or not _UNIT_CHARS.issuperset(unit)):
        return None
    return number, unit

# factor to GB/s (10^9 bytes per second)
_BW_UNITS = {
    "": 1.0, "gb/s": 1.0, "gbyte/s": 1.0, "gbs": 1.0,
    "mb/s": 1e-3, "tb/s": 1e3,
    "gbit/s": 1 / 8, "gbps": 1 / 8, "gb/sbit": 1 / 8, "gbit": 1 / 8,
    "tbit/s": 1e3 / 8, "tbps": 1e3 / 8, "mbit/s": 1e-3 / 8, "mbps": 1e-3 / 8,
}


def _shown(text) -> str:
    from .readers.numbers import shown
    return shown(text)


def parse_bandwidth_gbps(text: str | float | int) -> float:
    """Bandwidth in GB/s from ``'50'``, ``'50GB/s'``, ``'400Gbit/s'`` or ``'400Gbps'``.

    A bare number is GB/s. ``Gbps`` means gigabits (the networking convention), ``GB/s``
    gigabytes. Raises ValueError with a readable message.
    """
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        groups = _number_unit(text) if type(text) is str else None
        if groups is None:
            m = _BW_RE.match(text)
            if not m:
                raise ValueError("expected a bandwidth like 50, 50GB/s or 400Gbit/s, "
                                 f"got {_shown(text)}")
            groups = m.group(1), m.group(2)
        value, unit = float(groups[0]), groups[1]
    key = unit.lower()
    # 'GB/s' vs 'Gb/s': case matters for the b only when written with a slash
    if unit in ("Gb/s", "Tb/s", "Mb/s"):
        key = unit[0].lower() + "bit/s"
    if key not in _BW_UNITS:
        raise ValueError(f"unknown bandwidth unit {_shown(unit)} in {_shown(text)} "
                         "(use GB/s or Gbit/s)")
    gbps = value * _BW_UNITS[key]
    if not gbps > 0:
        raise ValueError(f"bandwidth must be positive, got {_shown(text)}")
    # below 1 kB/s or above 1 EB/s is a typo, and would overflow the nanosecond arithmetic
    if not 1e-6 <= gbps <= 1e9:
        raise ValueError(f"bandwidth {_shown(text)} is outside 1e-6 .. 1e9 GB/s")
    return gbps


_SIZE_RE = LazyPattern(r"(?i)^\s*([0-9]+)\s*([KMGTP]?)(i?B?)\s*$")
_SIZE_POW = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
#: every unit ``([KMGTP]?)(i?B?)`` matches (any case) -> its power of 1024: the regex's second
#: group is the first letter when that is one of KMGTP (neither i nor B is), else empty
_SIZE_UNITS = {p + i + b: _SIZE_POW[p.lower()]
               for p in ("", "K", "M", "G", "T", "P", "k", "m", "g", "t", "p")
               for i in ("", "i", "I") for b in ("", "B", "b")}


def parse_size_bytes(text: str) -> int:
    """Bytes from ``'4096'``, ``'1K'``, ``'1KiB'``, ``'1G'`` (binary multiples, as nccl-tests)."""
    text = str(text)
    groups = _number_unit(text)
    if groups is not None and "." not in groups[0] and groups[1] in _SIZE_UNITS:
        digits, power = groups[0], _SIZE_UNITS[groups[1]]     # what _SIZE_RE reads
    else:
        m = _SIZE_RE.match(text)
        if not m:
            raise ValueError(f"expected a size like 4096, 1K or 1GiB, got {_shown(text)}")
        digits, power = m.group(1), _SIZE_POW[m.group(2).lower()]
    if len(digits) > 30:
        raise ValueError(f"size {_shown(text)} is too large")
    return int(digits) * 1024 ** power


_LATENCY_FACTOR = {"ns": 1, "us": 1_000, "": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_latency_ns(text: str | float | int) -> int:
    """Nanoseconds from ``'2us'``, ``'500ns'``, ``'0.002ms'``; a bare number is microseconds."""
    if isinstance(text, (int, float)):
        text = str(text)
    groups = _number_unit(text) if type(text) is str else None
    if groups is not None and groups[1] in _LATENCY_FACTOR:
        number, factor = groups[0], _LATENCY_FACTOR[groups[1]]   # what _LATENCY_RE reads
    else:
        m = _LATENCY_RE.match(text)
        if not m:
            raise ValueError(f"expected a latency like 2us or 500ns, got {_shown(text)}")
        number, factor = m.group(1), _LATENCY_FACTOR[m.group(2) or ""]
    ns = float(number) * factor
    if not ns <= 2 ** 62:  # also catches inf and nan: 2^62 ns is 146 years
        raise ValueError(f"latency {_shown(text)} is too large")
    return round(ns)


#: the highest per-direction bandwidth, in GB/s, a part ships with today; a bare number above
#: it is most likely gigabits typed as gigabytes (a 400 Gbit/s NIC written as 400)
PLAUSIBLE_MAX_GBPS = {
    "nic": 100.0,       # one NIC: 800 Gbit/s (ConnectX-8, 2024) is 100 GB/s
    "nvlink": 2000.0,   # NVLink per GPU per direction: NVLink 5 is 900 GB/s; 2 TB/s is headroom
}
_PART_NAMES = {"nic": "a NIC", "nvlink": "NVLink per GPU"}


def is_bare_number(text: str | float | int) -> bool:
    """True when ``text`` has no unit (so it was read as GB/s)."""
    if isinstance(text, (int, float)):
        return True
    text = str(text)
    groups = _number_unit(text)
    if groups is not None:
        return not groups[1]
    m = _BW_RE.match(text)
    return m is not None and not m.group(2)


def implausible_bandwidth(text: str | float | int, gbps: float, part: str,
                          key: str) -> str | None:
    """A warning when a bare number is more than ``part`` ('nic', 'nvlink') can carry."""
    limit = PLAUSIBLE_MAX_GBPS[part]
    if not is_bare_number(text) or gbps <= limit:
        return None
    return (f"{key} {text}: a bare number is GB/s, so this is {format_bandwidth(gbps)}, more "
            f"than {_PART_NAMES[part]} carries (at most about {limit:g} GB/s); write "
            f"{text}Gbit/s if you meant gigabits")


def format_bandwidth(gbps: float) -> str:
    """``50 GB/s (400 Gbit/s)``: a resolved bandwidth both ways, for reports."""
    return f"{gbps:.4g} GB/s ({gbps * 8:.4g} Gbit/s)"
