"""What a workload table assumed, kept beside it: ``FILE.meta.json``.

``collsim generate`` writes it next to the table (GPU, how compute was obtained, which
Megatron features were on); ``collsim simulate`` reads it, if present, to report what the
compute times it replays rest on. A table without one says nothing about its compute times,
and the report says so.
"""
from __future__ import annotations

import os

from .errors import warn
from .workload import placeholder_rows

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any

SUFFIX = ".meta.json"
MAX_BYTES = 1 << 20


def sidecar_path(workload_path: str) -> str:
    return workload_path + SUFFIX


def read_sidecar(workload_path: str) -> dict | None:
    """The assumptions written beside a table, or None; a damaged file is warned about."""
    path = sidecar_path(workload_path)
    if not os.path.isfile(path):
        return None
    try:
        if os.path.getsize(path) > MAX_BYTES:
            raise ValueError("larger than 1 MiB")
        with open(path, encoding="utf-8") as fh:
            doc = _json_loads(fh.read())
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        warn(f"{path}: ignored ({exc})")
        return None
    return doc


class _Scanning:
    """What the C scanner reads from ``json.JSONDecoder``: json.loads's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                      "NaN": float("nan")}.__getitem__


_WHITESPACE = " \t\n\r"


def _json_loads(text: str) -> Any:
    """``json.loads(text)``, by the C scanner json itself uses, without importing json (its
    import compiles six regexes: 5 M instructions, a sidecar's read is 0.1 M). A text the
    scanner does not read whole (a syntax error, a byte-order mark, trailing data) goes
    through json, so errors are json's own."""
    make_scanner: Any = None
    try:
        from _json import make_scanner
    except ImportError:         # an interpreter without the accelerator
        pass
    if make_scanner is not None and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            doc, end = make_scanner(_Scanning())(text, start)
        except (StopIteration, ValueError):
            pass
        else:
            if not text[end:].strip(_WHITESPACE):
                return doc
    import json
    return json.loads(text)


def embedding_allreduce_bytes(sidecar: dict | None) -> int:
    """Bytes of the tied-embedding gradient all-reduce a generated table's sidecar lists in
    ``not_in_table`` (0 without one); a malformed entry is warned about and skipped."""
    total = 0
    for item in (sidecar or {}).get("not_in_table") or []:
        if not isinstance(item, dict) or not str(item.get("group", "")).startswith("embedding"):
            continue
        size = item.get("bytes")
        if isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 1 << 50:
            total += size
        else:
            warn(f"not_in_table: embedding all-reduce bytes {size!r} ignored (not a byte count)")
    return total


def blocking_sends(mode: str, sidecar: dict | None, pp_schedule: str | None) -> bool:
    """Whether pipeline sends block their sender (``blocking_sends``: on, off or auto).
    auto: on for a table generated in Megatron style (its sidecar says so) outside the
    interleaved schedule, where Megatron-LM overlaps its p2p with compute by default, and in
    it when the table was generated with --no-overlap-p2p-communication;
    SimAI/AICB tables keep SimAI's asynchronous sends. The simulate command and the sweep
    both ask here, so a point gets the rules its table gets from ``collsim simulate``."""
    if mode not in ("auto", "on", "off"):
        from .errors import InputError
        raise InputError(f"must be auto, on or off, got {mode!r}", field="blocking_sends")
    if mode != "auto":
        return mode == "on"
    features = (sidecar or {}).get("features")
    no_overlap = isinstance(features, dict) and features.get("overlap_p2p_comm") is False
    return (sidecar or {}).get("style") == "megatron" and (pp_schedule != "interleaved"
                                                           or no_overlap)


def grad_sync_before_optimizer(sidecar: dict | None) -> bool:
    """Whether the optimizer rows wait for the data-parallel gradient reduction: for a table
    generated in Megatron style (its sidecar says so), as Megatron-LM's finalize_model_grads
    (and DeepSpeed's step) do; SimAI/AICB tables keep SimAI's replay."""
    return (sidecar or {}).get("style") == "megatron"


def pipeline_schedule(asked: str | None, sidecar: dict | None) -> tuple[str, str | None]:
    """(schedule, where it came from): the one asked for; else the one a generated table
    was written for (its sidecar's ``pipeline_schedule``: interleaved when generated with
    ``--vpp``); else 1F1B. The second item names the source when it is the sidecar."""
    if asked:
        return asked, None
    wanted = (sidecar or {}).get("pipeline_schedule")
    if wanted in ("interleaved", "gpipe"):
        return str(wanted), "sidecar"
    return "1f1b", None


def table_rules(workload_path: str, blocking_mode: str,
                pp_schedule: str | None) -> tuple[int, bool, bool]:
    """(tied-embedding all-reduce bytes, whether pipeline sends block) for the table at
    ``workload_path`` from its own sidecar: what ``collsim simulate`` applies to it alone, so
    a co-located job gets the rules of its own table, not those of the first job's."""
    sidecar = read_sidecar(workload_path)
    return (embedding_allreduce_bytes(sidecar),
            blocking_sends(blocking_mode, sidecar, pp_schedule),
            grad_sync_before_optimizer(sidecar))


def workload_assumptions(workload, sidecar: dict | None) -> dict:
    """The workload side of a simulate run's assumptions."""
    rows = workload.rows
    placeholder = placeholder_rows(rows)
    if sidecar is not None:
        out = {k: sidecar[k] for k in ("generator", "style", "model", "gpu", "compute",
                                       "optimizer", "features") if k in sidecar}
        out["source"] = sidecar_path(workload.path)
        return out
    return {"compute": ("placeholders (<= 1 ns in most rows): communication only"
                        if placeholder > len(rows) // 2 else
                        "as written in the table; its GPU and how it was obtained are not "
                        "recorded (no " + os.path.basename(sidecar_path(workload.path)) + ")")}
