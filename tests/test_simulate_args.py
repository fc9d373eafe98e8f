"""The quick ``collsim simulate`` reader (simulator/commands/simulate_args.py) against argparse.

Every line it reads must give the namespace argparse gives (same keys in the same order,
same values and types, same warnings in the same order); every other line it must decline,
so that argparse reads it (its errors, usage and exit code 2 stay the CLI's). The lines are
random combinations of the parser's own flags, with good and bad values, abbreviations,
``--flag=value``, values that look like options, ``--``, missing and extra workloads.
"""
from __future__ import annotations

import contextlib
import io
import random
import warnings

import pytest

from repo_paths import WORKLOADS
from simulator import cli
from simulator.commands import arguments, simulate, simulate_args
from simulator.commands.simulate_args import DEFAULTS, OPTIONS, read

SEED004 = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")


@pytest.fixture(scope="module")
def parser():
    return cli.command_parser("simulate", simulate)


def _shown(namespace) -> str:
    # repr keeps what == would blur: 1 against 1.0, True against 1, nan, the keys' order
    return repr(list(vars(namespace).items()))


def _argparse(parser, words):
    """('ok', namespace text, warnings) or ('exit', code, stderr) from argparse."""
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(err):
        warnings.simplefilter("always")
        try:
            ns = parser.parse_args(words)
        except SystemExit as exc:
            return ("exit", exc.code, err.getvalue())
    return ("ok", _shown(ns), [str(w.message) for w in caught])


def _quick(words):
    """None (declined) or ('ok', namespace text, warnings) from the quick reader."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ns = read(list(words))
    if ns is None:
        assert caught == [], "a declined line must have no effect (argparse warns again)"
        return None
    return ("ok", _shown(ns), [str(w.message) for w in caught])


def _action_kind(action):
    """What the quick reader's kind must be for this argparse action."""
    name = type(action).__name__
    if name == "_StoreTrueAction":
        return simulate_args.SWITCH, None
    if name == "BooleanOptionalAction":
        return simulate_args.TOGGLE, None
    if name == "BandwidthAction":
        return simulate_args.BANDWIDTH, (action.part, action.new_name)
    assert action.nargs is None, action
    if name == "_AppendAction":
        assert action.type is None
        return simulate_args.APPEND, None
    assert name == "_StoreAction", action
    if action.choices is not None:
        assert action.type is None
        return simulate_args.CHOICE, tuple(action.choices)
    kinds = {None: simulate_args.TEXT, arguments.positive_int: simulate_args.COUNT,
             float: simulate_args.NUMBER, arguments.latency: simulate_args.LATENCY}
    return kinds[action.type], None


def test_the_tables_are_the_parsers(parser):
    # every flag of the parser, with its destination, action, type and choices, and every
    # destination with its default in the parser's order; nothing the parser lacks
    actions = [a for a in parser._actions if a.dest != "help"]
    assert [(d, repr(v)) for d, v in DEFAULTS] == \
        [(a.dest, repr(a.default)) for a in actions
         if a.dest not in {b.dest for b in actions[:actions.index(a)]}]
    flags = {}
    for a in actions:
        for flag in a.option_strings:
            flags[flag] = (a.dest, *_action_kind(a))
    flags.pop("--debug")    # the CLI takes --debug out of the line before parsing it
    assert OPTIONS == flags


# values a flag of each kind may be given: good ones, bad ones, ones argparse reads as an
# option or treats specially
GOOD = {
    simulate_args.TEXT: ["out.json", "-", "", "a b", "x=y", "hgx-h200:16", "é"],
    simulate_args.COUNT: ["1", "8", "16", "4194304", " 2 ", "+3", "2.0", "1e1"],
    simulate_args.NUMBER: ["2", "1.5", "0", "nan", "inf", "1_0", " 3 ", "1e3", "１"],
    simulate_args.LATENCY: ["10us", "500ns", "2", "0.5ms", "1s", "0"],
    simulate_args.BANDWIDTH: ["400Gbit/s", "50GB/s", "25", "400", "3000", "1Tbps", "0.5"],
    simulate_args.APPEND: ["rank=1,compute=1.2", "server=3,nic=0.5", "w.txt", ""],
}
BAD = {
    simulate_args.COUNT: ["0", "-1", "x", "1.5", "4194305", "١٦", "1_6", ""],
    simulate_args.NUMBER: ["x", "", "1,5"],
    simulate_args.LATENCY: ["x", "10 fortnights", "1e300s", ""],
    simulate_args.BANDWIDTH: ["0", "x", "10furlongs", "1e20", "-5", ""],
}
ODD = ["-", "--", "-5", "-1.5", "--quiet", "-h", "--nope", "-x y", "--json", "- 1"]


def _value_for(rng, flag):
    dest, kind, extra = OPTIONS[flag]
    pool = list(GOOD.get(kind, []))
    if kind == simulate_args.CHOICE:
        pool = list(extra) + ["nope", extra[0].upper(), extra[0][:2]]
    pool += BAD.get(kind, [])
    if rng.random() < 0.15:
        pool = ODD
    return rng.choice(pool)


