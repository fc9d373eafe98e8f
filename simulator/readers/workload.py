"""Read a SimAI/AICB/ASTRA-sim 1.0 text workload table into :class:`~simulator.workload.Workload`.

Reads every row (never drops any), checks every field, and reports problems as one-line
:class:`~simulator.errors.InputError` naming the file, line and field.
"""
from __future__ import annotations

import functools
import math
import os

from ..errors import InputError, warn
from ..lazyre import LazyPattern
from .source import read_errors
from ..workload import NO_COMM, POLICIES, Comm, Group, Op, Phase, Row, Workload

ROW_FIELDS = ("name", "dep", "fwd_ns", "fwd_type", "fwd_bytes", "ig_ns", "ig_type", "ig_bytes",
              "wg_ns", "wg_type", "wg_bytes", "update_ns")

# header keys and what they set; values are integers except where noted
_INT_KEYS = {
    "model_parallel_NPU_group": "tp", "ep": "ep", "pp": "pp", "vpp": "vpp", "ga": "ga",
    "all_gpus": "all_gpus",
}
_LIST_KEYS = {"checkpoints": "checkpoints", "checkpoint_initiates": "checkpoint_initiates"}
_KNOWN = frozenset(list(_INT_KEYS) + list(_LIST_KEYS)
                   + ["pp_comm", "DLRM_LAST_BOTTOM_LAYER", "mode"])

#: the largest time (ns) or size (bytes) a field may hold: 2^62 ns is 146 years, 2^62 bytes
#: 4.6 EB; anything larger is a typo, and sums of such values still fit a float
MAX_NUMBER = 1 << 62
#: the largest GPU count or parallel size in a header (the engine holds arrays of ranks)
MAX_GPUS = 1 << 22
#: the most pipeline stages: the engine simulates each one (and no model has this many layers)
MAX_PP = 1 << 14

