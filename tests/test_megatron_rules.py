"""How a generated Megatron workload is simulated (issue 12): the cluster of its GPU, the
tied-embedding all-reduce, blocking pipeline sends, Megatron's optimizer default. Expected
values derived by hand (derivation beside each)."""
from __future__ import annotations

import json
import warnings

import pytest

from simulator.cli import main

# a small GPT (2 layers, h 256) the generator writes in a blink
SMALL = ["--model", "gpt-7b", "--num-layers", "2", "--hidden-size", "256",
         "--num-attention-heads", "8", "--vocab-size", "1024", "--seq-length", "128",
         "--quiet"]


def generated(tmp_path, *args, name="w.txt"):
    out = tmp_path / name
    assert main(["generate", *SMALL, "-o", str(out), *args]) == 0
    return out


def simulated(path, tmp_path, *args):
    js = tmp_path / "s.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["simulate", str(path), "--json", str(js), *args]) == 0
    return json.loads(js.read_text()), [str(w.message) for w in caught]


@pytest.mark.parametrize("gpu, preset, nvlink, nic", [
    # the presets' own figures (topologies/*.yaml): DGX A100 300 GB/s NVLink, 200 Gbit/s =
    # 25 GB/s NICs; HGX H200 478 GB/s, 400 Gbit/s = 50 GB/s; H800 200 GB/s, 50 GB/s RoCE
    ("a100", "dgx-a100", 300, 25), ("h200", "hgx-h200", 478, 50),
    ("h800", "h800-roce", 200, 50), ("h100", "dgx-h100", 450, 50)])
def test_a_generated_table_is_simulated_on_its_gpus_preset(tmp_path, capsys, gpu, preset,
                                                           nvlink, nic):
    w = generated(tmp_path, "--gpus", "16", "--gpu", gpu)
    doc, caught = simulated(w, tmp_path)
    cm = doc["cost_model"]
    assert (cm["topology"], cm["scale_up_GB_per_s"], cm["nic_GB_per_s"]) == (preset, nvlink, nic)
    assert cm["cluster_chosen"].startswith(f"{preset}, the preset of the workload's GPU "
                                           f"({gpu.upper()}")
    assert f"             on {preset}, the preset" in capsys.readouterr().out
    assert not [m for m in caught if "generated for" in m]


def test_a_cluster_the_user_names_is_kept_and_another_gpu_warned_about(tmp_path):
    w = generated(tmp_path, "--gpus", "16", "--gpu", "a100")
    # a cluster flag changes the table GPU's preset: DGX A100's 300 GB/s NVLink kept, the
    # NICs at 100 Gbit/s = 12.5 GB/s, and no other GPU to warn about
    doc, caught = simulated(w, tmp_path, "--nic-bw", "100Gbit/s")
    cm = doc["cost_model"]
    assert (cm["topology"], cm["scale_up_GB_per_s"], cm["nic_GB_per_s"]) == \
        ("dgx-a100", 300, 12.5)
    assert cm["cluster_chosen"].endswith("changed by the cluster flags; --topology names "
                                         "another")
    assert not [m for m in caught if "generated for" in m]
    # a topology of the table's GPU: no warning
    doc, caught = simulated(w, tmp_path, "--topology", "dgx-a100")
    assert doc["cost_model"]["topology"] == "dgx-a100"
    assert not [m for m in caught if "generated for" in m]
    # another GPU's topology: one warning
    doc, caught = simulated(w, tmp_path, "--topology", "h800-roce")
    assert len([m for m in caught if "generated for A100" in m and "H800" in m]) == 1


def test_a_table_without_sidecar_keeps_the_default_cluster(tmp_path):
    w = generated(tmp_path, "--gpus", "16", "--gpu", "a100")
    (tmp_path / "w.txt.meta.json").unlink()
    doc, _ = simulated(w, tmp_path)
    assert doc["cost_model"]["topology"] == "dgx-h100"
    assert "cluster_chosen" not in doc["cost_model"]


