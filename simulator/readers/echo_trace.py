"""Reader for per-rank Megatron traces in the Echo profiler text format (seed 003).

One record per line::

    rank:0:forward_step(stage_id=0,batch_id=3,mg_state=steady,duration=12.67,description=None,
        group_kind=None,input__shape=None,input__dtype=None,timestamp=3371168211.8,
        sub_operations=['trace_src_func=...,duration=0.23,timestamp=...,input__shape=[2048, 4096],
        input__dtype=torch.bfloat16,group=exp,comm_func=all_to_all', ...])

Values are written unquoted (``description=Regular DP gradient synchronization (non-expert
parameters)``) and may hold brackets, parentheses and commas, so the arguments are split by a
small tokenizer that tracks bracket depth and quotes rather than by regular expressions.

Times are milliseconds.  ``timestamp`` is the time the record was *written*, i.e. the end of
the operation: a record starts at ``timestamp - duration`` (checked on seed 003: each
``forward_step`` starts after the ``get_batch`` before it ends).  Durations are CUDA event
times and include waiting for the slowest peer.  In the 1F1B steady state Megatron's
combined ``send_forward_recv_backward`` call is written as two records (``send_forward`` and
``recv_backward``) with the same start and duration: a replay must not run them one after
the other.

Public API: :func:`read_echo_trace`, :func:`parse_echo_trace`, :func:`parse_echo_line`,
:func:`summarize_echo_trace`, and the dataclasses :class:`EchoRecord`,
:class:`SubOperation`, :class:`CommStat`, :class:`OpTiming`, :class:`EchoSummary`.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Sequence

from simulator.errors import InputError

__all__ = [
    "DTYPE_BYTES", "MG_STATES", "SubOperation", "EchoRecord", "CommStat", "OpTiming",
    "EchoSummary", "parse_echo_line", "parse_echo_trace", "read_echo_trace",
    "summarize_echo_trace", "dtype_bytes",
]

#: Bytes per element of the dtypes that occur in Megatron traces (``torch.`` prefix optional).
DTYPE_BYTES: dict[str, int] = {
    "float64": 8, "double": 8, "float32": 4, "float": 4, "float16": 2, "half": 2,
    "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1, "int64": 8, "long": 8, "int32": 4, "int": 4, "int16": 2,
    "short": 2, "int8": 1, "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16,
}

#: Pipeline-schedule states written by Echo's Megatron instrumentation.
MG_STATES = ("warmup", "steady", "cooldown", "finalize")

_REQUIRED_RECORD_FIELDS = ("stage_id", "batch_id", "mg_state", "duration", "timestamp")


# --------------------------------------------------------------------------------------------
# dataclasses
# --------------------------------------------------------------------------------------------

@dataclass
class SubOperation:
    """A communication call recorded inside an operation (``sub_operations=[...]``)."""

    comm_func: str | None          #: ``all_to_all``, ``allgather``, ...
    group: str | None              #: process group name as written (``exp``, ...)
    shape: tuple[int, ...] | None  #: ``input__shape``
    dtype: str | None              #: ``input__dtype`` as written (``torch.bfloat16``)
    duration_ms: float
    timestamp_ms: float | None     #: as written (end of the call, like the records)
    size_bytes: int | None         #: prod(shape) * bytes(dtype); None if shape or dtype is None
    trace_src_func: str | None = None
    func_name: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  #: any other ``key=value`` fields


@dataclass
class EchoRecord:
    """One line of an Echo trace: an operation of one rank."""

    rank: int
    op: str                        #: ``forward_step``, ``backward_step``, ``send_forward``, ...
    stage_id: int
    batch_id: int                  #: micro-batch index (0 for the finalize ops)
    mg_state: str                  #: one of :data:`MG_STATES`
    duration_ms: float
    timestamp_ms: float            #: end time of the operation
    group_kind: str | None         #: ``pp``, ``dp``, ``ep_dp`` or None
    description: str | None
    input_shapes: tuple[tuple[int, ...], ...]  #: () when ``input__shape=None``
    input_dtypes: tuple[str, ...]              #: () when ``input__dtype=None``
    sub_operations: tuple[SubOperation, ...]
    line: int = 0                  #: 1-based line number in the file
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def start_ms(self) -> float:
        return self.timestamp_ms - self.duration_ms

    @property
    def end_ms(self) -> float:
        return self.timestamp_ms

    @property
    def is_comm(self) -> bool:
        """True for a record that is itself communication (``group_kind`` pp, dp, ep_dp)."""
        return self.group_kind is not None

    @property
    def comm_ms(self) -> float:
        """Communication time: the whole duration for a communication record, else the sum
        of the communication sub-operations."""
        if self.is_comm:
            return self.duration_ms
        return round(sum(s.duration_ms for s in self.sub_operations), 6)

    @property
    def compute_ms(self) -> float:
        """Duration minus its communication (never negative; 0 for a communication record).

        For ``forward_step``/``backward_step`` this is the compute a simulator replays, the
        expert all-to-alls and all-gathers being simulated separately."""
        if self.is_comm:
            return 0.0
        return max(0.0, round(self.duration_ms - self.comm_ms, 6))

    @property
    def size_bytes(self) -> int | None:
        """Bytes of the record's own input (e.g. a gradient all-reduce buffer)."""
        if not self.input_shapes or len(self.input_dtypes) != len(self.input_shapes):
            return None
        return sum(math.prod(s) * dtype_bytes(d)
                   for s, d in zip(self.input_shapes, self.input_dtypes))


