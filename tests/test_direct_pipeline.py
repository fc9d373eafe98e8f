"""The fast engine's pipeline evaluated directly (simulator/engine/direct.py) against the same
pipeline replayed as events (simulator/engine/pipeline.py), the reference: every bundled
workload, every schedule and every policy word, bit for bit (every stage's end time and
breakdown, the per-row exposed time of every stage, the event count), including long
pipelines whose steady rounds the direct evaluation extrapolates instead of replaying.
"""
import os
import warnings

import pytest

from simulator.cluster import Cluster
from simulator.costmodel.analytical import AnalyticalCostModel
from simulator.engine import SimulationOptions, simulate
from simulator.engine.direct import DirectPipeline
from simulator.engine.pipeline import PipelineSim
from simulator.engine.plan import plan_job
from simulator.engine.simulate import fast_pipeline
from simulator.errors import InputError
from simulator.readers.workload import read_workload, read_workload_text

from engine_helpers import POLICIES, POLICY_DATA, POLICY_FILES
from engine_helpers import pipelined_table as _table
from repo_paths import WORKLOADS

UNIT = Cluster(name="unit", gpus_per_server=8, nvlink_gbps=1.0, nic_gbps=1.0, nics_per_server=8,
               nvlink_efficiency=1.0, nic_efficiency=1.0, base_latency_ns=0, nvlink_hop_ns=0,
               nic_hop_ns=0)


def _outcome(sim):
    return ([vars(r) for r in sim.results], [sim.row_exposed(s) for s in range(sim.pp)],
            sim.events)


def compare(wl, cluster=None, **opts):
    """Plan once per path (nothing shared but the workload) and compare the two pipelines;
    returns the direct one."""
    cluster = cluster or Cluster()
    sims = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for direct in (False, True):
            plan = plan_job(wl, cluster, AnalyticalCostModel(cluster), SimulationOptions(**opts))
            sim = fast_pipeline(plan, False, direct)
            sim.pp = plan.par.pp
            sim.run()
            sims.append(sim)
    event, direct = sims
    assert isinstance(event, PipelineSim) and isinstance(direct, DirectPipeline)
    assert _outcome(direct) == _outcome(event)
    return direct


def _schedules(wl):
    """(pp_schedule, vpp) pairs the workload can run."""
    out = [("1f1b", None), ("gpipe", None)]
    ga = wl.ga or 1
    for vpp in sorted({2, 3, wl.vpp or 1}):
        if wl.pp == 1 or ga % wl.pp == 0:
            out.append(("interleaved", vpp))
    return out


BUNDLED = sorted(p.name for p in WORKLOADS.glob("*.txt"))


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_workloads_every_schedule(name):
    wl = read_workload(str(WORKLOADS / name))
    for schedule, vpp in _schedules(wl):
        try:
            compare(wl, pp_schedule=schedule, vpp_chunks=vpp)
        except InputError:
            continue   # a chunk split the file cannot make: no pipeline to compare


@pytest.mark.parametrize("name", sorted(POLICY_FILES))
def test_public_policy_files(name):
    wl = read_workload(os.path.join(POLICY_DATA, name))
    for schedule in ("1f1b", "gpipe"):
        compare(wl, UNIT, gpus=POLICY_FILES[name], pp_schedule=schedule)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("schedule, vpp", [("1f1b", None), ("gpipe", None),
                                           ("interleaved", 3)])
def test_every_policy_word(policy, schedule, vpp):
    extra = "checkpoints: 1 0 checkpoint_initiates: 1 2" if "FWD_IN" in policy else ""
    wl = read_workload_text(_table(policy, 4, 24, extra), "t.txt")
    compare(wl, UNIT, pp_schedule=schedule, vpp_chunks=vpp)


@pytest.mark.parametrize("schedule, vpp, ga", [("1f1b", None, 96), ("gpipe", None, 64),
                                               ("interleaved", 2, 64)])
def test_long_pipelines_extrapolate_and_match(schedule, vpp, ga):
    # long enough for the steady rounds to repeat: the direct evaluation must skip some of
    # them (else this tests nothing new) and still give the event replay's numbers. (A
    # weight-gradient all-reduce or a send slower than a backward pass queues up more each
    # round under GPipe, whose backwards nothing holds back: no two rounds alike there, and
    # every round is evaluated; so small ones here.)
    wl = read_workload_text(_table("HYBRID_TRANSFORMER", 4, ga, dp_bytes=900, pp_bytes=700),
                            "t.txt")
    direct = compare(wl, UNIT, pp_schedule=schedule, vpp_chunks=vpp)
    assert direct.skipped_rounds > 0


