"""Warnings where the answer cannot be trusted, and what-ifs that cannot change it.

``simulator.checks.unused_parameters`` must be sound: whenever it says a parameter cannot
change the answer, simulating with and without that change gives the same iteration.
"""
from __future__ import annotations

import dataclasses
import warnings

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from simulator.checks import cluster_overrides, priced_table, unused_parameters
from simulator.config import ClusterOptions
from simulator.cluster import Cluster
from simulator.costmodel.analytical import AnalyticalCostModel
from simulator.engine import simulate
from simulator.errors import SimulationWarning
from simulator.parallel import make_parallel
from simulator.readers.workload import read_workload, read_workload_text
from property_strategies import ROOT, cases, describe, examples, sim

SEED004 = ROOT / "workloads" / "seed004_moe_tp8_ep4_pp4_128gpus.txt"


def quiet_read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_workload(path)


def layout(w, gpus=None):
    return make_parallel(gpus or w.all_gpus, w.tp, w.pp, w.ep)


def one_server_job():
    return read_workload_text(
        "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 ep: 2 pp: 1 ga: 1 "
        "all_gpus: 8\n2\n"
        "a -1 1000 ALLREDUCE 1048576 1000 ALLTOALL_EP 1048576 1000 ALLREDUCE 8388608 100\n"
        "b -1 1000 ALLGATHER 1048576 1000 NONE 0 1000 REDUCESCATTER_DP_EP 1048576 100\n",
        path="one_server.txt")


# ------------------------------------------------------------------------------ what-ifs

def test_nic_what_if_on_a_single_server_job():
    w = one_server_job()
    c = Cluster(nic_gbps=100)
    msgs = unused_parameters(w, layout(w), c, {"nic_gbps": 100})
    assert msgs == ["nic_bw 100 cannot change the answer: every group and pipeline send "
                    "of this job stays inside one server (8 GPUs, 8 per server), so no "
                    "traffic uses the NICs"]
    assert sim(w, c).iteration_ns == sim(w, Cluster()).iteration_ns
    # the same job on servers of 4 GPUs does use the NICs
    c4 = Cluster(nic_gbps=100, gpus_per_server=4)
    assert unused_parameters(w, layout(w), c4, {"nic_gbps": 100}, reference=Cluster(
        gpus_per_server=4)) == []


def test_nics_per_server_what_if_on_a_single_server_job():
    w = one_server_job()
    msgs = unused_parameters(w, layout(w), Cluster(nics_per_server=4), {"nics_per_server": 4})
    assert len(msgs) == 1 and msgs[0].startswith("nics_per_server 4 cannot change")


def test_nvlink_what_if_with_one_gpu_per_server():
    w = one_server_job()
    ref = Cluster(gpus_per_server=1, nics_per_server=1)
    c = dataclasses.replace(ref, nvlink_gbps=900)
    msgs = unused_parameters(w, layout(w), c, {"nvlink_gbps": 900}, reference=ref)
    assert msgs == ["nvlink_bw 900 cannot change the answer: no group of this job has two "
                    "GPUs in one server, so no traffic uses NVLink"]
    assert sim(w, c).iteration_ns == sim(w, ref).iteration_ns
    # even an NVLink slower than the NIC cannot matter: a ring with one member per server
    # goes GPU -> NIC -> NIC -> GPU (the analytical model once capped it at NVLink speed)
    slow = dataclasses.replace(ref, nvlink_gbps=40)
    assert unused_parameters(w, layout(w), slow, {"nvlink_gbps": 40}, reference=ref) != []
    assert sim(w, slow).iteration_ns == sim(w, ref).iteration_ns


def test_nvlink_what_if_when_every_collective_is_nic_bound():
    """Seed 004's groups cross servers with one member per server except TP (inside a server),
    so NVLink does matter there: no warning."""
    w = quiet_read(SEED004)
    c = Cluster(nvlink_gbps=900)
    assert unused_parameters(w, layout(w), c, {"nvlink_gbps": 900}) == []
    assert sim(w, c).iteration_ns < sim(w, Cluster()).iteration_ns


def test_seed004_nic_what_if_matters():
    w = quiet_read(SEED004)
    assert unused_parameters(w, layout(w), Cluster(nic_gbps=100), {"nic_gbps": 100}) == []


def test_a_job_without_collectives_flags_every_what_if():
    w = read_workload_text("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1\n1\n"
                           "a -1 10 NONE 0 20 NONE 0 30 NONE 0 100\n", path="x.txt")
    c = Cluster(nic_gbps=10, nvlink_gbps=100, base_latency_ns=0, gpus_per_server=4)
    msgs = unused_parameters(w, layout(w, 1), c, {"nic_gbps": 10, "nvlink_gbps": 100,
                                                 "base_latency_ns": 0, "gpus_per_server": 4})
    assert [m.split(" cannot")[0] for m in msgs] == [
        "nic_bw 10", "nvlink_bw 100", "base_latency_ns 0us", "gpus_per_server 4"]
    assert all("runs no collective" in m for m in msgs)


