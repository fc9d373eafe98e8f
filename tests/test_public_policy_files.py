"""Public workload files of each policy (tests/data/policies/, see its README) load and
simulate, with both engines agreeing; where a number follows from the file alone it is
derived by hand here.

Cluster: 8 GPUs per server, 1 byte/ns on NVLink and per GPU on the NICs, no latency.
"""
import os
import warnings

import pytest

from simulator.cluster import Cluster
from simulator.engine import SimulationOptions, simulate
from simulator.errors import SimulationWarning
from simulator.readers.workload import read_workload

DATA = os.path.join(os.path.dirname(__file__), "data", "policies")
UNIT = Cluster(name="unit", gpus_per_server=8, nvlink_gbps=1.0, nic_gbps=1.0, nics_per_server=8,
               nvlink_efficiency=1.0, nic_efficiency=1.0, base_latency_ns=0, nvlink_hop_ns=0,
               nic_hop_ns=0)

FILES = {  # file -> (policy word, GPUs to simulate on)
    "astra-sim_DLRM_HybridParallel.txt": ("HYBRID_DLRM", 8),
    "astra-sim_Transformer_HybridParallel_Fwd_In_Bckwd.txt": ("HYBRID_TRANSFORMER_FWD_IN_BCKWD", 16),
    "astra-sim_microAllReduce.txt": ("HYBRID_TRANSFORMER", 8),
    "astra-sim_microAllToAll.txt": ("MICRO", 8),
    "astra-sim_sample_per_layer_parallel_HybridCustomized.txt": ("HYBRID_CUSTOMIZED", 16),
    "tutorials_asplos2022_exercise_4_vanilla.txt": ("DATA", 8),
    "tutorials_asplos2023_all_reduce.txt": ("MICRO", 8),
    "tutorials_asplos2023_gpt3.txt": ("HYBRID_TRANSFORMER_FWD_IN_BCKWD", 32),
}


def sim(name: str, gpus: int, **opts):
    wl = read_workload(os.path.join(DATA, name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        fast = simulate(wl, UNIT, options=SimulationOptions(gpus=gpus, **opts))
        detailed = simulate(wl, UNIT, options=SimulationOptions(gpus=gpus, engine="detailed",
                                                                **opts))
    assert detailed.iteration_ns == fast.iteration_ns
    assert detailed.critical.exposed_ns == fast.critical.exposed_ns
    return wl, fast


@pytest.mark.parametrize("name", sorted(FILES))
def test_public_file_loads_and_simulates(name):
    policy, gpus = FILES[name]
    wl, r = sim(name, gpus)
    assert wl.policy == policy and r.policy == policy
    assert r.replay.startswith(f"{policy} replayed as iterate_")
    assert "--compat astra-sim" in r.replay          # ASTRA-sim 1.0 headers, all of them
    assert r.iteration_ns > 0
    assert r.iteration_ns == r.critical.parts_sum_ns()


def test_micro_all_reduce_is_one_collective_on_every_gpu():
    # one 1 MiB ring all-reduce on the 8 GPUs of a server: 2*7/8*1048576 = 1835008 ns; the
    # rows' 1 ns compute is not run (a micro-benchmark is its collectives)
    _, r = sim("tutorials_asplos2023_all_reduce.txt", 8)
    assert r.iteration_ns == 1835008 + 1               # + the row's 1 ns update
    _, r = sim("astra-sim_microAllToAll.txt", 8)
    assert r.iteration_ns == 1048576 * 7 // 8 + 5      # all-to-all 7/8 S, + 5 ns update


def test_data_file_computes_every_phase_but_row_zeros_input_gradient():
    wl, r = sim("tutorials_asplos2022_exercise_4_vanilla.txt", 8)
    rows = wl.rows
    expected = sum(x.fwd_ns + x.wg_ns for x in rows) + sum(x.ig_ns for x in rows[1:])
    assert r.critical.compute_ns == expected
    assert r.critical.exposed_ns["TP"] == 0          # DATA issues no model-parallel collective


def test_fwd_in_bckwd_files_recompute_rows_c_to_j_minus_1():
    # checkpoints 2, 11; initiates 19, 10: rows 11..18 and 2..9, each Q, K, V, concat
    # (4 x 4946203), QK, softmax (2 x 297516) and the two MLP rows (2 x 19784812)
    _, r = sim("astra-sim_Transformer_HybridParallel_Fwd_In_Bckwd.txt", 16)
    assert r.critical.recompute_ns == 2 * (4 * 4946203 + 2 * 297516 + 2 * 19784812)
    # checkpoints 0, 9, 18; initiates 26, 17, 8: three spans of Q, K, V, concat
    # (4 x 9072581), QK, softmax (2 x 756048) and two MLP rows (2 x 36290323)
    _, r = sim("tutorials_asplos2023_gpt3.txt", 32)
    assert r.critical.recompute_ns == 3 * (4 * 9072581 + 2 * 756048 + 2 * 36290323)


def test_dlrm_file_reads_its_last_bottom_layer_and_issues_the_embedding_all_to_alls():
    wl, r = sim("astra-sim_DLRM_HybridParallel.txt", 8)
    assert wl.dlrm_last_bottom_layer == 4
    # the embedding row's forward and input-gradient all-to-alls run on every GPU (EP)
    assert r.rows[0].fwd_group == "EP" and r.rows[0].ig_group == "EP"
    assert r.rows[0].fwd_comm_ns == 98304 * 7 // 8
    assert all(x.fwd_comm == "NONE" for x in r.rows[1:])


def test_customized_file_keeps_each_rows_policy():
    wl, r = sim("astra-sim_sample_per_layer_parallel_HybridCustomized.txt", 16)
    assert [x.policy for x in wl.rows] == ["HYBRID_DATA_MODEL", "HYBRID_MODEL_DATA", "DATA",
                                           "MODEL", "MODEL", "HYBRID_MODEL_DATA"]
    # DATA row: no forward collective; MODEL rows: no weight-gradient collective
    assert r.rows[2].fwd_comm == "NONE" and r.rows[3].wg_comm == "NONE"
    # HYBRID_MODEL_DATA rows: the model collectives on the 2 GPUs across servers (DP), the
    # data one on the 8 GPUs of a server (TP); HYBRID_DATA_MODEL rows the other way round
    assert (r.rows[1].fwd_group, r.rows[1].wg_group) == ("DP", "TP")
    assert (r.rows[0].fwd_group, r.rows[0].wg_group) == ("TP", "DP")