def test_the_tied_embedding_allreduce_is_priced_between_first_and_last_stage(tmp_path):
    # GPT (tied embeddings), 16 GPUs, TP 8, PP 2: stage 0 = ranks 0-7 (server 0), stage 1 =
    # ranks 8-15 (server 1), so each first-stage rank's peer is on the other server.
    # The gradient (generate's sidecar, not_in_table): the local vocabulary shard, vocab 1024
    # (already a multiple of 128 x TP) / TP 8 = 128 rows x h 256 x 4 bytes (fp32 main grad)
    # = 131,072 bytes.
    w = generated(tmp_path, "--gpus", "16", "--tp", "8", "--pp", "2", "--global-batch", "4")
    side = json.loads((tmp_path / "w.txt.meta.json").read_text())
    emb = [x for x in side["not_in_table"] if x["group"].startswith("embedding")]
    assert [x["bytes"] for x in emb] == [131_072]
    # priced by SimAI's busbw formula on the default cluster: a 2-rank ring, one member per
    # server: 10 us base + 2(n-1) x 3 us NIC hops + 2(n-1)/n x 131,072 B / (50 GB/s x 0.97)
    # = 10,000 + 6,000 + 2,702.47 = 18,702 ns
    ar_ns = 18_702
    # (sends asynchronous in both runs: without its sidecar the table is not Megatron's)
    with_ar, _ = simulated(w, tmp_path, "--cost-model", "simai", "--blocking-sends", "off")
    (tmp_path / "w.txt.meta.json").unlink()
    without, _ = simulated(w, tmp_path, "--cost-model", "simai", "--blocking-sends", "off")
    ends = {s["stage"]: s["end_us"] for s in without["stages"]}
    # both stages meet, then all-reduce: the step ends ar_ns after the later of the two
    expect_us = max(ends[0], ends[1]) + ar_ns / 1e3
    assert abs(with_ar["iteration_time_us"] - expect_us) <= 0.002
    pp_with = {s["stage"]: s["exposed_comm_us"]["PP"] for s in with_ar["stages"]}
    pp_without = {s["stage"]: s["exposed_comm_us"]["PP"] for s in without["stages"]}
    for stage in (0, 1):
        assert abs(pp_with[stage] - pp_without[stage] - ar_ns / 1e3) <= 0.002
    assert any("tied-embedding gradient all-reduce: 131,072 bytes" in n for n in with_ar["notes"])


def test_no_embedding_allreduce_without_pipeline_or_with_untied_weights(tmp_path):
    generated(tmp_path, "--gpus", "16", "--tp", "8", "--pp", "1", "--global-batch", "2")
    assert json.loads((tmp_path / "w.txt.meta.json").read_text())["not_in_table"] == []
    generated(tmp_path, "--gpus", "16", "--tp", "8", "--pp", "2", "--global-batch", "4",
              "--untie-embeddings-and-output-weights")
    assert json.loads((tmp_path / "w.txt.meta.json").read_text())["not_in_table"] == []


