"""Hostile inputs to every reader but the workload table, and to every flag's mini-language.

The campaign of issue 14. Each attempt is one input a hostile or careless user could give:
a real file with one value replaced by something hostile (5,000 digits, 1e-320, ``.inf``,
``1_6``, ``١٦``, ``１``, a 200k-character string, a control character, a NUL), a YAML file with
an alias bomb, a recursive alias, a ``!!python`` tag, a duplicate key or 200 levels of
nesting, binary data, an empty file, a directory, ``/dev/zero``, an unreadable file; and
random strings of each flag's key=value grammar with the same values.

The contract, for every attempt: the reader returns, or raises one ``InputError`` whose
message is one line of at most 1,000 characters that quotes no whole line of the input, in
under 10 s; a flag parser returns or raises InputError/ArgumentTypeError the same way.
Figures of the long campaign (``COLLSIM_FUZZ_SCALE``) are in docs/testing.md.
"""
from __future__ import annotations

import argparse
import os
import random
import warnings
from pathlib import Path

import pytest

from simulator.errors import InputError

from fuzz_mutator import Mutator, TimeLimit, time_limit
from reader_targets import (calibration as _calibration, compute_profile as _compute_profile,
                            echo as _echo, measurement_csv as _measurement_csv,
                            model as _model, moe_logs as _moe_logs, nccl_tests as _nccl_tests,
                            sweep as _sweep, topology as _topology)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus" / "inputs"
SCALE = float(os.environ.get("COLLSIM_FUZZ_SCALE", "1"))
SEED0 = int(os.environ.get("COLLSIM_FUZZ_SEED", "0"))
N_PER_READER = max(10, int(40 * SCALE))
N_FLAGS = max(20, int(150 * SCALE))
LIMIT_S = 10

HOSTILE = [
    "9" * 5000, "9" * 400, "1" + "0" * 30, "1e-320", "1e-300", "1e300", "1e400", "-1e400",
    ".inf", "-.inf", ".nan", "nan", "inf", "1_6", "0x10", "0o17", "1:30", "١٦", "１", "²",
    "16\u00a0", "-1", "0", "-0", "2147483648", "18446744073709551616", str(2 ** 63),
    "1e18", "0.0", "x" * 200_000, "\x1b[31mred\x1b[0m", "=HYPERLINK(\"http://x\")", "@SUM(1)",
    "a\x00b", "\ufeff7", "\u202e8", "''", '""', "[]", "{}", "~", "null", "yes", "2024-01-01",
    "!!python/object/apply:os.system ['true']", "!!binary aGVsbG8=", "!!set {a}", "&a 1",
    "*nowhere", "|", ">", "- - - -", "{a: {b: {c: [1, [2, [3]]]}}}", "'" + "y" * 5000 + "'",
]

YAML_ATTACKS = {
    "alias_bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)),
    "recursive_alias": "a: &a [1, *a]\n",
    "python_tag": "a: !!python/object/apply:os.system ['true']\n",
    "python_name": "a: !!python/name:os.system\n",
    "local_tag": "a: !mytag 3\n",
    "deep_nesting": "a: " + "[" * 200 + "]" * 200 + "\n",
    "deep_mapping": "".join("  " * i + f"k{i}:\n" for i in range(120)) + "  " * 120 + "v: 1\n",
    "duplicate_key": "name: a\nname: b\n",
    "nul": "a: 1\x00\n",
    "bell": "a: \x07\n",
    "huge_int": "a: " + "9" * 5000 + "\n",
    "subnormal": "a: 1e-320\n",
    "overflow": "a: 1e400\n",
    "underscore": "a: 1_6\n",
    "sexagesimal": "a: 1:30\n",
    "merge_key": "b: &b {x: 1}\na:\n  <<: *b\n",
    "multi_doc": "a: 1\n---\nb: 2\n",
    "bad_utf8": b"a: \xff\xfe\n",
    "binary": bytes(range(256)) * 4,
    "empty": "",
    "just_a_scalar": "42\n",
    "a_list": "- 1\n- 2\n",
    "long_key": "k" * 200_000 + ": 1\n",
}


def existing(*patterns: str) -> list[Path]:
    import glob
    out = [Path(p) for pattern in patterns for p in sorted(glob.glob(pattern))]
    return [p for p in out if p.is_file() and p.stat().st_size < 2_000_000]


# --------------------------------------------------------------------------- the readers

