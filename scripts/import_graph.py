"""Draw and check the import graph of the ``simulator`` package.

    python3 scripts/import_graph.py                 # one line per package: what it imports
    python3 scripts/import_graph.py --dot graph.dot # Graphviz (dot -Tsvg graph.dot > graph.svg)
    python3 scripts/import_graph.py --png graph.png # drawn with networkx + matplotlib
    python3 scripts/import_graph.py --check         # exit 1 on an import against the data flow

Nodes are the package's first-level parts (``simulator.engine``, ``simulator.units``, ...).
Every import counts, including those inside functions: the package imports lazily for a fast
start, and a lazy import is still a dependency. ``--check`` applies :data:`RULES`, the
direction of data docs/architecture.md describes (readers -> cost model -> engine ->
reporters, commands on top); it is run by the test suite (tests/test_import_graph.py).
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = "simulator"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: the programs: the only parts that may parse a command line or import the commands
PROGRAMS = frozenset({"cli", "__main__", "commands", "measure"})

#: (importer, imported, why): an edge from a part matching the first to one matching the
#: second is refused. "*" is every part; "!programs" every part that is not a program.
RULES: tuple[tuple[str, str, str], ...] = (
    ("!programs", "commands", "the library never calls the command layer"),
    ("!programs", "cli", "the library never calls the command layer"),
    ("!programs", "argparse", "the library never sees argparse: options are typed"),
    ("measure", "*", "measure/ is copied alone to GPU machines: it imports no other part"),
    ("readers", "engine", "readers turn files into plain data; they know no engine"),
    ("readers", "costmodel", "readers turn files into plain data; they know no cost model"),
    ("readers", "report", "readers turn files into plain data; they render nothing"),
    ("topology", "costmodel", "a topology is data the cost model reads, not the reverse"),
    ("topology", "engine", "a topology is data the engine reads, not the reverse"),
    ("network", "engine", "the fabric model prices flows; the engine drives it"),
    ("costmodel", "engine", "a cost model prices one collective; it knows no schedule"),
    ("costmodel", "report", "a cost model returns numbers; reporters render results"),
    ("engine", "report", "the engine returns a result; reporters render it"),
    ("engine", "readers", "the engine replays plain data; reading files is done before"),
    ("report", "engine", "reporters render a finished result; they run nothing"),
)


def _part(module: str) -> str | None:
    """``simulator.engine.plan`` -> ``engine``; a module outside the package -> None."""
    bits = module.split(".")
    if bits[0] != PACKAGE:
        return None
    return bits[1] if len(bits) > 1 else "__init__"


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    bits = list(rel.parts)
    if bits[-1] == "__init__":
        bits.pop()
    return ".".join(bits)


def _imports(path: Path, root: Path) -> set[str]:
    """The modules ``path`` imports anywhere in its body, relative ones made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module:  # ``from .. import engine`` imports engine, not the package
                found.add(target)
            # ``from . import engine`` names a submodule, not an attribute
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def build_graph(root: Path = ROOT) -> dict[str, dict[str, set[str]]]:
    """part -> imported part (or ``argparse``) -> the modules that make the edge."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        src = _part(name)
        if src is None:
            continue
        graph[src]  # every part is a node, even one that imports nothing
        for target in _imports(path, root):
            if target == "argparse" or target.startswith("argparse."):
                graph[src]["argparse"].add(name)
                continue
            dst = _part(target)
            if dst is None or dst == src:
                continue
            if (root / dst).is_dir() or (root / f"{dst}.py").is_file():
                graph[src][dst].add(name)
    return graph


def _matches(pattern: str, part: str) -> bool:
    if pattern == "*":
        return part != "argparse"
    if pattern == "!programs":
        return part not in PROGRAMS
    return pattern == part


def violations(graph: dict[str, dict[str, set[str]]]) -> list[str]:
    """One line per import against :data:`RULES`: the modules, the edge and why."""
    out = []
    for src, edges in sorted(graph.items()):
        for dst, modules in sorted(edges.items()):
            for a, b, why in RULES:
                if _matches(a, src) and _matches(b, dst):
                    out.append(f"{', '.join(sorted(modules))}: imports {dst} ({why})")
                    break
    return out


def to_dot(graph: dict[str, dict[str, set[str]]]) -> str:
    lines = ["digraph simulator {", "  rankdir=BT;", "  node [shape=box, fontsize=10];"]
    for src, edges in sorted(graph.items()):
        lines.append(f'  "{src}";')
        for dst in sorted(edges):
            if dst != "argparse":
                lines.append(f'  "{src}" -> "{dst}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def draw_png(graph: dict[str, dict[str, set[str]]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import networkx as nx

    g = nx.DiGraph()
    for src, edges in graph.items():
        g.add_node(src)
        g.add_edges_from((src, dst) for dst in edges if dst != "argparse")
    # layers from the bottom: a part sits one above the highest part it imports
    # (cycles, if any, are broken by networkx's condensation)
    cond = nx.condensation(g)
    level = {}
    for c in reversed(list(nx.topological_sort(cond))):
        level[c] = 1 + max((level[d] for d in cond.successors(c)), default=-1)
    for node in g:
        g.nodes[node]["layer"] = level[cond.graph["mapping"][node]]
    pos = nx.multipartite_layout(g, subset_key="layer", align="horizontal")
    fig, ax = plt.subplots(figsize=(14, 9))
    nx.draw_networkx(g, pos, ax=ax, node_color="#dde8f5", node_size=1600, font_size=8,
                     arrowsize=8, edge_color="#888888", width=0.6)
    ax.set_title("simulator: who imports whom (bottom: imported by many)")
    ax.axis("off")
    fig.savefig(path, dpi=72, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dot", type=Path, metavar="FILE", help="write the graph for Graphviz")
    p.add_argument("--png", type=Path, metavar="FILE", help="draw the graph into a PNG")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when an import runs against the data flow (RULES)")
    args = p.parse_args(argv)
    graph = build_graph()
    if args.dot:
        args.dot.write_text(to_dot(graph), encoding="utf-8")
    if args.png:
        draw_png(graph, args.png)
    if args.check:
        bad = violations(graph)
        for line in bad:
            print(line, file=sys.stderr)
        print(f"{len(bad)} import(s) against the data flow" if bad else
              f"import graph: {sum(len(e) for e in graph.values())} edges between "
              f"{len(graph)} parts, none against the data flow")
        return 1 if bad else 0
    if not (args.dot or args.png):
        for src, edges in sorted(graph.items()):
            print(f"{src:>14} -> {', '.join(sorted(edges)) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
