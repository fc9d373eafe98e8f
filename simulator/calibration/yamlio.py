"""Calibration YAML: write it, and read it back with file:line errors.

Reading composes the YAML into nodes first (PyYAML keeps each node's start mark), so a
value of the wrong type or a missing key is reported at its own line:
``calib.yaml:14: model.classes[0].link_bw: expected a bandwidth like 50, 50GB/s or
400Gbit/s, got 'fast'``.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any

import yaml

from ..errors import InputError, warn
from ..readers.numbers import shown
from .. import __version__
from .fit import Calibration
from .model import CAL_OPS, SCOPES, ClassParams, Curve, OpCorrection

FORMAT = "collsim-calibration/1"

MODEL_FORM = (
    "t = max(overhead_us + (framework calls - 1) * dispatch_us, latency_us + "
    "steps(op, n) * step_latency_us + max(wire_bytes / link_bw, own_share_bytes / "
    "copy_bw)) * factor (link_bw, copy_bw in GB/s); steps: all_reduce 2(n-1), send/recv 1, "
    "others n-1; wire bytes: "
    "all_reduce 2(n-1)/n S, all_gather / reduce_scatter / all_to_all (n-1)/n S, broadcast "
    "and send/recv S, uneven all-to-all share_remote * S; framework calls: send/recv 2 "
    "(batch_isend_irecv), others 1; factor: piecewise linear in log2(size) between knots "
    "per measured op (and remote share), else the class's transfer factor by wire bytes")


def _r(x: float | None, digits: int = 6) -> float | None:
    if x is None:
        return None
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


def _curve(c: Curve) -> dict:
    return {"knots_bytes": [int(k) if float(k).is_integer() else float(k) for k in c.knots],
            "factors": [round(float(f), 5) for f in c.factors]}


def _errtab(tab: dict) -> dict:
    out = {}
    for op, bands in tab.items():
        out[op] = {band: {"n": v["n"], "median_abs_pct": round(100 * v["median_abs"], 2),
                          "max_abs_pct": round(100 * v["max_abs"], 2)}
                   for band, v in bands.items()}
    return out


def _errblock(block: dict) -> dict:
    out = {}
    for key in ("structural", "corrected"):
        if key in block:
            out[key] = _errtab(block[key])
    if "overall" in block:
        out["overall"] = {k: {"n": v["n"], "median_abs_pct": round(100 * v["median_abs"], 2),
                              "max_abs_pct": round(100 * v["max_abs"], 2)}
                          for k, v in block["overall"].items()}
    for key in ("folds", "split", "correction_used"):
        if key in block:
            out[key] = block[key]
    return out


def to_dict(cal: Calibration) -> dict:
    classes = []
    for scope in SCOPES:
        p = cal.classes.get(scope)
        if p is None:
            continue
        d: dict[str, Any] = {
            "scope": p.scope, "ranks_measured": list(p.ranks), "ops_measured": list(p.ops),
            "overhead_us": _r(p.overhead_us), "dispatch_us": _r(p.dispatch_us),
            "latency_us": _r(p.latency_us), "step_latency_us": _r(p.step_latency_us),
            "link_bw": _r(p.link_gbps), "copy_bw": _r(p.copy_gbps)}   # GB/s
        if p.transfer is not None:
            d["transfer_correction"] = {"by": "wire_bytes", **_curve(p.transfer)}
        classes.append(d)
    corrections = []
    for (op, scope, n), corr in sorted(cal.corrections.items()):
        for share in sorted(corr.curves, key=lambda s: -1 if s is None else s):
            corrections.append({"op": op, "scope": scope, "ranks": n, "share_remote": share,
                                "by": "size_bytes", **_curve(corr.curves[share])})
    out = {
        "format": FORMAT,
        "written_by": f"collsim {__version__} calibrate",
        "method": {"class": cal.method_class or "unknown", "as_written": list(cal.methods),
                   "note": ("in-framework: times of framework calls (PyTorch), host dispatch "
                            "included, what a training step sees; nccl-tests: device times "
                            "of nccl-tests, about 2x lower at small sizes")},
        "sources": list(cal.sources),
        "selection": dict(cal.selection),
        "model": {"form": MODEL_FORM, "knot_octaves": cal.knot_octaves,
                  "classes": classes, "corrections": corrections},
        "residuals": _errblock(cal.residuals) if cal.residuals else {},
    }
    if cal.cross_validation:
        out["cross_validation"] = _errblock(cal.cross_validation)
    return out


def dump(cal: Calibration, path: str | None = None) -> str:
    text = ("# collsim calibration: fitted communication model (see docs/calibration.md)\n"
            + yaml.safe_dump(to_dict(cal), sort_keys=False, default_flow_style=None,
                             width=100))
    if path is not None:
        from ..report.output import write_atomic
        write_atomic(path, text)
    return text


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------

_CURVE_KEYS = {"by", "knots_bytes", "factors"}
#: the bandwidth keys' names before they were named by the quantity (GB/s values under
#: gigabit-looking names): read for a release, with a deprecation warning
_OLD_BW_KEYS = {"link_gbps": "link_bw", "copy_gbps": "copy_bw"}
#: the keys `collsim calibrate` writes, per section: anything else is a typo
_KNOWN_KEYS = {
    "": {"format", "written_by", "method", "sources", "selection", "model", "residuals",
         "cross_validation", "test"},
    "method": {"class", "as_written", "note"},
    "model": {"form", "knot_octaves", "classes", "corrections"},
    "model.classes[]": {"scope", "ranks_measured", "ops_measured", "overhead_us", "dispatch_us",
                        "latency_us", "step_latency_us", "link_bw", "copy_bw",
                        *_OLD_BW_KEYS, "transfer_correction"},
    "model.classes[].transfer_correction": _CURVE_KEYS,
    "model.corrections[]": {"op", "scope", "ranks", "share_remote"} | _CURVE_KEYS,
}


class _Reader:
    def __init__(self, path: str):
        self.path = path
        self.ctor = yaml.constructor.SafeConstructor()

    def err(self, node, field: str, message: str) -> InputError:
        line = node.start_mark.line + 1 if node is not None else None
        return InputError(message, path=self.path, line=line, field=field or None)

    def mapping(self, node, field: str) -> dict:
        if not isinstance(node, yaml.MappingNode):
            raise self.err(node, field, f"expected a mapping, got {self.kind(node)}")
        out = {}
        known = _KNOWN_KEYS.get(field.split("[")[0].rstrip(".") if "[" not in field
                                else re.sub(r"\[\d+\]", "[]", field))
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.err(k, field, "keys must be plain words")
            if known is not None and k.value not in known:
                raise self.err(k, f"{field}.{k.value}".lstrip("."),
                               f"unknown key {shown(k.value)}; expected one of "
                               f"{', '.join(sorted(known))}")
            out[k.value] = v
        return out

    @staticmethod
    def kind(node) -> str:
        if isinstance(node, yaml.MappingNode):
            return "a mapping"
        if isinstance(node, yaml.SequenceNode):
            return "a list"
        return shown(node.value)

    def seq(self, node, field: str) -> list:
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, field, f"expected a list, got {self.kind(node)}")
        return list(node.value)

    def need(self, m: dict, key: str, parent_node, field: str):
        if key not in m:
            raise self.err(parent_node, field, f"missing key {key!r}")
        return m[key]

    def scalar(self, node, field: str):
        if not isinstance(node, yaml.ScalarNode):
            raise self.err(node, field, f"expected a value, got {self.kind(node)}")
        try:
            return self.ctor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.err(node, field, f"bad value {node.value!r}: {exc}") from None

    def number_or_null(self, node, field: str, **limits) -> float | None:
        """A number as :meth:`number` reads it, or None for YAML's null."""
        if self.scalar(node, field) is None:
            return None
        return self.number(node, field, **limits)

    def bandwidth(self, node, field: str) -> float | None:
        """GB/s from a bare number or a value with its unit (``303GB/s``, ``400Gbit/s``);
        None for YAML's null."""
        from ..units import parse_bandwidth_gbps
        v = self.scalar(node, field)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise self.err(node, field, f"expected a bandwidth, got {shown(node.value)}")
        try:
            return parse_bandwidth_gbps(v)
        except ValueError as exc:
            raise self.err(node, field, str(exc)) from None

    def number(self, node, field: str, positive: bool = False,
               minimum: float | None = 0.0, maximum: float = 1e9) -> float:
        v = self.scalar(node, field)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.err(node, field, f"expected a number, got {shown(node.value)}")
        if positive and v <= 0:
            raise self.err(node, field, f"expected a positive number, got {shown(node.value)}")
        if minimum is not None and v < minimum:
            raise self.err(node, field, f"must not be below {minimum:g}, got {shown(node.value)}")
        if v > maximum:
            raise self.err(node, field, f"must be at most {maximum:g}, got {shown(node.value)}")
        return float(v)

    def text(self, node, field: str) -> str:
        v = self.scalar(node, field)
        if not isinstance(v, str):
            raise self.err(node, field, f"expected text, got {node.value!r}")
        return v

    def curve(self, m: dict, node, field: str) -> Curve:
        kn = self.seq(self.need(m, "knots_bytes", node, field), field + ".knots_bytes")
        fn = self.seq(self.need(m, "factors", node, field), field + ".factors")
        knots = [self.number(k, f"{field}.knots_bytes[{i}]", positive=True, maximum=2.0 ** 62)
                 for i, k in enumerate(kn)]
        # a correction is a factor on a modelled time: beyond 1000x it is not a correction
        factors = [self.number(f, f"{field}.factors[{i}]", positive=True, maximum=1e3)
                   for i, f in enumerate(fn)]
        if not knots:
            raise self.err(node, field, "knots_bytes is empty")
        if len(knots) != len(factors):
            raise self.err(m["factors"], field + ".factors",
                           f"{len(factors)} factors for {len(knots)} knots")
        for i in range(1, len(knots)):
            if knots[i] <= knots[i - 1]:
                raise self.err(kn[i], f"{field}.knots_bytes[{i}]",
                               "knots must increase")
        return Curve(tuple(knots), tuple(factors))

    def read(self, text: str) -> Calibration:
        from ..readers.yamlload import compose_yaml

        root, self.ctor = compose_yaml(text, self.path)
        if root is None:
            raise InputError("the file is empty: expected a calibration written by "
                             "`collsim calibrate`", path=self.path, line=1)
        top = self.mapping(root, "")
        fmt = self.text(self.need(top, "format", root, ""), "format")
        if fmt != FORMAT:
            raise self.err(top["format"], "format", f"expected {FORMAT!r}, got {fmt!r}")
        method_node = top.get("method")
        method_class, methods = "", []
        if method_node is not None:
            mm = self.mapping(method_node, "method")
            if "class" in mm:
                method_class = self.text(mm["class"], "method.class")
                if method_class not in ("in-framework", "nccl-tests", "unknown"):
                    raise self.err(mm["class"], "method.class", "expected in-framework, "
                                   f"nccl-tests or unknown, got {method_class!r}")
            if "as_written" in mm:
                methods = [self.text(x, "method.as_written")
                           for x in self.seq(mm["as_written"], "method.as_written")]
        model_node = self.need(top, "model", root, "")
        model = self.mapping(model_node, "model")
        octaves = 3.0
        if "knot_octaves" in model:
            octaves = self.number(model["knot_octaves"], "model.knot_octaves", positive=True)
        classes: dict[str, ClassParams] = {}
        for i, cn in enumerate(self.seq(self.need(model, "classes", model_node, "model"),
                                        "model.classes")):
            f = f"model.classes[{i}]"
            c = self.mapping(cn, f)
            scope = self.text(self.need(c, "scope", cn, f), f + ".scope")
            if scope not in SCOPES:
                raise self.err(c["scope"], f + ".scope",
                               f"expected one of {', '.join(SCOPES)}, got {scope!r}")
            if scope in classes:
                raise self.err(c["scope"], f + ".scope", f"class {scope} given twice")

            def num(key, c=c, cn=cn, f=f, **kw):   # bound: this class's node
                return self.number(self.need(c, key, cn, f), f"{f}.{key}", **kw)

            def bw(key, c=c, cn=cn, f=f, required=True):   # GB/s, units accepted
                old = next(o for o, n in _OLD_BW_KEYS.items() if n == key)
                if key in c and old in c:
                    raise self.err(c[old], f"{f}.{old}", f"{old} is the old name of {key}: "
                                   "give one of them")
                if old in c:
                    warn(f"{self.path}: {f}.{old} is deprecated, write {key} (GB/s, or with "
                         "a unit: 303GB/s)")
                    key = old
                if key not in c:
                    if required:
                        raise self.err(cn, f, f"missing key {key!r}")
                    return None
                value = self.bandwidth(c[key], f"{f}.{key}")
                if value is None and required:
                    raise self.err(c[key], f"{f}.{key}", "expected a bandwidth, got null")
                return value

            overhead_us, latency_us = num("overhead_us"), num("latency_us")
            step_latency_us = num("step_latency_us")
            link_bw = bw("link_bw")
            assert link_bw is not None   # bw refuses a missing or null required key

            params = ClassParams(
                scope=scope, overhead_us=overhead_us, latency_us=latency_us,
                step_latency_us=step_latency_us,
                link_gbps=link_bw, copy_gbps=bw("copy_bw", required=False),
                dispatch_us=(self.number_or_null(c["dispatch_us"], f + ".dispatch_us")
                             if "dispatch_us" in c else None))
            if "ranks_measured" in c:
                params.ranks = tuple(int(self.number(x, f + ".ranks_measured", positive=True))
                                     for x in self.seq(c["ranks_measured"],
                                                       f + ".ranks_measured"))
            if "ops_measured" in c:
                params.ops = tuple(self.text(x, f + ".ops_measured")
                                   for x in self.seq(c["ops_measured"], f + ".ops_measured"))
            if "transfer_correction" in c:
                tn = c["transfer_correction"]
                params.transfer = self.curve(self.mapping(tn, f + ".transfer_correction"), tn,
                                             f + ".transfer_correction")
            classes[scope] = params
        if not classes:
            raise self.err(model["classes"], "model.classes", "no placement class")
        corrections: dict[tuple[str, str, int], OpCorrection] = {}
        for i, kn in enumerate(self.seq(model["corrections"], "model.corrections")
                               if "corrections" in model else []):
            f = f"model.corrections[{i}]"
            k = self.mapping(kn, f)
            op = self.text(self.need(k, "op", kn, f), f + ".op")
            if op not in CAL_OPS:
                raise self.err(k["op"], f + ".op",
                               f"unknown operation {op!r}; expected one of {', '.join(CAL_OPS)}")
            scope = self.text(self.need(k, "scope", kn, f), f + ".scope")
            if scope not in classes:
                raise self.err(k["scope"], f + ".scope",
                               f"no class {scope!r} in model.classes")
            n = self.number(self.need(k, "ranks", kn, f), f + ".ranks", positive=True)
            if n != int(n) or n < 2:
                raise self.err(k["ranks"], f + ".ranks", "expected a whole number >= 2")
            share = (self.number_or_null(k["share_remote"], f + ".share_remote")
                     if "share_remote" in k else None)
            if share is not None and share > 1:
                raise self.err(k["share_remote"], f + ".share_remote",
                               f"expected a share in [0, 1], got {share:g}")
            corr = corrections.setdefault((op, scope, int(n)), OpCorrection(op, scope, int(n)))
            if share in corr.curves:
                raise self.err(kn, f, f"a second correction for {op} {scope} ranks {int(n)}"
                               + (f" share {share:g}" if share is not None else ""))
            corr.curves[share] = self.curve(k, kn, f)
        cal = Calibration(classes, corrections, method_class, octaves)
        cal.methods = methods
        cal.path = self.path
        if "sources" in top:
            try:
                cal.sources = self.ctor.construct_object(top["sources"], deep=True) or []
            except yaml.YAMLError:
                cal.sources = []
        return cal


def load(path: str | os.PathLike) -> Calibration:
    from ..readers.source import read_text

    path = os.fspath(path)
    from ..readers.yamlload import MAX_BYTES
    text = read_text(path, "calibration YAML file", limit=MAX_BYTES)
    return _Reader(path).read(text)


def loads(text: str, path: str = "<calibration>") -> Calibration:
    return _Reader(path).read(text)
