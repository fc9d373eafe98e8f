"""Each policy word replayed by its own rules, derived by hand on small tables.

Cluster: 1 byte/ns on NVLink and per GPU on the NICs, no latency. Ring all-reduce on n ranks
takes 2(n-1)/n * S ns, all-gather, reduce-scatter and all-to-all (n-1)/n * S. With 4 GPUs
per server a 4-rank group sits in one server (all-reduce 1.5 S, all-gather 0.75 S); a
2-rank group of ranks i, i+4 spans two servers, one GPU each, over its NIC (all-reduce S).

The rules follow ASTRA-sim 1.0's Workload::iterate_* (SimAI's fork has the same ones); the
table of what each does is in docs/simulate.md.
"""
import warnings

import pytest

from simulator.cluster import Cluster
from simulator.engine import SimulationOptions, simulate
from simulator.errors import InputError, SimulationWarning
from simulator.readers.workload import read_workload_text

UNIT4 = Cluster(name="unit4", gpus_per_server=4, nvlink_gbps=1.0, nic_gbps=1.0,
                nics_per_server=4, nvlink_efficiency=1.0, nic_efficiency=1.0,
                base_latency_ns=0, nvlink_hop_ns=0, nic_hop_ns=0)


def load(header: str, rows: list[str]):
    text = header + "\n" + str(len(rows)) + "\n" + "\n".join(rows) + "\n"
    return read_workload_text(text, "t.txt")


