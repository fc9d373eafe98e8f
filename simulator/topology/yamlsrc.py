"""YAML with line numbers: plain Python values plus the line of every key and item.

PyYAML's composer keeps a start mark on every node. We compose the document, turn it into
plain dicts, lists and scalars, and keep a table ``path -> line`` (1-based) so that checks
made later on the plain values can still point at the line the user has to fix:
``topologies/mine.yaml:12: scale_up.bandwidth: ...``.
"""
from __future__ import annotations

from ..errors import InputError

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block
if TYPE_CHECKING:
    from typing import Any

Path = tuple  # a key path such as ("scale_up", "bandwidth") or ("placement", "ranks", 3)


class Located:
    """A parsed YAML document: ``data`` (plain values) and the line of every path."""

    def __init__(self, data: Any, lines: dict[Path, int], source: str):
        self.data = data
        self.lines = lines
        self.source = source

    def line(self, path: Path) -> int | None:
        """Line of ``path``, else of its nearest parent that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, path: Path, message: str) -> InputError:
        dotted = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path)
        return InputError(message, path=self.source, line=self.line(path),
                          field=dotted.replace(".[", "[") or None)


def load_located(text: str, source: str) -> Located:
    """Parse one YAML document; syntax errors become an InputError at the offending line.

    The plain subset the presets are written in is read without PyYAML (simpleyaml: the
    same values and lines); anything else, errors included, goes through PyYAML."""
    from .simpleyaml import parse

    simple = parse(text)
    if simple is not None:
        return Located(simple[0], simple[1], source)
    return load_located_pyyaml(text, source)


def load_located_pyyaml(text: str, source: str) -> Located:
    """:func:`load_located` through PyYAML and the strict loader, whatever the text."""
    import yaml

    from ..readers.source import yaml_error, yaml_errors
    from ..readers.yamlload import compose_yaml

    node, constructor = compose_yaml(text, source)
    lines: dict[Path, int] = {}
    if node is None:
        return Located({}, lines, source)

    def plain(n: yaml.Node, path: Path) -> Any:
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict = {}
            for k_node, v_node in n.value:
                if not isinstance(k_node, yaml.ScalarNode):
                    raise InputError("mapping keys must be plain names", path=source,
                                     line=k_node.start_mark.line + 1)
                key = constructor.construct_object(k_node)
                if key == "<<":
                    raise InputError("YAML merge keys (<<) are not supported", path=source,
                                     line=k_node.start_mark.line + 1)
                if key in out:
                    dotted = ".".join(map(str, path + (key,)))
                    raise InputError(f"duplicate key (first at line {lines[path + (key,)]})",
                                     path=source, line=k_node.start_mark.line + 1, field=dotted)
                lines[path + (key,)] = k_node.start_mark.line + 1
                out[key] = plain(v_node, path + (key,))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [plain(item, path + (i,)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n)

    try:
        return Located(plain(node, ()), lines, source)
    except yaml_errors() as exc:
        raise yaml_error(exc, source) from None
