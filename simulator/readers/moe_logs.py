"""Reader for Tutel-style MoE benchmark logs (seeds 000, 001 and 002).

Recognised lines (everything else is log noise and is skipped: model printouts, ``ddp``,
``forward``, ``True``, ``start``, ``Linear 2 Backward: ...``):

* ``[Benchmark] world_size = 4, dtype = float16, model_dim = 1024, ...`` opens a section;
* ``STEP-i: step_time = X ms, foward_time = F, backward_time = B[, perf = P tflops].``;
* ``[<impl> <model> <local experts>] [Summary] Average synchronized step_time = X ms[,
  forward = F, backward = B].`` closes the section;
* seed 002's per-rank kernel lines: ``block_info X Y`` (X blocks of 64 tokens in all, Y of
  them fetched from other ranks), ``AG, Y/X, t_ms, 0`` and ``GA, Y/X, t_ms, 0`` (fused
  all-to-all + expert GEMM kernels, once in forward and once in backward per rank),
  ``cuda:N process time:P, a: .., b: .., c: .., d: ..`` (host-side planning) and
  ``N wait time: W`` followed by a bare ``X`` line.

A section runs from ``[Benchmark]`` to ``[Summary]``; logs without ``[Benchmark]`` lines
(seed 001) get sections that start after the previous ``[Summary]``.  A line that starts like
one of the records above but does not parse raises :class:`InputError` naming file and line.

Kernel lines do not name their rank.  Within one step they are attributed by matching the
printed ratio Y/X to the step's ``block_info`` lines, and ``block_info`` to a rank through the
``N wait time`` / ``X`` pair; a line is left unattributed (``rank=None``) when that is
ambiguous.  Per step, the first ``n`` AG (GA) lines are the forward calls and the next ``n``
the backward ones, ``n`` being the number of ``block_info`` lines of the step.

Times are milliseconds (the host-side ``process time`` figures are printed without a unit;
their magnitude says milliseconds).
"""
from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable

from simulator.errors import InputError
from simulator.readers.numbers import parse_float, parse_int

__all__ = [
    "BenchmarkConfig", "StepTime", "SummaryLine", "BlockInfo", "KernelCall", "ProcessTime",
    "WaitTime", "MoeSection", "MoeLog", "StepMeans", "KernelMeans", "parse_moe_log",
    "read_moe_log", "mean_steps", "mean_last_steps", "summary_step_times",
    "impl_summary_table",
    "kernel_means",
]


# --------------------------------------------------------------------------------------------
# dataclasses
# --------------------------------------------------------------------------------------------

@dataclass
class BenchmarkConfig:
    """The ``[Benchmark]`` line."""

    world_size: int
    dtype: str
    model_dim: int
    hidden_size: int
    samples: int
    num_local_experts: int
    top_k: int
    extra: dict[str, str] = field(default_factory=dict)  #: other keys, values as written
    line: int = 0


@dataclass
class StepTime:
    """A ``STEP-i`` line (CUDA-event times; step = forward + backward)."""

    step: int
    step_ms: float
    forward_ms: float
    backward_ms: float
    perf_tflops: float | None = None
    line: int = 0


@dataclass
class SummaryLine:
    """A ``[Summary]`` line; impl/model/local_experts come from seed 001's prefix."""

    step_ms: float
    forward_ms: float | None = None
    backward_ms: float | None = None
    impl: str | None = None
    model: str | None = None
    local_experts: int | None = None
    label: str | None = None       #: the text before ``[Summary]`` as written, if any
    line: int = 0


@dataclass
class BlockInfo:
    """``block_info X Y``: X blocks of 64 tokens on this rank, Y fetched from other ranks."""

    blocks: int
    remote_blocks: int
    step: int                      #: index of the step it belongs to (0 = first)
    rank: int | None = None
    line: int = 0

    @property
    def remote_fraction(self) -> float:
        return self.remote_blocks / self.blocks if self.blocks else 0.0


@dataclass
class KernelCall:
    """``AG, Y/X, t_ms, flag`` or ``GA, Y/X, t_ms, flag``."""

    kind: str                      #: ``AG`` or ``GA``
    remote_fraction: float         #: Y/X as printed
    time_ms: float
    flag: int                      #: the trailing integer (0 in the seeds)
    step: int
    phase: str | None = None       #: ``forward``/``backward``; None if it cannot be told
    blocks: int | None = None      #: X of the matching block_info, if unambiguous
    remote_blocks: int | None = None
    rank: int | None = None
    line: int = 0