def test_a_blocking_send_holds_its_sender_until_it_arrives(tmp_path):
    # 16 GPUs, TP 8, PP 2, one micro-batch (global batch 1, DP 1: no DP collectives): the
    # stages sit on two servers. The activation is 128 tokens x h 256 x 2 bytes = 65,536 B;
    # SimAI's formula prices the send at 10 us base + 3 us NIC hop + 65,536 B / (50 GB/s x
    # 0.97) = 10,000 + 3,000 + 1,351 = c = 14,351 ns.
    # Stage 0 runs F, sends, waits for the gradient, runs B. Asynchronous: its wait after F
    # is c (the activation in flight) + stage 1's F and B (bubble) + c (the gradient in
    # flight, exposed PP). Blocking: it first waits c for its own send (exposed PP), then
    # stage 1's F and B (bubble) and c (PP): PP +c, bubble -c, same end. Stage 1 waits c
    # after its backward send before its last rows: its end +c, PP +c. The step (stage 0
    # ends last) is unchanged.
    c_us = 14.351
    w = generated(tmp_path, "--gpus", "16", "--tp", "8", "--pp", "2", "--global-batch", "1",
                  "--untie-embeddings-and-output-weights")
    runs = {b: simulated(w, tmp_path, "--cost-model", "simai", "--blocking-sends", b)[0]
            for b in ("on", "off", "auto")}
    on, off = ({s["stage"]: s for s in runs[k]["stages"]} for k in ("on", "off"))
    assert abs(on[0]["exposed_comm_us"]["PP"] - off[0]["exposed_comm_us"]["PP"] - c_us) < 2e-3
    assert abs(off[0]["bubble_us"] - on[0]["bubble_us"] - c_us) < 2e-3
    assert abs(on[1]["end_us"] - off[1]["end_us"] - c_us) < 2e-3
    assert abs(on[1]["exposed_comm_us"]["PP"] - off[1]["exposed_comm_us"]["PP"] - c_us) < 2e-3
    assert runs["on"]["iteration_time_us"] == runs["off"]["iteration_time_us"]
    # a Megatron-style table (its sidecar says so) blocks by default, and says so
    assert runs["auto"]["stages"] == runs["on"]["stages"]
    assert any("pipeline sends block" in n for n in runs["auto"]["notes"])
    assert not any("pipeline sends block" in n for n in runs["off"]["notes"])
    # without its sidecar (a SimAI/AICB table) sends stay asynchronous
    (tmp_path / "w.txt.meta.json").unlink()
    plain, _ = simulated(w, tmp_path, "--cost-model", "simai")
    assert plain["stages"] == runs["off"]["stages"]


