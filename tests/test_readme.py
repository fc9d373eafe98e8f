"""The README's figures are what its own commands print today.

Each README example block that starts with ``$ collsim ...`` is run as written (from the
repository root, as ``python3 -m simulator``; only the files it writes go to a temporary
folder) and every output line the block shows must be a line of what the command prints. The
figures stated in the prose around the examples are read out of the README with the sentence
that states them and compared with what the command named next to them gives. A README edit
that changes a figure without the code, or a code change that moves a figure without the
README, fails here.
"""
from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SEED004 = "workloads/seed004_moe_tp8_ep4_pp4_128gpus.txt"
#: flags whose value is a file the command writes: sent to the temporary folder
WRITES = {"--plot", "--distribution-plot", "-o", "--output", "--report", "--trace", "--json",
          "--csv"}


def readme_examples() -> list[tuple[list[str], list[str]]]:
    """(argv after ``collsim``, the output lines shown) of every ``$ collsim`` block."""
    out = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", README, re.M | re.S):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("$ collsim "):
            continue
        command = lines[0][2:]
        i = 1
        while command.endswith("\\"):
            command = command[:-1] + " " + lines[i].strip()
            i += 1
        out.append((shlex.split(command)[1:], [ln for ln in lines[i:] if ln.strip()]))
    return out


