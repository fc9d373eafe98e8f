"""Library errors name the option key; the command line shows the flag (config/flags.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from repo_paths import ROOT, WORKLOADS
from simulator.cluster import Cluster
from simulator.costmodel.analytical import AnalyticalCostModel
from simulator.costmodel.bench import bench_rows
from simulator.engine import SimulationOptions, simulate
from simulator.errors import InputError
from simulator.readers.workload import read_workload

SEED004 = str(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simulator", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_bench_ranks_is_a_key_in_the_library_and_a_flag_on_the_command_line():
    cluster = Cluster()
    with pytest.raises(InputError) as err:
        bench_rows(AnalyticalCostModel(cluster), cluster, "all_reduce", 1, [1024])
    assert err.value.field == "ranks"
    # the same check reached from the command line: 1 rank passes argparse (N >= 1)
    done = _cli("bench", "--op", "all_reduce", "--ranks", "1", "--cost-model", "simai")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == \
        "collsim: error: --ranks: a collective needs at least 2 ranks"


@pytest.mark.parametrize("options, key", [
    (SimulationOptions(pp_schedule="zigzag"), "pp_schedule"),
    (SimulationOptions(pp_schedule="1f1b", vpp_chunks=2), "vpp"),  # chunks need interleaving
    (SimulationOptions(compat="megatron"), "compat"),
])
def test_simulation_option_errors_name_the_key(options, key):
    # seed 004 is a 4-stage pipeline: each option above is refused by the engine itself
    workload = read_workload(SEED004)
    cluster = Cluster()
    with pytest.raises(InputError) as err:
        simulate(workload, cluster, AnalyticalCostModel(cluster), options)
    assert err.value.field == key