@pytest.mark.parametrize("schedule", ["1f1b", "gpipe", "interleaved"])
def test_blocking_sends_agree_across_engines(schedule):
    # the direct evaluator, the event loop (a trace forces it), the row-level engine and the
    # rank-class replay (a straggler at factor 1 forces it) give one answer
    from simulator.engine import SimulationOptions, simulate
    from simulator.generate import generate, get_preset, resolve

    cfg = resolve(get_preset("gpt-7b"), 24, tp=4, pp=3, vpp=2, global_batch=6,
                  seq_length=1024, distributed_optimizer=True)
    wl = generate(cfg, check_memory=False).workload
    out = []
    for extra in ({}, {"trace": True}, {"engine": "detailed"}, {"stragglers": ((3, 1.0),)}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = simulate(wl, options=SimulationOptions(pp_schedule=schedule,
                                                       blocking_sends=True, **extra))
        # (the rank-class replay lists each stage once per class: alike here)
        out.append((r.iteration_ns, sorted({(s.stage, s.end_ns, s.bubble_ns, s.exposed_ns["PP"])
                                            for s in r.stages})))
    assert all(o == out[0] for o in out[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        free = simulate(wl, options=SimulationOptions(pp_schedule=schedule))
    assert free.iteration_ns <= out[0][0]


def test_a_co_job_gets_the_rules_of_its_own_table(tmp_path):
    # the table of test_the_tied_embedding_allreduce_is_priced_between_first_and_last_stage
    # (GPT, 16 GPUs, TP 8, PP 2: 131,072 B of tied-embedding gradient, 18,702 ns by SimAI's
    # formula on the default cluster), once with its sidecar (w.txt) and once without
    # (plain.txt). Packed, the two jobs get servers of their own and share no NIC: each
    # runs as if alone (with contention on, as co-jobs turn it on).
    import shutil
    w = generated(tmp_path, "--gpus", "16", "--tp", "8", "--pp", "2", "--global-batch", "4")
    plain = tmp_path / "plain.txt"
    shutil.copy(w, plain)
    ar_us = 18.702
    alone = {name: simulated(path, tmp_path, "--cost-model", "simai", "--engine", "detailed",
                             "--contention")[0] for name, path in (("w", w), ("plain", plain))}
    # the first job without a sidecar, the co-job with one: the co-job gets its own
    # table's all-reduce and blocking sends (Megatron style), the first job neither
    co, _ = simulated(plain, tmp_path, "--cost-model", "simai", "--co-job", str(w),
                      "--placement", "packed")
    job2 = co["co_jobs"][0]
    assert job2["iteration_time_us"] == alone["w"]["iteration_time_us"]
    assert job2["stages"] == alone["w"]["stages"]
    assert any("tied-embedding gradient all-reduce: 131,072 bytes" in n for n in job2["notes"])
    assert any("pipeline sends block" in n for n in job2["notes"])
    assert co["iteration_time_us"] == alone["plain"]["iteration_time_us"]
    assert not any("tied-embedding" in n or "pipeline sends block" in n for n in co["notes"])
    # the other way round, sends asynchronous for both (--blocking-sends off applies to
    # every job): the first job ends 18.702 us after the later of the co-job's stages
    co, _ = simulated(w, tmp_path, "--cost-model", "simai", "--co-job", str(plain),
                      "--placement", "packed", "--blocking-sends", "off")
    job2 = co["co_jobs"][0]
    assert not any("tied-embedding" in n for n in job2["notes"])
    ends = [s["end_us"] for s in job2["stages"]]
    assert abs(co["iteration_time_us"] - (max(ends) + ar_us)) <= 0.002


@pytest.mark.parametrize("engine", ["fast", "detailed"])
def test_the_tied_embedding_allreduce_has_a_slice_in_the_trace(tmp_path, engine):
    # the table of test_the_tied_embedding_allreduce_is_priced_between_first_and_last_stage:
    # 131,072 B, 18,702 ns by SimAI's formula, charged on stages 0 and 1 once both have
    # met, so each stage's slice ends at that stage's end
    import re
    w = generated(tmp_path, "--gpus", "16", "--tp", "8", "--pp", "2", "--global-batch", "4")
    trace = tmp_path / "t.json"
    doc, _ = simulated(w, tmp_path, "--cost-model", "simai", "--blocking-sends", "off",
                       "--engine", engine, "--trace", str(trace))
    events = json.loads(trace.read_text())["traceEvents"]
    emb = sorted((e for e in events if e["ph"] == "X" and e["cat"] == "embedding"),
                 key=lambda e: e["pid"])
    assert [e["pid"] for e in emb] == [0, 1]
    assert all(e["name"] == "tied-embedding all-reduce" and e["args"]["bytes"] == 131_072
               and e["args"]["group"] == "embedding"
               and e["args"]["collective"] == "ALLREDUCE" for e in emb)
    assert all(abs(e["dur"] - 18.702) <= 0.001 for e in emb)
    # its duration is the note's (in ms, three decimals)
    note = next(n for n in doc["notes"] if n.startswith("tied-embedding gradient all-reduce"))
    note_ms = float(re.search(r"([0-9.]+) ms on stages 0 and 1", note).group(1))
    assert note_ms == round(emb[0]["dur"] / 1e3, 3) == 0.019
    ends = {s["stage"]: s["end_us"] for s in doc["stages"]}
    assert all(abs(e["ts"] + e["dur"] - ends[e["pid"]]) <= 0.002 for e in emb)
    # both start when the later stage has finished its backward (they meet)
    assert emb[0]["ts"] == emb[1]["ts"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {names[(e["pid"], e["tid"])] for e in emb} == {"embedding"}


# DP 8 on the unit cluster (tests/engine_helpers.py): an all-reduce of 8000 bytes is
# 2 x 7/8 x 8000 = 14000 ns at 1 byte/ns, + 100 ns update
_SYNC_DP8 = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 all_gpus: 8 ga: 2"
_SYNC_ROWS = ["a -1 1000 NONE 0 5000 NONE 0 5000 NONE 0 100",
              "b -1 1000 NONE 0 1000 NONE 0 1000 NONE 0 100",
              "a -1 1000 NONE 0 5000 NONE 0 5000 NONE 0 100",
              "b -1 1000 NONE 0 1000 NONE 0 1000 ALLREDUCE 8000 100",
              "opt -1 3000 NONE 0 0 NONE 0 0 NONE 0 0"]


@pytest.mark.parametrize("extra", [{}, {"trace": True}, {"engine": "detailed"},
                                   {"stragglers": ((3, 1.0),)}])
def test_the_optimizer_step_waits_for_the_gradient_reduction(extra):
    # --overlap-grad-reduce's shape: the last micro-batch's row b reduces its gradients
    # (ALLREDUCE on DP) during the rest of the backward, then the optimizer row after the
    # micro-batches. 1F1B at PP 1: F0 0-2000; B0 b 2000-4000, a 4000-14000; F1 14000-16000;
    # B1 b 16000-18000, its all-reduce 18000-32100 (14000 + 100), a 18000-28000.
    # Megatron-LM's finalize_model_grads waits for every bucket before the optimizer step:
    # opt waits 28000-32100 (4100 exposed DP) and runs 32100-35100. SimAI's replay (the
    # default for a table without a Megatron sidecar) runs opt 28000-31000 under the
    # all-reduce and ends at 32100 (1100 exposed). Every engine: the direct evaluator, the
    # event loop (a trace), the row-level engine and the rank-class replay.
    from engine_helpers import run

    r = run(_SYNC_DP8, _SYNC_ROWS, grad_sync_before_optimizer=True, **extra)
    assert (r.iteration_ns, r.critical.exposed_ns["DP"], r.compute_ns) == (35100, 4100, 31000)
    assert any("finalize_model_grads" in n for n in r.notes)
    simai = run(_SYNC_DP8, _SYNC_ROWS, **extra)
    assert (simai.iteration_ns, simai.critical.exposed_ns["DP"]) == (32100, 1100)


def test_a_generated_table_waits_for_its_gradients_before_the_optimizer(tmp_path):
    # a Megatron-style table (its sidecar says so) gets the rule from `collsim simulate`; the
    # same table without its sidecar is replayed as SimAI does
    w = generated(tmp_path, "--gpus", "16", "--global-batch", "32", "--overlap-grad-reduce")
    doc, _ = simulated(w, tmp_path)
    assert any("finalize_model_grads" in n for n in doc["notes"])
    (tmp_path / "w.txt.meta.json").unlink()
    bare, _ = simulated(w, tmp_path)
    assert not any("finalize_model_grads" in n for n in bare["notes"])
    assert bare["iteration_time_ns"] <= doc["iteration_time_ns"]


def test_no_overlap_p2p_communication_blocks_the_interleaved_sends(tmp_path):
    # Megatron-LM's interleaved schedule overlaps its p2p with compute unless
    # --no-overlap-p2p-communication; then it waits on its requests as the other schedules
    # do. The table is the same (the flag lives in FILE.meta.json), and collsim simulate's
    # auto rule gives what --blocking-sends on gives the plain table; before, the flag was
    # refused as unknown. --num-virtual-stages-per-pipeline-rank is Megatron's newer --vpp.
    flags = ("--gpus", "8", "--tp", "2", "--pp", "2", "--global-batch", "8", "--num-layers", "4")
    plain = generated(tmp_path, *flags, "--num-virtual-stages-per-pipeline-rank", "2",
                      name="a.txt")
    waited = generated(tmp_path, *flags, "--vpp", "2", "--no-overlap-p2p-communication",
                       name="b.txt")
    assert plain.read_text() == waited.read_text()
    assert " vpp: 2 " in plain.read_text().splitlines()[0] + " "
    meta = json.loads((tmp_path / "b.txt.meta.json").read_text())
    assert meta["features"]["overlap_p2p_comm"] is False
    overlapped, _ = simulated(plain, tmp_path)
    on, _ = simulated(plain, tmp_path, "--blocking-sends", "on")
    auto, _ = simulated(waited, tmp_path)
    assert overlapped["parallelism"]["pp_schedule"] == auto["parallelism"]["pp_schedule"] \
        == "interleaved"
    assert not any("block the sending stage" in n for n in overlapped["notes"])
    assert any("block the sending stage" in n for n in auto["notes"])
    assert auto["stages"] == on["stages"] and auto["iteration_time_ns"] == on["iteration_time_ns"]
    assert auto["iteration_time_ns"] > overlapped["iteration_time_ns"]