def run(header: str, rows: list[str], gpus: int | None = None, **opts):
    wl = load(header, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        fast = simulate(wl, UNIT4, options=SimulationOptions(gpus=gpus, trace=True, **opts))
        detailed = simulate(wl, UNIT4, options=SimulationOptions(gpus=gpus, trace=True,
                                                                 engine="detailed", **opts))
    # both engines interpret the same policy program: same numbers
    assert detailed.iteration_ns == fast.iteration_ns
    assert detailed.critical.exposed_ns == fast.critical.exposed_ns
    assert detailed.critical.compute_ns == fast.critical.compute_ns
    return fast


def collectives(r) -> list[tuple[str, str, int, int]]:
    """(group lane, slice name, start, end) of every collective, in start order."""
    import re
    out = [(t.lane, re.sub(r"^[FB]\d+ ", "", t.name), t.start_ns, t.start_ns + t.dur_ns)
           for t in r.trace if t.lane in ("TP", "EP", "DP", "DP_EP")]
    return sorted(out, key=lambda x: (x[2], x[1]))


# a table every training policy can read: r0 has all three collectives
MODEL_ROWS = ["r0 -1 100 ALLREDUCE 800 200 ALLREDUCE 800 300 ALLREDUCE 800 0",
              "r1 -1 100 ALLGATHER 800 200 REDUCESCATTER 800 300 NONE 0 0",
              "r2 -1 100 NONE 0 200 ALLREDUCE 400 300 NONE 0 0"]


def test_data_issues_only_weight_gradients_on_every_gpu_wg_before_ig():
    # DATA (iterate_data_parallel): no forward or input-gradient collective ever; backward per
    # row: wg compute, its all-reduce non-blocking on all 4 GPUs, then ig compute; row 0 has
    # no ig compute. Forward 3 x 100 = 300.
    # r2 wg 300 -> 600, AR 1600*1.5 = 2400 on [600, 3000]; r2 ig -> 800;
    # r1 wg -> 1100, AR 400 -> 600 queued [3000, 3600]; r1 ig -> 1300;
    # r0 wg -> 1600, AR 800 -> 1200 [3600, 4800]; drain to 4800.
    rows = ["r0 -1 100 ALLREDUCE 800 200 NONE 0 300 ALLREDUCE 800 0",
            "r1 -1 100 NONE 0 200 ALLGATHER 400 300 ALLREDUCE 400 0",
            "r2 -1 100 NONE 0 200 NONE 0 300 ALLREDUCE 1600 0"]
    r = run("DATA", rows, gpus=4)
    assert r.policy == "DATA" and "iterate_data_parallel" in r.replay
    assert (r.tp, r.dp) == (1, 4)
    assert r.iteration_ns == 4800
    assert r.critical.compute_ns == 300 + 3 * 300 + 2 * 200
    assert r.critical.exposed_ns["DP"] == 4800 - 1600
    assert r.critical.exposed_ns["TP"] == 0
    assert collectives(r) == [("DP", "r2 wg", 600, 3000), ("DP", "r1 wg", 3000, 3600),
                              ("DP", "r0 wg", 3600, 4800)]


def test_model_defers_input_gradient_to_after_the_weight_gradient():
    # MODEL (iterate_model_parallel): forward and input-gradient collectives on all 4 GPUs,
    # no weight-gradient one. Forward: r0 100 + AR 1200 -> 1300; r1 -> 1400 + AG 600 ->
    # 2000; r2 -> 2100. Backward: r2 ig -> 2300, AR 400 -> 600 non-blocking [2300, 2900],
    # wg -> 2600, wait -> 2900; r1 ig -> 3100, RS 600 [3100, 3700], wg -> 3400, wait ->
    # 3700; r0 ig -> 3900 (row 0 issues no ig collective), wg -> 4200.
    r = run("MODEL", MODEL_ROWS, gpus=4)
    assert (r.tp, r.dp) == (4, 1)
    assert r.iteration_ns == 4200
    assert r.critical.exposed_ns["TP"] == 1200 + 600 + 300 + 300
    assert r.critical.exposed_ns["DP"] == 0
    assert collectives(r) == [("TP", "r0 fwd", 100, 1300), ("TP", "r1 fwd", 1400, 2000),
                              ("TP", "r2 ig", 2300, 2900), ("TP", "r1 ig", 3100, 3700)]


def test_transformer_blocks_on_every_input_gradient_row_zero_included():
    # HYBRID_TRANSFORMER (iterate_hybrid_parallel_Transformer): input-gradient collective
    # blocking, row 0's too; weight gradients on DP (size 1 here: free). Forward as MODEL:
    # 2100. r2 ig -> 2300 + 600 -> 2900, wg -> 3200; r1 ig -> 3400 + 600 -> 4000, wg -> 4300;
    # r0 ig -> 4500 + AR 1200 -> 5700, wg -> 6000.
    r = run("HYBRID_TRANSFORMER model_parallel_NPU_group: 4", MODEL_ROWS, gpus=4)
    assert r.iteration_ns == 6000
    assert r.critical.exposed_ns["TP"] == 1200 + 600 + 600 + 600 + 1200
    assert [c[1] for c in collectives(r)] == ["r0 fwd", "r1 fwd", "r2 ig", "r1 ig", "r0 ig"]


def test_checkpoints_only_under_fwd_in_bckwd_and_rows_c_to_j_minus_1():
    # checkpoint row 0, initiate row 2: before r2's input gradient the forward of rows 0..1
    # is replayed with its blocking collectives: 100 + 1200 + 100 + 600 = 2000 on top of the
    # HYBRID_TRANSFORMER 6000. Under HYBRID_TRANSFORMER the lists are ignored (with a note).
    ck = " checkpoints: 1 0 checkpoint_initiates: 1 2"
    r = run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4" + ck, MODEL_ROWS,
            gpus=4)
    assert r.iteration_ns == 8000
    assert r.critical.recompute_ns == 200
    names = [c[1] for c in collectives(r)]
    assert names == ["r0 fwd", "r1 fwd", "r0 recompute", "r1 recompute", "r2 ig", "r1 ig",
                     "r0 ig"]
    plain = run("HYBRID_TRANSFORMER model_parallel_NPU_group: 4" + ck, MODEL_ROWS, gpus=4)
    assert plain.iteration_ns == 6000 and plain.critical.recompute_ns == 0
    assert any("checkpoint lists are ignored" in n for n in plain.notes)


def test_initiate_row_that_is_a_checkpoint_replays_from_the_checkpoint_before_it():
    # two one-row "layers" each checkpointed at its row and each recomputed from the row
    # after it, as generate writes full recompute: checkpoints 0, 1; initiates 1, 2. Before
    # r2's ig the replay starts at the checkpoint before row 2 (row 1, not row 2 itself):
    # r1 forward 100 + AG 600 = 700; before r1's ig, from row 0: r0 100 + AR 1200 = 1300.
    # 6000 (HYBRID_TRANSFORMER above) + 700 + 1300 = 8000; recompute compute 100 + 100.
    # (ASTRA-sim 1.0 stops its search at row 2 itself and runs on past it.)
    r = run("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 checkpoints: 2 0 1 "
            "checkpoint_initiates: 2 1 2", MODEL_ROWS, gpus=4)
    assert r.iteration_ns == 8000 and r.critical.recompute_ns == 200
    assert [c[1] for c in collectives(r)] == ["r0 fwd", "r1 fwd", "r1 recompute", "r2 ig",
                                              "r0 recompute", "r1 ig", "r0 ig"]


