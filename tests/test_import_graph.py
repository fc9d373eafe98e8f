"""The import graph follows the data flow (scripts/import_graph.py, docs/architecture.md)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


@pytest.fixture(scope="module")
def graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("import_graph", None)


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "simulator"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_rules_catch_lazy_relative_and_argparse_imports(tmp_path, graph_tool):
    # a hand-made package with three wrong edges, one of them inside a function (lazy), one
    # through "from .. import x", and two right ones (engine -> costmodel, commands -> argparse)
    root = _package(tmp_path, {
        "__init__.py": "",
        "topology/__init__.py": "",
        "topology/spec.py": "def f():\n    from ..costmodel.nccl import M\n    return M\n",
        "costmodel/__init__.py": "",
        "costmodel/nccl.py": "M = 1\n",
        "engine/__init__.py": "from .. import costmodel\n",
        "readers/__init__.py": "import argparse\n",
        "measure/__init__.py": "from ..units import x\n",
        "units.py": "x = 1\n",
        "commands/__init__.py": "import argparse\nfrom ..engine import costmodel\n",
    })
    graph = graph_tool.build_graph(root)
    assert set(graph["engine"]) == {"costmodel"}
    assert set(graph["commands"]) == {"argparse", "engine"}
    bad = graph_tool.violations(graph)
    assert len(bad) == 3
    assert any(b.startswith("simulator.topology.spec: imports costmodel") for b in bad)
    assert any(b.startswith("simulator.readers: imports argparse") for b in bad)
    assert any(b.startswith("simulator.measure: imports units") for b in bad)


def test_the_package_has_no_import_against_the_data_flow(graph_tool):
    assert graph_tool.violations(graph_tool.build_graph()) == []
