"""The plain subset of YAML the topology presets are written in, read without PyYAML.

PyYAML costs about 10 ms to import and a few more to compose a preset: most of what the
default ``collsim simulate`` spends on its topology. The presets use a small part of YAML:
block mappings nested by indentation, ``- item`` lists, one-line flow lists and mappings
(``[9.4, 12.9, 14.1]``, ``{default: 28us, sendrecv: 45us}``, nested), plain and simply
quoted scalars, and comments. :func:`parse` reads exactly that into what
:func:`simulator.topology.yamlsrc.load_located` makes of it through PyYAML and the strict
loader (the same values, types and line of every key path) and returns None for anything
else (anchors, tags, block scalars, multi-line scalars, tabs, duplicate keys, numbers the
strict loader refuses, characters YAML forbids ...): the caller then reads the text through
PyYAML, which gives the value or the error. ``tests/test_simpleyaml.py`` checks both readers
agree on every YAML file of the repository and on a set of edge cases.
"""
from __future__ import annotations

from ..lazyre import LazyPattern

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any

# The subset's patterns are checked with string methods, not regexes: importing re and
# compiling the patterns (these five and units' three) was 5-8% of a default run's
# instructions, for one preset. tests/test_simpleyaml.py compares each check with the
# pattern it stands for.