@dataclass
class ProcessTime:
    """``cuda:N process time:P, a: .., b: .., c: .., d: ..`` (host-side planning)."""

    rank: int
    total_ms: float
    parts_ms: dict[str, float]     #: {"a": .., "b": .., ...}
    step: int
    line: int = 0


@dataclass
class WaitTime:
    """``N wait time: W`` and the bare ``X`` line that follows it."""

    rank: int
    wait_ms: float
    step: int
    blocks: int | None = None
    line: int = 0


@dataclass
class MoeSection:
    """One benchmark run: from ``[Benchmark]`` (if any) to ``[Summary]``."""

    config: BenchmarkConfig | None
    steps: list[StepTime] = field(default_factory=list)
    summary: SummaryLine | None = None
    block_infos: list[BlockInfo] = field(default_factory=list)
    kernel_calls: list[KernelCall] = field(default_factory=list)
    process_times: list[ProcessTime] = field(default_factory=list)
    wait_times: list[WaitTime] = field(default_factory=list)
    start_line: int = 0
    end_line: int = 0

    @property
    def num_local_experts(self) -> int | None:
        if self.config is not None:
            return self.config.num_local_experts
        return self.summary.local_experts if self.summary is not None else None

    def step(self, i: int) -> StepTime:
        for s in self.steps:
            if s.step == i:
                return s
        raise KeyError(f"no STEP-{i} in the section at line {self.start_line}")


@dataclass
class MoeLog:
    path: str
    sections: list[MoeSection]


@dataclass
class StepMeans:
    step_ms: float
    forward_ms: float
    backward_ms: float
    count: int
    first_step: int
    last_step: int


@dataclass
class KernelMeans:
    """Mean AG/GA kernel times of one section."""

    num_local_experts: int | None
    ag_ms: float
    ga_ms: float
    ag_count: int
    ga_count: int
    ag_forward_ms: float | None = None
    ag_backward_ms: float | None = None
    ga_forward_ms: float | None = None
    ga_backward_ms: float | None = None


# --------------------------------------------------------------------------------------------
# line parsers
# --------------------------------------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]+", re.ASCII)


class _Bad(Exception):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _num(text: str, name: str) -> float:
    t = text.strip()
    try:
        # times in ms, counts: 10^12 is a typo (31 years of milliseconds)
        return parse_float(t, hi=1e12)
    except ValueError as exc:
        raise _Bad(str(exc), name) from None


def _nonneg(text: str, name: str) -> float:
    value = _num(text, name)
    if value < 0:
        raise _Bad(f"expected a non-negative number, got {_clip(text.strip())!r}", name)
    return value


def _int(text: str, name: str) -> int:
    t = text.strip()
    if not _DIGITS.fullmatch(t):
        raise _Bad(f"expected a non-negative integer, got {_clip(t)!r}", name)
    try:
        return parse_int(t, lo=0, hi=2 ** 40)
    except ValueError as exc:
        raise _Bad(str(exc), name) from None


def _assignments(text: str, sep: str = "=") -> dict[str, str]:
    """``k = v unit, k = v`` -> {k: 'v unit'}; a trailing '.' is dropped."""
    t = text.strip()
    if t.endswith("."):
        t = t[:-1]
    out: dict[str, str] = {}
    for part in t.split(","):
        if not part.strip():
            continue  # "... = 91.7 ms," ends with a comma in seed 001
        key, eq, value = part.partition(sep)
        key = key.strip()
        if not eq or not key:
            raise _Bad(f"expected 'key {sep} value', got {_clip(part.strip())!r}")
        out[key] = value.strip()
    return out


def _value_with_unit(text: str, name: str, unit: str) -> float:
    """``'22.85 ms'`` -> 22.85 (the unit is optional but must be ``unit`` if present)."""
    words = text.split()
    if not words:
        raise _Bad("missing value", name)
    if len(words) > 2 or (len(words) == 2 and words[1] != unit):
        raise _Bad(f"expected a number in {unit}, got {_clip(text)!r}", name)
    return _nonneg(words[0], name)


def _parse_step(text: str) -> StepTime:
    head, colon, rest = text.partition(":")
    step = _int(head[len("STEP-"):], "step")
    if not colon:
        raise _Bad("expected 'STEP-i: step_time = ...'", "step")
    kv = _assignments(rest)
    try:
        step_text = kv.pop("step_time")
        fwd_text = kv.pop("foward_time") if "foward_time" in kv else kv.pop("forward_time")
        bwd_text = kv.pop("backward_time")
    except KeyError as exc:
        raise _Bad(f"missing {exc.args[0]}", exc.args[0]) from None
    perf = kv.pop("perf", None)
    if kv:
        raise _Bad(f"unexpected field {next(iter(kv))!r}", next(iter(kv)))
    return StepTime(step=step, step_ms=_value_with_unit(step_text, "step_time", "ms"),
                    forward_ms=_value_with_unit(fwd_text, "forward_time", "ms"),
                    backward_ms=_value_with_unit(bwd_text, "backward_time", "ms"),
                    perf_tflops=None if perf is None else _value_with_unit(perf, "perf",
                                                                           "tflops"))