def test_micro_batch_variants_break_the_repeat_only_where_they_occur():
    # a slow micro-batch in the middle (mb 40 of 96): the rounds around it differ, the rest
    # still repeat
    text = _table("HYBRID_TRANSFORMER", 4, 96).splitlines()
    row = 2 + 40 * 3
    text[row] = text[row].replace("attn -1 300", "attn -1 5300")
    wl = read_workload_text("\n".join(text) + "\n", "t.txt")
    direct = compare(wl, UNIT)
    assert direct.skipped_rounds > 0


def test_uniform_1f1b_by_hand_with_skipped_rounds():
    # uniform stages, free sends: tf = 1000, tb = 2000; the first stage idles (pp-1)(tf+tb),
    # so the iteration is (ga + pp - 1) * 3000 = 67 * 3000 ns with pp 4, ga 64
    rows = ["l -1 1000 NONE 0 1000 NONE 0 1000 NONE 0 0"] * 64
    wl = read_workload_text("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: 4 "
                            "ga: 64 all_gpus: 4\n64\n" + "\n".join(rows) + "\n", "t.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = simulate(wl, options=SimulationOptions())
    assert r.iteration_ns == 67 * 3000
    assert r.stages[0].bubble_ns == 3 * 3000
    assert any("repeating the steady state exactly" in n for n in r.notes)
    direct = compare(wl)
    assert direct.skipped_rounds > 0


def test_trace_runs_the_event_path_and_says_so():
    wl = read_workload_text(_table("HYBRID_TRANSFORMER", 2, 4), "t.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = simulate(wl, UNIT, options=SimulationOptions(trace=True))
        plain = simulate(wl, UNIT, options=SimulationOptions())
    assert any("replayed as events" in n for n in traced.notes)
    assert traced.iteration_ns == plain.iteration_ns
    assert [vars(s) for s in traced.stages] == [vars(s) for s in plain.stages]


def _random_table(rng, policy: str, pp: int, ga: int, layers: int) -> str:
    """Random compute times and byte counts; a few micro-batches differ from the rest."""
    layer = [(rng.randrange(1, 2000), rng.choice(["ALLREDUCE", "ALLGATHER", "NONE"]),
              rng.randrange(0, 8000), rng.randrange(1, 3000), rng.choice(["ALLREDUCE", "NONE",
                                                                            "ALLTOALL"]),
              rng.randrange(0, 8000), rng.randrange(0, 1500),
              rng.choice(["ALLREDUCE", "REDUCESCATTER", "NONE"]), rng.randrange(0, 20000))
             for _ in range(layers)]
    odd = {rng.randrange(ga) for _ in range(rng.randrange(0, 3))}
    rows = []
    for mb in range(ga):
        for k, (f, fc, fb, b, bc, bb, w, wc, wb) in enumerate(layer):
            f2 = f + (777 if mb in odd and k == 0 else 0)
            rows.append(f"l{k} -1 {f2} {fc} {fb} {b} {bc} {bb} {w} {wc} {wb} 0")
    header = (f"{policy} model_parallel_NPU_group: {rng.choice([1, 2, 4])} pp: {pp} ga: {ga} "
              f"all_gpus: {pp * 8} pp_comm: {rng.choice([0, 500, 5000, 60000])}")
    return header + "\n" + str(len(rows)) + "\n" + "\n".join(rows) + "\n"


@pytest.mark.parametrize("seed", range(40))
def test_random_pipelines_match(seed):
    import random

    rng = random.Random(seed)
    pp = rng.choice([2, 3, 4, 6, 8])
    schedule = rng.choice(["1f1b", "gpipe", "interleaved"])
    ga = rng.choice([1, 2, 5, 16, 40, 72])
    vpp = None
    if schedule == "interleaved":
        vpp = rng.choice([1, 2, 3])
        ga = pp * rng.choice([1, 3, 8])
    policy = rng.choice(POLICIES)
    layers = max(vpp or 1, rng.randrange(1, 4))
    wl = read_workload_text(_random_table(rng, policy, pp, ga, layers), "t.txt")
    compare(wl, UNIT, pp_schedule=schedule, vpp_chunks=vpp)