# the strict loader's implicit resolvers (simulator/readers/yamlload.py, re.ASCII; the test
# checks these are its patterns): int before float, numbers it refuses, YAML 1.1's bool words
INT_PATTERN = r"^[-+]?[0-9]+$"
FLOAT_PATTERN = r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?$"
BAD_NUMBER = (
    r"^(?:[-+]?(?:[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|0[xob][0-9a-fA-F_]+"
    r"|[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
#: every character BAD_NUMBER can match: a text with another one needs no regex (compiled
#: on first use only; "450GB/s" or "0.05us" never need it)
_BAD_CHARS = frozenset("0123456789_:.+-xobXOBabcdefABCDEFinfINFnaN")
_BAD_NUMBER_RE = LazyPattern("(?a)" + BAD_NUMBER)


def _digits(text: str) -> bool:
    """``[0-9]*`` matches all of ``text``."""
    return not text or (text.isascii() and text.isdigit())


def _unsigned(text: str) -> str:
    """``text`` without the newline ``$`` lets end it and without its sign ``[-+]?``."""
    if text.endswith("\n"):
        text = text[:-1]
    return text[1:] if text[:1] in ("+", "-") else text


def is_int(text: str) -> bool:
    """``re.match(INT_PATTERN, text, re.ASCII)``."""
    body = _unsigned(text)
    return body != "" and _digits(body)


def is_float(text: str) -> bool:
    """``re.match(FLOAT_PATTERN, text, re.ASCII)``: a mantissa ``1.``, ``.5``, ``1.5`` or
    ``1``, then ``e``/``E``, a sign and digits, or nothing."""
    body = _unsigned(text)
    cut = min((i for i in (body.find("e"), body.find("E")) if i >= 0), default=len(body))
    mantissa, exponent = body[:cut], body[cut + 1:]
    whole, _, fraction = mantissa.partition(".")
    if not (whole or fraction) or not _digits(whole) or not _digits(fraction):
        return False
    if cut == len(body):
        return True
    exponent = exponent[1:] if exponent[:1] in ("+", "-") else exponent
    return exponent != "" and _digits(exponent)


def _bad_number(text: str) -> bool:
    if not _BAD_CHARS.issuperset(text):
        return False
    return _BAD_NUMBER_RE.match(text) is not None


_BOOL_WORDS = {"yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False",
               "FALSE", "on", "On", "ON", "off", "Off", "OFF"}
_NULL_WORDS = {"~", "null", "Null", "NULL"}
#: the longest number the strict loader reads without more checks (its MAX_DIGITS is 40)
_MAX_NUMBER = 30
# a plain scalar of this subset, [A-Za-z0-9_.+/(-][^:#\[\]{}\"'`!&*|>%@\\]* (fullmatch): no
# indicator first, none of ": ", " #", flow characters
_PLAIN_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+/(-")
_PLAIN_NEVER = frozenset(":#[]{}\"'`!&*|>%@\\")
# a key, ([A-Za-z0-9_][A-Za-z0-9_.+-]*):(?: |$) (match)
_KEY_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_KEY_CHARS = _KEY_FIRST | frozenset(".+-")


def _plain(text: str) -> bool:
    return text != "" and text[0] in _PLAIN_FIRST and _PLAIN_NEVER.isdisjoint(text)


def _key_match(text: str) -> tuple[str, int] | None:
    """What ``re.match(KEY, text)`` finds: (its group 1, its end), or None. The key's
    characters run to the first other one, which must be ``:`` (no shorter run can be
    followed by one), then a space or the end (``$``: also before a last newline)."""
    if not text or text[0] not in _KEY_FIRST:
        return None
    i, n = 1, len(text)
    while i < n and text[i] in _KEY_CHARS:
        i += 1
    if i == n or text[i] != ":":
        return None
    j = i + 1
    if j < n and text[j] == " ":
        return text[:i], j + 1
    if j == n or (j == n - 1 and text[j] == "\n"):
        return text[:i], j
    return None


def _key_text(raw: str) -> bool:
    """``re.fullmatch(KEY, raw + ":")``: ``raw`` is a key's characters, all of it."""
    return raw != "" and raw[0] in _KEY_FIRST and _KEY_CHARS.issuperset(raw)


def _printable_ascii(text: str) -> bool:
    """No character outside 0x20-0x7e: ASCII's printable ones are exactly those."""
    return text.isascii() and text.isprintable()


#: nesting the subset reads (the strict loader refuses more than 64 levels)
_MAX_DEPTH = 32
#: longer texts go to PyYAML (its loader bounds the size)
MAX_CHARS = 1 << 20


class Unsupported(Exception):
    """The text leaves the subset: read it with PyYAML."""


def _scalar(text: str) -> Any:
    """A plain scalar's value as the strict loader resolves it."""
    if not text or text in _NULL_WORDS:
        return None
    first = text[0]
    if first in "-+0123456789" and is_int(text):
        if len(text) > _MAX_NUMBER:
            raise Unsupported
        return int(text)
    if first in "-+.0123456789" and is_float(text):
        value = float(text)
        if len(text) > _MAX_NUMBER or value != value or value in (float("inf"), float("-inf")) \
                or (value != 0 and abs(value) < 2.2250738585072014e-308):
            raise Unsupported
        return value
    if _bad_number(text) or text in _BOOL_WORDS or first in "<=":
        raise Unsupported
    return text


def _quoted(text: str) -> str | None:
    """A simply quoted scalar's text ('...' or "..." with no quote or escape inside)."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        if "'" in inner or '"' in inner or "\\" in inner:
            raise Unsupported
        return inner
    return None


def _value(text: str) -> Any:
    q = _quoted(text)
    if q is not None:
        return q
    if text == "~":
        return None
    if not _plain(text) or text == "-" or text.startswith("- "):
        raise Unsupported
    return _scalar(text)


class _Flow:
    """One-line flow collections: ``[a, b]``, ``{k: v}``, nested."""

    def __init__(self, text: str, line: int, lines: dict, path: tuple):
        self.text, self.i, self.line, self.lines = text, 0, line, lines
        self.value = self.node(path)
        if self.text[self.i:].strip():
            raise Unsupported

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i] == " ":
            self.i += 1

    def token(self) -> str:
        j = self.i
        while self.i < len(self.text) and self.text[self.i] not in ",]}:":
            self.i += 1
        tok = self.text[j:self.i].strip()
        if not tok:
            raise Unsupported
        return tok

    def node(self, path: tuple) -> Any:
        if len(path) > _MAX_DEPTH:
            raise Unsupported
        self.skip()
        self.lines.setdefault(path, self.line)
        if self.text.startswith("[", self.i):
            self.i += 1
            out: list = []
            self.skip()
            if self.text.startswith("]", self.i):
                self.i += 1
                return out
            while True:
                out.append(self.node(path + (len(out),)))
                self.skip()
                c = self.text[self.i:self.i + 1]
                self.i += 1
                if c == "]":
                    return out
                if c != ",":
                    raise Unsupported
        if self.text.startswith("{", self.i):
            self.i += 1
            m: dict = {}
            self.skip()
            if self.text.startswith("}", self.i):
                self.i += 1
                return m
            while True:
                self.skip()
                raw = self.token()
                if not self.text.startswith(": ", self.i):
                    raise Unsupported
                self.i += 2
                key = _key(raw, m)
                self.lines[path + (key,)] = self.line
                m[key] = self.node(path + (key,))
                self.skip()
                c = self.text[self.i:self.i + 1]
                self.i += 1
                if c == "}":
                    return m
                if c != ",":
                    raise Unsupported
        tok = self.token()
        if self.text.startswith(":", self.i):
            raise Unsupported
        return _value(tok)


def _key(raw: str, seen: dict) -> Any:
    if not _key_text(raw):
        raise Unsupported
    key = _scalar(raw)
    if key is None or key in seen or isinstance(key, float):
        raise Unsupported          # duplicate keys, odd keys: PyYAML and the strict checks
    return key


def _strip_comment(line: str) -> str:
    """The line without a trailing comment (``#`` at the start or after a space)."""
    if line.lstrip().startswith("#"):
        return ""
    cut = line.find(" #")
    return line if cut < 0 else line[:cut]


def parse(text: str) -> tuple[Any, dict] | None:
    """``(data, lines)`` as the PyYAML path reads ``text``, or None outside the subset."""
    if len(text) > MAX_CHARS:
        return None
    try:
        return _parse(text)
    except (Unsupported, RecursionError):
        return None


def _parse(text: str) -> tuple[Any, dict]:
    rows: list[tuple[int, int, str]] = []     # (line number, indent, content)
    for number, raw in enumerate(text.split("\n"), 1):
        body = _strip_comment(raw).rstrip(" ")
        if "\t" in raw or "\r" in raw or "\ufeff" in raw:
            raise Unsupported
        # comments may hold any printable character; values printable ASCII only
        if not raw.isprintable() or not _printable_ascii(body):
            raise Unsupported
        if not body:
            continue
        if body.startswith(("---", "...", "%")):
            raise Unsupported
        indent = len(body) - len(body.lstrip(" "))
        rows.append((number, indent, body[indent:]))
    lines: dict = {}
    if not rows:
        return {}, lines
    data, end = _block(rows, 0, rows[0][1], (), lines)
    if end != len(rows):
        raise Unsupported
    return data, lines


def _block(rows, i: int, indent: int, path: tuple, lines: dict) -> tuple[Any, int]:
    """The block node starting at rows[i] (at ``indent``): a mapping or a list."""
    if len(path) > _MAX_DEPTH:
        raise Unsupported
    number, _, body = rows[i]
    lines.setdefault(path, number)
    if body == "-" or body.startswith("- "):
        out: list = []
        while i < len(rows) and rows[i][1] == indent and (rows[i][2] == "-"
                                                          or rows[i][2].startswith("- ")):
            number, _, body = rows[i]
            item = body[2:].strip()
            if not item or _key_match(item) or item.startswith("-"):
                raise Unsupported           # nested blocks in a list item
            out.append(_inline(item, number, lines, path + (len(out),)))
            i += 1
            if i < len(rows) and rows[i][1] > indent:
                raise Unsupported           # a scalar continued on the next line
        return out, i
    m: dict = {}
    while i < len(rows) and rows[i][1] == indent:
        number, _, body = rows[i]
        k = _key_match(body)
        if k is None:
            raise Unsupported
        key = _key(k[0], m)
        lines[path + (key,)] = number
        rest = body[k[1]:].strip()
        i += 1
        if rest:
            m[key] = _inline(rest, number, lines, path + (key,))
            if i < len(rows) and rows[i][1] > indent:
                raise Unsupported           # a scalar continued on the next line
        elif i < len(rows) and (rows[i][1] > indent or (
                rows[i][1] == indent and (rows[i][2] == "-" or rows[i][2].startswith("- ")))):
            m[key], i = _block(rows, i, rows[i][1], path + (key,), lines)
        else:
            m[key] = None
    if i < len(rows) and rows[i][1] > indent:
        raise Unsupported
    return m, i


def _inline(text: str, number: int, lines: dict, path: tuple) -> Any:
    if text[0] in "[{":
        return _Flow(text, number, lines, path).value
    lines.setdefault(path, number)
    return _value(text)