# numbers as SimAI/AICB write them: ASCII digits, an optional sign, decimals and exponent
# (no '1_000', no '0x10', no non-ASCII digits, no 'nan' or 'inf')
_FLOAT_RE = LazyPattern(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


def _is_int(text: str) -> bool:
    """Whether ``text`` is an integer as the tables write it: ``[+-]?[0-9]+`` and nothing else."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    return digits.isascii() and digits.isdigit()


def _lines(text: str) -> list[str]:
    """The lines of ``text``: they end at \\n, \\r\\n or \\r only (str.splitlines also splits
    at form feeds and Unicode separators, which would shift every line number after them).
    String methods, not a regex split: about 5 times faster on a 13,000-line table."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def _clip(text: str, n: int = 60) -> str:
    """repr of a token for a message, shortened so the message stays readable."""
    if len(text) <= n:
        return repr(text)
    return f"{text[:n]!r}... ({len(text)} characters)"


_OPS_BY_NAME = {op.value: op for op in Op if op is not Op.SENDRECV}
_FIELD_NAMES = tuple(f"field {n + 1} ({name})" for n, name in enumerate(ROW_FIELDS))


@functools.lru_cache(maxsize=256)
def parse_comm_type(text: str, phase: Phase) -> Comm | None:
    """``(op, group)`` for a type word in a given column; None if the word is unknown.

    Plain names run on TP in the forward and input-gradient columns and on DP in the
    weight-gradient column; ``_EP`` and ``_DP_EP`` suffixes pick those groups anywhere.
    """
    if text == "NONE":
        return NO_COMM
    group = Group.DP if phase is Phase.WG else Group.TP
    base = text
    if text.endswith("_DP_EP"):
        base, group = text[: -len("_DP_EP")], Group.DP_EP
    elif text.endswith("_EP"):
        base, group = text[: -len("_EP")], Group.EP
    op = _OPS_BY_NAME.get(base)
    if op is None:
        return None
    return Comm(op, group, 0)


class _Reader:
    def __init__(self, path: str, strict: bool):
        self.path = path
        self.strict = strict

    def error(self, message: str, line: int | None = None, field: str | None = None) -> InputError:
        return InputError(message, path=self.path, line=line, field=field)

    # -- numbers -------------------------------------------------------------------------
    def nonneg_int(self, text: str, line: int, field: str, allow_fraction: bool = False,
                   limit: int = MAX_NUMBER) -> int:
        if len(text) <= 18 and text.isascii() and text.isdigit():  # the common case
            value = int(text)
        elif _is_int(text):
            digits = text.lstrip("+-").lstrip("0")
            value = int(text) if len(digits) <= 40 else (limit + 1) * (-1 if text[0] == "-" else 1)
        elif _FLOAT_RE.match(text):
            number = float(text)
            if not math.isfinite(number):  # only overflow gets here: the pattern has no inf
                raise self.error(f"expected a finite number, got {_clip(text)} (too large)",
                                 line, field)
            if number != int(number) and not allow_fraction:
                raise self.error(f"expected a whole number, got {_clip(text)}", line, field)
            value = round(number)
        else:
            raise self.error(f"expected a non-negative integer, got {_clip(text)}", line, field)
        if value < 0:
            raise self.error(f"must not be negative, got {_clip(text)}", line, field)
        if value > limit:
            raise self.error(f"{_clip(text)} is too large (at most {limit:,})", line, field)
        return value

    def positive_int(self, text: str, line: int, field: str, limit: int = MAX_NUMBER) -> int:
        value = self.nonneg_int(text, line, field, limit=limit)
        if value == 0:
            raise self.error("must be at least 1, got 0", line, field)
        return value

    # -- header ----------------------------------------------------------------------------
    def header(self, text: str) -> dict:
        tokens = text.split()
        if not tokens:
            raise self.error("empty header: expected a policy word such as "
                             "HYBRID_TRANSFORMER_FWD_IN_BCKWD", 1, "policy")
        policy = tokens[0]
        if policy not in POLICIES:
            raise self.error(f"unknown policy {_clip(policy)}; expected one of "
                             f"{', '.join(sorted(POLICIES))}", 1, "policy")
        # split glued 'key:value' tokens so 'ep:4' and 'ep: 4' read the same
        flat: list[str] = []
        for tok in tokens[1:]:
            if ":" in tok and not tok.endswith(":"):
                key, _, value = tok.partition(":")
                flat.extend([key + ":", value])
            else:
                flat.append(tok)
        out: dict = {"policy": policy}
        seen: list[str] = []
        i = 0
        if policy in ("HYBRID_DLRM", "HYBRID_DLRM_ENHANCED") and flat and _is_int(flat[0]):
            # ASTRA-sim 1.0 writes the last bottom layer as a bare number after the policy
            out["dlrm_last_bottom_layer"] = self.nonneg_int(flat[0], 1, "DLRM_LAST_BOTTOM_LAYER")
            seen.append("DLRM_LAST_BOTTOM_LAYER")
            i = 1
        while i < len(flat):
            key = flat[i].rstrip(":")
            i += 1
            if key in seen:
                raise self.error(f"header key {_clip(key)} given twice", 1, key)
            seen.append(key)

            def take(what: str, key: str = key) -> str:  # bound: the key being read now
                nonlocal i
                if i >= len(flat):
                    raise self.error(f"missing value for {_clip(key)} ({what})", 1, key)
                value = flat[i]
                i += 1
                return value

            if key in _INT_KEYS:
                limit = MAX_PP if key == "pp" else MAX_GPUS
                text = take("an integer")
                if key in ("ga", "pp", "vpp") and _is_int(text) and int(text) == 0:
                    # real AICB output writes 'ga: 0' / 'pp: 0'; SimAI warns and goes on
                    warn(f"{self.path}: line 1: {key}: 0 read as {key} 1 (no "
                         f"{'pipeline' if key == 'pp' else 'repetition'}); SimAI warns the "
                         "same way")
                    out[_INT_KEYS[key]] = 1
                    continue
                out[_INT_KEYS[key]] = self.positive_int(text, 1, key, limit=limit)
            elif key == "pp_comm":
                # AICB writes 'pp_comm: 0', SimAI examples 'pp_comm 50331648', some a float
                out["pp_comm_bytes"] = self.nonneg_int(take("bytes"), 1, key)
            elif key in _LIST_KEYS:
                count = self.nonneg_int(take("a count"), 1, key)
                values = tuple(self.nonneg_int(take(f"index {n + 1} of {count}"), 1, key)
                               for n in range(count))
                out[_LIST_KEYS[key]] = values
            elif key == "DLRM_LAST_BOTTOM_LAYER":
                out["dlrm_last_bottom_layer"] = self.nonneg_int(take("a row index"), 1, key)
            elif key == "mode":
                out["mode"] = take("a word")
            else:
                # generators add keys of their own (sha256 sums, versions): skip the token and,
                # when the next one is not a key, its value
                skipped = ""
                if i < len(flat) and not flat[i].endswith(":") and flat[i] not in _KNOWN:
                    skipped = flat[i]
                    i += 1
                seen.pop()
                if self.strict:
                    raise self.error(f"unknown header key {_clip(key)} (--strict); known keys: "
                                     + ", ".join(sorted(_KNOWN)), 1, key)
                warn(f"{self.path}: line 1: unknown header token {_clip(key)}"
                     + (f" (value {_clip(skipped)})" if skipped else "")
                     + " ignored; known keys: " + ", ".join(sorted(_KNOWN)))
        out["header_fields"] = tuple(seen)
        gpus = out.get("tp", 1) * out.get("pp", 1) * out.get("ep", 1)
        if gpus > MAX_GPUS:  # TP x PP x EP GPUs at least, whatever all_gpus says
            raise self.error(f"TP x PP x EP = {gpus:,} GPUs is more than collsim simulates "
                             f"({MAX_GPUS:,})", 1, "model_parallel_NPU_group")
        return out

    # -- rows ------------------------------------------------------------------------------
    def comm(self, word: str, size: int, phase: Phase, line: int, n_type: int) -> Comm:
        """The collective of type ``word`` (field ``n_type``) moving ``size`` bytes."""
        parsed = parse_comm_type(word, phase)
        if parsed is None:
            raise self.error(f"unknown collective type {_clip(word)}; expected NONE, "
                             "ALLREDUCE, ALLGATHER, REDUCESCATTER, ALLTOALL, BROADCAST, "
                             "ALLREDUCEALLTOALL, optionally with _EP or _DP_EP", line,
                             _FIELD_NAMES[n_type])
        if parsed.op is None:
            return NO_COMM  # AICB writes sizes next to NONE; they move no data
        return Comm(parsed.op, parsed.group, size)

    def row(self, text: str, line: int, customized: bool = False) -> Row:
        fields = text.split()
        row_policy = ""
        if customized and len(fields) == len(ROW_FIELDS) + 1:
            # HYBRID_CUSTOMIZED: the 13th field is the row's own policy
            row_policy = fields.pop()
            if row_policy not in POLICIES:
                raise self.error(f"unknown row policy {_clip(row_policy)}; expected one of "
                                 f"{', '.join(sorted(POLICIES))}", line, "field 13 (policy)")
        if len(fields) != len(ROW_FIELDS):
            raise self.error(f"expected {len(ROW_FIELDS)} whitespace-separated fields "
                             f"({' '.join(ROW_FIELDS)}), got {len(fields)}", line)

        fname = _FIELD_NAMES.__getitem__

        def comm(n_type: int, phase: Phase) -> Comm:
            size = self.nonneg_int(fields[n_type + 1], line, fname(n_type + 1))
            return self.comm(fields[n_type], size, phase, line, n_type)

        name = fields[0]
        # field 2 (dep) is reserved; SimAI writes -1. Accept any integer.
        if not _is_int(fields[1]):
            raise self.error(f"expected an integer, got {_clip(fields[1])}", line, fname(1))
        fwd_ns, fwd_bytes, ig_ns, ig_bytes, wg_ns, wg_bytes, update_ns = numbers = (
            fields[2], fields[4], fields[5], fields[7], fields[8], fields[10], fields[11])
        digits = "".join(numbers)
        if digits.isascii() and digits.isdigit() and len(max(numbers, key=len)) <= 18:
            # the common row: every number plain ASCII digits, short enough to be far below
            # the limit (what nonneg_int's first test takes, for the seven at once)
            fwd = self.comm(fields[3], int(fwd_bytes), Phase.FWD, line, 3)
            ig = self.comm(fields[6], int(ig_bytes), Phase.IG, line, 6)
            wg = self.comm(fields[9], int(wg_bytes), Phase.WG, line, 9)
            return Row(name, int(fwd_ns), fwd, int(ig_ns), ig, int(wg_ns), wg, int(update_ns),
                       line, row_policy)
        return Row(
            name=name,
            fwd_ns=self.nonneg_int(fields[2], line, fname(2), allow_fraction=True),
            fwd=comm(3, Phase.FWD),
            ig_ns=self.nonneg_int(fields[5], line, fname(5), allow_fraction=True),
            ig=comm(6, Phase.IG),
            wg_ns=self.nonneg_int(fields[8], line, fname(8), allow_fraction=True),
            wg=comm(9, Phase.WG),
            update_ns=self.nonneg_int(fields[11], line, fname(11), allow_fraction=True),
            line=line,
            policy=row_policy,
        )

    def rows(self, numbered: list[tuple[int, str]], customized: bool = False) -> tuple[Row, ...]:
        """Every row; a line repeated verbatim (AICB writes each micro-batch's rows ``ga``
        times) is parsed once and only its line number differs."""
        out: list[Row] = []
        seen: dict[str, Row] = {}
        for n, t in numbered:
            row = seen.get(t)
            if row is None:
                row = seen[t] = self.row(t, n, customized)
            else:
                row = Row(row.name, row.fwd_ns, row.fwd, row.ig_ns, row.ig, row.wg_ns, row.wg,
                          row.update_ns, n, row.policy)
            out.append(row)
        return tuple(out)

    def read(self, text: str) -> Workload:
        if text.startswith("\ufeff"):  # a byte-order mark, as Windows editors write
            text = text[1:]
        lines = _lines(text)
        # skip leading blank lines but keep real line numbers
        # the usual file has no blank line but the one after its last newline: its lines are
        # numbered by a C loop, not a Python one per line
        body = lines[:-1] if lines and not lines[-1].strip() else lines
        if "" in map(str.strip, body):
            numbered = [(n + 1, ln) for n, ln in enumerate(lines) if ln.strip()]
        else:
            numbered = list(enumerate(body, 1))
        if not numbered:
            raise self.error("the file is empty: expected a header line, a row count and rows")
        hline, htext = numbered[0]
        if hline != 1:
            raise self.error("blank line before the header", 1)
        header = self.header(htext)
        if len(numbered) < 2:
            raise self.error("truncated: expected the number of rows on line 2", 2, "row count")
        cline, ctext = numbered[1]
        declared = self.nonneg_int(ctext.strip(), cline, "row count")
        rows = self.rows(numbered[2:], header["policy"] == "HYBRID_CUSTOMIZED")
        if not rows:
            raise self.error(f"truncated: line {cline} declares {declared} rows but none follow",
                             cline, "row count")
        if len(rows) != declared:
            message = (f"line {cline} declares {declared} rows but {len(rows)} follow; "
                       f"all {len(rows)} are simulated")
            if self.strict:
                raise self.error(message + " (--strict)", cline, "row count")
            warn(f"{self.path}: {message}")
        nrows = len(rows)
        for key in ("checkpoints", "checkpoint_initiates"):
            for idx in header.get(key, ()):
                if idx >= nrows:
                    raise self.error(f"row index {idx} is past the last row ({nrows - 1})", 1, key)
        lbl = header.get("dlrm_last_bottom_layer")
        if lbl is not None and lbl >= nrows:
            raise self.error(f"last bottom layer {lbl} is past the last row ({nrows - 1})", 1,
                             "DLRM_LAST_BOTTOM_LAYER")
        return Workload(path=self.path, declared_rows=declared, rows=rows, **header)


def read_workload_text(text: str, path: str = "<workload>", strict: bool = False) -> Workload:
    return _Reader(path, strict).read(text)


def read_workload(path: str | os.PathLike, strict: bool = False) -> Workload:
    """Parse a workload file. Raises InputError for a missing or malformed file."""
    path = os.fspath(path)
    with read_errors(path, "workload file"), open(path, "rb") as fh:
        data = fh.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not a text file ({exc.reason} at byte {exc.start})", path=path,
                         line=line) from None
    return _Reader(path, strict).read(text)