def test_values_equal_to_the_default_are_no_what_if():
    w = one_server_job()
    assert unused_parameters(w, layout(w), Cluster(), {"nic_gbps": 50.0, "nvlink_gbps": None}) == []


def test_cluster_overrides():
    options = ClusterOptions(nvlink_bw=900.0, nics_per_server=4, base_latency_ns=5000)
    assert cluster_overrides(options) == {"nvlink_gbps": 900.0, "nics_per_server": 4,
                                          "base_latency_ns": 5000}


@examples(120)
@given(st.data())
def test_a_flagged_what_if_never_changes_the_answer(data):
    """Soundness on generated jobs and clusters: every flagged parameter, set back to its
    reference value, leaves the iteration exactly as it was."""
    w, c, opts = data.draw(cases())
    ref = data.draw(st.sampled_from([Cluster(), c]))
    field = data.draw(st.sampled_from(["nic_gbps", "nvlink_gbps", "nics_per_server",
                                       "gpus_per_server", "base_latency_ns"]))
    value = {"nic_gbps": ref.nic_gbps * 2, "nvlink_gbps": ref.nvlink_gbps / 3,
             "nics_per_server": ref.nics_per_server + 1,
             "gpus_per_server": data.draw(st.sampled_from([1, 2, 4, 8, 16])),
             "base_latency_ns": ref.base_latency_ns + 1234}[field]
    user = dataclasses.replace(c, **{field: value})
    base = dataclasses.replace(user, **{field: getattr(ref, field)})
    note(describe(w, user, opts))
    msgs = unused_parameters(w, layout(w), user, {field: value}, reference=ref)
    event(f"{field} flagged" if msgs else f"{field} not flagged")
    if msgs:
        assert sim(w, user, opts).iteration_ns == sim(w, base, opts).iteration_ns, msgs


def test_priced_table_is_what_the_engine_prices():
    w = quiet_read(SEED004)
    c = Cluster()
    table, placements = priced_table(w, layout(w), c, AnalyticalCostModel(c))
    r = sim(w, c)
    crit = r.critical_stage
    for row in r.rows:
        for name in ("fwd", "ig", "wg"):
            ns = getattr(row, f"{name}_comm_ns")
            if ns:
                group = getattr(row, f"{name}_group")
                assert ns in {v for (s, g, _, size), v in table.items()
                              if s == crit and g.value == group
                              and size == getattr(row, f"{name}_bytes")}


# ------------------------------------------------------------------------------ what exists

def test_existing_warnings_and_notes():
    """The warnings and notes the simulator gives where its answer is doubtful."""
    row = "a -1 1 ALLREDUCE 1048576 1 NONE 0 1 ALLREDUCE 1048576 100"
    # a row count that disagrees with line 2
    with pytest.warns(SimulationWarning, match="declares 5 rows but 2 follow"):
        read_workload_text(f"HYBRID_TRANSFORMER model_parallel_NPU_group: 1\n5\n{row}\n{row}\n",
                           path="x.txt")
    # no all_gpus: the world size is a guess
    w = read_workload_text(f"HYBRID_TRANSFORMER model_parallel_NPU_group: 2\n1\n{row}\n",
                           path="x.txt")
    with pytest.warns(SimulationWarning, match="has no all_gpus; assuming 2 GPUs"):
        r = simulate(w, Cluster())
    # a group of size 1 (DP here) and placeholder compute times: notes in the result
    assert any("group(s) of size 1: DP" in n for n in r.notes)
    assert any("placeholder compute" in n for n in r.notes)
    # ga micro-batches that do not repeat, and free pipeline sends
    w = read_workload_text(
        "HYBRID_TRANSFORMER model_parallel_NPU_group: 2 pp: 2 ga: 2 all_gpus: 4\n2\n"
        "a -1 10 NONE 0 1 NONE 0 1 NONE 0 1\nb -1 10 ALLGATHER 5 1 NONE 0 1 NONE 0 1\n",
        path="x.txt")
    with pytest.warns(SimulationWarning, match="no 2 repeating micro-batches"):
        r = simulate(w, Cluster())
    assert any("pp_comm is 0" in n for n in r.notes)


def test_cli_warns_about_a_what_if_that_cannot_change_the_answer(tmp_path):
    import contextlib
    import io
    import sys

    from simulator.cli import main

    path = tmp_path / "one_server.txt"
    path.write_text(
        "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 ep: 2 pp: 1 ga: 1 "
        "all_gpus: 8\n1\na -1 1000 ALLREDUCE 1048576 1000 ALLTOALL_EP 1048576 1000 "
        "ALLREDUCE 8388608 100\n")
    for flags, expected in ((["--nic-bw", "100"], True), (["--nvlink-bw", "900"], False)):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = lambda m, c, f, n, _file=None, line=None: sys.stderr.write(
                warnings.formatwarning(m, c, f, n, line))
            assert main(["simulate", str(path), "--quiet", *flags]) == 0
        said = "cannot change the answer" in err.getvalue()
        assert said == expected, err.getvalue()
