"""`--cost-model nccl|simai`: which model prices the run, and the summary says which."""
import csv
import io
import json
import subprocess
import sys

from repo_paths import ROOT, WORKLOADS

SEED = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")


def collsim(*args):
    return subprocess.run([sys.executable, "-m", "simulator", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def bench_us(*flags) -> float:
    p = collsim("bench", "--op", "all_reduce", "--ranks", 16, "--sizes", "1M", "--format", "csv",
                *flags)
    assert p.returncode == 0, p.stderr
    return float(next(csv.DictReader(io.StringIO(p.stdout)))["time_us"])


def test_simai_model_is_the_hand_derived_busbw_formula():
    # 16 ranks = 2 servers of 8: ring all-reduce crosses the NICs. base 10 us + 2(n-1) = 30
    # steps x 3 us NIC hop + 2*15/16 * 1 MiB = 1966080 B at min(NVLink 450*0.82 = 369,
    # NIC 50*0.97 per GPU x 8 per server = 388) = 369 GB/s = 5.328 us -> 105.328 us
    assert abs(bench_us("--cost-model", "simai") - 105.328) < 0.002


def test_nccl_without_topology_is_the_matching_preset():
    # the default cluster (8 x H100, NVLink 450 GB/s, a 400 Gbit/s NIC per GPU) is dgx-h100
    nccl = bench_us("--cost-model", "nccl")
    assert nccl == bench_us("--topology", "dgx-h100")
    assert nccl != bench_us("--cost-model", "simai")
    # flags change the preset as they change the simai cluster
    assert bench_us("--cost-model", "nccl", "--nic-bw", "200Gbit/s") > nccl


def test_summary_names_the_model():
    for model, words in (("simai", "simai (SimAI's analytical bus-bandwidth model)"),
                         ("nccl", "nccl (NCCL's algorithms, protocols and latencies")):
        p = collsim("simulate", SEED, "--cost-model", model)
        assert p.returncode == 0, p.stderr
        line = next(ln for ln in p.stdout.splitlines() if ln.startswith("cost model"))
        assert words in line, line
    # simai on a topology: the busbw formula on the topology's figures, no fabric flags
    p = collsim("simulate", SEED, "--cost-model", "simai", "--topology", "dgx-h100",
                "--json", "-")
    assert p.returncode == 0 and json.loads(p.stdout)["cost_model"]["name"] == "analytical"
    bad = collsim("simulate", SEED, "--cost-model", "simai", "--oversubscription", "2")
    assert bad.returncode == 2 and "--oversubscription" in bad.stderr
    assert collsim("simulate", SEED, "--cost-model", "busbw").returncode == 2
