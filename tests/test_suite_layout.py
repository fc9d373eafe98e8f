"""The test modules stand alone: none imports another (pytest may collect them in any order
or one at a time); shared helpers live in non-test modules beside them (repo_paths.py,
engine_helpers.py, property_strategies.py, fuzz_mutator.py, reader_targets.py)."""
import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_another():
    offenders = []
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names
                          if n.split(".")[0].startswith("test_") or n.startswith("tests.test_")]
    assert not offenders, offenders
