"""Rank-class runs are summarised: the slowest classes, each stage's slowest, where the slow
GPUs sit, the baseline beside the draws; every class only with --full-tables."""
import json
import re
import subprocess
import sys

from repo_paths import ROOT, WORKLOADS

SEED = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")
RANDOM = ("--straggler", "fraction=0.05,compute=1.2,seed=1")


def collsim(*args):
    p = subprocess.run([sys.executable, "-m", "simulator", *map(str, args)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _class_rows(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.match(r"^\s+\d+\s+[\d.]+\s.*class \d+ \(", ln)]


def test_summary_by_default_full_tables_on_request():
    short = collsim("simulate", SEED, *RANDOM)
    full = collsim("simulate", SEED, *RANDOM, "--full-tables")
    classes = int(re.search(r"(\d+) rank classes; the 5 slowest", short).group(1))
    assert classes > 10
    assert len(_class_rows(full)) == classes
    # 5 slowest + one per pipeline stage (PP 4)
    assert len(_class_rows(short)) == 5 + 4
    assert "each pipeline stage's slowest class" in short
    assert len(short.splitlines()) <= len(full.splitlines()) - classes + 5 + 4 + 6


def test_where_the_slow_gpu_sits():
    out = collsim("simulate", SEED, "--straggler", "rank=77,compute=1.3")
    # 128 GPUs in 4 stages of 32 (PP outermost): rank 77 is in stage 2; 8 per server: server 9
    assert "slow GPUs: rank 77 (stage 2, server 9) x1.3" in out


def test_draws_show_which_draw_and_the_baseline():
    out = collsim("simulate", SEED, *RANDOM, "--draws", "3")
    assert "(the iteration time and tables above are draw 1's)" in out
    doc = json.loads(collsim("simulate", SEED, *RANDOM, "--draws", "3", "--json", "-"))
    plain = json.loads(collsim("simulate", SEED, "--json", "-"))
    # the baseline is the same job without the random stragglers
    assert doc["baseline_iteration_time_us"] == plain["iteration_time_us"]
    base = doc["baseline_iteration_time_us"] / 1000
    assert f"baseline without the random stragglers and jitter: {base:.3f} ms" in out


def test_plot_with_many_classes(tmp_path):
    png = tmp_path / "t.png"
    collsim("simulate", SEED, *RANDOM, "--plot", png, "--quiet")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