def collsim(args: list[str], tmp_path: Path) -> str:
    argv = list(args)
    for k, a in enumerate(argv[:-1]):
        if a in WRITES and argv[k + 1] != "-":
            argv[k + 1] = str(tmp_path / Path(argv[k + 1]).name)
    p = subprocess.run([sys.executable, "-m", "simulator", *argv], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout


def stated(pattern: str) -> tuple[str, ...]:
    """The figures one README sentence states (whitespace in the pattern matches line breaks)."""
    m = re.search(pattern.replace(" ", r"\s+"), README)
    assert m, f"the README no longer says {pattern!r}"
    return m.groups()


def simulate_json(tmp_path: Path, *flags: str) -> dict:
    return json.loads(collsim(["simulate", SEED004, *flags, "--json", "-", "--quiet"], tmp_path))


def test_readme_has_its_examples():
    commands = [" ".join(argv[:2]) for argv, _ in readme_examples()]
    assert commands == [f"simulate {SEED004}",
                        "simulate workloads/mixtral8x7b_256gpu_tp4_pp4_ep8.txt",
                        "sweep workloads/sweeps/mixtral_nic_whatif.yaml"]
    # the default (nccl on the implied dgx-h100 preset, links not shared) example: 228.745 ms
    assert "228.745" in README


@pytest.mark.parametrize("index", range(2))
def test_readme_example_output_is_what_the_command_prints(index, tmp_path):
    argv, shown = readme_examples()[index]
    printed = {" ".join(ln.split()) for ln in collsim(argv, tmp_path).splitlines()}
    missing = [ln for ln in shown if " ".join(ln.split()) not in printed]
    assert not missing, missing


def test_readme_install_line_simulates_seed004(tmp_path):
    # the quick-start's second line runs the same file with no flags: the 228.745 ms example
    # (the default nccl model; `--cost-model nccl --no-contention` gives the same 228.745)
    assert f"python3 -m simulator simulate {SEED004}\n" in README
    out = collsim(["simulate", SEED004], tmp_path)
    assert "iteration time 228.745 ms" in out


def test_readme_seed004_compute_is_the_files_own():
    # "Each stage computes 40.98 ms (the file's forward 18.25 + input-gradient 17.72 +
    # weight-gradient 5.01 ms)": the sums of the table's three compute columns (ns), added
    # here straight from the file's whitespace-separated fields (name, -1, fwd_ns, fwd type,
    # fwd bytes, ig_ns, ig type, ig bytes, wg_ns, wg type, wg bytes, update_ns)
    total, fwd, ig, wg = map(float, stated(
        r"Each stage computes ([\d.]+) ms \(the file's forward ([\d.]+) \+ input-gradient "
        r"([\d.]+) \+ weight-gradient ([\d.]+) ms\)"))
    rows = [ln.split() for ln in (ROOT / SEED004).read_text().splitlines()[2:] if ln.strip()]
    sums_ms = [sum(int(r[k]) for r in rows) / 1e6 for k in (2, 5, 8)]
    assert [round(x, 2) for x in sums_ms] == [fwd, ig, wg]
    assert round(sum(sums_ms), 2) == total


def test_readme_cost_model_comparison(tmp_path):
    simai_us, nccl_us = map(float, stated(
        r"1 MiB all-reduce on 16 ranks is ([\d.]+) us with `simai` and ([\d.]+) us with `nccl`"))
    for model, want in (("simai", simai_us), ("nccl", nccl_us)):
        out = collsim(["bench", "--op", "all_reduce", "--ranks", "16", "--sizes", "1M",
                       "--cost-model", model], tmp_path)
        header, row = [ln.split() for ln in out.splitlines() if not ln.startswith("#")][:2]
        # the README gives one decimal of the two bench prints (41.55 may stand for 41.5549
        # or 41.5551): within half a unit of the first decimal plus the print's rounding
        assert abs(float(row[header.index("time_us")]) - want) <= 0.055
    simai_ms, nccl_ms = map(float, stated(
        r"seed 004 below is ([\d.]+) ms with `simai` and ([\d.]+) ms with `nccl`"))
    for model, want in (("simai", simai_ms), ("nccl", nccl_ms)):
        got = simulate_json(tmp_path, "--cost-model", model)["iteration_time_us"] / 1e3
        assert round(got, 1) == want


def test_readme_seed004_what_ifs(tmp_path):
    add_ms, at_512 = map(float, stated(
        r"`--gpus 512` gives DP 16 and DP_EP 4, and the expert-gradient collectives then add "
        r"(\d+) ms \(([\d.]+) ms\)"))
    d = simulate_json(tmp_path, "--gpus", "512")
    assert round(d["iteration_time_us"] / 1e3, 1) == at_512
    out = collsim(["simulate", SEED004, "--gpus", "512"], tmp_path)
    dp_ep = next(ln for ln in out.splitlines() if ln.strip().startswith("exposed DP_EP comm"))
    assert round(float(dp_ep.split()[3])) == add_ms
    (nic_200,) = map(float, stated(r"`--nic-bw 200Gbit/s` doubles the cross-server terms "
                                   r"\(([\d.]+) ms\)"))
    d = simulate_json(tmp_path, "--nic-bw", "200Gbit/s")
    assert round(d["iteration_time_us"] / 1e3, 1) == nic_200
    # "SimAI's closed form ... would charge 3/8 of a stage instead (17.4 ms; the report prints
    # this comparison)"
    (closed,) = stated(r"would charge 3/8 of a stage instead \(([\d.]+) ms;")
    out = collsim(["simulate", SEED004], tmp_path)
    m = re.search(r"3/\(1\*8\) of [\d.]+ ms, would be ([\d.]+) ms", out)
    assert m and round(float(m.group(1)), 1) == float(closed)


def test_readme_straggler_prose(tmp_path):
    # the prose repeats the block's baseline and p50 to one decimal
    base, p50 = stated(r"All GPUs at full speed the step takes ([\d.]+) ms.*?\(p50 ([\d.]+) ms\)"
                       .replace(".*?", "(?s:.*?)"))
    argv, shown = readme_examples()[1]
    text = "\n".join(shown)
    block_base = float(re.search(r"baseline [^:]*: ([\d.]+) ms", text).group(1))
    block_p50 = float(re.search(r"p50 ([\d.]+)", text).group(1))
    assert (f"{block_base:.1f}", f"{block_p50:.1f}") == (base, p50)


def test_readme_sweep_what_if(tmp_path):
    cost_pct, before, after, pp_from, pp_to, worst_pct = stated(
        r"halving the NICs costs the best layout (\d+)% \((\d+) -> (\d+) ms\) and moves it "
        r"from PP (\d+) to PP (\d+); layouts that lean on the cross-server expert-gradient "
        r"collectives lose up to (\d+)%")
    argv, _ = readme_examples()[2]
    collsim(argv, tmp_path)
    rows = [r for r in csv.DictReader((tmp_path / "nic.csv").open()) if r["status"] == "ok"]
    by_layout: dict[tuple, dict] = {}
    for r in rows:  # nic_bw is in GB/s: 50 = 400 Gbit/s, 25 = 200 Gbit/s
        by_layout.setdefault((r["tp"], r["ep"], r["pp"]), {})[float(r["nic_bw"])] = r
    full = min((v[50.0] for v in by_layout.values()), key=lambda r: float(r["iteration_ms"]))
    half = min((v[25.0] for v in by_layout.values()), key=lambda r: float(r["iteration_ms"]))
    fast, slow = float(full["iteration_ms"]), float(half["iteration_ms"])
    assert (round(fast), round(slow)) == (int(before), int(after))
    assert round(100 * (slow / fast - 1)) == int(cost_pct)
    assert (full["pp"], half["pp"]) == (pp_from, pp_to)
    worst = max(float(v[25.0]["iteration_ms"]) / float(v[50.0]["iteration_ms"]) - 1
                for v in by_layout.values() if len(v) == 2)
    assert round(100 * worst) == int(worst_pct)
