"""The vectorised rank-class replay against the row-level engine, and its scaling.

simulator/engine/class_replay.py replays all classes of a stage as numpy vectors; the
row-level engine (engine="detailed", one simpy process per class and a rendezvous per
collective) is an independent implementation of the same semantics, so the two must agree
on every number: per-class end, compute, recompute, bubble and exposed times, per-row
detail, the event count.
"""
import glob
import random
import warnings

import pytest

from repo_paths import WORKLOADS
from simulator.engine import SimulationOptions, simulate
from simulator.errors import InputError, SimulationWarning
from simulator.readers.workload import read_workload


def _stage_key(result):
    return [(s.stage, s.end_ns, s.compute_ns, s.recompute_ns, s.bubble_ns, s.exposed_ns,
             s.label, s.ranks, s.idle_after_ns) for s in result.stages]


SMALL = [p for p in sorted(glob.glob(str(WORKLOADS / "*.txt"))) if "9216" not in p]


@pytest.mark.parametrize("path", SMALL)
@pytest.mark.parametrize("schedule", ["1f1b", "interleaved", "gpipe"])
def test_class_replay_equals_row_level_engine(path, schedule):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        wl = read_workload(path)
        world = wl.all_gpus
        rng = random.Random(f"{path} {schedule}")
        stragglers = tuple((r, rng.choice([1.1, 1.3, 2.0]))
                           for r in rng.sample(range(world), k=max(1, world // 128)))
        degraded = tuple((r, 0.5, rng.choice([0, 5000])) for r in rng.sample(range(world), k=1))
        opts = dict(pp_schedule=schedule, stragglers=stragglers, degraded=degraded)
        try:
            vec = simulate(wl, options=SimulationOptions(**opts))
        except InputError:
            pytest.skip("schedule not applicable")
        row = simulate(wl, options=SimulationOptions(engine="detailed", **opts))
    assert len(vec.stages) > wl.pp                 # ranks really differ: several classes
    assert vec.iteration_ns == row.iteration_ns
    assert _stage_key(vec) == _stage_key(row)
    assert vec.rows == row.rows
    assert vec.critical_stage == row.critical_stage
    assert vec.events_processed == row.events_processed


def test_every_rank_its_own_class_at_9216_gpus():
    # 1% random stragglers make nearly every rank of SimAI's 9216-GPU example its own class
    # (the split spreads through the TP, EP and DP groups); the answer must still come back
    # and be the slowest class's time: never faster than without stragglers
    from simulator.scenario import parse_straggler, resolve_all

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        wl = read_workload(WORKLOADS / "simai_example_9216.txt")
        base = simulate(wl)
        stragglers = resolve_all([parse_straggler("fraction=0.01,compute=1.2,seed=1")], 9216)
        res = simulate(wl, options=SimulationOptions(stragglers=stragglers))
    assert len(res.stages) == 9216
    assert sum(s.ranks for s in res.stages) == 9216
    assert res.iteration_ns > base.iteration_ns
    # no class can be slower than every rank at 1.2x compute would be
    slow = simulate(wl, options=SimulationOptions(stragglers=tuple((r, 1.2) for r in range(9216))))
    assert res.iteration_ns <= slow.iteration_ns


@pytest.mark.parametrize("policy", ["HYBRID_TRANSFORMER", "DATA", "MODEL", "HYBRID_DATA_MODEL",
                                    "HYBRID_MODEL_DATA", "MICRO", "HYBRID_DLRM 3",
                                    "DISTRIBUTED_INFERENCE"])
def test_class_replay_follows_every_policy_program(policy):
    from simulator.readers.workload import read_workload_text

    src = (WORKLOADS / "aicb_gpt_13B-world_size64-tp8-pp2-ep1-gbs128-mbs1-seq4096.txt").read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        wl = read_workload_text(policy + " " + src.split(" ", 1)[1], "p.txt")
        opts = dict(stragglers=((3, 1.3), (40, 2.0)), degraded=((5, 0.5, 1000),))
        vec = simulate(wl, options=SimulationOptions(**opts))
        row = simulate(wl, options=SimulationOptions(engine="detailed", **opts))
    assert vec.iteration_ns == row.iteration_ns
    assert _stage_key(vec) == _stage_key(row)
    assert vec.rows == row.rows
    assert vec.events_processed == row.events_processed
