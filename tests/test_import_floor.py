"""The simulate path imports only what a run uses (docs/performance.md, start-up).

numpy, networkx, matplotlib, scipy and yaml cost tens of milliseconds to import; a plain
``collsim simulate`` needs none of them, so they must load on first use only. Each check runs
in a fresh interpreter (this process has imported everything already).
"""
import os
import subprocess
import sys

import pytest

from repo_paths import ROOT, WORKLOADS

S9216 = str(WORKLOADS / "simai_example_9216.txt")
SEED004 = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")
HEAVY = ("numpy", "networkx", "matplotlib", "scipy", "yaml", "importlib.metadata")


def _python(code: str) -> str:
    """stdout of ``code`` run in a fresh interpreter that imports this checkout."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _simulate_code(*argvs: list[str]) -> str:
    """Code that runs ``main(argv) == 0`` for each argv, output silenced; an argument
    ``OUT/name`` is a file in a new temporary folder."""
    lines = ["import contextlib, io, os, tempfile", "from simulator.cli import main",
             "d = tempfile.mkdtemp()",
             "with contextlib.redirect_stdout(io.StringIO()), "
             "contextlib.redirect_stderr(io.StringIO()):"]
    for argv in argvs:
        args = ", ".join(f"os.path.join(d, {a[4:]!r})" if a.startswith("OUT/") else repr(a)
                         for a in argv)
        lines.append(f"    assert main([{args}]) == 0")
    return "\n".join(lines) + "\n"


def _python_bare(code: str) -> str:
    """stdout of ``code`` in an interpreter that runs no ``.pth`` file (``-S``, site-packages
    on the path as plain folders): this machine's editable-install finder and sandbox
    certificate hook import typing, pathlib, tempfile ... at start, a user's venv does not."""
    import site
    path = [str(ROOT), *site.getsitepackages(), site.getusersitepackages()]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _loaded_after(code: str, names: tuple[str, ...] = HEAVY, bare: bool = False) -> list[str]:
    probe = (code + "\nimport sys\n"
             f"print('loaded:' + ','.join(m for m in {names!r} if m in sys.modules))")
    stdout = (_python_bare if bare else _python)(probe)
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), stdout[-2000:]
    return [m for m in last[len("loaded:"):].split(",") if m]


def test_engine_import_loads_no_heavy_library():
    assert _loaded_after("import simulator.engine, simulator.engine.detailed") == []


def test_plain_simulate_run_loads_no_heavy_library():
    # the whole CLI path, options that need no plot included (JSON, CSV, a what-if flag), on
    # the simai model
    code = _simulate_code(["simulate", S9216, "--cost-model", "simai", "--nic-bw", "25",
                           "--json", "OUT/s.json", "--csv", "OUT/s.csv"])
    assert _loaded_after(code) == []


def test_default_simulate_run_loads_no_heavy_library():
    # the default cost model (nccl on the dgx-h100 preset): the preset is read by the subset
    # YAML reader and priced on a TopologyView (links made on first use), so neither PyYAML
    # nor networkx loads; a fabric option, the what-if check and a named preset priced
    # without contention (with it, the flow model uses numpy) change nothing about that
    code = _simulate_code(["simulate", S9216, "--nic-bw", "25", "--oversubscription", "2",
                           "--json", "OUT/s.json", "--csv", "OUT/s.csv"],
                          ["simulate", SEED004, "--quiet", "--topology", "hgx-h200",
                           "--no-contention"])
    assert _loaded_after(code) == []


def test_simulate_run_loads_no_generate_or_sweep_options():
    # their dataclasses take milliseconds to create; a simulate run builds neither
    code = _simulate_code(["simulate", S9216, "--quiet", "--nic-bw", "25"])
    assert _loaded_after(code, ("simulator.config.generate", "simulator.config.sweep",
                                "simulator.generate")) == []


