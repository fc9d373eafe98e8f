"""benchmarks/compare_simai.py: which collsim it times (--python, --venv) and its clean skip."""
import os
import subprocess
import sys

import pytest

from repo_paths import ROOT

SCRIPT = str(ROOT / "benchmarks" / "compare_simai.py")
sys.path.insert(0, str(ROOT / "benchmarks"))

import compare_simai  # noqa: E402


def _script(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_skips_without_the_binaries(tmp_path):
    p = _script("--simai", str(tmp_path))
    assert p.returncode == 0 and p.stdout.startswith("skipped: SimAI's analytical binaries"), p


@pytest.mark.parametrize("argv, message", [
    (["--entry", "script"], "--entry needs --venv"),
    (["--python", "/nonexistent/python3"], "--python: no /nonexistent/python3"),
    (["--venv", "/a", "--python", "/b"], "not allowed with argument"),
])
def test_bad_choice_of_interpreter_is_an_argparse_error(tmp_path, argv, message):
    p = _script("--simai", str(tmp_path), *argv)
    assert p.returncode == 2 and message in p.stderr, p


def test_a_folder_without_a_venv_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no .*bin/python"):
        compare_simai.venv_runner(str(tmp_path), "module", str(tmp_path))
    with pytest.raises(ValueError, match="no .*bin/collsim"):
        compare_simai.venv_runner(str(tmp_path), "script", str(tmp_path))


def test_venv_runner_runs_the_installed_package_not_the_checkout(tmp_path, monkeypatch):
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "collsim").write_text("#!/bin/sh\n")
    monkeypatch.setenv("PYTHONPATH", "/somewhere")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    away = str(tmp_path / "run")
    r = compare_simai.venv_runner(str(tmp_path / "venv"), "module", away)
    assert r.command("simulate", "F") == [str(bin_dir / "python"), "-m", "simulator",
                                          "simulate", "F"]
    # no PYTHONPATH (the checkout would answer), bytecode written as pip's install has it
    assert "PYTHONPATH" not in r.env and "PYTHONDONTWRITEBYTECODE" not in r.env
    assert r.cwd == away and "installed in" in r.label
    s = compare_simai.venv_runner(str(tmp_path / "venv"), "script", away)
    assert s.command("simulate") == [str(bin_dir / "collsim"), "simulate"]
    assert s.python == str(bin_dir / "python") and "console script" in s.label


def test_checkout_runner_times_this_checkout_with_the_given_interpreter():
    r = compare_simai.checkout_runner("/usr/bin/python3.x")
    assert r.command("simulate") == ["/usr/bin/python3.x", "-m", "simulator", "simulate"]
    assert r.env["PYTHONPATH"] == str(ROOT) and r.cwd == str(ROOT)
    # the default: what the script always did
    d = compare_simai.checkout_runner()
    assert d.prefix == [sys.executable, "-m", "simulator"]


def test_installed_from_names_the_package_and_counts_stale_modules(tmp_path):
    # this interpreter with PYTHONPATH = the checkout: the package is the checkout itself
    r = compare_simai.checkout_runner()
    assert compare_simai.installed_from(r) == os.path.join(str(ROOT), "simulator")
    # a copy with one module changed is reported as differing in one module
    pkg = tmp_path / "site" / "simulator"
    pkg.parent.mkdir()
    subprocess.run(["cp", "-r", str(ROOT / "simulator"), str(pkg.parent)], check=True)
    (pkg / "units.py").write_text((pkg / "units.py").read_text() + "\n# changed\n")
    env = dict(os.environ, PYTHONPATH=str(pkg.parent))
    other = compare_simai.Collsim([sys.executable, "-m", "simulator"], sys.executable, env,
                                  str(tmp_path), "copy")
    assert compare_simai.installed_from(other) == (
        str(pkg) + " (1 modules differ from this checkout's: reinstall)")