DM_ROWS = ["r0 -1 100 ALLREDUCE 800 200 ALLREDUCE 800 300 ALLREDUCE 800 0",
           "r1 -1 100 NONE 0 200 ALLREDUCE 400 300 ALLREDUCE 1000 0"]


def test_hybrid_data_model_model_on_the_first_dimension():
    # 8 GPUs, 4 per server: model = the first dimension (4 GPUs in a server, TP), data = the
    # rest (2 GPUs over two servers, DP). Forward: r0 100 + AR(TP) 1200 -> 1300, r1 -> 1400.
    # r1 ig -> 1600, AR(TP) 400 -> 600 non-blocking [1600, 2200]; wg -> 1900, AR(DP) 1000 ->
    # 1000 [1900, 2900]; wait ig -> 2200. r0 ig -> 2400 (no ig collective on row 0); wg ->
    # 2700, AR(DP) 800 -> 800 queued [2900, 3700]; drain 3700.
    r = run("HYBRID_DATA_MODEL", DM_ROWS, gpus=8)
    assert (r.tp, r.dp) == (4, 2)
    assert r.iteration_ns == 3700
    assert r.critical.exposed_ns["TP"] == 1200 + 300
    assert r.critical.exposed_ns["DP"] == 1000
    assert collectives(r) == [("TP", "r0 fwd", 100, 1300), ("TP", "r1 ig", 1600, 2200),
                              ("DP", "r1 wg", 1900, 2900), ("DP", "r0 wg", 2900, 3700)]


def test_hybrid_model_data_data_on_the_first_dimension():
    # The same table with the dimensions swapped: data on the 4 GPUs of a server (reported
    # as TP, the contiguous group), model over the 2 servers (reported as DP).
    # Forward: r0 100 + AR(model, 2 over NICs) 800 -> 900; r1 -> 1000. r1 ig -> 1200, AR 400
    # -> 400 [1200, 1600]; wg -> 1500, AR(data, 4 in a server) 1000 -> 1500 [1500, 3000];
    # wait ig -> 1600; r0 ig -> 1800, wg -> 2100, AR(data) 800 -> 1200 queued [3000, 4200].
    r = run("HYBRID_MODEL_DATA", DM_ROWS, gpus=8)
    assert r.iteration_ns == 4200
    assert r.critical.exposed_ns["DP"] == 800 + 100      # the model-parallel collectives
    assert r.critical.exposed_ns["TP"] == 4200 - 2100    # the data-parallel tail
    assert any("HYBRID_MODEL_DATA: data parallel on the first dimension" in n for n in r.notes)
    assert collectives(r) == [("DP", "r0 fwd", 100, 900), ("DP", "r1 ig", 1200, 1600),
                              ("TP", "r1 wg", 1500, 3000), ("TP", "r0 wg", 3000, 4200)]


def test_distributed_inference_is_forward_only_on_every_gpu():
    # forward only: 3 x 100 compute, AR 1200 and AG 600 blocking; no backward at all
    r = run("DISTRIBUTED_INFERENCE", MODEL_ROWS, gpus=4)
    assert r.iteration_ns == 2100
    assert r.critical.compute_ns == 300
    assert [c[1] for c in collectives(r)] == ["r0 fwd", "r1 fwd"]


@pytest.mark.parametrize("mode", ["1", "inference"])
def test_aicb_inference_mode_replays_forward_only(mode):
    # AICB's SimAI_inference_workload_generator writes this header with 'mode: 1': forward
    # only, as DISTRIBUTED_INFERENCE above (TP 4 from the header): 2100
    hdr = (f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 4 ep: 1 pp: 1 "
           f"all_gpus: 4 mode: {mode} vpp: 1 ga: 1 checkpoints: 0 checkpoint_initiates: 0 "
           "pp_comm: 0")
    r = run(hdr, MODEL_ROWS)
    assert r.iteration_ns == 2100
    assert "forward passes only" in r.replay
    training = run(hdr.replace(f"mode: {mode}", "mode: 0"), MODEL_ROWS)
    assert training.iteration_ns == 6000     # HYBRID_TRANSFORMER's, derived above