@dataclass
class CommStat:
    """Durations of one kind of communication sub-operation (same call, shape and phase)."""

    comm_func: str
    shape: tuple[int, ...] | None
    dtype: str | None
    size_bytes: int | None
    phase: str                     #: ``forward`` or ``backward`` (the enclosing step)
    count: int
    median_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    durations_ms: tuple[float, ...] = ()


@dataclass
class OpTiming:
    """One operation of the stage, positioned relative to the start of the iteration."""

    op: str
    batch_id: int
    mg_state: str
    start_ms: float                #: relative to the first record's start
    duration_ms: float
    compute_ms: float              #: duration minus communication sub-operations
    comm_ms: float                 #: sum of communication sub-operations
    group_kind: str | None
    size_bytes: int | None


@dataclass
class EchoSummary:
    """The quantities of a one-iteration stage trace listed in docs/real-runs.md."""

    rank: int
    stage_id: int
    num_microbatches: int
    num_warmup_forwards: int
    forward_step_median_ms: float            #: steady-state forward steps
    forward_step_median_all_ms: float        #: all forward steps
    backward_step_median_ms: float           #: all backward steps (what real-runs.md lists)
    backward_step_median_steady_ms: float    #: steady-state backward steps only
    forward_compute_ms: tuple[float, ...]    #: per micro-batch (batch_id order)
    backward_compute_ms: tuple[float, ...]   #: per micro-batch (batch_id order)
    forward_compute_median_ms: float
    backward_compute_median_ms: float
    comm: tuple[CommStat, ...]               #: sub-operation statistics
    send_forward_warmup_median_ms: float | None
    first_steady_send_forward_ms: float | None  #: pipeline-fill wait
    steady_forward_period_ms: float | None   #: median start-to-start of steady forwards
    dp_allreduce_ms: float | None
    dp_allreduce_bytes: int | None
    ep_dp_allreduce_ms: float | None
    ep_dp_allreduce_bytes: int | None
    optimizer_step_ms: float | None
    iteration_span_ms: float                 #: first start to last end
    forward_backward_span_ms: float          #: first start to end of the last backward_step
    ops: tuple[OpTiming, ...]                #: every record, in time order, for replay

    def comm_median_ms(self, comm_func: str, shape: Sequence[int] | None = None,
                       phase: str | None = None) -> float:
        """Median duration of matching sub-operations (over both phases if phase is None)."""
        want = tuple(shape) if shape is not None else None
        durations: list[float] = []
        stats = [c for c in self.comm if c.comm_func == comm_func
                 and (want is None or c.shape == want) and (phase is None or c.phase == phase)]
        if not stats:
            raise KeyError(f"no {comm_func} sub-operation with shape {want} phase {phase}")
        if len(stats) == 1:
            return stats[0].median_ms
        for c in stats:
            durations.extend(c.durations_ms)
        return statistics.median(durations)


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------