def test_runs_without_what_ifs_load_no_scenario_analytical_fabric_or_progress_code():
    # modules a run with no --straggler/--degrade/--fail/--jitter/--draws/--sensitivity on
    # the nccl model only imported (in a venv, seed 004: 160.5 -> 156.7 M instructions with
    # cachegrind): the scenario parsers and resolvers with the number parser, the analytical
    # model (the default when simulate() is called without one), the fabric wiring and the
    # progress bar of the extra runs
    rare = ("simulator.scenario", "simulator.readers.numbers", "simulator.costmodel.analytical",
            "simulator.engine.fabric", "simulator.progress")
    # (a cluster flag such as --nic-bw loads the analytical model: the unused-parameter check)
    code = _simulate_code(["simulate", SEED004], ["simulate", S9216, "--quiet",
                                                  "--json", "OUT/s.json"],
                          ["simulate", SEED004, "--quiet", "--topology", "hgx-h200",
                           "--no-contention"])
    assert _loaded_after(code, rare) == []
    # each loads where it is used: a what-if flag, the simai model, a run with contention
    assert _loaded_after(_simulate_code(["simulate", SEED004, "--quiet", "--straggler",
                                         "rank=3,compute=1.5"]), rare) == [
        "simulator.scenario", "simulator.readers.numbers"]
    assert _loaded_after(_simulate_code(["simulate", SEED004, "--quiet", "--cost-model",
                                         "simai"]), rare) == ["simulator.costmodel.analytical"]
    assert _loaded_after(_simulate_code(["simulate", SEED004, "--quiet", "--sensitivity"]),
                         rare) == ["simulator.progress"]
    assert "simulator.engine.fabric" in _loaded_after(
        _simulate_code(["simulate", SEED004, "--quiet", "--contention"]), rare)


def test_simpy_loads_without_importlib_metadata_and_stays_usable():
    code = ("from simulator._simpy import simpy\n"
            "env = simpy.Environment(); env.timeout(5); env.run(); assert env.now == 5\n"
            "import importlib.metadata  # the real one still loads afterwards\n"
            "assert importlib.metadata.version('simpy')")
    assert "importlib.metadata" in _loaded_after(code)
    assert "importlib.metadata" not in _loaded_after("from simulator._simpy import simpy")


def test_simulate_runs_load_no_typing_pathlib_tempfile_or_weakref():
    # in a plain venv (no .pth file imports them first) these were 12 M (typing), 16 M
    # (pathlib with urllib.parse and ipaddress), 16 M (tempfile with shutil and random) and
    # 2.6 M (weakref) instructions of a 267 M GA 32 run: names for annotations come from an
    # `if TYPE_CHECKING:` block, paths are os.path strings, tempfile loads when a file is
    # written, the workload memo uses _weakref
    # (not _simulate_code: its temporary folder imports tempfile)
    code = ("from simulator.cli import main\n"
            f"assert main(['simulate', {S9216!r}, '--quiet']) == 0\n"
            f"assert main(['simulate', {SEED004!r}, '--quiet', '--cost-model', 'simai']) == 0\n"
            f"assert main(['simulate', {S9216!r}, '--quiet', '--topology', 'hgx-h200', "
            "'--no-contention']) == 0\n")
    assert _loaded_after(code, ("typing", "pathlib", "urllib", "urllib.parse", "ipaddress",
                                "tempfile", "random", "weakref"), bare=True) == []
    # the probe itself does see them (a bare start imports none; typing loads on use)
    assert _loaded_after("import typing", ("typing",), bare=True) == ["typing"]
    assert _loaded_after("pass", ("typing", "pathlib"), bare=True) == []