_CONFIG_INTS = ("world_size", "model_dim", "hidden_size", "samples", "num_local_experts", "topK")


def _parse_benchmark(text: str) -> BenchmarkConfig:
    kv = _assignments(text.partition("[Benchmark]")[2])
    for name in _CONFIG_INTS + ("dtype",):
        if name not in kv:
            raise _Bad(f"missing {name}", name)
    ints = {name: _int(kv.pop(name), name) for name in _CONFIG_INTS}
    if ints["world_size"] < 1 or ints["num_local_experts"] < 1 or ints["topK"] < 1:
        bad = next(n for n in ("world_size", "num_local_experts", "topK") if ints[n] < 1)
        raise _Bad("must be at least 1", bad)
    dtype = kv.pop("dtype")
    if not dtype.replace("_", "a").isalnum():
        raise _Bad(f"expected a dtype name, got {dtype!r}", "dtype")
    return BenchmarkConfig(world_size=ints["world_size"], dtype=dtype,
                           model_dim=ints["model_dim"], hidden_size=ints["hidden_size"],
                           samples=ints["samples"], num_local_experts=ints["num_local_experts"],
                           top_k=ints["topK"], extra=kv)


def _parse_summary(text: str) -> SummaryLine:
    prefix, _, rest = text.partition("[Summary]")
    kv = _assignments(rest)
    step_key = next((k for k in kv if k.endswith("step_time")), None)
    if step_key is None:
        raise _Bad("missing step_time", "step_time")
    out = SummaryLine(step_ms=_value_with_unit(kv.pop(step_key), "step_time", "ms"))
    if "forward" in kv:
        out.forward_ms = _value_with_unit(kv.pop("forward"), "forward", "ms")
    if "backward" in kv:
        out.backward_ms = _value_with_unit(kv.pop("backward"), "backward", "ms")
    words = prefix.split()
    if words:
        out.label = " ".join(words)
        if len(words) == 3:
            out.impl, out.model = words[0], words[1]
            out.local_experts = _int(words[2], "local experts")
    return out


def _parse_block_info(text: str, step: int) -> BlockInfo:
    words = text.split()
    if len(words) != 3:
        raise _Bad(f"expected 'block_info X Y', got {_clip(text)!r}")
    blocks = _int(words[1], "X")
    remote = _int(words[2], "Y")
    if remote > blocks:
        raise _Bad(f"Y ({remote}) exceeds X ({blocks})", "Y")
    return BlockInfo(blocks=blocks, remote_blocks=remote, step=step)


def _parse_kernel(text: str, step: int) -> KernelCall:
    parts = [p.strip() for p in text.split(",")]
    if parts and parts[-1] == "":
        parts.pop()
    if len(parts) != 4:
        raise _Bad(f"expected '{parts[0]}, Y/X, t_ms, flag', got {_clip(text)!r}")
    ratio = _nonneg(parts[1], "Y/X")
    if ratio > 1:
        raise _Bad(f"expected a fraction in [0, 1], got {parts[1]!r}", "Y/X")
    flag_text = parts[3]
    try:
        flag = parse_int(flag_text, what="an integer")
    except ValueError as exc:
        raise _Bad(str(exc), "flag") from None
    return KernelCall(kind=parts[0], remote_fraction=ratio,
                      time_ms=_nonneg(parts[2], "t_ms"), flag=flag, step=step)


def _parse_process_time(text: str, step: int) -> ProcessTime:
    head, _, rest = text.partition(" process time:")
    rank = _int(head[len("cuda:"):], "device")
    items = [p.strip() for p in rest.split(",")]
    total = _nonneg(items[0], "process time")
    parts: dict[str, float] = {}
    for item in items[1:]:
        key, colon, value = item.partition(":")
        if not colon or not key.strip():
            raise _Bad(f"expected 'name: value', got {_clip(item)!r}", "process time")
        parts[key.strip()] = _nonneg(value, key.strip())
    return ProcessTime(rank=rank, total_ms=total, parts_ms=parts, step=step)


def _parse_wait(text: str, step: int) -> WaitTime:
    head, _, rest = text.partition(" wait time:")
    return WaitTime(rank=_int(head, "rank"), wait_ms=_nonneg(rest, "wait time"), step=step)


