"""Megatron-LM's communication choices in `collsim generate` (issue 12): the tied-embedding
all-reduce, --overlap-param-gather, pipeline scatter-gather, the main-gradient dtype.
Every expected number is worked out by hand in the comment above it."""
from __future__ import annotations

import json
import warnings

import pytest

from simulator.engine import SimulationOptions, simulate
from simulator.errors import InputError, SimulationWarning
from simulator.generate import generate, get_preset, resolve
from simulator.generate.features import Features
from simulator.generate.models import ModelSpec
from simulator.workload import Comm, Group, Op

from cli_helpers import run_cli

# TINY4 per GPU at TP 1, PP 1 (hidden 256, 4 heads of 64, FFN 1024, vocab 1000 -> 1024):
#   attention 256 x (4 + 2 x 4) x 64 + 4 x 64 x 256 = 196,608 + 65,536 = 262,144
#   two norms 512, MLP 2 x 256 x 1024 = 524,288; a layer 786,944, four 3,147,776
#   untied embedding and output 2 x 1024 x 256 = 524,288, final norm 256
#   dense = 3,147,776 + 524,288 + 256 = 3,672,320 parameters
TINY4 = ModelSpec("tiny4", layers=4, hidden=256, ffn=1024, heads=4, vocab=1000,
                  max_position=0, tied_embeddings=False)
TINY4_DENSE = 3_672_320


def gen(world=1, features=Features(), model=TINY4, **kw):
    cfg = resolve(model, world, features=features, seq_length=kw.pop("seq_length", 128), distributed_optimizer=kw.pop("distributed_optimizer", True), **kw)
    return generate(cfg, compute="none", check_memory=False)


def row(w, name):
    return next(r for r in w.rows if r.name == name)


