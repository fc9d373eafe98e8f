"""The one YAML loader of every reader (calibration, model, sweep, topology files).

On top of PyYAML's safe loader it refuses, each with ``file:line: key: message``:

- a document that expands to more than :data:`MAX_NODES` nodes through aliases (a 1 KB
  "billion laughs" expands to 10^9) or refers to itself (``&a [*a]``), and nesting deeper
  than :data:`MAX_DEPTH`;
- a key given twice in one mapping (PyYAML keeps the last one silently);
- any tag but the plain ones (``!!python/object``, ``!!binary``, ``!!set``, local tags);
- numbers that are not plain decimals: ``1_6``, ``0x10``, ``0o17``, ``1:30`` (sexagesimal),
  ``.inf``, ``.nan``, more than 40 characters, overflow to infinity, subnormal values. Dates
  stay strings (PyYAML would make ``datetime`` objects no reader expects).

:func:`load_yaml` returns plain values; :func:`compose_yaml` the checked node tree for
readers that keep lines of their own; :func:`load_located` plain values plus the line of
every key path.
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from ..errors import InputError
from .numbers import MAX_DIGITS, parse_float
from .source import one_line

MAX_NODES = 1_000_000
MAX_DEPTH = 64
MAX_BYTES = 16 * 2 ** 20

_PLAIN_TAGS = {"tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null",
                                                   "map", "seq")}
_BAD_NUMBER = "tag:collsim,2026:not-a-plain-number"


class _Loader(yaml.SafeLoader):
    source = "<yaml>"


# implicit resolvers: PyYAML's, minus its int, float and timestamp forms, plus strict ones
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in lst if not tag.endswith((":int", ":float", ":timestamp"))]
    for ch, lst in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$", re.ASCII),
                              list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?$", re.ASCII),
    list("-+.0123456789"))
# what YAML 1.1 reads as a number but a person rarely means: refused, not read as a string
_Loader.add_implicit_resolver(
    _BAD_NUMBER,
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|0[xob][0-9a-fA-F_]+"
               r"|[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", re.ASCII),
    list("-+.0123456789"))


def _err(loader: _Loader, node, message: str, key: str | None = None) -> InputError:
    line = node.start_mark.line + 1 if node is not None and node.start_mark else None
    return InputError(message, path=loader.source, line=line, field=key)


def _construct_int(loader: _Loader, node):
    text = loader.construct_scalar(node)
    if len(text) > MAX_DIGITS:
        raise _err(loader, node, f"a number of {len(text)} digits is not meant")
    try:
        return int(text)
    except ValueError:
        raise _err(loader, node, f"not a whole number: {text[:40]!r}") from None


def _construct_float(loader: _Loader, node):
    text = loader.construct_scalar(node)
    try:
        return parse_float(text)
    except ValueError as exc:
        raise _err(loader, node, str(exc)) from None


def _construct_bad_number(loader: _Loader, node):
    text = loader.construct_scalar(node)
    raise _err(loader, node, f"{text[:40]!r} is not a plain decimal number (write digits, "
                             "e.g. 16 or 1.5e3; quote it if it is a name)")


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor(_BAD_NUMBER, _construct_bad_number)


def _check(loader: _Loader, root) -> None:
    """Tags, duplicate keys, depth, and the size the document expands to through aliases."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def walk(node, depth: int, path: str) -> int:
        nid = id(node)
        if nid in sizes:
            return sizes[nid]
        if nid in active:
            raise _err(loader, node, "an alias refers to the node that contains it", path or None)
        if depth > MAX_DEPTH:
            raise _err(loader, node, f"nested more than {MAX_DEPTH} levels deep", path or None)
        if node.tag not in _PLAIN_TAGS and node.tag != _BAD_NUMBER:
            raise _err(loader, node, f"the tag {one_line(node.tag)[:60]!r} is not allowed "
                                     "(plain values, lists and mappings only)", path or None)
        active.add(nid)
        size = 1
        if isinstance(node, yaml.MappingNode):
            first: dict = {}
            for k, v in node.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else None
                kpath = f"{path}.{name}" if path and name is not None else (name or path)
                if name is not None and name != "<<":
                    if name in first:
                        raise _err(loader, k, f"duplicate key (first at line {first[name]})",
                                   kpath)
                    first[name] = k.start_mark.line + 1
                size += walk(k, depth + 1, kpath) + walk(v, depth + 1, kpath)
                if size > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                size += walk(v, depth + 1, f"{path}[{i}]")
                if size > MAX_NODES:
                    break
        active.discard(nid)
        if size > MAX_NODES:
            raise _err(loader, node, f"expands to more than {MAX_NODES:,} values through "
                                     "aliases (an alias bomb?)", path or None)
        sizes[nid] = size
        return size

    walk(root, 0, "")


def _syntax_error(exc: Exception, source: str) -> InputError:
    from .source import yaml_error
    return yaml_error(exc, source)


def compose_yaml(text: str, source: str) -> tuple[yaml.Node | None, _Loader]:
    """The checked node tree of one document (None when empty) and the loader that
    constructs its values (``loader.construct_document(node)``)."""
    if len(text) > MAX_BYTES:
        raise InputError(f"larger than {MAX_BYTES // 2 ** 20} MiB; not a configuration file",
                         path=source)
    try:
        loader = _Loader(text)  # the reader checks every character here
        loader.source = source
        node = loader.get_single_node()
    except InputError:
        raise
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        raise _syntax_error(exc, source) from None
    if node is not None:
        _check(loader, node)
    return node, loader


def construct(loader: _Loader, node) -> Any:
    try:
        return loader.construct_document(node)
    except InputError:
        raise
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        raise _syntax_error(exc, loader.source) from None


def load_yaml(text: str, source: str) -> Any:
    """Plain values of one YAML document (None when empty)."""
    node, loader = compose_yaml(text, source)
    return None if node is None else construct(loader, node)


def construct_scalar(loader: _Loader, node) -> Any:
    """One scalar node's value through the strict constructors."""
    try:
        return loader.construct_object(node)
    except InputError:
        raise
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise _syntax_error(exc, loader.source) from None


def key_lines(node, prefix: str = "") -> dict[str, int]:
    """'section.key' (items as 'section.0') -> 1-based line of that key in a node tree: what
    the option loader names in its errors."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            name = f"{prefix}{k.value}"
            out[name] = k.start_mark.line + 1
            out.update(key_lines(v, name + "."))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            name = f"{prefix}{i}"
            out[name] = v.start_mark.line + 1
            out.update(key_lines(v, name + "."))
    return out
