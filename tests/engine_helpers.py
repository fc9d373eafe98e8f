"""The unit cluster of the hand-derived engine tests (1 byte/ns on NVLink and per GPU on the
NICs, no latency) and a one-call replay of a workload table on it (test_engine.py,
test_chunks.py), and the policy inputs the direct pipeline's and the re-priced programs'
tests share."""
import warnings

from simulator.cluster import Cluster
from simulator.engine import SimulationOptions, simulate
from simulator.errors import SimulationWarning
from simulator.readers.workload import read_workload_text

from repo_paths import ROOT

UNIT = Cluster(name="unit", gpus_per_server=8, nvlink_gbps=1.0, nic_gbps=1.0, nics_per_server=8,
               nvlink_efficiency=1.0, nic_efficiency=1.0, base_latency_ns=0, nvlink_hop_ns=0,
               nic_hop_ns=0)


def run(header: str, rows: list[str], cluster=UNIT, **opts):
    wl = read_workload_text(header + "\n" + str(len(rows)) + "\n" + "\n".join(rows) + "\n", "t.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        return simulate(wl, cluster, options=SimulationOptions(**opts))


POLICY_DATA = ROOT / "tests" / "data" / "policies"
POLICY_FILES = {  # as tests/test_public_policy_files.py simulates them
    "astra-sim_DLRM_HybridParallel.txt": 8,
    "astra-sim_Transformer_HybridParallel_Fwd_In_Bckwd.txt": 16,
    "astra-sim_microAllReduce.txt": 8,
    "astra-sim_microAllToAll.txt": 8,
    "astra-sim_sample_per_layer_parallel_HybridCustomized.txt": 16,
    "tutorials_asplos2022_exercise_4_vanilla.txt": 8,
    "tutorials_asplos2023_all_reduce.txt": 8,
    "tutorials_asplos2023_gpt3.txt": 32,
}


# a small pipelined table for every policy word: 4 stages, TP 2 (NVLink), DP over the NICs,
# micro-batches whose compute differs (the first is slower), so rounds differ and repeat
def pipelined_table(policy: str, pp: int, ga: int, extra: str = "", dp_bytes: int = 9000,
                    pp_bytes: int = 70000) -> str:
    rows = []
    for mb in range(ga):
        slow = 400 if mb == 0 else 0
        rows += [f"attn -1 {300 + slow} ALLREDUCE 4000 500 ALLREDUCE 4000 200 ALLREDUCE "
                 f"{dp_bytes} 10",
                 "mlp -1 700 ALLGATHER 3000 900 REDUCESCATTER 3000 400 REDUCESCATTER 6000 0",
                 "out -1 100 NONE 0 300 ALLTOALL 2000 150 ALLREDUCE 2000 0"]
    header = (f"{policy} model_parallel_NPU_group: 2 pp: {pp} ga: {ga} all_gpus: {pp * 8} "
              f"pp_comm: {pp_bytes} {extra}")
    return header + "\n" + str(len(rows)) + "\n" + "\n".join(rows) + "\n"


POLICIES = ["HYBRID_TRANSFORMER", "HYBRID_TRANSFORMER_FWD_IN_BCKWD", "DATA", "MODEL",
            "HYBRID_DATA_MODEL", "HYBRID_MODEL_DATA", "MICRO"]