YAML_READERS = {"topology_yaml", "sweep_yaml", "calibration_yaml", "model_yaml"}
READERS = {
    "topology_yaml": (_topology, existing(str(ROOT / "topologies" / "*.yaml"))),
    "sweep_yaml": (_sweep, existing(str(ROOT / "workloads" / "sweeps" / "*.yaml"))),
    "calibration_yaml": (_calibration, existing(str(ROOT / "traces" / "*" / "calib_*.yaml"))),
    "model_yaml": (_model, existing(str(CORPUS / "model*.yaml"))),
    "measurement_csv": (_measurement_csv, existing(str(ROOT / "traces" / "h200x2" / "*.csv"),
                                                    str(CORPUS / "measurements.csv"))),
    "nccl_tests": (_nccl_tests, existing(str(CORPUS / "nccl_tests*.txt"),
                                         str(SHARED / "measurements" / "nccl-tests_*.txt"))),
    "moe_logs": (_moe_logs, existing(str(CORPUS / "tutel*.txt"),
                                     str(SHARED / "seeds" / "00[01]_*.txt"))),
    "echo_trace": (_echo, existing(str(CORPUS / "echo*.txt"),
                                   str(SHARED / "seeds" / "003_*.txt"))),
    "compute_profile": (_compute_profile, existing(str(CORPUS / "profile*.csv"))),
}


def check(func, path: Path, data: bytes | None) -> tuple[str, str]:
    """('ok' | 'error' | a failure kind, message) for one input."""
    try:
        with time_limit(LIMIT_S), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            func(path)
    except InputError as exc:
        message = str(exc)
        if "\n" in message or "\r" in message:
            return "multi-line error", message
        if len(message) > 1000:
            return "long error", message
        if data is not None:
            text = data.decode("utf-8", "replace")
            for line in text.splitlines():
                if len(line) >= 60 and line in message:
                    return "error quotes a line", message
        return "error", message
    except TimeLimit as exc:
        return "hang", str(exc)
    except RecursionError as exc:
        return "RecursionError", str(exc)[:200]
    except MemoryError:
        return "MemoryError", ""
    except Exception as exc:  # noqa: BLE001
        return type(exc).__name__, str(exc)[:300]
    return "ok", ""


