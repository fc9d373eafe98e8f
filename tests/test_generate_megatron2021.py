"""Megatron-LM 2021's flag names (examples/sc21 of Narayanan et al.) mean what they meant then,
and a table generated with virtual stages is simulated interleaved (issue 12)."""
from __future__ import annotations

import json

import pytest

from simulator.cli import main

# 76B of the paper on 32 GPUs: 60 layers over PP 4 = 15 a stage; TP 8 -> DP 1, 8 micro-batches
BASE = ["--model", "gpt-76b", "--world-size", "32", "--tp", "8", "--pp", "4",
        "--global-batch-size", "8", "--seq-length", "2048", "--gpu", "a100",
        "--recompute-granularity", "full", "--quiet"]


def _table(tmp_path, name, *flags, base=BASE):
    out = tmp_path / f"{name}.txt"
    assert main(["generate", *base, *flags, "-o", str(out)]) == 0
    return out


def test_layers_per_virtual_stage_is_vpp(tmp_path):
    # 15 layers a stage in chunks of 5: 3 chunks, as run_table_1.sh's 76B row asks
    a = _table(tmp_path, "a", "--num-layers-per-virtual-pipeline-stage", "5")
    b = _table(tmp_path, "b", "--vpp", "3")
    assert a.read_text() == b.read_text()
    assert " vpp: 3 " in a.read_text().splitlines()[0] + " "