def _looks_like_wait(text: str) -> bool:
    head, sep, _ = text.partition(" wait time")
    return bool(sep) and head.isdigit()


# --------------------------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------------------------

def parse_moe_log(text: str, path: str | None = "<string>") -> MoeLog:
    """Parse the text of a MoE benchmark log into sections."""
    sections: list[MoeSection] = []
    cur: MoeSection | None = None
    pending_waits: list[WaitTime] = []

    def section(number: int) -> MoeSection:
        nonlocal cur
        if cur is None:
            cur = MoeSection(config=None, start_line=number)
            sections.append(cur)
        return cur

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            if line.startswith("[Benchmark]"):
                config = _parse_benchmark(line)
                config.line = number
                if cur is not None and (cur.config is not None or cur.steps):
                    raise _Bad(f"[Benchmark] before the [Summary] of the section at line "
                               f"{cur.start_line}")
                if cur is None:
                    cur = MoeSection(config=config, start_line=number)
                    sections.append(cur)
                else:  # only kernel lines so far: adopt them
                    cur.config = config
                pending_waits = []
            elif line.startswith("STEP-"):
                st = _parse_step(line)
                st.line = number
                sec = section(number)
                if sec.steps and st.step <= sec.steps[-1].step:
                    raise _Bad(f"STEP-{st.step} after STEP-{sec.steps[-1].step}", "step")
                sec.steps.append(st)
                pending_waits = []
            elif "[Summary]" in line:
                summ = _parse_summary(line)
                summ.line = number
                sec = section(number)
                sec.summary = summ
                sec.end_line = number
                _attribute(sec)
                cur = None
                pending_waits = []
            elif line.startswith("block_info"):
                sec = section(number)
                bi = _parse_block_info(line, len(sec.steps))
                bi.line = number
                sec.block_infos.append(bi)
            elif line.startswith(("AG,", "GA,")) or line in ("AG", "GA"):
                sec = section(number)
                kc = _parse_kernel(line, len(sec.steps))
                kc.line = number
                sec.kernel_calls.append(kc)
            elif line.startswith("cuda:") and " process time" in line:
                sec = section(number)
                pt = _parse_process_time(line, len(sec.steps))
                pt.line = number
                sec.process_times.append(pt)
            elif _looks_like_wait(line):
                sec = section(number)
                wt = _parse_wait(line, len(sec.steps))
                wt.line = number
                sec.wait_times.append(wt)
                pending_waits.append(wt)
            elif _DIGITS.fullmatch(line) and pending_waits:
                pending_waits.pop(0).blocks = _int(line, "blocks")
            # anything else: log noise
        except _Bad as exc:
            raise InputError(exc.message, path=path, line=number, field=exc.field) from None
    if cur is not None:
        cur.end_line = cur.end_line or (cur.steps[-1].line if cur.steps else cur.start_line)
        _attribute(cur)
    return MoeLog(path=str(path), sections=sections)


def read_moe_log(path: str | Path) -> MoeLog:
    """Read a Tutel-style MoE benchmark log (seeds 000, 001, 002)."""
    from .source import read_text

    p = Path(path)
    text = read_text(p, "MoE benchmark log", limit=256 * 2 ** 20)
    log = parse_moe_log(text, path=str(p))
    if not log.sections:
        raise InputError("no [Benchmark], STEP-, [Summary] or kernel lines found", path=str(p))
    return log