def _replace_value(rng: random.Random, data: bytes, yaml_like: bool) -> bytes:
    """One value of a real file replaced by a hostile token (a YAML scalar or a CSV/text
    field)."""
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    token = rng.choice(HOSTILE)
    if yaml_like:
        cands = [i for i, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("#")
                 and ln.split(":", 1)[1].strip()]
        if cands:
            i = rng.choice(cands)
            key, _, _ = lines[i].partition(":")
            lines[i] = f"{key}: {token}"
    else:
        cands = [i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
        if cands:
            i = rng.choice(cands)
            sep = "," if "," in lines[i] else None
            fields = lines[i].split(sep) if sep else lines[i].split()
            if fields:
                fields[rng.randrange(len(fields))] = token
                lines[i] = (sep or " ").join(fields)
    return "\n".join(lines).encode("utf-8", "surrogateescape")


def _yaml_attack(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    name = rng.choice(sorted(YAML_ATTACKS))
    attack = YAML_ATTACKS[name]
    attack = attack.encode() if isinstance(attack, str) else attack
    if rng.random() < 0.5 or name in ("binary", "empty", "just_a_scalar", "a_list",
                                      "bad_utf8", "multi_doc"):
        return attack, name
    return data.rstrip(b"\n") + b"\n" + attack, name + " appended"


def attempt(reader: str, seed: int) -> tuple[bytes, str]:
    """The input of attempt ``seed`` for ``reader`` and how it was made."""
    _, sources = READERS[reader]
    rng = random.Random(seed)
    src = rng.choice(sources)
    data = src.read_bytes()
    how = rng.random()
    if reader in YAML_READERS and how < 0.35:
        data, name = _yaml_attack(rng, data)
        return data, f"{src.name}: {name}"
    if how < 0.75:
        for _ in range(rng.choice([1, 1, 2])):
            data = _replace_value(rng, data, reader in YAML_READERS)
        return data, f"{src.name}: hostile value"
    m = Mutator(seed)
    return m(data), f"{src.name}: {'+'.join(m.history)}"


def campaign(reader: str, n: int, tmp: Path) -> tuple[dict, list[str]]:
    func, sources = READERS[reader]
    tally: dict[str, int] = {}
    failures: list[str] = []
    for seed in range(SEED0, SEED0 + n):
        data, how = attempt(reader, seed)
        path = tmp / f"input{sources[0].suffix}"
        path.write_bytes(data)
        kind, message = check(func, path, data)
        tally[kind] = tally.get(kind, 0) + 1
        if kind not in ("ok", "error"):
            kept = tmp / f"failure_{reader}_{seed}{sources[0].suffix}"
            kept.write_bytes(data)
            failures.append(f"{reader} seed {seed} ({how}): {kind}: {message[:160]!r} "
                            f"(kept as {kept})")
    return tally, failures


@pytest.mark.parametrize("reader", sorted(READERS))
def test_hostile_inputs_to_every_reader(reader, tmp_path):
    if not READERS[reader][1]:
        pytest.skip(f"no {reader} files to start from")
    tally, failures = campaign(reader, N_PER_READER, tmp_path)
    print(f"{reader}: {N_PER_READER} attempts: {tally}")
    assert not failures, "\n".join(failures[:10])


@pytest.mark.parametrize("reader", sorted(READERS))
def test_inputs_that_are_not_files(reader, tmp_path):
    """A directory, /dev/zero, /dev/urandom, an unreadable file, a dangling symlink, a
    missing file: one line each, at once (bounded reads)."""
    func = READERS[reader][0]
    unreadable = tmp_path / "unreadable"
    unreadable.write_text("a: 1\n")
    os.chmod(unreadable, 0)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    cases = [tmp_path, Path("/dev/zero"), Path("/dev/urandom"), dangling,
             tmp_path / "missing.yaml"]
    if os.geteuid() != 0:
        cases.append(unreadable)
    for path in cases:
        if not path.exists() and path.is_symlink() is False and "missing" not in path.name:
            continue
        kind, message = check(func, path, None)
        assert kind == "error", f"{reader} on {path}: {kind}: {message}"


# ------------------------------------------------------------------------ YAML, by attack

@pytest.mark.parametrize("attack", sorted(YAML_ATTACKS))
@pytest.mark.parametrize("reader", sorted(YAML_READERS))
def test_every_yaml_attack_on_every_yaml_reader(reader, attack, tmp_path):
    func, sources = READERS[reader]
    if not sources:
        pytest.skip(f"no {reader} files")
    raw = YAML_ATTACKS[attack]
    raw = raw.encode() if isinstance(raw, str) else raw
    for data in (raw, sources[0].read_bytes().rstrip(b"\n") + b"\n" + raw):
        path = tmp_path / "input.yaml"
        path.write_bytes(data)
        kind, message = check(func, path, data)
        assert kind in ("ok", "error"), f"{reader}, {attack}: {kind}: {message[:300]}"
        if attack in ("alias_bomb", "recursive_alias", "python_tag", "python_name",
                      "local_tag", "duplicate_key", "huge_int", "subnormal", "overflow",
                      "underscore", "sexagesimal", "nul", "bad_utf8", "binary", "deep_nesting",
                      "deep_mapping") and data is not raw:
            assert kind == "error", f"{reader} accepted {attack}"


def test_yaml_loader_names_file_line_and_key(tmp_path):
    from simulator.readers.yamlload import load_yaml
    with pytest.raises(InputError) as e:
        load_yaml("base:\n  tp: 2\n  pp: 1\n  tp: 4\n", "s.yaml")
    assert str(e.value) == "s.yaml:4: base.tp: duplicate key (first at line 2)"
    with pytest.raises(InputError, match=r"^s.yaml:\d+: .*alias bomb"):
        load_yaml("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + YAML_ATTACKS["alias_bomb"][
            YAML_ATTACKS["alias_bomb"].index("\n") + 1:], "s.yaml")
    with pytest.raises(InputError, match=r"^s.yaml:1: .*'1_6' is not a plain decimal"):
        load_yaml("a: 1_6\n", "s.yaml")
    with pytest.raises(InputError, match=r"^s.yaml:1: a: the tag .*python"):
        load_yaml("a: !!python/object/apply:os.system ['true']\n", "s.yaml")
    # what stays accepted: plain numbers, quoted strings, dates as text, 1e300 (ranges are
    # the readers'), aliases of small size
    assert load_yaml("a: 16\nb: -1.5e3\nc: '1_6'\nd: 2024-01-01\ne: 1e300\nf: &x [1]\ng: *x\n",
                     "s.yaml") == {"a": 16, "b": -1500.0, "c": "1_6", "d": "2024-01-01",
                                   "e": 1e300, "f": [1], "g": [1]}


# ------------------------------------------------------------------------ numbers

@pytest.mark.parametrize("text,value", [("16", 16), ("+7", 7), ("-3", -3), ("1e3", 1000),
                                        (" 8 ", 8)])
def test_number_parser_accepts_plain_decimals(text, value):
    from simulator.readers.numbers import parse_int
    assert parse_int(text) == value


@pytest.mark.parametrize("text", ["١٦", "１", "²", "1_6", "0x10", "9" * 5000, "inf", "nan",
                                  "1.5", "", "1e400", "--1"])
def test_number_parser_refuses(text):
    from simulator.readers.numbers import parse_int
    with pytest.raises(ValueError):
        parse_int(text)


@pytest.mark.parametrize("text", ["1e-320", "1e400", "-1e400", "inf", "nan", "١.٥", "1_0.5"])
def test_float_parser_refuses(text):
    from simulator.readers.numbers import parse_float
    with pytest.raises(ValueError):
        parse_float(text)


# ------------------------------------------------------------------------ flags

def _flag_parsers():
    from simulator import scenario
    from simulator.commands import arguments
    from simulator.units import parse_bandwidth_gbps, parse_latency_ns, parse_size_bytes

    def wrap(f):
        def g(text):
            try:
                return f(text)
            except ValueError as exc:
                raise InputError(str(exc)) from None
        return g
    return {
        "--straggler": (scenario.parse_straggler, ["rank", "ranks", "fraction", "compute", "seed"]),
        "--degrade": (scenario.parse_degrade, ["server", "rank", "nic", "latency"]),
        "--fail": (scenario.parse_failure, ["at", "restart", "lost-iterations", "server", "rank"]),
        "--jitter": (scenario.parse_jitter, ["cv", "fwd", "ig", "wg", "seed"]),
        "bandwidth": (wrap(parse_bandwidth_gbps), None),
        "latency": (wrap(parse_latency_ns), None),
        "size": (wrap(parse_size_bytes), None),
        "count": (arguments.positive_int, None),
    }


FLAG_VALUES = HOSTILE[:40] + ["1", "2", "3", "0.5", "1.3", "7", "0-7", "0-1000000000000",
                              "5-2", "0;3;9", "1ms", "300s", "5us", "400Gbit/s", "50GB/s",
                              "1e-310", "0.0001", "1K", "1G", "1P"]


def flag_text(rng: random.Random, keys) -> str:
    if keys is None:
        return rng.choice(FLAG_VALUES) + rng.choice(["", "", "GB/s", "Gbit/s", "us", "ms", "K"])
    parts = []
    for _ in range(rng.choice([1, 2, 2, 3, 4])):
        key = rng.choice(keys + ["bogus", ""])
        parts.append(f"{key}{rng.choice(['=', '=', '', '=='])}{rng.choice(FLAG_VALUES)}")
    return rng.choice([",", ",", ", ", ";"]).join(parts)


def test_every_flag_mini_language(capsys):
    parsers = _flag_parsers()
    failures: list[str] = []
    tally: dict[str, int] = {}
    for seed in range(SEED0, SEED0 + N_FLAGS):
        rng = random.Random(seed)
        for flag, (parse, keys) in parsers.items():
            text = flag_text(rng, keys)
            try:
                with time_limit(LIMIT_S), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    parse(text)
                kind = "ok"
            except (InputError, argparse.ArgumentTypeError) as exc:
                kind = "error"
                if "\n" in str(exc) or len(str(exc)) > 400:
                    kind = "bad error"
            except TimeLimit:
                kind = "hang"
            except Exception as exc:  # noqa: BLE001
                kind = type(exc).__name__
            tally[kind] = tally.get(kind, 0) + 1
            if kind not in ("ok", "error"):
                failures.append(f"{flag} {text[:120]!r}: {kind}")
    print(f"flags: {N_FLAGS * len(parsers)} attempts: {tally}")
    assert not failures, "\n".join(failures[:10])


@pytest.mark.parametrize("text", ["ranks=0-1000000000000,compute=2", "rank=١,compute=2",
                                  "rank=3,compute=1e300", "rank=3,compute=1e-320",
                                  "ranks=5-2,compute=2", "rank=1,rank=2,compute=2",
                                  "rank=" + "9" * 5000 + ",compute=2", "fraction=nan,compute=2",
                                  "rank=3,compute=inf"])
def test_straggler_refusals(text):
    from simulator.scenario import parse_straggler
    with pytest.raises(InputError):
        parse_straggler(text)


def test_flags_that_change_nothing_warn():
    from simulator.errors import SimulationWarning
    from simulator.scenario import parse_failure, parse_straggler, resolve_degrades, parse_degrade
    with pytest.warns(SimulationWarning, match="changes nothing: give compute="):
        parse_straggler("rank=3")
    with pytest.warns(SimulationWarning, match="server= changes nothing"):
        parse_failure("at=1ms,server=3")
    with pytest.warns(SimulationWarning, match="fit in one server"):
        resolve_degrades([parse_degrade("server=0,nic=0.5")], 8, 8)
    with pytest.raises(InputError, match="'at' given twice"):
        parse_failure("at=1ms,at=2ms")


# ------------------------------------------------------------------------ regression corpus

REGRESSIONS = sorted((Path(__file__).resolve().parent / "fuzz_corpus" / "issue14").glob("*"))


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_regression_corpus(path):
    """Inputs that once crashed, hung or were accepted silently; the file name starts with
    the reader (``<reader>__<what>.<ext>``); each must now give one clear error."""
    reader = path.name.split("__")[0]
    func = READERS[reader][0]
    kind, message = check(func, path, path.read_bytes())
    assert kind == "error", f"{kind}: {message[:300]}"