DLRM_ROWS = ["emb -1 300 ALLTOALL 800 300 ALLTOALL 4000 300 NONE 0 0",
             "bot -1 200 NONE 0 500 NONE 0 400 ALLREDUCE 400 0",
             "top -1 1000 NONE 0 500 NONE 0 400 ALLREDUCE 800 0"]


@pytest.mark.parametrize("header", ["HYBRID_DLRM 1", "HYBRID_DLRM DLRM_LAST_BOTTOM_LAYER: 1",
                                    "HYBRID_DLRM_ENHANCED 1"])
def test_dlrm_embedding_all_to_alls_and_the_wait_at_the_last_bottom_layer(header):
    # 4 GPUs; the embedding row's all-to-alls on every GPU (own stream, EP), the MLPs' weight
    # gradients on every GPU (DP). Forward: emb 300, A2A 800*0.75 = 600 non-blocking
    # [300, 900]; bot (the last bottom layer, row 1) -> 500, waits for it -> 900 (400 exposed);
    # top -> 1900. Backward, wg before ig: top wg -> 2300, AR 1200 [2300, 3500]; top ig ->
    # 2800, and (row 2 = last bottom + 1) the embedding's ig A2A 4000*0.75 = 3000 [2800,
    # 5800]; bot wg -> 3200, AR 600 queued [3500, 4100]; bot ig -> 3700; emb wg -> 4000,
    # then HYBRID_DLRM waits for the embedding's ig A2A -> 5800 (ENHANCED waits at the end:
    # the same in one iteration). Emb has no ig compute.
    r = run(header, DLRM_ROWS, gpus=4, compat="astra-sim")
    assert r.iteration_ns == 5800
    assert r.critical.compute_ns == 1500 + 400 + 500 + 400 + 500 + 300
    assert r.critical.exposed_ns["EP"] == 400 + 1800
    assert collectives(r) == [("EP", "emb fwd", 300, 900), ("DP", "top wg", 2300, 3500),
                              ("EP", "emb ig", 2800, 5800), ("DP", "bot wg", 3500, 4100)]


def test_dlrm_without_its_last_bottom_layer_is_an_error():
    with pytest.raises(InputError, match="DLRM_LAST_BOTTOM_LAYER"):
        run("HYBRID_DLRM", DLRM_ROWS, gpus=4)


def test_micro_issues_every_rows_collective_once():
    # ASTRA-sim and SimAI issue row 0's collective only (their index never advances); the
    # policy means each row's: AR 800 -> 1200 and AR 400 -> 600 back to back, no compute
    rows = ["a -1 5 NONE 0 5 NONE 0 5 ALLREDUCE 800 0",
            "b -1 5 NONE 0 5 NONE 0 5 ALLREDUCE 400 0"]
    r = run("MICRO", rows, gpus=4)
    assert r.iteration_ns == 1800
    assert r.critical.compute_ns == 0
    assert [c[1] for c in collectives(r)] == ["b wg", "a wg"]


def test_customized_rows_follow_their_own_policy():
    # 8 GPUs: model 4 in a server (TP), data 2 over servers (DP); the flow is
    # HYBRID_DATA_MODEL's. r0 (HYBRID_DATA_MODEL) all three; r1 (DATA) only its wg on DP; r2
    # (MODEL) fwd/ig on TP, no wg. Forward: r0 100 + AG 600 -> 700, r1 -> 800, r2 -> 900 +
    # AG 300 -> 1200. r2 ig -> 1300, RS 300 [1300, 1600], wg -> 1400, wait -> 1600; r1 ig ->
    # 1700, wg -> 1800, AR(DP) 400 [1800, 2200]; r0 ig -> 1900 (row 0: no ig collective),
    # wg -> 2000, AR(DP) 800 queued [2200, 3000].
    rows = ["r0 -1 100 ALLGATHER 800 100 REDUCESCATTER 800 100 ALLREDUCE 800 0 HYBRID_DATA_MODEL",
            "r1 -1 100 ALLGATHER 800 100 NONE 0 100 ALLREDUCE 400 0 DATA",
            "r2 -1 100 ALLGATHER 400 100 REDUCESCATTER 400 100 ALLREDUCE 400 0 MODEL"]
    wl = load("HYBRID_CUSTOMIZED", rows)
    assert [x.policy for x in wl.rows] == ["HYBRID_DATA_MODEL", "DATA", "MODEL"]
    r = run("HYBRID_CUSTOMIZED", rows, gpus=8)
    assert r.iteration_ns == 3000
    assert r.critical.exposed_ns["TP"] == 600 + 300 + 200
    assert r.critical.exposed_ns["DP"] == 1000
    assert [c[1] for c in collectives(r)] == ["r0 fwd", "r2 fwd", "r2 ig", "r1 wg", "r0 wg"]