def test_common_simulate_lines_load_no_argparse_and_no_re():
    # simulator/commands/simulate_args.py reads the common lines without argparse (its
    # import with re and gettext, and building simulate's parser, were 24 M instructions of a
    # 237 M GA 32 run in a venv); the preset's YAML subset, the unit parsers of its values
    # and of the flags, and the terminal escapes check their texts with string methods (re
    # and compiling its patterns were 10 M more). --json and --csv import json and csv,
    # which import re; they still need no argparse.
    # (not _simulate_code: tempfile imports shutil, fnmatch and re)
    lines = [["simulate", SEED004],                      # the text report and two warnings
             ["simulate", S9216, "--quiet", "--nic-bw", "400Gbit/s", "--gpus", "9216",
              "--base-latency", "5us", "--oversubscription", "2", "--nvlink-bw", "3000"],
             ["simulate", SEED004, "--quiet", "--cost-model", "simai"],
             ["simulate", SEED004, "--quiet", "--topology", "hgx-h200", "--no-contention"]]
    code = ("import contextlib, io\nfrom simulator.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), "
            "contextlib.redirect_stderr(io.StringIO()):\n")
    code += "".join(f"    assert main({argv!r}) == 0\n" for argv in lines)
    assert _loaded_after(code, ("argparse", "re", "gettext", "shutil"), bare=True) == []
    outputs = _simulate_code(["simulate", S9216, "--quiet", "--json", "OUT/s.json",
                              "--csv", "OUT/s.csv"])
    assert _loaded_after(outputs, ("argparse", "gettext"), bare=True) == []
    # the probe sees them when they load: a line only argparse reads (an abbreviation)
    assert _loaded_after(code.replace("'--quiet'", "'--qui'"), ("argparse", "re"),
                         bare=True) == ["argparse", "re"]


def test_common_simulate_lines_load_no_enum():
    # the workload's Group, Op and Phase and the pipeline's Direction are simulator.names
    # classes, not Enums: the enum module and the four classes were 11.7 M instructions of a
    # 199.6 M GA 32 run in a venv (cachegrind). A line only argparse reads still loads it
    # (re imports enum); so does the console script, whose template imports re.
    code = ("import contextlib, io\nfrom simulator.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), "
            "contextlib.redirect_stderr(io.StringIO()):\n")
    lines = [["simulate", SEED004],
             ["simulate", S9216, "--quiet", "--nic-bw", "400Gbit/s"],
             ["simulate", SEED004, "--quiet", "--cost-model", "simai"],
             ["simulate", SEED004, "--quiet", "--topology", "hgx-h200", "--no-contention"]]
    code += "".join(f"    assert main({argv!r}) == 0\n" for argv in lines)
    assert _loaded_after(code, ("enum",), bare=True) == []
    assert _loaded_after(code.replace("'--quiet'", "'--qui'"), ("enum",), bare=True) == [
        "enum"]


def test_preset_dir_is_still_a_path_made_on_first_access():
    from pathlib import Path

    import simulator.topology as topology
    from simulator import resources
    assert isinstance(topology.PRESET_DIR, Path)
    assert topology.PRESET_DIR == resources.bundled("topologies")
    # presets() lists what Path.glob("*.yaml") did, by stem
    assert topology.presets() == sorted(p.stem for p in topology.PRESET_DIR.glob("*.yaml"))
    assert "dgx-h100" in topology.presets()
    with pytest.raises(AttributeError):
        getattr(topology, "NO_SUCH_NAME")  # noqa: B009 (the module __getattr__ is the subject)


def test_simulate_runs_load_no_dataclasses():
    # simulator/records.py makes the path's classes without the dataclasses module (5 ms to
    # import with inspect, ast, dis and tokenize, then 0.3-0.8 ms a class): a default run
    # (text report, JSON, CSV, what-if and fabric flags, a named preset) and a simai one
    code = _simulate_code(["simulate", S9216, "--nic-bw", "25", "--oversubscription", "2",
                           "--json", "OUT/s.json", "--csv", "OUT/s.csv"],
                          ["simulate", SEED004, "--topology", "hgx-h200", "--no-contention"],
                          ["simulate", S9216, "--quiet", "--cost-model", "simai"])
    assert _loaded_after(code, ("dataclasses", "inspect", "ast")) == []


