"""The common ``collsim simulate`` command lines, read without argparse.

Importing argparse (it brings re and gettext) and building simulate's parser of some forty
options is a tenth of a small run's instructions. :func:`read` knows the same options
(names, destinations, defaults, value types, choices: ``add_arguments`` in
:mod:`.simulate` and :mod:`.arguments`) and reads a command line only where it is sure
argparse reads it the same way: full option names, ``--name VALUE`` or ``--name=VALUE``, one
workload. Anything else (help, abbreviations, a value that starts with ``-``, ``--``, a bad
value, no workload or two) returns None, and the CLI parses the line with argparse, whose
errors, messages and exit codes stay the CLI's. Nothing happens until the whole line is
read: the bandwidth flags' warnings are then issued in order, as argparse's actions issue
them. ``tests/test_simulate_args.py`` runs many lines through both.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..costmodel.registry import COST_MODELS
from ..engine.policy import COMPATS
from ..engine.schedule import SCHEDULES
from .common import MAX_COUNT, bandwidth_flag_warnings

# how a flag's value is read (argparse's action and type for it)
SWITCH = "switch"        # store_true: no value
TOGGLE = "toggle"        # BooleanOptionalAction: --NAME True, --no-NAME False
TEXT = "text"            # a string as typed
CHOICE = "choice"        # a string from a list
COUNT = "count"          # arguments.positive_int: 1 .. MAX_COUNT
NUMBER = "number"        # float()
LATENCY = "latency"      # arguments.latency: nanoseconds
BANDWIDTH = "bandwidth"  # arguments.BandwidthAction: GB/s, with its warnings
APPEND = "append"        # repeatable string, a list

#: option -> (destination, kind, what the kind needs: choices, or (part, new name))
OPTIONS: dict[str, tuple[str, str, object]] = {
    "--gpus": ("gpus", COUNT, None),
    "--compat": ("compat", CHOICE, tuple(COMPATS)),
    "--strict": ("strict", SWITCH, None),
    "--pp-schedule": ("pp_schedule", CHOICE, tuple(SCHEDULES)),
    "--vpp": ("vpp", COUNT, None),
    "--blocking-sends": ("blocking_sends", CHOICE, ("auto", "on", "off")),
    "--gpus-per-server": ("gpus_per_server", COUNT, None),
    "--nvlink-bw": ("nvlink_bw", BANDWIDTH, ("nvlink", None)),
    "--nic-bw": ("nic_bw", BANDWIDTH, ("nic", None)),
    "--nvlink-gbps": ("nvlink_bw", BANDWIDTH, ("nvlink", "--nvlink-bw")),
    "--nic-gbps": ("nic_bw", BANDWIDTH, ("nic", "--nic-bw")),
    "--nics-per-server": ("nics_per_server", COUNT, None),
    "--base-latency": ("base_latency", LATENCY, None),
    "--topology": ("topology", TEXT, None),
    "--fabric": ("fabric", CHOICE, ("rail-optimized", "fat-tree")),
    "--oversubscription": ("oversubscription", NUMBER, None),
    "--servers-per-leaf": ("servers_per_leaf", COUNT, None),
    "--ecmp": ("ecmp", TEXT, None),
    "--cost-model": ("cost_model", CHOICE, tuple(COST_MODELS)),
    "--calibration": ("calibration", TEXT, None),
    "--straggler": ("straggler", APPEND, None),
    "--jitter": ("jitter", TEXT, None),
    "--degrade": ("degrade", APPEND, None),
    "--fail": ("fail", TEXT, None),
    "--sensitivity": ("sensitivity", SWITCH, None),
    "--draws": ("draws", COUNT, None),
    "--distribution-plot": ("distribution_plot", TEXT, None),
    "--contention": ("contention", TOGGLE, None),
    "--no-contention": ("contention", TOGGLE, None),
    "--co-job": ("co_job", APPEND, None),
    "--placement": ("placement", CHOICE, ("packed", "spread", "rail")),
    "--engine": ("engine", CHOICE, ("fast", "detailed")),
    "--csv": ("csv", TEXT, None),
    "--csv-style": ("csv_style", CHOICE, ("collsim", "simai")),
    "--json": ("json", TEXT, None),
    "--trace": ("trace", TEXT, None),
    "--plot": ("plot", TEXT, None),
    "--report": ("report", TEXT, None),
    "--full-tables": ("full_tables", SWITCH, None),
    "--quiet": ("quiet", SWITCH, None),
}

#: every destination and its default, in the parser's order (argparse's namespace holds them
#: so, and check_outputs walks them in it); a list default is a new list per line
DEFAULTS: tuple[tuple[str, object], ...] = (
    ("debug", False), ("workload", None), ("gpus", None), ("compat", "auto"),
    ("strict", False), ("pp_schedule", None), ("vpp", None), ("blocking_sends", "auto"),
    ("gpus_per_server", None), ("nvlink_bw", None), ("nic_bw", None),
    ("nics_per_server", None), ("base_latency", None), ("topology", None), ("fabric", None),
    ("oversubscription", None), ("servers_per_leaf", None), ("ecmp", None),
    ("cost_model", None), ("calibration", None), ("straggler", []), ("jitter", None),
    ("degrade", []), ("fail", None), ("sensitivity", False), ("draws", 1),
    ("distribution_plot", None), ("contention", None), ("co_job", []), ("placement", None),
    ("engine", "fast"), ("csv", None), ("csv_style", "collsim"), ("json", None),
    ("trace", None), ("plot", None), ("report", None), ("full_tables", False),
    ("quiet", False),
)


class _Declined(Exception):
    """The line is not one this reader is sure of: argparse reads it."""


def _value(kind: str, extra, text: str, flag: str, warnings: list[str]):
    if kind == TEXT:
        return text
    if kind == CHOICE:
        if text not in extra:
            raise _Declined
        return text
    if kind == COUNT:
        from ..readers.numbers import parse_int
        return parse_int(text, lo=1, hi=MAX_COUNT)
    if kind == NUMBER:
        return float(text)
    if kind == LATENCY:
        from ..units import parse_latency_ns
        return parse_latency_ns(text)
    # BANDWIDTH
    from ..units import parse_bandwidth_gbps
    part, new_name = extra
    gbps = parse_bandwidth_gbps(text)
    warnings += bandwidth_flag_warnings(flag, text, gbps, part, new_name)
    return gbps


def read(words: list[str]) -> SimpleNamespace | None:
    """The options argparse makes of ``collsim simulate WORDS`` (``--debug`` taken out, as
    the CLI does), or None when this reader is not sure of the line; ``debug`` is False
    (the CLI sets it)."""
    try:
        values, warnings = _read(words)
    except Exception:   # _Declined, or a value its type refuses: argparse says how
        return None
    args = SimpleNamespace()
    for dest, default in DEFAULTS:
        setattr(args, dest, values.get(dest, [] if isinstance(default, list) else default))
    if warnings:
        from ..errors import warn
        for message in warnings:
            warn(message)
    return args


def _read(words: list[str]) -> tuple[dict, list[str]]:
    values: dict = {}
    warnings: list[str] = []
    i, n = 0, len(words)
    while i < n:
        word = words[i]
        i += 1
        if not word.startswith("-"):    # argparse's positional ('' included)
            if "workload" in values:
                raise _Declined
            values["workload"] = word
            continue
        # no option name holds '=': a word with one is --NAME=VALUE or nothing we know
        flag, eq, inline = word.partition("=")
        spec = OPTIONS.get(flag)
        if spec is None:
            raise _Declined
        dest, kind, extra = spec
        if kind == SWITCH or kind == TOGGLE:
            if eq:
                raise _Declined
            values[dest] = kind == SWITCH or not flag.startswith("--no-")
            continue
        if eq:
            text = inline
        elif i < n:
            text = words[i]
            i += 1
            if text.startswith("-") and text != "-":   # argparse may take it for an option
                raise _Declined
        else:
            raise _Declined
        if text == "--":
            raise _Declined
        if kind == APPEND:
            values.setdefault(dest, []).append(text)
        else:
            values[dest] = _value(kind, extra, text, flag, warnings)
    if "workload" not in values:
        raise _Declined
    return values, warnings
