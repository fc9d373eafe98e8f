"""A point's pass programs re-priced from an earlier point's (simulator/engine/plan.py
_ProgramSource) are exactly what the policy's pass_program builds from the point's own priced
rows: on every bundled workload, the public policy files and every policy word, across
points whose NIC and NVLink bandwidths differ (every price changes) and a point where a group
is free (its collectives have no step: a program of its own, not a re-priced one)."""
from __future__ import annotations

import os
import warnings

import pytest

from simulator.cluster import Cluster
from simulator.costmodel.analytical import AnalyticalCostModel
from simulator.engine import SimulationOptions
from simulator.engine.plan import _ProgramSource, plan_job
from simulator.engine.policy import pass_program
from simulator.readers.workload import read_workload, read_workload_text
from simulator.workload import Phase

from engine_helpers import POLICIES, POLICY_DATA, POLICY_FILES
from engine_helpers import pipelined_table as _table
from repo_paths import WORKLOADS

CLUSTERS = [Cluster(nic_gbps=nic, nvlink_gbps=nvl)
            for nic, nvl in ((50.0, 360.0), (25.0, 360.0), (12.5, 900.0), (100.0, 120.0))]


def _check(wl, gpus=None, **opts) -> int:
    """Plans ``wl`` on each cluster in turn (the same workload object, so later points find
    the earlier points' programs) and compares every program of every stage with
    pass_program's; returns how many programs were re-priced rather than built."""
    repriced = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cluster in CLUSTERS:
            plan = plan_job(wl, cluster, AnalyticalCostModel(cluster),
                            SimulationOptions(gpus=gpus, row_detail=False, **opts))
            for setup in plan.setups:
                rep = setup.replayer
                source = rep.program_source
                assert isinstance(source, _ProgramSource)
                for seq, rows in rep.sequences.items():
                    for phase in (Phase.FWD, Phase.IG):
                        known = (phase, seq) in source.skeletons
                        got = rep.program(phase, seq)
                        want = pass_program(rows, phase, rep.rules, rep.dlrm_lbl,
                                            rep.seq_first.get(seq, -1))
                        assert got == want, (seq, phase)
                        # the same objects: rows of this point, not the earlier point's
                        assert all(a[1] is b[1] for a, b in zip(got, want))
                        repriced += known
    return repriced


@pytest.mark.parametrize("name", sorted(p.name for p in WORKLOADS.glob("*.txt")))
def test_bundled_workloads(name):
    assert _check(read_workload(WORKLOADS / name)) > 0


@pytest.mark.parametrize("name", sorted(POLICY_FILES))
def test_public_policy_files(name):
    _check(read_workload(os.path.join(POLICY_DATA, name)), gpus=POLICY_FILES[name])


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_word(policy):
    extra = "checkpoints: 1 0 checkpoint_initiates: 1 2" if "FWD_IN" in policy else ""
    wl = read_workload_text(_table(policy, 4, 24, extra), "t.txt")
    assert _check(wl) > 0
    assert _check(wl, pp_schedule="interleaved", vpp_chunks=3) > 0


def test_a_free_group_gets_its_own_program():
    # the table's 32 GPUs at TP 2, PP 4 give DP 4 (its collectives priced over the NICs); as
    # a job of 8 GPUs, DP 1: every DP collective free (price 0: no stream, no step), so
    # other programs, not the first pattern's re-priced
    wl = read_workload_text(_table("HYBRID_TRANSFORMER", 4, 8), "t.txt")
    assert _check(wl) > 0
    assert _check(wl, gpus=8) > 0
    assert _check(wl) > 0      # and back: the first pattern's programs, re-priced