def test_a_13th_field_outside_customized_is_an_error():
    with pytest.raises(InputError, match="expected 12"):
        load("DATA", ["r0 -1 1 NONE 0 1 NONE 0 1 ALLREDUCE 8 0 DATA"])


def test_compat_simai_takes_groups_from_the_type_words():
    # HYBRID_DATA_MODEL under SimAI's rules: plain names are TP (forward, input gradient) and
    # DP (weight gradient) sized from the header; with no model_parallel_NPU_group TP is 1
    # GPU, so only the weight gradients (DP = 8 over two servers) cost anything
    r = run("HYBRID_DATA_MODEL", DM_ROWS, gpus=8, compat="simai")
    assert (r.tp, r.dp) == (1, 8)
    assert r.critical.exposed_ns["TP"] == 0
    assert "SimAI communicators" in r.replay


# ----------------------------------------------------------------------------- headers
def test_lenient_header_tokens_warn_and_name_what_was_assumed():
    text = ("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 2 ga: 0 pp: 0 "
            "all_gpus: 4 sha256: 0123abcd checkpoints: 0 checkpoint_initiates: 0\n1\n"
            + MODEL_ROWS[0] + "\n")
    with pytest.warns(SimulationWarning) as seen:
        wl = read_workload_text(text, "t.txt")
    messages = [str(w.message) for w in seen]
    assert any("ga: 0 read as ga 1" in m for m in messages)
    assert any("pp: 0 read as pp 1" in m for m in messages)
    assert any("unknown header token 'sha256' (value '0123abcd') ignored" in m for m in messages)
    assert (wl.ga, wl.pp, wl.tp, wl.all_gpus) == (1, 1, 2, 4)
    with pytest.raises(InputError, match="unknown header key 'sha256'"):
        read_workload_text(text, "t.txt", strict=True)


def test_no_world_size_says_every_collective_is_free(capsys):
    from simulator.cli import main

    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.txt")
        with open(path, "w") as fh:
            fh.write("DATA\n1\nr0 -1 100 NONE 0 200 NONE 0 300 ALLREDUCE 800 0\n")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["simulate", path]) == 0
        out = capsys.readouterr().out
        assert "every group is one GPU and every collective is free" in out
        assert "pass --gpus N" in out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["simulate", path, "--gpus", "4"]) == 0
        out = capsys.readouterr().out
        assert "every collective is free" not in out
        assert "DATA replayed as iterate_data_parallel" in out
        import json
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert main(["simulate", path, "--gpus", "4", "--json", "-"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["policy"] == "DATA"
        assert doc["replay"].startswith("DATA replayed as iterate_data_parallel (ASTRA-sim 1.0")


def test_rank_classes_and_contention_replay_the_policy_too():
    # the detailed engine's what-ifs go through the same policy program. Rank 0 with twice
    # the compute (in TP group 0-3 and DP group 0, 4: every collective waits for it) under
    # HYBRID_DATA_MODEL: r0 fwd 200 + AR(TP) 1200 -> 1400, r1 fwd -> 1600; r1 ig 400 ->
    # 2000, AR(TP) 600 [2000, 2600]; wg 600 -> 2600, AR(DP) 1000 [2600, 3600]; wait ig
    # (done); r0 ig -> 3000, wg -> 3600, AR(DP) 800 [3600, 4400]. Contention keeps 3700: the
    # collectives of the table never share a link at the same time.
    wl = load("HYBRID_DATA_MODEL", DM_ROWS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        slow = simulate(wl, UNIT4, options=SimulationOptions(gpus=8, stragglers=((0, 2.0),)))
        shared = simulate(wl, UNIT4, options=SimulationOptions(gpus=8, contention=True))
    assert slow.iteration_ns == 4400
    assert shared.iteration_ns == 3700
