"""`--csv-style simai` writes SimAI's EndToEnd.csv layout: checked against files SimAI's own
binary wrote (tests/data/simai/README.md says how)."""
import re
import subprocess
import sys
import warnings

from repo_paths import ROOT, WORKLOADS
from simulator.cluster import Cluster
from simulator.engine import simulate
from simulator.readers.workload import read_workload
from simulator.report.simai_csv import render_simai_csv

DATA = ROOT / "tests" / "data" / "simai"


def _run(name: str, cluster: Cluster):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate(read_workload(str(WORKLOADS / name)), cluster)


def _same(ours: str, theirs: str, tol: float = 0.011) -> list[str]:
    """Lines that differ other than by a rounding step in one printed number."""
    bad = []
    a_lines, b_lines = ours.splitlines(), theirs.splitlines()
    if len(a_lines) != len(b_lines):
        return [f"{len(a_lines)} lines vs {len(b_lines)}"]
    for a, b in zip(a_lines, b_lines):
        sep = ", " if a.startswith(("File name", "micro-")) else ","
        fa, fb = a.split(sep), b.split(sep)
        if len(fa) != len(fb):
            bad.append(f"{a!r} vs {b!r}")
            continue
        for x, y in zip(fa, fb):
            if x == y:
                continue
            try:
                if abs(float(x) - float(y)) <= tol:
                    continue
            except ValueError:
                pass
            bad.append(f"{x!r} vs {y!r} in {b!r}")
    return bad


def test_matches_simai_file_when_the_model_is_simais():
    # SimAI -nv 360 is a bus bandwidth of 360 GiB/s with no latency terms (the README of
    # tests/data/simai derives the 76 us): the same cluster in our busbw model
    cluster = Cluster(nvlink_gbps=360 * 2 ** 30 / 1e9, nvlink_efficiency=1.0,
                      base_latency_ns=0, nvlink_hop_ns=0)
    ours = render_simai_csv(_run("simai_microAllReduce.txt", cluster), run_name="micro-")
    theirs = (DATA / "micro-EndToEnd.csv").read_text()
    assert ours.splitlines()[:3] == theirs.splitlines()[:3]   # summary lines to the byte
    assert _same(ours, theirs) == []
    assert ours.endswith("\n") and theirs.endswith("\n")


def test_layout_of_a_128_gpu_moe_file():
    theirs = (DATA / "seed004-EndToEnd.csv").read_text().splitlines()
    ours = render_simai_csv(_run("seed004_moe_tp8_ep4_pp4_128gpus.txt", Cluster()),
                            run_name="seed004-").splitlines()
    # line 2 of the file declares 96 rows and 98 follow: SimAI reads 96, we simulate all 98
    assert len(theirs) == 3 + 96 and len(ours) == 3 + 98
    assert ours[0] == theirs[0] and ours[2] == theirs[2]
    part = re.compile(r"^\d+ \(\d+\.\d\d%\)$")
    for line in (ours[1], theirs[1]):
        fields = line.split(", ")
        assert len(fields) == 10 and fields[0] == "seed004-"
        assert all(part.match(f) for f in fields[1:9]) and fields[9].isdigit()
    bw = re.compile(r"^(\d+\.\d\d|-nan|inf)$")
    for a, b in zip(ours[3:], theirs[3:]):
        fa, fb = a.split(","), b.split(",")
        assert len(fa) == len(fb) == 17
        assert fa[:5] == fb[:5]          # layer, run column, compute read from the file
        for i in (9, 10, 12, 13, 15, 16):
            assert bw.match(fa[i]) and bw.match(fb[i]), (a, b)
        # a phase without a collective, and a collective of a group of one, print as SimAI
        for i in (9, 12, 15):
            if fb[i] == "-nan":
                assert (fa[i], fa[i + 1]) == ("-nan", "0.00") == (fb[i], fb[i + 1])
            if fb[i] == "inf":
                assert (fa[i], fa[i + 1]) == ("inf", "-nan") == (fb[i], fb[i + 1])


def test_cli_writes_the_simai_layout(tmp_path):
    out = tmp_path / "e2e.csv"
    p = subprocess.run([sys.executable, "-m", "simulator", "simulate",
                        str(WORKLOADS / "simai_microAllReduce.txt"), "--cost-model", "simai",
                        "--csv", str(out), "--csv-style", "simai", "--quiet"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == (DATA / "micro-EndToEnd.csv").read_text().splitlines()[0]
    assert lines[1].startswith("simai_microAllReduce, ") and len(lines) == 5
