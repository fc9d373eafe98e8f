"""Unit conversions for what users type.

Inside the simulator time is an integer count of nanoseconds and sizes are bytes.
Users see bandwidth in GB/s (10^9 bytes/s, as nccl-tests and SimAI report it) and may type
an explicit suffix where they think in bits: ``400Gbit/s``, ``400Gbps``, ``50GB/s``.
"""
from __future__ import annotations

import re

from .lazyre import LazyPattern

_BW_RE = LazyPattern(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z/]*)\s*$")

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
        m = _BW_RE.match(text)
        if not m:
            raise ValueError("expected a bandwidth like 50, 50GB/s or 400Gbit/s, "
                             f"got {_shown(text)}")
        value, unit = float(m.group(1)), m.group(2)
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


_SIZE_RE = LazyPattern(r"^\s*([0-9]+)\s*([KMGTP]?)(i?B?)\s*$", re.IGNORECASE)
_SIZE_POW = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_size_bytes(text: str) -> int:
    """Bytes from ``'4096'``, ``'1K'``, ``'1KiB'``, ``'1G'`` (binary multiples, as nccl-tests)."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(f"expected a size like 4096, 1K or 1GiB, got {_shown(text)}")
    if len(m.group(1)) > 30:
        raise ValueError(f"size {_shown(text)} is too large")
    return int(m.group(1)) * 1024 ** _SIZE_POW[m.group(2).lower()]


def parse_latency_ns(text: str | float | int) -> int:
    """Nanoseconds from ``'2us'``, ``'500ns'``, ``'0.002ms'``; a bare number is microseconds."""
    if isinstance(text, (int, float)):
        text = str(text)
    m = re.match(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(ns|us|ms|s)?\s*$", text)
    if not m:
        raise ValueError(f"expected a latency like 2us or 500ns, got {_shown(text)}")
    factor = {"ns": 1, "us": 1_000, None: 1_000, "ms": 1_000_000, "s": 1_000_000_000}[m.group(2)]
    ns = float(m.group(1)) * factor
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
    m = _BW_RE.match(str(text))
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