def _attribute(sec: MoeSection) -> None:
    """Give kernel calls their phase, X, Y and rank; block_info lines their rank."""
    by_step_blocks: dict[int, list[BlockInfo]] = {}
    for bi in sec.block_infos:
        by_step_blocks.setdefault(bi.step, []).append(bi)
    rank_of_x: dict[int, dict[int, set[int]]] = {}
    for wt in sec.wait_times:
        if wt.blocks is not None:
            rank_of_x.setdefault(wt.step, {}).setdefault(wt.blocks, set()).add(wt.rank)
    for step, infos in by_step_blocks.items():
        xs = rank_of_x.get(step, {})
        counts: dict[int, int] = {}
        for bi in infos:
            counts[bi.blocks] = counts.get(bi.blocks, 0) + 1
        for bi in infos:
            ranks = xs.get(bi.blocks, set())
            if len(ranks) == 1 and counts[bi.blocks] == 1:
                bi.rank = next(iter(ranks))
    seen: dict[tuple[int, str], int] = {}
    for kc in sec.kernel_calls:
        infos = by_step_blocks.get(kc.step, [])
        index = seen.get((kc.step, kc.kind), 0)
        seen[(kc.step, kc.kind)] = index + 1
        if infos:
            kc.phase = "forward" if index < len(infos) else (
                "backward" if index < 2 * len(infos) else None)
        matches = {(bi.blocks, bi.remote_blocks, bi.rank) for bi in infos
                   if abs(bi.remote_fraction - kc.remote_fraction) <= 1e-6}
        if len({(x, y) for x, y, _ in matches}) == 1:
            x, y, _ = next(iter(matches))
            kc.blocks, kc.remote_blocks = x, y
            if len(matches) == 1:
                kc.rank = next(iter(matches))[2]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def mean_steps(section: MoeSection, first: int = 1, last: int | None = None) -> StepMeans:
    """Mean step/forward/backward over ``STEP-first`` .. ``STEP-last`` (inclusive).

    The default ``first=1`` drops the warm-up STEP-0.  The seeds' ``[Summary]`` lines of
    000 and 001 are ``mean_steps(section, 40, 99)``.
    """
    chosen = [s for s in section.steps
              if s.step >= first and (last is None or s.step <= last)]
    if not chosen:
        raise InputError(f"no STEP lines between {first} and {last}", line=section.start_line)
    return StepMeans(step_ms=statistics.fmean(s.step_ms for s in chosen),
                     forward_ms=statistics.fmean(s.forward_ms for s in chosen),
                     backward_ms=statistics.fmean(s.backward_ms for s in chosen),
                     count=len(chosen), first_step=chosen[0].step, last_step=chosen[-1].step)


def mean_last_steps(section: MoeSection, n: int = 10) -> StepMeans:
    """Mean over the last ``n`` steps (how seed 002's ``[Summary]`` lines were computed)."""
    if n < 1 or not section.steps:
        raise InputError("no steps to average", line=section.start_line)
    tail = section.steps[-n:]
    return mean_steps(section, tail[0].step, tail[-1].step)


def _summarized(log: MoeLog) -> Iterable[tuple[MoeSection, SummaryLine]]:
    """(section, its summary) of every section that has one."""
    for sec in log.sections:
        if sec.summary is not None:
            yield sec, sec.summary


def summary_step_times(log: MoeLog) -> dict[int, float]:
    """``[Summary]`` step time per number of local experts (seed 002: 8, 16, 32, 64)."""
    out: dict[int, float] = {}
    for sec, summary in _summarized(log):
        key = sec.num_local_experts
        if key is None:
            raise InputError("a section has no [Benchmark] line and no local-expert count",
                             path=log.path, line=sec.start_line)
        if key in out:
            raise InputError(f"two sections with {key} local experts; use "
                             "impl_summary_table()", path=log.path, line=summary.line)
        out[key] = summary.step_ms
    return out


def impl_summary_table(log: MoeLog) -> dict[tuple[str, str, int], float]:
    """Seed 001: ``{(impl, model, local experts): step_ms}`` from the labelled summaries."""
    out: dict[tuple[str, str, int], float] = {}
    for _, s in _summarized(log):
        if s.impl is None or s.model is None or s.local_experts is None:
            continue
        out[(s.impl, s.model, s.local_experts)] = s.step_ms
    return out


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def kernel_means(log: MoeLog, skip_warmup: bool = False) -> dict[int | None, KernelMeans]:
    """Mean AG and GA kernel times per section, keyed by number of local experts.

    ``skip_warmup`` drops the calls of step 0.
    """
    out: dict[int | None, KernelMeans] = {}
    for sec in log.sections:
        calls = [k for k in sec.kernel_calls if not (skip_warmup and k.step == 0)]
        if not calls:
            continue
        ag = [k for k in calls if k.kind == "AG"]
        ga = [k for k in calls if k.kind == "GA"]
        if not ag or not ga:
            continue

        def phase(ks: list[KernelCall], p: str) -> float | None:
            return _mean([k.time_ms for k in ks if k.phase == p])

        key = sec.num_local_experts
        if key in out:
            raise InputError(f"two sections with {key} local experts", path=log.path,
                             line=sec.start_line)
        out[key] = KernelMeans(
            num_local_experts=key,
            ag_ms=statistics.fmean(k.time_ms for k in ag),
            ga_ms=statistics.fmean(k.time_ms for k in ga),
            ag_count=len(ag), ga_count=len(ga),
            ag_forward_ms=phase(ag, "forward"), ag_backward_ms=phase(ag, "backward"),
            ga_forward_ms=phase(ga, "forward"), ga_backward_ms=phase(ga, "backward"))
    return out
