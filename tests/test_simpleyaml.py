"""The preset subset of YAML read without PyYAML (simulator/topology/simpleyaml.py) gives
what PyYAML and the strict loader give, values, types and lines, or declines.

Each case is read both ways: through the subset reader and through
``load_located_pyyaml`` (PyYAML). Where the subset reader answers, both must be equal;
where PyYAML refuses the text (an error), the subset reader must decline so that the user
sees PyYAML's error. The bundled presets must be read by the subset (the default run
imports no PyYAML, tests/test_import_floor.py).
"""
import pytest

from repo_paths import ROOT
from simulator.errors import InputError
from simulator.readers import yamlload
from simulator.topology import PRESET_DIR, load_spec, presets
from simulator.topology import simpleyaml
from simulator.topology.yamlsrc import load_located, load_located_pyyaml


def _both(text):
    simple = simpleyaml.parse(text)
    try:
        doc = load_located_pyyaml(text, "t.yaml")
        reference = (doc.data, doc.lines)
    except InputError as exc:
        reference = exc
    return simple, reference


def _typed(value):
    """Values with their types (1 and 1.0 and True compare equal in Python)."""
    if isinstance(value, dict):
        return {(type(k).__name__, k): _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _agree(text):
    simple, reference = _both(text)
    if simple is None:
        return "declined"
    assert not isinstance(reference, InputError), (text, reference)
    assert _typed(simple[0]) == _typed(reference[0]), text
    assert simple[1] == reference[1], text
    assert list(simple[1]) == list(reference[1]), text
    return "read"


def test_presets_are_read_by_the_subset_exactly():
    for name in presets():
        text = (PRESET_DIR / f"{name}.yaml").read_text()
        assert _agree(text) == "read", name


def test_every_yaml_file_of_the_repository_agrees_or_is_declined():
    files = [p for p in ROOT.rglob("*.y*ml") if ".git" not in p.parts]
    assert len(files) > 20
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if "\0" in text:
            continue
        _agree(text)


READ = [
    "a: 1\nb: -2\nc: +3\nd: 007\ne: 1.5\nf: .5\ng: 1.\n",
    "name: x y z\ns: 450GB/s\nt: 0.05us\nu: torch.distributed\nv: a (b, c) d\n",
    "m: {default: 28us, sendrecv: 45us}\nl: [9.4, 12.9, 14.1]\nn: [[0, 1], [1, 2, 300GB/s]]\n",
    "e:\n  default: 0.70\n  all_reduce: {2: 0.64, 4: 0.78}\n",
    "# lead\n\n  # indented comment\nk:   v   # trailing\nz: ~\nnone:\nq: null\n",
    "x: 'quoted: text'\ny: \"12\"\nw: ''\n",
    "list:\n- 1\n- two\n- [3]\nafter: 4\n",
    "deep:\n  list:\n    - a\n    - b\n  k: {}\n  j: []\n",
    "  indented_root: 1\n  other: 2\n",
    "",
    "# only a comment\n",
    "a: 1 # comment with unicode \u00d7 \u2014\n",
    "a: [1,2]\nb: {x: y z}\n",
    "a: 2026-12-02\n",                    # dates stay strings in the strict loader
    "a: 1e5\nb: 1E-3\nc: 16\n",
    "- 1\n- 2\n",
]
DECLINED = [
    "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: |\n  text\n", "a: >\n  text\n",
    "a: long\n  continued\n", "a:\tb\n", "a: b\r\n", "---\na: 1\n", "a: 1\n...\n",
    "a: 1\na: 2\n", "a: 1\n01: 2\n1: 3\n", "{a: 1}\n", "just text\n",
    "a: yes\n", "a: On\n", "a: 0x10\n", "a: 1_000\n", "a: 1:30\n", "a: .inf\n", "a: .nan\n",
    "a: 1e999\n", "a: 1e-320\n", "a: [1, 2,\n  3]\n", "a: [1, 2, ]\n", "a: {b}\n",
    "a: {b:1}\n", "a: 'it''s'\n", "a: \"esc\\n\"\n", "a: b: c\n", "a: - b\n", "? a\n: b\n",
    "a: x#y\n", "a: caf\u00e9\n", "a: <<\n", "<<: {b: 1}\n", "a: =\n", "a: %x\n",
    "a:\n    b: 1\n  c: 2\n", "'a': 1\n", "a : 1\n", "a: @x\n", "a: `x`\n", "a: x\u0085y\n",
    "\ufeffa: 1\n", "a: [1] [2]\n", "- a: 1\n", "a:\n  - b: 1\n", "a: " + "9" * 41 + "\n",
    "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40)) + "  " * 40 + "v: 1\n",
    "a: true\n", "a: 1\n  b: 2\n", "a:\n- 1\n  - 2\n",
]


@pytest.mark.parametrize("text", READ)
def test_subset_reads_like_pyyaml(text):
    assert _agree(text) == "read"


@pytest.mark.parametrize("text", DECLINED)
def test_outside_the_subset_pyyaml_reads_or_refuses_it(text):
    assert _agree(text) == "declined"


def test_errors_are_pyyamls():
    with pytest.raises(InputError) as exc:
        load_located("a: 1\na: 2\n", "mine.yaml")
    assert "mine.yaml:2" in str(exc.value) and "duplicate key" in str(exc.value)


def test_resolvers_are_the_strict_loaders():
    # the subset resolves plain scalars as simulator/readers/yamlload.py does: its int,
    # float and refused-number patterns, YAML 1.1's bool and null words, nothing else
    found = {tag.rsplit(":", 1)[-1]: rx.pattern
             for lst in yamlload._Loader.yaml_implicit_resolvers.values() for tag, rx in lst}
    assert found["int"] == simpleyaml.INT_PATTERN
    assert found["float"] == simpleyaml.FLOAT_PATTERN
    assert found["not-a-plain-number"] == simpleyaml.BAD_NUMBER
    # ("yaml" is PyYAML's resolver for plain scalars starting with ! & *, which cannot be)
    assert set(found) == {"int", "float", "not-a-plain-number", "bool", "null", "merge",
                          "value", "yaml"}


def test_a_preset_loads_the_same_spec_both_ways(tmp_path):
    for name in presets():
        text = (PRESET_DIR / f"{name}.yaml").read_text()
        odd = tmp_path / f"{name}.yaml"
        odd.write_text("%YAML 1.1\n---\n" + text)       # a directive: PyYAML reads this one
        assert simpleyaml.parse(odd.read_text()) is None
        assert load_spec(str(odd)) == load_spec(name).__class__(
            **{**vars(load_spec(name)), "source": str(odd)})


# ------------------------------------------------------- the string checks and their regexes

# the patterns the subset's checks stand for (as they were written before: re.ASCII)
KEY = r"([A-Za-z0-9_][A-Za-z0-9_.+-]*):(?: |$)"
PLAIN = r"[A-Za-z0-9_.+/(-][^:#\[\]{}\"'`!&*|>%@\\]*"
ALLOWED = r"[^\x20-\x7e]"
# characters the checks treat differently, and some they do not know
ALPHABET = "09az_AZ.+-/(:# \n\t[]{}\"'`!&*|>%@\\eE~\x7f\x1f\u00e9\u0661\uff11\u00b2"


def _texts(n=6000, seed=18):
    import random
    rng = random.Random(seed)
    words = ["", "1", "12", "-3", "+4", ".5", "5.", "1.5", "1e5", "1E-5", "1e+", "e5", "1.5e3",
             "k", "key", "a.b", "nccl", "450GB/s", "0.05us", ":", "a:", "a: ", "a:b", "a: b",
             "a:\n", "a:\nb", "1\n", "1\n\n", "- a", "(x", "/x", "_", "x y"]
    out = list(words)
    for _ in range(n):
        k = rng.randint(1, 8)
        if rng.random() < 0.5:
            out.append(rng.choice(words) + "".join(rng.choice(ALPHABET) for _ in range(k)))
        else:
            out.append("".join(rng.choice(ALPHABET) for _ in range(k)))
    return out


def test_number_checks_are_the_strict_loaders_patterns():
    found = {tag.rsplit(":", 1)[-1]: rx
             for lst in yamlload._Loader.yaml_implicit_resolvers.values() for tag, rx in lst}
    for text in _texts():
        assert simpleyaml.is_int(text) == bool(found["int"].match(text)), repr(text)
        assert simpleyaml.is_float(text) == bool(found["float"].match(text)), repr(text)
        assert simpleyaml._bad_number(text) == bool(found["not-a-plain-number"].match(text)), \
            repr(text)


def test_key_plain_and_character_checks_are_their_patterns():
    import re
    key, plain, allowed = (re.compile(p, re.ASCII) for p in (KEY, PLAIN, ALLOWED))
    for text in _texts():
        m = key.match(text)
        assert simpleyaml._key_match(text) == (m and (m.group(1), m.end())), repr(text)
        assert simpleyaml._key_text(text) == bool(key.fullmatch(text + ":")), repr(text)
        assert simpleyaml._plain(text) == bool(plain.fullmatch(text)), repr(text)
        assert simpleyaml._printable_ascii(text) == (allowed.search(text) is None), repr(text)
