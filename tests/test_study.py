"""simulator.study: the what-if study behind ``collsim simulate`` returns a complete result.

Called as a library (no argparse): the straggler draws and percentiles of the README, the
failure arithmetic, sensitivity groups, co-located jobs and the checks of a WhatIf.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from simulator.cluster import Cluster
from simulator.costmodel.analytical import AnalyticalCostModel
from simulator.engine import SimulationOptions
from simulator.errors import InputError
from simulator.readers.workload import read_workload
from simulator.scenario import parse_failure, parse_straggler
from simulator.study import WhatIf, run_study

ROOT = Path(__file__).resolve().parent.parent
SEED004 = ROOT / "workloads" / "seed004_moe_tp8_ep4_pp4_128gpus.txt"
MIXTRAL = ROOT / "workloads" / "mixtral8x7b_256gpu_tp4_pp4_ep8.txt"


def _study(path: Path, what_if: WhatIf, **options):
    # the CLI's default: SimAI's busbw model on the default cluster (8 x H100 per server)
    cluster = Cluster()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        workload = read_workload(str(path))
        return run_study(workload, cluster, AnalyticalCostModel(cluster),
                         SimulationOptions(**options), what_if, progress=False)


def test_readme_straggler_draws_and_percentiles():
    # README "what one slow GPU in a hundred costs": 20 draws of a random 1% of 256 GPUs 15%
    # slower, seed 1
    study = _study(MIXTRAL, WhatIf(stragglers=(parse_straggler(
        "fraction=0.01,compute=1.15,seed=1"),), draws=20))
    r = study.result
    assert r.step_time_draws_ns == list(study.draws_ns) and len(study.draws_ns) == 20
    assert study.draws_ns[0] == r.iteration_ns        # the reported run is draw 1
    s = sorted(ns / 1e6 for ns in study.draws_ns)
    # percentiles by linear interpolation between order statistics of 20 draws:
    # p at position p/100 * 19 (p50: 9.5, p90: 17.1, p99: 18.81)
    p50 = s[9] + 0.5 * (s[10] - s[9])
    p90 = s[17] + 0.1 * (s[18] - s[17])
    p99 = s[18] + 0.81 * (s[19] - s[18])
    # README: min 2031.091  p50 2046.727  p90 2055.723  p99 2057.409  max 2057.663
    assert [round(v, 3) for v in (s[0], p50, p90, p99, s[-1])] == [
        2031.091, 2046.727, 2055.723, 2057.409, 2057.663]
    # README: baseline without the random stragglers and jitter: 1876.866 ms
    assert round(r.baseline_ns / 1e6, 3) == 1876.866
    # where draw 1's slow GPUs sit: 64 GPUs per stage (256 / PP 4), 8 per server
    assert ("slow GPUs in draw 1: rank 120 (stage 1, server 15) x1.15; rank 130 (stage 2, "
            "server 16) x1.15; rank 193 (stage 3, server 24) x1.15") in r.notes
    assert r.sensitivity is None and r.failure is None


def test_failure_is_in_the_result():
    # README's first command: seed 004 takes 209.347 ms. A node failing 120 ms in with a
    # 300 s restart loses 120 ms + 300 000 ms = 300 120 ms; the iteration then completes
    # 300 120 + 209.347 = 300 329.347 ms after it started
    study = _study(SEED004, WhatIf(failure=parse_failure("at=120ms,restart=300s")))
    r = study.result
    assert round(r.iteration_ns / 1e6, 3) == 209.347
    assert r.failure["lost_us"] == pytest.approx(300_120_000.0)
    assert round(r.failure["iteration_with_failure_us"] / 1e3, 3) == 300329.347
    assert r.failure["summary"] in r.notes
    assert r.step_time_draws_ns is None and r.baseline_ns is None
    assert study.draws_ns == (r.iteration_ns,)


def test_sensitivity_covers_the_groups_that_talk():
    study = _study(SEED004, WhatIf(sensitivity=True))
    r = study.result
    # seed 004 (128 GPUs, TP 8, EP 4, PP 4): DP_EP is one GPU, every other group talks
    assert r.free_groups == ["DP_EP"]
    assert list(r.sensitivity) == ["TP", "EP", "DP", "PP"]
    # communication 10% faster never makes the step slower, and TP's (the largest exposed
    # communication of this MoE job) makes it faster
    assert all(v <= r.iteration_ns for v in r.sensitivity.values())
    assert r.sensitivity["TP"] < r.iteration_ns


def test_packed_co_job_runs_as_if_alone():
    # packed: each job gets whole servers, so the jobs share no NIC and each result is
    # that of the job alone with its transfers sharing links (co-jobs turn contention on)
    alone = _study(SEED004, WhatIf(), contention=True).result
    study = _study(SEED004, WhatIf(co_jobs=(str(SEED004),), placement="packed"))
    assert len(study.co_results) == 1
    assert study.result.iteration_ns == alone.iteration_ns
    assert study.co_results[0].iteration_ns == alone.iteration_ns


def test_what_if_checks():
    with pytest.raises(InputError, match="needs something random"):
        WhatIf(draws=2)
    with pytest.raises(InputError, match="at most 10,000 draws"):
        WhatIf(draws=10_001, jitter=(("cv", 0.05),))
    with pytest.raises(InputError, match="cannot be combined"):
        _study(SEED004, WhatIf(co_jobs=(str(SEED004),), sensitivity=True))


def test_study_report_ranks_the_draws():
    import dataclasses

    from simulator.report.study_html import render_study_report
    result = _study(SEED004, WhatIf()).result
    draws = [3_000_000, 1_000_000, 2_000_000]
    result = dataclasses.replace(result, step_time_draws_ns=draws)
    page = render_study_report(result, draws, "w.txt", [("draws", "3")])
    # draw 0 is 3 ms: 200% slower than the fastest (1 ms), third; draw 2 is 100% slower, second
    for cells in (["0", "3.000", "200.00", "3"], ["1", "1.000", "0.00", "1"],
                  ["2", "2.000", "100.00", "2"]):
        assert "".join(f"<td>{c}</td>" for c in cells) in page
    assert "collsim simulate: w.txt" in page and "3 random draws" in page