def _random_line(rng):
    flags = sorted(OPTIONS)
    words = []
    for _ in range(rng.randint(0, 6)):
        flag = rng.choice(flags)
        kind = OPTIONS[flag][1]
        r = rng.random()
        shown = flag
        if r < 0.08:    # an abbreviation argparse may accept (or find ambiguous)
            shown = flag[:rng.randint(3, len(flag) - 1)]
        if kind in (simulate_args.SWITCH, simulate_args.TOGGLE):
            if r > 0.95:
                words.append(shown + "=" + rng.choice(["", "1", "x"]))
            else:
                words.append(shown)
        elif r > 0.75:
            words.append(shown + "=" + _value_for(rng, flag))
        elif r > 0.72:
            words.append(shown)     # its value missing, or the next word taken for it
        else:
            words += [shown, _value_for(rng, flag)]
    n = rng.choice([0, 1, 1, 1, 1, 1, 1, 2])
    for _ in range(n):
        words.insert(rng.randint(0, len(words)), rng.choice(["w.txt", SEED004, "", "a=b"]))
    if rng.random() < 0.03:
        words.insert(rng.randint(0, len(words)), rng.choice(ODD))
    return words


def _agree(parser, words):
    quick = _quick(words)
    full = _argparse(parser, words)
    if quick is not None:
        assert full == quick, words
    return quick is not None, full[0] == "ok"


def test_random_lines_agree_with_argparse_or_are_declined(parser):
    rng = random.Random(18)
    read_quickly = argparse_ok = 0
    for _ in range(4000):
        quick, ok = _agree(parser, _random_line(rng))
        read_quickly += quick
        argparse_ok += ok
    # the test exercises both sides: lines read quickly, lines only argparse reads well,
    # and lines argparse refuses (exit 2), which the quick reader always declined
    assert read_quickly > 500
    assert argparse_ok - read_quickly > 80
    assert 4000 - argparse_ok > 500


@pytest.mark.parametrize("words", [
    [SEED004],
    ["--quiet", SEED004],
    [SEED004, "--quiet", "--cost-model", "simai"],
    [SEED004, "--json", "-", "--csv=out.csv", "--csv-style", "simai"],
    [SEED004, "--gpus", "512", "--nic-bw", "200Gbit/s", "--nvlink-bw=450GB/s"],
    [SEED004, "--nic-bw", "400", "--nic-gbps", "25", "--nvlink-gbps=3000"],  # 3 warnings
    [SEED004, "--topology", "hgx-h200", "--no-contention", "--contention"],
    [SEED004, "--straggler", "rank=1,compute=1.2", "--straggler=ranks=0-7,compute=1.1",
     "--draws", "20", "--jitter", "cv=0.05,seed=3", "--degrade", "server=3,nic=0.5"],
    [SEED004, "--pp-schedule", "interleaved", "--vpp", "2", "--compat", "astra-sim",
     "--blocking-sends", "on", "--engine", "detailed", "--strict", "--full-tables"],
    [SEED004, "--base-latency", "5us", "--fabric", "fat-tree", "--oversubscription", "2",
     "--servers-per-leaf", "4", "--ecmp", "hash:3", "--gpus-per-server", "4",
     "--nics-per-server", "4", "--sensitivity", "--trace", "t.json.gz", "--plot", "p.png"],
    [SEED004, "--json", "", "--calibration", "c.yaml", "--co-job", "w.txt",
     "--placement", "rail", "--fail", "at=1ms,restart=1s", "--report", "r.html",
     "--distribution-plot", "d.png"],
])
def test_common_lines_are_read_quickly_and_as_argparse_reads_them(parser, words):
    quick, ok = _agree(parser, words)
    assert quick and ok


@pytest.mark.parametrize("words", [
    [],                                     # no workload
    [SEED004, "w.txt"],                     # two
    [SEED004, "-h"], [SEED004, "--help"],   # help
    [SEED004, "--qui"],                     # an abbreviation
    [SEED004, "--json", "-x"],              # a value that looks like an option
    [SEED004, "--oversubscription", "-1"],  # one argparse reads as a negative number
    [SEED004, "--json=--"], [SEED004, "--", "--quiet"],
    [SEED004, "--quiet=1"], [SEED004, "--no-contention=x"],
    [SEED004, "--gpus", "0"], [SEED004, "--nic-bw", "10furlongs"],
    [SEED004, "--cost-model", "SIMAI"],
    [SEED004, "--json"],                    # no value
    [SEED004, "--debug=1"],                 # only a whole --debug is the CLI's
])
def test_other_lines_are_declined(parser, words):
    assert _quick(words) is None
    _agree(parser, words)


def test_bad_values_keep_argparse_errors_through_the_cli(capsys):
    # the same error as argparse alone gives: usage, then one error line; exit 2; and the
    # warning of a flag read before the bad one still comes first, once
    for words, message in [
        (["--gpus", "0"], "argument --gpus: must be at least 1, got 0"),
        (["--nic-bw", "400", "--cost-model", "x"],
         "argument --cost-model: invalid choice: 'x' (choose from 'nccl', 'simai')"),
        (["--nic-bw", "x"], "argument --nic-bw: expected a bandwidth like 50, 50GB/s or "
                            "400Gbit/s, got 'x'"),
    ]:
        with pytest.raises(SystemExit) as exc, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cli.main(["simulate", SEED004, *words])
        assert exc.value.code == 2
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith("usage: collsim simulate")
        assert err[-1] == f"collsim simulate: error: {message}"
        assert [str(w.message)[:15] for w in caught] == ["--nic-bw 400: a"] * ("400" in words)


def test_debug_anywhere_on_a_quick_line(monkeypatch):
    seen = []
    monkeypatch.setattr(simulate, "run", lambda args: seen.append(args) or 0)
    assert cli.main(["--debug", "simulate", SEED004, "--quiet"]) == 0
    assert cli.main(["simulate", SEED004, "--debug", "--quiet"]) == 0
    assert cli.main(["simulate", SEED004, "--quiet"]) == 0
    assert [a.debug for a in seen] == [True, True, False]
    assert all(a.quiet and a.workload == SEED004 for a in seen)
