"""Sweep specifications: a YAML file that expands into a list of configuration points.

    name: mixtral_tp_ep_pp        # optional; default: the file's stem
    base:                         # keys shared by every point
      model: mixtral-8x7b
      global_batch: 512
    grid:                         # Cartesian product of these values
      gpus: [64, 128]
      tp: [1, 2, 4]
    points:                       # and/or an explicit list (each combined with the grid)
      - {ep: 8, pp: 1}
    plots:
      heatmap: [tp, ep]           # the two axes of the iteration-time heatmap

A point is a flat dict of the keys in :data:`KEYS` (spellings in :data:`ALIASES` accepted).
Unknown keys are errors naming the file and line.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field

from ..errors import InputError
from ..readers.numbers import shown

#: a sweep's name becomes file names: no directories, no hidden files
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
MAX_POINTS = 100_000

def _keys() -> dict[str, tuple[str, object]]:
    from dataclasses import fields

    from ..config import SweepPoint
    return {f.name: (f.metadata["kind"], f.default) for f in fields(SweepPoint)}


#: point keys -> (kind, default): the fields of :class:`simulator.config.SweepPoint` (a new
#: key is a new field there); kind: str, int, bool, float, bw, with '?' when null is allowed
KEYS: dict[str, tuple[str, object]] = _keys()

ALIASES = {
    "world_size": "gpus", "world": "gpus", "num_gpus": "gpus",
    "tensor_model_parallel_size": "tp", "pipeline_model_parallel": "pp",
    "pipeline_model_parallel_size": "pp", "expert_model_parallel_size": "ep",
    "sequence_parallel": "sp", "enable_sequence_parallel": "sp",
    "micro_batch_size": "micro_batch", "mbs": "micro_batch", "global_batch_size": "global_batch",
    "gbs": "global_batch", "seq_len": "seq_length", "seq": "seq_length",
    "dist_opt": "distributed_optimizer", "moe_router_topk": "topk",
    "cp": "context_parallel_size", "etp": "expert_tensor_parallel_size", "fp8_format": "fp8",
}

#: old spellings still read, with a warning (a release): 'gbps' reads as gigabits, but they
#: always meant GB/s
DEPRECATED = {"nvlink_gbps": "nvlink_bw", "nic_gbps": "nic_bw"}

#: keys reserved for later
RESERVED: tuple[str, ...] = ()

SECTIONS = ("name", "base", "grid", "points", "plots", "best")


@dataclass
class SweepSpec:
    name: str
    path: str
    points: list[dict]
    axes: list[str]                       # keys that vary (grid order first)
    heatmap: tuple[str, str] | None = None
    best: int = 5
    base_dir: str = "."
    raw: dict = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # the files the points name (inputs)


def canonical_key(key: str) -> str:
    k = key.strip().lower().replace("-", "_")
    k = DEPRECATED.get(k, k)
    return ALIASES.get(k, k)


def _coerce(key: str, value, where: dict):
    """``value`` checked as the SweepPoint field ``key`` declares (the one loader's rules)."""
    from dataclasses import fields

    from ..config import SweepPoint
    from ..config.loader import Where, coerce

    f = next(f for f in fields(SweepPoint) if f.name == key)
    return coerce(f, value, Where(where.get("path"), where.get("line"),
                                  where.get("field")))


def _check_key(key: str, where: dict) -> str:
    k = canonical_key(key)
    old = key.strip().lower().replace("-", "_")
    if old in DEPRECATED:
        import warnings

        from ..errors import SimulationWarning
        at = f"{where.get('path')}:{where.get('line')}: " if where.get("line") else ""
        warnings.warn(f"{at}{key!r} is deprecated and will be removed: write "
                      f"{DEPRECATED[old]!r} (the same value: a bare number is GB/s; or give a "
                      "unit, e.g. 400Gbit/s)", SimulationWarning, stacklevel=2)
    if k in RESERVED:
        raise InputError(f"{shown(key)} sweeps are not supported yet (only the analytical cost "
                         "model "
                         "on the built-in cluster)", **where)
    if k not in KEYS:
        from ..config.loader import Where, unknown_key
        raise unknown_key(key, KEYS, Where(where.get("path"), where.get("line"),
                                           where.get("field")))
    return k


def load_spec(path: str) -> SweepSpec:
    from ..readers.source import read_text
    from ..readers.yamlload import MAX_BYTES, compose_yaml, construct, key_lines

    node, loader = compose_yaml(read_text(path, "sweep spec", limit=MAX_BYTES), path)
    data = None if node is None else construct(loader, node)
    return spec_from_dict(data, path=path, lines=key_lines(node) if node is not None else {})


def spec_from_dict(data, path: str = "<spec>", lines: dict[str, int] | None = None) -> SweepSpec:
    lines = lines or {}

    def where(name: str, field_name: str | None = None) -> dict:
        return {"path": path, "line": lines.get(name), "field": field_name}

    if not isinstance(data, dict):
        raise InputError("expected a mapping with base:, grid: and/or points:", path=path, line=1)
    for section in data:
        if section not in SECTIONS:
            raise InputError(f"unknown section {shown(section)}; expected "
                             f"{', '.join(SECTIONS)}", **where(str(section), str(section)))
    name = data.get("name")
    if name is not None:
        name = str(name)
        if not _NAME_RE.fullmatch(name):
            raise InputError(f"expected a plain file name (letters, digits, '.', '_', '-'; no "
                             f"directory), got {shown(name)}: outputs go in the current or "
                             "the -o directory", **where("name", "name"))
    else:  # the file's stem, made a plain name
        stem = os.path.splitext(os.path.basename(path))[0]
        name = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".-")[:100] or "sweep"

    base: dict = {}
    raw_base = data.get("base") or {}
    if not isinstance(raw_base, dict):
        raise InputError("expected a mapping of keys", **where("base", "base"))
    for key, value in raw_base.items():
        k = _check_key(str(key), where(f"base.{key}", f"base.{key}"))
        base[k] = _coerce(k, value, where(f"base.{key}", f"base.{key}"))

    grid_axes: list[tuple[str, list]] = []
    raw_grid = data.get("grid") or {}
    if not isinstance(raw_grid, dict):
        raise InputError("expected a mapping of key: [values] (a list of whole points goes "
                         "under 'points:')", **where("grid", "grid"))
    for key, values in raw_grid.items():
        w = where(f"grid.{key}", f"grid.{key}")
        k = _check_key(str(key), w)
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise InputError("an empty list of values gives no points", **w)
        coerced = [_coerce(k, v, w) for v in values]
        if len(set(map(repr, coerced))) != len(coerced):
            raise InputError(f"repeated values in {coerced}", **w)
        grid_axes.append((k, coerced))

    explicit: list[dict] = []
    raw_points = data.get("points")
    if raw_points is not None:
        if not isinstance(raw_points, list):
            raise InputError("expected a list of mappings", **where("points", "points"))
        for i, pt in enumerate(raw_points):
            if not isinstance(pt, dict):
                raise InputError("expected a mapping of keys", **where(f"points.{i}", "points"))
            d = {}
            for key, value in pt.items():
                w = where(f"points.{i}.{key}", f"points[{i}].{key}")
                k = _check_key(str(key), w)
                d[k] = _coerce(k, value, w)
            explicit.append(d)

    count = len(explicit or [{}])
    for _, values in grid_axes:
        count *= len(values)
    if count > MAX_POINTS:
        raise InputError(f"the grid has {count:,} points; at most {MAX_POINTS:,} are run "
                         "(split the sweep)", **where("grid", "grid"))
    combos = [dict(zip([k for k, _ in grid_axes], vals))
              for vals in itertools.product(*[v for _, v in grid_axes])] or [{}]
    points = []
    for combo in combos:
        for extra in (explicit or [{}]):
            p = dict(base)
            p.update(combo)
            p.update(extra)
            points.append(normalize(p, path))
    axes = [k for k, v in grid_axes if len(v) > 1]
    for pt in explicit:
        for k in pt:
            if k not in axes and len({repr(p.get(k)) for p in points}) > 1:
                axes.append(k)

    heatmap = None
    plots = data.get("plots") or {}
    if not isinstance(plots, dict):
        raise InputError("plots: expected a mapping", **where("plots", "plots"))
    if "heatmap" in plots:
        hm = plots["heatmap"]
        if not (isinstance(hm, list) and len(hm) == 2):
            raise InputError("plots.heatmap: expected two keys, e.g. [tp, ep]",
                             **where("plots.heatmap", "plots.heatmap"))
        heatmap = (canonical_key(str(hm[0])), canonical_key(str(hm[1])))
        for h in heatmap:
            if h not in KEYS:
                raise InputError(f"unknown key {shown(h)}",
                                 **where("plots.heatmap", "plots.heatmap"))
    best = data.get("best", 5)
    if isinstance(best, bool) or not isinstance(best, int) or best < 1:
        raise InputError(f"expected a whole number >= 1, got {shown(best)}",
                         **where("best", "best"))
    base_dir = os.path.dirname(os.path.abspath(path))
    files = sorted({os.path.join(base_dir, str(p[k])) for p in points
                    for k in ("model", "topology", "calibration")
                    if str(p.get(k) or "").endswith((".yaml", ".yml"))})
    return SweepSpec(name=name, path=path, points=points, axes=axes, heatmap=heatmap, best=best,
                     base_dir=base_dir, raw=data, files=files)