@pytest.mark.parametrize("flags,field", [
    (["--num-layers-per-virtual-pipeline-stage", "4"], "--num-layers-per-virtual"),  # 15 % 4
    (["--num-layers-per-virtual-pipeline-stage", "5", "--vpp", "5"], "--vpp"),   # 3 != 5
])
def test_layers_per_virtual_stage_refused(tmp_path, capsys, flags, field):
    assert main(["generate", *BASE, *flags, "-o", str(tmp_path / "w.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]


def test_activations_checkpoint_method_is_full_recompute(tmp_path):
    base = [a for a in BASE if a not in ("--recompute-granularity", "full")]
    a = _table(tmp_path, "a", "--activations-checkpoint-method", "uniform",
               "--activations-checkpoint-num-layers", "3", base=base)
    b = _table(tmp_path, "b", "--recompute-granularity", "full", "--recompute-method",
               "uniform", "--recompute-num-layers", "3", base=base)
    assert a.read_text() == b.read_text()
    assert a.read_text() != _table(tmp_path, "c", base=base + ["--no-memory-check"]).read_text()


def test_torch_ddp_is_overlapped_buckets_of_25_mib(tmp_path):
    # PyTorch DDP's 25 MiB buckets of 2-byte gradients: 25 x 2^20 / 2 = 13,107,200 parameters
    base = ["--model", "gpt-1.7b", "--world-size", "16", "--micro-batch-size", "4",
            "--global-batch-size", "128", "--seq-length", "2048", "--gpu", "a100", "--fp16",
            "--recompute-granularity", "full", "--quiet"]
    a = _table(tmp_path, "a", "--DDP-impl", "torch", base=base)
    b = _table(tmp_path, "b", "--overlap-grad-reduce", "--ddp-bucket-size", "13107200",
               base=base)
    local = _table(tmp_path, "c", "--DDP-impl", "local", base=base)
    assert a.read_text() == b.read_text()
    assert local.read_text() == _table(tmp_path, "d", base=base).read_text()
    assert local.read_text() != a.read_text()


def test_max_position_embeddings_sizes_the_table(tmp_path):
    # 2048 more learned positions x hidden 2304 = 4,718,592 parameters (PP 1: on the GPU)
    base = ["--model", "gpt-1.7b", "--world-size", "8", "--seq-length", "2048", "--quiet",
            "--no-compute"]
    infos = []
    for n in ("2048", "4096"):
        j = tmp_path / f"{n}.json"
        _table(tmp_path, n, "--max-position-embeddings", n, "--json", str(j), base=base)
        infos.append(json.loads(j.read_text())["params_model"])
    assert infos[1] - infos[0] == 2048 * 2304


def _simulated(path, *flags, capsys):
    assert main(["simulate", str(path), "--json", "-", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_table_generated_with_vpp_is_simulated_interleaved(tmp_path, capsys):
    w = _table(tmp_path, "w", "--vpp", "3")
    auto = _simulated(w, capsys=capsys)
    assert auto["parallelism"]["pp_schedule"] == "interleaved"
    assert auto["parallelism"]["chunks"] == 3
    assert any("the one the table was generated for" in n for n in auto["notes"])
    asked = _simulated(w, "--pp-schedule", "interleaved", capsys=capsys)
    assert asked["iteration_time_ns"] == auto["iteration_time_ns"]
    one = _simulated(w, "--pp-schedule", "1f1b", "--vpp", "1", capsys=capsys)
    assert one["parallelism"]["pp_schedule"] == "1f1b"
    # without virtual stages nothing changes: 1F1B as before
    plain = _simulated(_table(tmp_path, "p"), capsys=capsys)
    assert plain["parallelism"]["pp_schedule"] == "1f1b"


def test_a_paper_row_that_does_not_fit_is_refused(tmp_path, capsys):
    # the 1.7B row (micro-batch 16 x 2048) without recompute: 24 layers x (34 s b h + the
    # 5 a s^2 b of unfused attention) is far over 80 GiB; with recompute it fits 80 GiB
    # but not the 40 GB A100's 40 GiB
    base = ["--model", "gpt-1.7b", "--world-size", "32", "--micro-batch-size", "16",
            "--global-batch-size", "512", "--seq-length", "2048", "--fp16",
            "--transformer-impl", "local", "--quiet"]
    for extra in (["--gpu", "a100"], ["--gpu", "a100-40gb", "--recompute-granularity", "full"]):
        assert main(["generate", *base, *extra, "-o", str(tmp_path / "w.txt")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "GiB" in err[0]
    _table(tmp_path, "fits", "--gpu", "a100", "--recompute-granularity", "full", base=base)


def test_megatron_deepspeed_switches_change_nothing(tmp_path):
    base = ["--model", "gpt3-1.3b", "--world-size", "8", "--micro-batch-size", "8",
            "--global-batch-size", "512", "--seq-length", "2048", "--gpu", "a100",
            "--zero-stage", "1", "--checkpoint-activations", "--quiet"]
    a = _table(tmp_path, "a", "--deepspeed", "--deepspeed-activation-checkpointing", base=base)
    assert a.read_text() == _table(tmp_path, "b", base=base).read_text()


def test_deepspeed_pipeline_sends_are_partitioned_over_tp(tmp_path, capsys):
    # Megatron-DeepSpeed with PP > 1 runs DeepSpeed's PipelineEngine, which with a
    # model-parallel size > 1 sends 1/TP of each activation and gradient and all-gathers it
    # (pipe_partitioned, grad_partitioned: on by default). GPT-3 1.3B (h 2048), TP 2, PP 2,
    # micro-batch 1 x 2048: the activation is 2 b s h = 2 x 1 x 2048 x 2048 = 8,388,608
    # bytes, so each TP rank sends 4,194,304; before, --deepspeed changed nothing and every
    # rank sent the whole 8,388,608
    base = ["--model", "gpt3-1.3b", "--world-size", "8", "--tp", "2", "--pp", "2",
            "--micro-batch-size", "1", "--global-batch-size", "4", "--seq-length", "2048",
            "--gpu", "a100", "--zero-stage", "1", "--quiet"]
    ds = _table(tmp_path, "ds", "--deepspeed", base=base).read_text()
    assert " pp_comm: 4194304" in ds.splitlines()[0]
    assert ds == _table(tmp_path, "sg", "--scatter-gather-tensors-in-pipeline",
                        base=base).read_text()
    plain = _table(tmp_path, "plain", base=base).read_text()
    assert " pp_comm: 8388608" in plain.splitlines()[0]
    # asked off, it is off
    assert _table(tmp_path, "off", "--deepspeed", "--no-scatter-gather-tensors-in-pipeline",
                  base=base).read_text() == plain
    # --no-pipeline-parallel (no DeepSpeed pipeline engine) needs PP 1
    assert main(["generate", *base, "--no-pipeline-parallel", "-o",
                 str(tmp_path / "x.txt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-pipeline-parallel" in err[0] and "PP 1" in err[0]


def test_memory_refusal_suggests_only_what_is_not_on(tmp_path, capsys):
    # the 1T GPT on 1536 A100s (TP 8, PP 32, DP 6) with full recompute needs about 97 GiB of
    # 80: recompute and micro-batch 1 are already there, so the line suggests neither; the
    # Adam states (12 bytes a parameter) are not sharded, so it names the distributed optimizer
    big = ["--model", "gpt-1008b", "--world-size", "1536", "--tp", "8", "--pp", "32",
           "--global-batch-size", "1536", "--gpu", "a100", "--quiet",
           "-o", str(tmp_path / "w.txt")]
    assert main(["generate", *big, "--recompute"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one A100 has 80 GiB" in err[0]
    assert "--use-distributed-optimizer" in err[0]
    assert "--recompute" not in err[0] and "micro-batch" not in err[0]
    # sharded optimizer, no recompute, micro-batch 2: recompute and the micro-batch are named
    assert main(["generate", *big, "--use-distributed-optimizer", "--micro-batch", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "add --recompute" in err[0] and "smaller micro-batch" in err[0]
    assert "--use-distributed-optimizer" not in err[0]
    assert not (tmp_path / "w.txt").exists()