def test_default_run_creates_only_records_with_docstrings():
    # a plain @dataclass compiles its methods at import where a record builds them from its
    # fields, and a class with no docstring costs an inspect.signature more: a class the
    # default path creates is a record (to dataclasses, on first access, its parameters say
    # eq=False, repr=False) with a docstring of its own
    code = (_simulate_code(["simulate", S9216, "--quiet"]) +
            "import sys, dataclasses\n"
            "bad = []\n"
            "for name, mod in list(sys.modules.items()):\n"
            "    if not name.startswith('simulator'):\n"
            "        continue\n"
            "    for cls in vars(mod).values():\n"
            "        if (isinstance(cls, type) and cls.__module__ == name\n"
            "                and dataclasses.is_dataclass(cls)):\n"
            "            p = cls.__dataclass_params__\n"
            "            if p.eq or p.repr or (cls.__doc__ or '').startswith(cls.__name__ + '('):\n"
            "                bad.append(name + '.' + cls.__name__)\n"
            "print('bad:' + ','.join(sorted(bad)))")
    assert _python(code).strip().splitlines()[-1] == "bad:"


def test_collector_frozen_only_in_a_program_run():
    # simulator/cli.py: `python -m simulator` / `collsim` runs collect no garbage while the
    # modules load and freeze what is there once the command starts; main([...]) called in
    # someone's process leaves their collector alone
    probe = ("import gc, contextlib, io\n"
             "from simulator.cli import main\n"
             "before = gc.get_freeze_count()\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             f"    assert main(['simulate', {S9216!r}, "
             "'--quiet']) == 0\n"
             "assert gc.isenabled() and gc.get_freeze_count() == before, before\n"
             "assert gc.get_threshold()[0] == 700\n"   # a caller's own process: untouched
             "import sys\n"
             "sys.argv = ['collsim', 'simulate', '--quiet', "
             f"{S9216!r}]\n"
             "assert main() == 0\n"
             # thousands of objects (every module loaded) frozen, the collector back on
             "assert gc.isenabled() and gc.get_freeze_count() > 10000, gc.get_freeze_count()\n"
             # and collects the youngest generation every 20,000 allocations, not 700
             "from simulator.cli import PROGRAM_GC_THRESHOLD\n"
             "assert gc.get_threshold()[0] == PROGRAM_GC_THRESHOLD == 20000\n"
             "sys.argv = ['collsim']\n"
             "gc.unfreeze()\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    assert main() == 2\n"                  # no command: help, collector back on
             "assert gc.isenabled() and gc.get_freeze_count() == 0\n"
             "print('ok')")
    assert _python(probe).strip() == "ok"


def _module_run(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_simulate_process_ends_without_teardown_but_keeps_what_an_exit_does():
    # simulator/__main__.py ends a simulate run with os._exit after flushing the streams and
    # running the atexit handlers: a handler registered before still runs, the whole CSV
    # (13 kB: more than stdout's 8 kB buffer, so an unflushed end would be lost) reaches
    # stdout as main([...]) writes it in a process that exits as usual, the exit code is
    # the command's, and the interpreter is not finalized (its first step, threading's
    # shutdown hook, never runs; a normal exit prints "finalized")
    base = ("import atexit, runpy, sys, threading\n"
            "atexit.register(lambda: print('handler ran', file=sys.stderr))\n"
            "_shutdown = threading._shutdown\n"
            "def hook():\n"
            "    print('finalized', file=sys.stderr)\n"
            "    _shutdown()\n"
            "threading._shutdown = hook\n")
    argv = ["simulate", "--quiet", "--csv", "-", S9216]
    ok = _module_run(base + f"sys.argv = ['simulator', *{argv!r}]\n"
                            "runpy.run_module('simulator', run_name='__main__')\n")
    assert ok.returncode == 0, ok.stderr[-2000:]
    usual = _module_run(base + f"from simulator.cli import main\nmain({argv!r})\n")
    assert usual.returncode == 0 and "finalized" in usual.stderr, usual.stderr[-500:]
    assert len(usual.stdout) > 8192 and ok.stdout == usual.stdout
    assert "handler ran" in ok.stderr and "finalized" not in ok.stderr, ok.stderr[-500:]
    # the console script pip writes for `collsim` (pyproject's entry point) ends so too
    entry = (ROOT / "pyproject.toml").read_text().split('collsim = "', 1)[1].split('"')[0]
    assert entry == "simulator.cli:program"
    script = _module_run(base + f"sys.argv = ['collsim', *{argv!r}]\n"
                                "from simulator.cli import program\nsys.exit(program())\n")
    assert script.returncode == 0 and script.stdout == usual.stdout, script.stderr[-500:]
    assert "handler ran" in script.stderr and "finalized" not in script.stderr
    bad = _module_run(base + "sys.argv = ['simulator', 'simulate', '--quiet', "
                             "'/nonexistent/table.txt']\n"
                             "runpy.run_module('simulator', run_name='__main__')\n")
    assert bad.returncode == 2 and "no such file" in bad.stderr, bad.stderr[-500:]
    assert "handler ran" in bad.stderr
    # another command (and main() called by a program) ends as Python always does
    other = _module_run(base + "sys.argv = ['simulator', '--version']\n"
                               "runpy.run_module('simulator', run_name='__main__')\n")
    assert other.returncode == 0 and "finalized" in other.stderr, other.stderr[-500:]


def test_sidecar_read_without_json_gives_json_loads_values_and_errors(tmp_path):
    # simulator/provenance.py reads FILE.meta.json with json's own C scanner and falls back
    # to json.loads for any text it does not read whole: values (repr, so NaN, -0.0 and
    # key order count) and error messages are json's
    import json

    from simulator.provenance import _json_loads
    good = ['{}', ' [1, 2.5, -3e5, -0.0, true, false, null, "a\\u00e9\\n"] \n',
            '{"a": NaN, "b": -Infinity, "c": Infinity}', '{"a": 1, "a": 2}', '"x"', '1',
            '\t{"k": {"n": [[], {}]}, "big": 123456789012345678901234567890}\r\n']
    for text in good:
        assert repr(_json_loads(text)) == repr(json.loads(text)), text
    bad = ['', ' ', '{', '{} x', '\ufeff{}', '[1,]', '{"a": 1,}', 'nan', '"\x01"', '[1] [2]',
           '01', '{"a" 1}']
    for text in bad:
        with pytest.raises(json.JSONDecodeError) as theirs:
            json.loads(text)
        with pytest.raises(json.JSONDecodeError) as ours:
            _json_loads(text)
        assert str(ours.value) == str(theirs.value), text
    # a run on a generated table (its sidecar read: the H100 it names is in the summary)
    # imports no json
    table = tmp_path / "t.txt"
    table.write_text(open(SEED004).read())
    (tmp_path / "t.txt.meta.json").write_text(json.dumps({"gpu": "h100"}))
    out = _python(_simulate_code(["simulate", str(table)]) +
                  "import sys\nprint('json' in sys.modules)\n"
                  "from simulator.provenance import read_sidecar\n"
                  f"print(read_sidecar({str(table)!r}))\n")
    assert out.split() == ["False", "{'gpu':", "'h100'}"], out


def test_a_contention_run_loads_no_masked_arrays():
    # numpy.ma (about 45 M instructions to import, 2% of the 9216-GPU --contention run) was
    # loaded only by np.unique's check for masked input in the fabric's set-up; the run
    # itself uses numpy (loaded), never masked arrays
    assert _loaded_after(_simulate_code(["simulate", S9216, "--quiet", "--contention"]),
                         ("numpy", "numpy.ma")) == ["numpy"]


def test_a_contention_run_loads_no_numpy_random():
    # the link classes' hash words come from simulator/randomwords.py and the rank classes'
    # tables are made only for ranks that differ: numpy.random (about 3% of the 9216-GPU
    # --contention run's instructions) stays unloaded
    assert _loaded_after(_simulate_code(["simulate", S9216, "--quiet", "--contention"]),
                         ("numpy", "numpy.random")) == ["numpy"]
