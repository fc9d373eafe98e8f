"""Small things a newcomer trips on: --debug after the subcommand, where outputs went, a clean
stdout with '-', '1 rank', measure's defaults, naming the op of an nccl-tests file."""
import re
import subprocess
import sys

from repo_paths import ROOT, WORKLOADS

MICRO = str(WORKLOADS / "simai_microAllReduce.txt")
SEED = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")


def collsim(*args):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path):
    missing = tmp_path / "missing.txt"
    plain = collsim("simulate", missing)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    for args in (("--debug", "simulate", missing), ("simulate", missing, "--debug")):
        p = collsim(*args)
        assert p.returncode != 0 and "Traceback" in p.stderr, args


def test_summary_says_where_outputs_were_written(tmp_path):
    js, csv = tmp_path / "s.json", tmp_path / "l.csv"
    p = collsim("simulate", MICRO, "--json", js, "--csv", csv)
    assert p.returncode == 0, p.stderr
    assert f"wrote: {csv} (per-layer CSV); {js} (JSON summary)" in p.stdout
    assert "wrote" not in collsim("simulate", MICRO, "--json", js, "--quiet").stdout


def test_csv_to_stdout_is_only_the_csv():
    p = collsim("simulate", MICRO, "--csv", "-")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("sequence,index,line,name,")
    assert "iteration time" not in p.stdout and "wrote" not in p.stdout
    both = collsim("simulate", MICRO, "--csv", "-", "--json", "-")
    assert both.returncode == 2 and "only one output can go to stdout" in both.stderr


def test_one_rank_is_singular():
    p = collsim("simulate", SEED, "--straggler", "rank=5,compute=1.3")
    assert p.returncode == 0, p.stderr
    assert "(1 rank, e.g. rank 5" in p.stdout and not re.search(r"\b1 ranks", p.stdout)


def test_measure_help_shows_defaults():
    p = collsim("measure", "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    for fragment in ("timed calls per point (default: 50)", "untimed calls per point (default: 10)"):
        assert fragment in text


def test_nccl_tests_op_from_the_command_line(tmp_path):
    path = tmp_path / "nameless.txt"
    rows = "".join(f"{2 ** k:>12} {2 ** k // 4:>13}     float     sum      -1 {20 + k:>8.2f}    0.00"
                   f"    0.00       0 {20 + k:>8.2f}    0.00    0.00       0\n"
                   for k in range(10, 24))
    path.write_text("# nThread 1 nGpus 2 minBytes 1024 maxBytes 8388608 step: 2(factor)\n"
                    "#       size         count      type   redop    root     time   algbw   busbw"
                    "  #wrong     time   algbw   busbw  #wrong\n" + rows)
    out = tmp_path / "c.yaml"
    p = collsim("calibrate", path, "-o", out, "--method", "nccl-tests")
    assert p.returncode == 2 and "--nccl-tests-op" in p.stderr
    q = collsim("calibrate", path, "-o", out, "--nccl-tests-op", "all_reduce", "--quiet")
    assert q.returncode == 0, q.stderr
    assert "all_reduce" in out.read_text()