def sim(w, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        return simulate(w, options=SimulationOptions(**opts))


# ------------------------------------------------------------- tied-embedding all-reduce

def test_tied_embedding_allreduce_bytes_gpt3_175b():
    # GPT-3 175B: vocab 50257 padded to a multiple of 128 x 8 = 1024 -> 51,200; hidden
    # 12288, TP 8: 51,200 x 12,288 / 8 = 78,643,200 parameters of the shard, x 4 B (fp32
    # main gradients, as Megatron forces with bf16) = 314,572,800 B, between the first
    # and the last of 16 stages
    cfg = resolve(get_preset("gpt-175b"), 128, tp=8, pp=16, seq_length=2048,
                  global_batch=16, distributed_optimizer=True)
    g = generate(cfg, compute="none", check_memory=False)
    (entry,) = g.info()["not_in_table"]
    assert entry["bytes"] == 314_572_800
    assert entry["collective"] == "ALLREDUCE" and "first and last stage" in entry["group"]
    assert any("314,572,800 bytes" in n for n in g.notes)
    # and what simulate reports from the sidecar says it is left out
    feats = g.assumptions()["features"]
    assert feats["tied_embedding_allreduce"].startswith("314572800 bytes per step")
    assert feats["pipeline_sends"] == "the whole activation from every TP rank"
    # bf16 main gradients (--grad-reduce-in-bf16): 78,643,200 x 2 = 157,286,400 B
    cfg = resolve(get_preset("gpt-175b"), 128, tp=8, pp=16, seq_length=2048,
                  global_batch=16, features=Features(grad_reduce_in_bf16=True), distributed_optimizer=True)
    assert generate(cfg, compute="none", check_memory=False).info()["not_in_table"][0][
        "bytes"] == 157_286_400


def test_no_embedding_allreduce_without_pp_or_untied():
    g175 = get_preset("gpt-175b")
    assert generate(resolve(g175, 8, tp=8, seq_length=2048, distributed_optimizer=True), compute="none",
                    check_memory=False).info()["not_in_table"] == []
    # Llama's output layer has its own weights: nothing to keep in sync
    cfg = resolve(get_preset("llama-2-7b"), 4, tp=2, pp=2, seq_length=1024, distributed_optimizer=True)
    assert generate(cfg, compute="none", check_memory=False).info()["not_in_table"] == []


def test_untie_flag_adds_the_output_weights_and_drops_the_allreduce():
    from simulator.config import GenerateOptions

    # PP 1, TP 8: an untied output layer is a second 51,200 / 8 x 12,288 = 78,643,200
    # parameters on the GPU
    base = GenerateOptions(model="gpt-175b", gpus=8, tp=8, seq_length=2048)
    untied = GenerateOptions(model="gpt-175b", gpus=8, tp=8, seq_length=2048,
                             untie_embeddings_and_output_weights=True)
    a = generate(base.train_config(), compute="none", check_memory=False)
    b = generate(untied.train_config(), compute="none", check_memory=False)
    assert b.params.dense - a.params.dense == 78_643_200
    pp = GenerateOptions(model="gpt-175b", gpus=16, tp=8, pp=2, seq_length=2048,
                         untie_embeddings_and_output_weights=True)
    assert generate(pp.train_config(), compute="none",
                    check_memory=False).info()["not_in_table"] == []


# ------------------------------------------------------------------ main-gradient dtype

@pytest.mark.parametrize("features, per_param", [
    (Features(), 4),                                       # bf16: fp32 main gradients
    (Features(grad_reduce_in_bf16=True), 2),               # --grad-reduce-in-bf16
    (Features(params_dtype="fp16"), 2),                    # --fp16: fp16 main gradients
    (Features(params_dtype="fp16", accumulate_allreduce_grads_in_fp32=True), 4),
])
def test_gradient_reduction_bytes_follow_the_main_gradient_dtype(features, per_param):
    # DP 2, distributed optimizer: reduce-scatter of 3,672,320 x per_param bytes; the
    # parameter all-gather is bf16/fp16 whatever the gradients: 2 x 3,672,320 = 7,344,640
    w = gen(world=2, features=features).workload
    assert row(w, "grad_param_comm").wg == Comm(Op.REDUCESCATTER, Group.DP,
                                                per_param * TINY4_DENSE)
    assert row(w, "grad_gather").wg.size_bytes == 7_344_640
    # without the distributed optimizer: all-reduce of the same bytes
    w = gen(world=2, features=features, distributed_optimizer=False).workload
    assert row(w, "grad_param_comm").wg == Comm(Op.ALLREDUCE, Group.DP,
                                                per_param * TINY4_DENSE)


def test_gradient_buckets_use_the_main_gradient_dtype():
    # --overlap-grad-reduce with fp16 gradients: the buckets of the last micro-batch add up
    # to 2 bytes x 3,672,320 = 7,344,640
    w = gen(world=2, features=Features(overlap_grad_reduce=True, params_dtype="fp16"),
            global_batch=2).workload
    total = sum(r.wg.size_bytes for r in w.rows if r.wg.group is Group.DP
                and r.wg.op is Op.REDUCESCATTER)
    assert total == 7_344_640


def test_sp_layernorm_allreduce_uses_the_main_gradient_dtype():
    # TP 2 + SP: norms per GPU 4 layers x 512 + final 256 = 2,304 parameters, replicated;
    # all-reduced over TP as fp32 main gradients: 9,216 B; with fp16 gradients 4,608 B
    w = gen(world=2, tp=2, sp=True).workload
    assert row(w, "layernorm").ig == Comm(Op.ALLREDUCE, Group.TP, 9_216)
    w = gen(world=2, tp=2, sp=True, features=Features(params_dtype="fp16")).workload
    assert row(w, "layernorm").ig.size_bytes == 4_608


def test_dtype_combinations_megatron_refuses():
    with pytest.raises(InputError) as e:
        gen(features=Features(params_dtype="fp16", grad_reduce_in_bf16=True))
    assert e.value.field == "grad_reduce_in_bf16"
    with pytest.raises(InputError) as e:
        gen(features=Features(params_dtype="fp32"))
    assert e.value.field == "params_dtype"


# ---------------------------------------------------------------- --overlap-param-gather

def test_overlap_param_gather_gathers_buckets_before_the_first_forward():
    # 3,672,320 parameters in buckets of 1,000,000: three full buckets and 672,320 left;
    # bf16 parameters, 2 bytes each: 2,000,000 x 3 and 1,344,640, each a forward
    # ALLGATHER on the data-parallel ranks (written _DP_EP: EP 1, so the DP group)
    both = dict(overlap_param_gather=True, overlap_grad_reduce=True)
    w = gen(world=2, global_batch=2, features=Features(**both, bucket_size=1_000_000)).workload
    names = [r.name for r in w.rows]
    assert "grad_gather" not in names
    gathers = [r for r in w.rows if r.name.startswith("param_gather_")]
    assert [r.name for r in gathers] == [f"param_gather_{k}" for k in (1, 2, 3, 4)]
    assert [r.fwd for r in gathers] == [Comm(Op.ALLGATHER, Group.DP_EP, n)
                                        for n in (2_000_000,) * 3 + (1_344_640,)]
    assert names.index("param_gather_4") < names.index("embedding_layer")
    # the gradients are reduce-scattered in the last micro-batch's buckets (4 B a
    # parameter, 14,689,280 B in all), none after the backward
    assert "grad_param_comm" not in names
    assert sum(r.wg.size_bytes for r in w.rows if r.wg.op is Op.REDUCESCATTER) == 14_689_280
    # default bucket max(40M, 1M x DP 2) = 40,000,000 parameters: one bucket of 7,344,640 B
    w = gen(world=2, features=Features(**both)).workload
    assert [r.fwd.size_bytes for r in w.rows if r.name.startswith("param_gather")] == [
        7_344_640]
    r = sim(w)
    assert r.iteration_ns > 0


def test_overlap_param_gather_needs_the_distributed_optimizer_and_grad_overlap():
    with pytest.raises(InputError) as e:
        gen(world=2, distributed_optimizer=False,
            features=Features(overlap_param_gather=True, overlap_grad_reduce=True))
    assert e.value.field == "overlap_param_gather"
    # Megatron-LM asserts --overlap-grad-reduce with --overlap-param-gather
    with pytest.raises(InputError) as e:
        gen(world=2, features=Features(overlap_param_gather=True))
    assert (e.value.field, e.value.message) == (
        "overlap_param_gather", "needs --overlap-grad-reduce (as in Megatron-LM)")


def test_overlap_param_gather_moe_gathers_experts_ahead_dense_after():
    # MoE, EP 2 of DP 2: DP_EP has one rank, so the experts' gather is free (NONE) and the
    # dense parameters' gather cannot be a forward collective on DP: it stays after the step
    moe = ModelSpec("tmoe", layers=2, hidden=256, ffn=1024, heads=4, vocab=1000,
                    max_position=0, tied_embeddings=False, experts=4, topk=2)
    g = gen(world=2, ep=2, model=moe,
            features=Features(overlap_param_gather=True, overlap_grad_reduce=True))
    names = [r.name for r in g.workload.rows]
    assert "grad_gather" in names and "moe_param_gather_1" in names
    assert any("dense parameters' gather stays after the step" in n for n in g.notes)


def test_overlap_param_gather_cli_flag(tmp_path):
    out, js = tmp_path / "w.txt", tmp_path / "g.json"
    rc, text, _ = run_cli(["generate", "--model", "gpt-7b", "--world-size", "8", "--tp", "4",
                           "--global-batch", "2", "--overlap-param-gather",
                           "--overlap-grad-reduce", "--no-compute",
                           "--use-distributed-optimizer", "--json", js, "-o", out])
    assert rc == 0 and "overlap_param_gather" in text
    info = json.loads(js.read_text())
    assert info["assumptions"]["features"]["overlap_param_gather"] is True
    assert info["assumptions"]["features"]["grad_reduce_dtype"] == "fp32"
    assert "param_gather_1" in out.read_text()


# ------------------------------------------------------------ pipeline scatter-gather

def test_scatter_gather_splits_sends_and_gathers_over_tp():
    # TP 2, PP 2, no SP, micro-batch 1 x 128 tokens, hidden 256: the activation is
    # 2 x 128 x 256 = 65,536 B. Without scatter-gather every TP rank sends it whole; with
    # it each sends 65,536 / 2 = 32,768 B and the receiver all-gathers the 65,536 B over TP
    plain = gen(world=4, tp=2, pp=2).workload
    assert plain.pp_comm_bytes == 65_536
    assert not any(r.name.startswith("pp_") for r in plain.rows)
    w = gen(world=4, tp=2, pp=2, features=Features(scatter_gather_p2p=True)).workload
    assert w.pp_comm_bytes == 32_768
    names = [r.name for r in w.rows]
    # the received activation before the first layer, the received gradient before the
    # backward (the block's last row, whose backward runs first)
    assert names[names.index("embedding_layer") + 1] == "pp_recv_gather"
    assert row(w, "pp_recv_gather").fwd == Comm(Op.ALLGATHER, Group.TP, 65_536)
    assert row(w, "pp_recv_gather").ig.op is None
    assert names[-5] == "pp_grad_gather"   # then optimizer1-4
    assert row(w, "pp_grad_gather").ig == Comm(Op.ALLGATHER, Group.TP, 65_536)
    assert sim(w).iteration_ns > 0


def test_simulate_reports_the_pipeline_sends_and_the_left_out_allreduce(tmp_path):
    out, js = tmp_path / "w.txt", tmp_path / "s.json"
    assert run_cli(["generate", "--model", "gpt-7b", "--world-size", "8", "--tp", "4",
                    "--pp", "2", "--global-batch", "2", "--no-compute",
                    "--scatter-gather-tensors-in-pipeline", "-o", out])[0] == 0
    rc, text, _ = run_cli(["simulate", out, "--json", js])
    assert rc == 0 and "scatter-gather" in text and "tied_embedding_allreduce" in text
    feats = json.loads(js.read_text())["assumptions"]["features"]
    assert feats["scatter_gather_p2p"] is True
    # gpt-7b: vocab 50257 padded to 128 x 4 -> 50,688; / TP 4 x 4096 x 4 B = 207,618,048
    assert feats["tied_embedding_allreduce"].startswith("207618048 bytes")


def test_scatter_gather_has_no_effect_with_sequence_parallelism():
    # SP: the activation is already 128 / 2 tokens per TP rank, 32,768 B sent, no gather
    g = gen(world=4, tp=2, pp=2, sp=True, features=Features(scatter_gather_p2p=True))
    assert g.workload.pp_comm_bytes == 32_768
    assert not any(r.name.startswith("pp_") for r in g.workload.rows)
    assert any("changes nothing here" in n for n in g.notes)


def test_scatter_gather_gathers_at_every_model_chunk():
    # PP 2 x vpp 2, 4 layers: 2 per stage, one per chunk. Between the chunks a row gathers
    # the later chunk's activation and the earlier chunk's gradient; the chunks still follow
    # layers (embedding and recv gather with the first, the loss and grad gather the last)
    w = gen(world=4, tp=2, pp=2, vpp=2, global_batch=2,
            features=Features(scatter_gather_p2p=True)).workload
    names = [r.name for r in w.rows]
    k = names.index("pp_chunk_gather")
    assert names[k - 1] == "mlp_layer" and names[k + 1] == "attention_layer"
    assert row(w, "pp_chunk_gather").fwd == Comm(Op.ALLGATHER, Group.TP, 65_536)
    assert row(w, "pp_chunk_gather").ig == Comm(Op.ALLGATHER, Group.TP, 65_536)
    r = sim(w, pp_schedule="interleaved", vpp_chunks=2)
    assert any("chunks follow layers: 2 layers, 1 per chunk" in n for n in r.notes)


def test_scatter_gather_cli_flags(tmp_path):
    out = tmp_path / "w.txt"
    args = ["generate", "--model", "gpt-7b", "--world-size", "8", "--tp", "4", "--pp", "2",
            "--global-batch", "2", "--no-compute", "-o", out]
    assert run_cli(args + ["--scatter-gather-tensors-in-pipeline"])[0] == 0
    text = out.read_text()
    # gpt-7b: hidden 4096, 4096 tokens: 2 x 4096 x 4096 / TP 4 = 8,388,608 B per TP rank
    assert "pp_comm: 8388608" in text and "pp_recv_gather" in text
    assert run_cli(args + ["--no-scatter-gather-tensors-in-pipeline"])[0] == 0
    assert "pp_comm: 33554432" in out.read_text()   # the whole 2 x 4096 x 4096



# ------------------------------------------------------------------- sweep-spec keys

def test_sweep_spec_keys_build_the_same_options_as_the_flags(tmp_path):
    import argparse

    from simulator.commands import generate as command
    from simulator.config import SweepPoint
    from simulator.sweep.spec import load_spec

    p = argparse.ArgumentParser()
    command.add_arguments(p)
    args = p.parse_args(["--model", "gpt-7b", "--world-size", "8", "--tp", "4", "--pp", "2",
                         "--fp16", "--accumulate-allreduce-grads-in-fp32",
                         "--scatter-gather-tensors-in-pipeline", "--overlap-param-gather",
                         "--overlap-grad-reduce",
                         "--untie-embeddings-and-output-weights", "-o", "x.txt"])
    spec = tmp_path / "s.yaml"
    spec.write_text("base: {model: gpt-7b, gpus: 8, tp: 4, pp: 2, params_dtype: fp16,\n"
                    "       accumulate_allreduce_grads_in_fp32: true,\n"
                    "       scatter_gather_tensors_in_pipeline: true,\n"
                    "       overlap_param_gather: true, overlap_grad_reduce: true,\n"
                    "       untie_embeddings_and_output_weights: true}\n")
    point = SweepPoint.from_point(load_spec(str(spec)).points[0])
    assert command.generate_options(args) == point.generate_options()


def test_sweep_spec_bad_dtype_names_file_line_and_key(tmp_path):
    from simulator.sweep.spec import load_spec

    spec = tmp_path / "s.yaml"
    # line 1 base:, 2 model, 3 gpus, 4 params_dtype
    spec.write_text("base:\n  model: gpt-7b\n  gpus: 8\n  params_dtype: fp8\n")
    with pytest.raises(InputError) as e:
        load_spec(str(spec))
    assert (e.value.path, e.value.line, e.value.field) == (str(spec), 4, "base.params_dtype")


def test_cli_refuses_contradicting_dtype_flags_in_one_line(tmp_path):
    rc, out, err = run_cli(["generate", "--model", "gpt-7b", "--world-size", "8", "--tp", "4",
                            "--fp16", "--grad-reduce-in-bf16", "-o", tmp_path / "x.txt"])
    assert rc == 2 and not (tmp_path / "x.txt").exists()
    assert err.strip() == ("collsim: error: --grad-reduce-in-bf16: needs bf16 training "
                           "(as in Megatron-LM)")


def test_megatron_flag_names_mean_what_they_mean_in_megatron():
    import argparse

    from simulator.commands import generate as command

    p = argparse.ArgumentParser()
    command.add_arguments(p)
    base = ["--model", "gpt-7b", "--world-size", "16", "-o", "x.txt"]
    ours = command.generate_options(p.parse_args(base + [
        "--tp", "4", "--pp", "2", "--sp", "--vpp", "2", "--micro-batch", "2",
        "--global-batch", "8", "--recompute"]))
    megatron = command.generate_options(p.parse_args(base + [
        "--tensor-model-parallel-size", "4", "--pipeline-model-parallel-size", "2",
        "--sequence-parallel", "--virtual-pipeline-model-parallel-size", "2",
        "--micro-batch-size", "2", "--global-batch-size", "8", "--checkpoint-activations"]))
    assert ours == megatron
    # the distributed optimizer: off unless asked for, as in Megatron-LM; the old
    # --no-distributed-optimizer is accepted and changes nothing
    assert not ours.distributed_optimizer
    assert command.generate_options(p.parse_args(base + ["--use-distributed-optimizer"])
                                    ).distributed_optimizer
    assert command.generate_options(p.parse_args(base + ["--no-distributed-optimizer"])
                                    ) == command.generate_options(p.parse_args(base))
    # Megatron's --recompute-activations is selective recompute, not full
    sel = command.generate_options(p.parse_args(base + ["--recompute-activations"]))
    assert sel.recompute_granularity == "selective" and not sel.recompute