_OPEN = {"[": "]", "(": ")", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}


class _SyntaxError(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def _split_top(text: str, sep: str | None = ",") -> list[str]:
    """Split ``text`` on ``sep`` outside brackets and quotes; raise on unbalanced input.

    With ``sep=None`` only the balance is checked.
    """
    parts: list[str] = []
    stack: list[str] = []
    quote: str | None = None
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote is not None:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch in _OPEN:
            stack.append(_OPEN[ch])
        elif ch in _CLOSE:
            if not stack or stack[-1] != ch:
                raise _SyntaxError(f"unbalanced {ch!r} at column {i + 1} of {_clip(text)!r}")
            stack.pop()
        elif ch == sep and not stack:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quote is not None:
        raise _SyntaxError(f"unterminated {quote} quote in {_clip(text)!r}")
    if stack:
        raise _SyntaxError(f"missing {stack[-1]!r} in {_clip(text)!r}")
    parts.append(text[start:])
    return parts


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


_FREE_TEXT = ("description",)


def _key_values(text: str) -> list[tuple[str, str]]:
    """``k=v,k=v`` (top-level commas only) -> [(k, v)].

    A part that is not ``key=value`` right after a free-text field (``description``) is
    taken as a comma inside that text; anywhere else it is an error.
    """
    if not text.strip():
        return []
    out: list[tuple[str, str]] = []
    for part in _split_top(text):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key or not key.replace("_", "a").isalnum():
            if out and out[-1][0] in _FREE_TEXT:
                out[-1] = (out[-1][0], out[-1][1] + "," + part.rstrip())
                continue
            raise _SyntaxError(f"expected key=value, got {_clip(part.strip())!r}")
        out.append((key, value.strip()))
    return out


def _unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in ("'", '"'):
        body = t[1:-1]
        return body.replace("\\" + t[0], t[0]).replace("\\\\", "\\")
    raise _SyntaxError(f"expected a quoted string, got {_clip(t)!r}")


def _list_items(text: str, name: str) -> list[str]:
    t = text.strip()
    if not (t.startswith("[") and t.endswith("]")):
        raise _SyntaxError(f"expected a [list], got {_clip(t)!r}", name)
    inner = t[1:-1]
    if not inner.strip():
        return []
    items = [x.strip() for x in _split_top(inner)]
    if any(not x for x in items):
        raise _SyntaxError(f"empty list item in {_clip(t)!r}", name)
    return items


def _none(text: str) -> bool:
    return text.strip() in ("None", "")


def _float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _SyntaxError(f"expected a number, got {_clip(text)!r}", name) from None
    if not math.isfinite(value):
        raise _SyntaxError(f"expected a finite number, got {text!r}", name)
    return value


def _int(text: str, name: str, minimum: int | None = 0) -> int:
    t = text.strip()
    try:
        value = int(t)
    except ValueError:
        raise _SyntaxError(f"expected an integer, got {_clip(t)!r}", name) from None
    if minimum is not None and value < minimum:
        raise _SyntaxError(f"expected an integer >= {minimum}, got {value}", name)
    return value


def _duration(text: str, name: str) -> float:
    value = _float(text, name)
    if value < 0:
        raise _SyntaxError(f"expected a non-negative duration, got {text!r}", name)
    return value


def _shape(items: list[str], name: str) -> tuple[int, ...]:
    return tuple(_int(x, name) for x in items)


def _shapes(text: str, name: str) -> tuple[tuple[int, ...], ...]:
    """``None`` -> (); ``[a, b]`` -> ((a, b),); ``[[a], [b, c]]`` -> ((a,), (b, c))."""
    if _none(text):
        return ()
    items = _list_items(text, name)
    if items and all(x.startswith("[") for x in items):
        return tuple(_shape(_list_items(x, name), name) for x in items)
    if any(x.startswith("[") for x in items):
        raise _SyntaxError(f"mixed list of shapes and integers: {_clip(text)!r}", name)
    return (_shape(items, name),)


def _dtype_name(text: str, name: str) -> str:
    t = text.strip()
    if t[:1] in ("'", '"'):
        t = _unquote(t)
    if _dtype_key(t) not in DTYPE_BYTES:
        raise _SyntaxError(f"unknown dtype {t!r}", name)
    return t


def _dtypes(text: str, name: str) -> tuple[str, ...]:
    if _none(text):
        return ()
    t = text.strip()
    if t.startswith("["):
        return tuple(_dtype_name(x, name) for x in _list_items(t, name))
    return (_dtype_name(t, name),)


def _dtype_key(dtype: str) -> str:
    key = dtype.strip()
    return key[len("torch."):] if key.startswith("torch.") else key


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of ``dtype`` (``torch.bfloat16`` or ``bfloat16``); KeyError for an
    unknown one."""
    key = _dtype_key(dtype)
    if key not in DTYPE_BYTES:
        raise KeyError(f"unknown dtype {dtype!r}")
    return DTYPE_BYTES[key]


def _optional_ident(text: str, name: str) -> str | None:
    t = text.strip()
    if _none(t):
        return None
    if not t.replace("_", "a").replace("-", "a").replace(".", "a").isalnum():
        raise _SyntaxError(f"expected a name, got {_clip(t)!r}", name)
    return t


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------

def _parse_sub_operation(text: str) -> SubOperation:
    kv = dict(_key_values(_unquote(text)))
    if "duration" not in kv:
        raise _SyntaxError("sub-operation without duration", "sub_operations")
    duration = _duration(kv.pop("duration"), "sub_operations.duration")
    ts = kv.pop("timestamp", None)
    timestamp = None if ts is None or _none(ts) else _float(ts, "sub_operations.timestamp")
    shapes = _shapes(kv.pop("input__shape", "None"), "sub_operations.input__shape")
    dtypes = _dtypes(kv.pop("input__dtype", "None"), "sub_operations.input__dtype")
    if len(shapes) > 1 or len(dtypes) > 1:
        raise _SyntaxError("a sub-operation has one input shape and dtype",
                           "sub_operations.input__shape")
    shape = shapes[0] if shapes else None
    dtype = dtypes[0] if dtypes else None
    size = math.prod(shape) * dtype_bytes(dtype) if shape is not None and dtype else None
    comm_func = _optional_ident(kv.pop("comm_func", "None"), "sub_operations.comm_func")
    group = _optional_ident(kv.pop("group", "None"), "sub_operations.group")
    src = kv.pop("trace_src_func", None)
    fname = kv.pop("func_name", None)
    return SubOperation(comm_func=comm_func, group=group, shape=shape, dtype=dtype,
                        duration_ms=duration, timestamp_ms=timestamp, size_bytes=size,
                        trace_src_func=src, func_name=fname, extra=kv)


def _parse_record(text: str) -> EchoRecord:
    # rank:R:OP( ... )
    head, sep, rest = text.partition(":")
    if head != "rank" or not sep:
        raise _SyntaxError("expected 'rank:R:OP(...)'")
    rank_text, sep, rest = rest.partition(":")
    if not sep:
        raise _SyntaxError("expected 'rank:R:OP(...)'")
    rank = _int(rank_text, "rank")
    op, paren, body = rest.partition("(")
    op = op.strip()
    if not paren or not op or not op.replace("_", "a").isalnum():
        raise _SyntaxError(f"expected an operation name and '(', got {_clip(rest)!r}", "op")
    # The argument list must be balanced and close exactly at the end of the line.
    try:
        _split_top("(" + body, sep=None)
    except _SyntaxError as exc:
        raise _SyntaxError(f"unbalanced record (truncated line?): {exc.message}") from None
    if not body.endswith(")"):
        raise _SyntaxError(f"text after the closing ')': {_clip(body)!r}")
    pairs = _key_values(body[:-1])  # balanced, so the last ')' closes the first '('

    kv: dict[str, str] = {}
    for key, value in pairs:
        if key in kv:
            raise _SyntaxError(f"duplicate field {key!r}", key)
        kv[key] = value
    for name in _REQUIRED_RECORD_FIELDS:
        if name not in kv:
            raise _SyntaxError(f"missing field {name!r}", name)
    stage_id = _int(kv.pop("stage_id"), "stage_id")
    batch_id = _int(kv.pop("batch_id"), "batch_id")
    mg_state = kv.pop("mg_state").strip()
    if mg_state not in MG_STATES:
        raise _SyntaxError(f"expected one of {', '.join(MG_STATES)}, got {mg_state!r}",
                           "mg_state")
    duration = _duration(kv.pop("duration"), "duration")
    timestamp = _float(kv.pop("timestamp"), "timestamp")
    description = kv.pop("description", "None").strip()
    group_kind = _optional_ident(kv.pop("group_kind", "None"), "group_kind")
    shapes = _shapes(kv.pop("input__shape", "None"), "input__shape")
    dtypes = _dtypes(kv.pop("input__dtype", "None"), "input__dtype")
    if shapes and dtypes and len(shapes) != len(dtypes):
        if len(dtypes) == 1:
            dtypes = dtypes * len(shapes)
        else:
            raise _SyntaxError(f"{len(shapes)} input shapes but {len(dtypes)} dtypes",
                               "input__dtype")
    subs_text = kv.pop("sub_operations", "[]")
    subs = tuple(_parse_sub_operation(x) for x in _list_items(subs_text, "sub_operations"))
    return EchoRecord(rank=rank, op=op, stage_id=stage_id, batch_id=batch_id,
                      mg_state=mg_state, duration_ms=duration, timestamp_ms=timestamp,
                      group_kind=group_kind,
                      description=None if description == "None" else description,
                      input_shapes=shapes, input_dtypes=dtypes, sub_operations=subs,
                      extra=kv)


def parse_echo_line(text: str, path: str | None = None, line: int | None = None
                    ) -> EchoRecord | None:
    """Parse one line; None for blank lines and lines that are not Echo records.

    A line that starts with ``rank:`` is a record and must parse, else :class:`InputError`.
    """
    stripped = text.strip()
    if not stripped.startswith("rank:"):
        return None
    try:
        record = _parse_record(stripped)
    except _SyntaxError as exc:
        raise InputError(exc.message, path=path, line=line, field=exc.field) from None
    record.line = line or 0
    return record


def parse_echo_trace(text: str, path: str | None = "<string>") -> list[EchoRecord]:
    """Parse the text of an Echo trace; other lines (log noise) are skipped."""
    records: list[EchoRecord] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        record = parse_echo_line(raw, path=path, line=number)
        if record is not None:
            records.append(record)
    return records


def read_echo_trace(path: str | Path) -> list[EchoRecord]:
    """Read an Echo trace file (one ``rank:R:OP(...)`` record per line)."""
    from .source import read_text

    p = Path(path)
    text = read_text(p, "Echo trace")
    records = parse_echo_trace(text, path=str(p))
    if not records:
        raise InputError("no 'rank:R:OP(...)' records found", path=str(p))
    return records


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------

def _median(values: Iterable[float]) -> float | None:
    vals = list(values)
    return statistics.median(vals) if vals else None


def _only(records: list[EchoRecord], op: str) -> EchoRecord | None:
    found = [r for r in records if r.op == op]
    return found[-1] if found else None


def summarize_echo_trace(records: Sequence[EchoRecord], rank: int | None = None,
                         stage_id: int | None = None, path: str | None = None) -> EchoSummary:
    """Derive the per-stage quantities of a one-iteration trace of one rank.

    ``rank``/``stage_id`` select the records (default: the first record's rank and stage).
    Raises :class:`InputError` when the selection has no forward or backward steps.
    """
    if not records:
        raise InputError("empty trace: nothing to summarize", path=path)
    rank = records[0].rank if rank is None else rank
    stage_id = records[0].stage_id if stage_id is None else stage_id
    recs = sorted((r for r in records if r.rank == rank and r.stage_id == stage_id),
                  key=lambda r: (r.start_ms, r.line))
    fwd = sorted((r for r in recs if r.op == "forward_step"), key=lambda r: r.batch_id)
    bwd = sorted((r for r in recs if r.op == "backward_step"), key=lambda r: r.batch_id)
    if not fwd or not bwd:
        raise InputError(f"rank {rank} stage {stage_id}: the trace needs forward_step and "
                         "backward_step records", path=path)
    steady_fwd = [r for r in fwd if r.mg_state == "steady"]
    steady_bwd = [r for r in bwd if r.mg_state == "steady"]
    batches = {r.batch_id for r in fwd} | {r.batch_id for r in bwd}

    # communication sub-operations, grouped by call, shape, dtype and enclosing step
    groups: dict[tuple, list[float]] = {}
    meta: dict[tuple, SubOperation] = {}
    for r, phase in [(r, "forward") for r in fwd] + [(r, "backward") for r in bwd]:
        for s in r.sub_operations:
            key = (s.comm_func or "?", s.shape, s.dtype, phase)
            groups.setdefault(key, []).append(s.duration_ms)
            meta.setdefault(key, s)
    comm: list[CommStat] = []
    for key in sorted(groups, key=lambda k: (k[0], k[3] != "forward", k[1] or ())):
        d = groups[key]
        stat = CommStat(comm_func=key[0], shape=key[1], dtype=key[2],
                        size_bytes=meta[key].size_bytes, phase=key[3], count=len(d),
                        median_ms=statistics.median(d), mean_ms=statistics.fmean(d),
                        min_ms=min(d), max_ms=max(d), durations_ms=tuple(d))
        comm.append(stat)

    sends = [r for r in recs if r.op == "send_forward"]
    warm_sends = [r.duration_ms for r in sends if r.mg_state == "warmup"]
    steady_sends = [r for r in sends if r.mg_state == "steady"]
    first_steady_send = min(steady_sends, key=lambda r: r.start_ms) if steady_sends else None

    starts = sorted(r.start_ms for r in steady_fwd)
    periods = [b - a for a, b in zip(starts, starts[1:])]

    t0 = min(r.start_ms for r in recs)
    t_end = max(r.end_ms for r in recs)
    bwd_end = max(r.end_ms for r in bwd)

    dp = _only(recs, "dp_allreduce")
    ep_dp = _only(recs, "ep_dp_allreduce")
    opt = _only(recs, "optimizer_step")
    ops = tuple(OpTiming(op=r.op, batch_id=r.batch_id, mg_state=r.mg_state,
                         start_ms=round(r.start_ms - t0, 6), duration_ms=r.duration_ms,
                         compute_ms=r.compute_ms, comm_ms=r.comm_ms, group_kind=r.group_kind,
                         size_bytes=r.size_bytes) for r in recs)
    fwd_compute = tuple(r.compute_ms for r in fwd)
    bwd_compute = tuple(r.compute_ms for r in bwd)
    return EchoSummary(
        rank=rank, stage_id=stage_id, num_microbatches=len(batches),
        num_warmup_forwards=sum(1 for r in fwd if r.mg_state == "warmup"),
        forward_step_median_ms=statistics.median(
            [r.duration_ms for r in (steady_fwd or fwd)]),
        forward_step_median_all_ms=statistics.median([r.duration_ms for r in fwd]),
        backward_step_median_ms=statistics.median([r.duration_ms for r in bwd]),
        backward_step_median_steady_ms=statistics.median(
            [r.duration_ms for r in (steady_bwd or bwd)]),
        forward_compute_ms=fwd_compute, backward_compute_ms=bwd_compute,
        forward_compute_median_ms=statistics.median(fwd_compute),
        backward_compute_median_ms=statistics.median(bwd_compute),
        comm=tuple(comm),
        send_forward_warmup_median_ms=_median(warm_sends),
        first_steady_send_forward_ms=first_steady_send.duration_ms if first_steady_send else None,
        steady_forward_period_ms=None if not periods else round(statistics.median(periods), 6),
        dp_allreduce_ms=dp.duration_ms if dp else None,
        dp_allreduce_bytes=dp.size_bytes if dp else None,
        ep_dp_allreduce_ms=ep_dp.duration_ms if ep_dp else None,
        ep_dp_allreduce_bytes=ep_dp.size_bytes if ep_dp else None,
        optimizer_step_ms=opt.duration_ms if opt else None,
        iteration_span_ms=round(t_end - t0, 6),
        forward_backward_span_ms=round(bwd_end - t0, 6),
        ops=ops,
    )