def normalize(point: dict, path: str = "<spec>") -> dict:
    """Fill defaults and check the keys every point needs."""
    out = {k: point.get(k, default) for k, (_, default) in KEYS.items()}
    for k in point:
        if k not in KEYS:
            raise InputError(f"unknown key {k!r}", path=path)
    if not out["model"]:
        raise InputError("every point needs a model (put it in base:)", path=path, field="model")
    if not out["gpus"]:
        raise InputError("every point needs a GPU count (gpus:)", path=path, field="gpus")
    if out["compute"] not in ("model", "none"):
        raise InputError(f"compute: expected model or none, got {shown(out['compute'])}", path=path,
                         field="compute")
    return out


#: bump when generation or simulation changes results, so old caches are not reused
CACHE_VERSION = 1


def point_key(point: dict, base_dir: str = ".") -> str:
    """A hash of everything that decides a point's result (model files by content)."""
    from .. import __version__

    payload = dict(point)
    # files a point names count by their content, so editing one re-runs its points
    for key in ("model", "topology", "calibration"):
        name = str(point.get(key) or "")
        if not name.endswith((".yaml", ".yml")):
            continue
        full = name if os.path.isabs(name) else os.path.join(base_dir, name)
        try:
            with open(full, "rb") as fh:
                payload[f"{key}_file_sha"] = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            payload[f"{key}_file_sha"] = "missing"
    payload["_version"] = [__version__, CACHE_VERSION]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]
