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
MAX_INT = 2 ** 31

#: point keys -> (kind, default). kind: str, int, bool, float or 'int?' (int or null)
KEYS: dict[str, tuple[str, object]] = {
    # model and training
    "model": ("str", None),
    "gpus": ("int", None),
    "tp": ("int?", None),
    "pp": ("int", 1),
    "ep": ("int", 1),
    "sp": ("bool", False),
    "vpp": ("int?", None),
    "micro_batch": ("int", 1),
    "global_batch": ("int?", None),
    "seq_length": ("int", 4096),
    "distributed_optimizer": ("bool", True),
    "recompute": ("bool", False),
    "gpu": ("str", "h100"),
    "style": ("str", "megatron"),
    "compute": ("str", "model"),
    # Megatron-LM / DeepSpeed features (docs/generate-and-sweep.md)
    "recompute_granularity": ("str?", None),
    "recompute_method": ("str?", None),
    "recompute_num_layers": ("int?", None),
    "overlap_grad_reduce": ("bool", False),
    "ddp_bucket_size": ("int?", None),
    "context_parallel_size": ("int", 1),
    "cp_comm_type": ("str", "p2p"),
    "expert_tensor_parallel_size": ("int?", None),
    "fp8": ("str?", None),
    "attention_backend": ("str", "flash"),
    "zero_stage": ("int", 0),
    # model overrides
    "num_layers": ("int?", None),
    "hidden_size": ("int?", None),
    "ffn_hidden_size": ("int?", None),
    "num_attention_heads": ("int?", None),
    "num_query_groups": ("int?", None),
    "vocab_size": ("int?", None),
    "num_experts": ("int?", None),
    "topk": ("int?", None),
    "moe_ffn_hidden_size": ("int?", None),
    # cluster (None: the Cluster default)
    "gpus_per_server": ("int?", None),
    "nvlink_bw": ("bw?", None),           # per GPU per direction: 450GB/s, 3600Gbit/s, 450
    "nic_bw": ("bw?", None),              # one NIC per direction: 400Gbit/s, 50GB/s, 50
    "nics_per_server": ("int?", None),
    "base_latency_us": ("float?", None),
    # cost model: a topology preset or YAML file (NCCL algorithms), a calibration file
    "topology": ("str?", None),
    "cost_model": ("str?", None),         # nccl or simai, as --cost-model
    "calibration": ("str?", None),
    # simulation
    "pp_schedule": ("str?", None),
}

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
    kind, _ = KEYS[key]
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        if optional:
            return None
        raise InputError(f"{key} needs a value", **where)
    if kind == "str":
        if isinstance(value, (dict, list)):
            raise InputError(f"expected a name, got {shown(value)}", **where)
        if key == "cost_model" and str(value) not in ("nccl", "simai"):
            raise InputError(f"unknown cost model {shown(value)}; known: nccl, simai", **where)
        return str(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"expected true or false, got {shown(value)}", **where)
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"expected a whole number, got {shown(value)}", **where)
        lo = 0 if key == "num_experts" else 1
        if not lo <= value <= MAX_INT:
            raise InputError(f"must be between {lo} and {MAX_INT:,} (as on the command "
                             f"line), got {value}", **where)
        return value
    if kind == "bw":
        from ..units import implausible_bandwidth, parse_bandwidth_gbps
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InputError(f"expected a bandwidth like 400Gbit/s or 50GB/s, got {value!r}",
                             **where)
        try:
            gbps = parse_bandwidth_gbps(value)
        except ValueError as exc:
            raise InputError(str(exc), **where) from None
        message = implausible_bandwidth(value, gbps, key.split("_")[0], "")
        if message:
            import warnings

            from ..errors import SimulationWarning
            at = f"{where.get('path')}:{where.get('line')}: " if where.get("line") else ""
            warnings.warn(f"{at}{where.get('field') or key}{message}", SimulationWarning)
        return gbps
    if kind == "float":
        if key.endswith("_gbps"):
            from ..units import parse_bandwidth_gbps
            try:  # the same units and bounds as --nic-gbps / --nvlink-gbps
                return parse_bandwidth_gbps(value if isinstance(value, (int, float, str))
                                            and not isinstance(value, bool) else "?")
            except ValueError as exc:
                raise InputError(str(exc), **where) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"expected a number, got {shown(value)}", **where)
        if not 0 <= value <= 1e9:  # base_latency_us: 0 .. 1000 s, as --base-latency
            raise InputError(f"must be between 0 and 1e9, got {value:g}", **where)
        return float(value)
    raise AssertionError(kind)


def _check_key(key: str, where: dict) -> str:
    k = canonical_key(key)
    old = key.strip().lower().replace("-", "_")
    if old in DEPRECATED:
        import warnings

        from ..errors import SimulationWarning
        at = f"{where.get('path')}:{where.get('line')}: " if where.get("line") else ""
        warnings.warn(f"{at}{key!r} is deprecated and will be removed: write "
                      f"{DEPRECATED[old]!r} (the same value: a bare number is GB/s; or give a "
                      "unit, e.g. 400Gbit/s)", SimulationWarning)
    if k in RESERVED:
        raise InputError(f"{shown(key)} sweeps are not supported yet (only the analytical cost model "
                         "on the built-in cluster)", **where)
    if k not in KEYS:
        raise InputError(f"unknown key {shown(key)}; known: {', '.join(sorted(KEYS))}", **where)
    return k


def _lines(node, prefix: str = "") -> dict[str, int]:
    """'section.key' -> 1-based line of that key in the YAML node tree."""
    import yaml

    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = f"{prefix}{k.value}"
            out[name] = k.start_mark.line + 1
            out.update(_lines(v, name + "."))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            name = f"{prefix}{i}"
            out[name] = v.start_mark.line + 1
            out.update(_lines(v, name + "."))
    return out


def load_spec(path: str) -> SweepSpec:
    from ..readers.source import read_text
    from ..readers.yamlload import MAX_BYTES, compose_yaml, construct

    node, loader = compose_yaml(read_text(path, "sweep spec", limit=MAX_BYTES), path)
    data = None if node is None else construct(loader, node)
    return spec_from_dict(data, path=path, lines=_lines(node) if node is not None else {})


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
        raise InputError("base: expected a mapping of keys", **where("base", "base"))
    for key, value in raw_base.items():
        k = _check_key(str(key), where(f"base.{key}", f"base.{key}"))
        base[k] = _coerce(k, value, where(f"base.{key}", f"base.{key}"))

    grid_axes: list[tuple[str, list]] = []
    raw_grid = data.get("grid") or {}
    if not isinstance(raw_grid, dict):
        raise InputError("grid: expected a mapping of key: [values]", **where("grid", "grid"))
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
            raise InputError("points: expected a list of mappings", **where("points", "points"))
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
        heatmap = tuple(canonical_key(str(h)) for h in hm)
        for h in heatmap:
            if h not in KEYS:
                raise InputError(f"unknown key {shown(h)}", **where("plots.heatmap", "plots.heatmap"))
    best = data.get("best", 5)
    if isinstance(best, bool) or not isinstance(best, int) or best < 1:
        raise InputError(f"expected a whole number >= 1, got {shown(best)}", **where("best", "best"))
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
