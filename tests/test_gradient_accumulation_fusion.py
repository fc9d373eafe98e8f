"""Megatron-LM's gradient accumulation fusion in `collsim generate` (issue 12): the linear
layers' wgrad GEMMs accumulate into the main gradients, so their per-tensor accumulation
kernels go. Numbers derived by hand from the H200 spec: the accumulation's fit
(opt_accum_t0_us 4.408 us a kernel, opt_accum_ns 0.003507 ns a parameter, host_accum_us
10.09 us a kernel), the GEMM roofline (t0 3.492 us, HBM 4800 GB/s x mem_eff 0.8 = 3.84 MB/us,
peak 989.4 TFLOPS, e_max 0.7908, x0 0, xk 95.04, wgrad layout x 0.9851) and the zeroing
kernel (zero_fp32.fwd: 1.588 us + bytes / 4576.2 GB/s)."""
from __future__ import annotations

import json
import warnings
from dataclasses import replace

import pytest

from cli_helpers import run_cli
from simulator.config import GenerateOptions
from simulator.config.loader import from_mapping
from simulator.engine import SimulationOptions, simulate
from simulator.errors import SimulationWarning
from simulator.generate import generate, get_preset, resolve, with_overrides
from simulator.generate.compute import ComputeModel, _Kernels
from simulator.generate.features import Features
from simulator.generate.gpu import GPUS
from simulator.generate.models import ModelSpec
from simulator.generate.sizes import megatron_params

T0, NS, HOST = 4.408, 0.003507, 10.09     # the H200's accumulation fit, us / ns / us


def _gpt(fusion, layers=2, hidden=64, heads=2, seq=64, mbs=1, ga=1, tied=True, **feat):
    model = with_overrides(get_preset("gpt-7b"), layers=layers, hidden=hidden,
                           ffn=4 * hidden, heads=heads, vocab=50257)
    model = replace(model, tied_embeddings=tied)
    return resolve(model, 1, tp=1, micro_batch=mbs, global_batch=mbs * ga, seq_length=seq,
                   gpu="h200", distributed_optimizer=True,
                   features=Features(gradient_accumulation_fusion=fusion, **feat))


def _iteration_us(cfg) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        w = generate(cfg, check_memory=False).workload
        return simulate(w, options=SimulationOptions()).iteration_ns / 1e3


def test_ga4_step_saves_the_fused_tensors_accumulation_kernels():
    """2 layers of 4096 (gpt-7b's shape: biases, 4096 learned positions), untied, 8 x 2048
    tokens, GA 4, no power cap, on one H200: GPU-bound (the backward's GEMMs keep the GPU far
    behind the host), so each micro-batch's accumulation adds its kernels' device time.

    The model's tensors: word table V h = 50304 x 4096 = 206,045,184, positions 4096 x 4096,
    per layer 4 matrices and 8 vectors of h, 2 final ones of h. The matrices hold the rest of
    the parameters (megatron_params: 2 x (12 h^2 + 2 h) + 2 V h + 4096 h + h, the untied
    output layer included): 24 h^2 + 4 h + 2 V h + 4096 h + h - V h - 4096 h - 2 h - 16 h =
    24 h^2 + V h - 13 h = 402,653,184 + 206,045,184 - 53,248 = 608,645,120 parameters in 8
    tensors. The fusion drops those 8 kernels: 8 x 4.408 + 608,645,120 x 0.003507e-3 =
    35.264 + 2134.518436 = 2169.782436 us a micro-batch, 8679.129743 us a step of 4.

    The fused wgrad GEMMs stay compute-bound (the largest memory term, the output layer's
    (2 (V m + m h) + 8 V h) / 3.84 MB/us = 893 us, against its 8,858 us of FLOPs; the
    projection's 105 us against 717), so nothing else changes."""
    off = _gpt(False, hidden=4096, heads=32, seq=2048, mbs=8, ga=4, tied=False,
               power_cap=False)
    on = _gpt(True, hidden=4096, heads=32, seq=2048, mbs=8, ga=4, tied=False,
              power_cap=False)
    assert megatron_params(off).per_gpu == 2 * (12 * 4096 ** 2 + 2 * 4096) \
        + 2 * 50304 * 4096 + 4096 * 4096 + 4096
    saved = _iteration_us(off) - _iteration_us(on)
    assert saved == pytest.approx(4 * (8 * T0 + 608_645_120 * NS / 1e3), rel=1e-6)
    assert 4 * (8 * T0 + 608_645_120 * NS / 1e3) == pytest.approx(8679.129743, abs=1e-6)


def test_norms_biases_and_tables_keep_their_accumulation():
    """2 GPT layers of 64 with biases: unfused 2 + 2 x 12 + 2 = 28 kernels; fused the
    matrices' 8 go and 20 stay, in parameter order: the word table (50304 x 64 = 3,219,456
    parameters: 4.408 + 11.290632 = 15.698632 us), the positions (4096 x 64 = 262,144:
    4.408 + 0.919339 = 5.327339 us), each layer's 8 norm and bias vectors and the final norm's
    2 (64 parameters: 4.408224 us each), every one with its 10.09 us of host: 100.374011 us of
    device and 201.8 us of host a micro-batch."""
    cfg = _gpt(True)
    acc = ComputeModel(cfg, megatron_params(cfg)).accumulation
    assert len(ComputeModel(_gpt(False), megatron_params(cfg)).accumulation.kernels) == 28
    assert len(acc.kernels) == 20
    assert acc.kernels[0][0] == pytest.approx(15.698632192, abs=1e-9)
    assert acc.kernels[1][0] == pytest.approx(5.327339008, abs=1e-9)
    assert all(k[0] == pytest.approx(4.408224448, abs=1e-9) for k in acc.kernels[2:])
    assert acc.dev == pytest.approx(100.374011264, abs=1e-6)
    assert acc.host == pytest.approx(20 * HOST)
    assert 20 * HOST == pytest.approx(201.8)


def test_moe_router_keeps_its_accumulation():
    """2 MoE layers of 256 (8 experts, no biases, no positions, untied): per layer 2 norm
    weights and the router's 256 x 8 = 2048 (its gating GEMM is not a Megatron linear
    layer); the word table 1024 x 256 (vocabulary 1000 padded to 1024) and the 3 tensors of
    h after it: 1 + 2 x 3 + 3 = 10 kernels, the routers' 4.408 + 2048 x 0.003507e-3 =
    4.415182 us each."""
    model = ModelSpec("moe2", layers=2, hidden=256, ffn=1024, heads=4, vocab=1000,
                      max_position=0, tied_embeddings=False, experts=8, topk=2,
                      gated_mlp=True, moe_ffn=512)
    cfg = resolve(model, 1, seq_length=128, gpu="h200", distributed_optimizer=True,
                  features=Features(gradient_accumulation_fusion=True))
    acc = ComputeModel(cfg, megatron_params(cfg)).accumulation
    devs = [k[0] for k in acc.kernels]
    assert len(devs) == 10
    assert devs[0] == pytest.approx(T0 + 1024 * 256 * NS / 1e3)
    assert devs[3] == pytest.approx(4.415182336, abs=1e-9)
    assert devs[6] == pytest.approx(4.415182336, abs=1e-9)
    assert sorted(devs).count(pytest.approx(T0 + 256 * NS / 1e3)) == 7


def test_fused_wgrad_reads_and_writes_the_main_gradient():
    """A memory-bound wgrad, 4096 x 4096 over 64 tokens: FLOPs 2 x 4096^2 x 64 at
    989.4 TFLOPS x 0.7908 x 64/(64 + 95.04) x 0.9851 = 6.93 us; bytes unfused 2 (4096 x 64 x 2)
    + 2 x 4096^2 = 34,603,008 (9.0112 us at 3.84 MB/us), fused with fp32 main gradients
    1,048,576 + 8 x 4096^2 = 135,266,304 (35.2256 us): 3.492 + 9.0112 = 12.5032 us against
    3.492 + 35.2256 = 38.7176 us. bf16 main gradients (--grad-reduce-in-bf16) read and write
    2 + 2: 1,048,576 + 4 x 4096^2 = 68,157,440 bytes, 3.492 + 17.7493 = 21.2413 us."""
    g = GPUS["h200"]
    assert g.gemm_us(4096, 4096, 64, 1, "wgrad") == pytest.approx(12.5032, abs=1e-4)
    assert g.gemm_us(4096, 4096, 64, 1, "wgrad", 8.0) == pytest.approx(38.7176, abs=1e-4)
    plain = _Kernels(g).linear(64, 4096, 4096, False)[2]
    fused = _Kernels(g, main_grad_bytes=4).linear(64, 4096, 4096, False)[2]
    router = _Kernels(g, main_grad_bytes=4).linear(64, 4096, 4096, False, fusable=False)[2]
    half = _Kernels(g, main_grad_bytes=2).linear(64, 4096, 4096, False)[2]
    assert plain.dev == pytest.approx(12.5032, abs=1e-4)
    assert fused.dev == pytest.approx(38.7176, abs=1e-4)
    assert router.dev == plain.dev
    assert half.dev == pytest.approx(3.492 + 68_157_440 / 3.84e6, abs=1e-9)
    assert 68_157_440 / 3.84e6 == pytest.approx(17.7493, abs=1e-4)


def test_tied_output_layer_fills_its_dummy_wgrad():
    """Tied at PP 1 the output layer's wgrad GEMM accumulates into the shared table and
    Megatron-LM hands autograd a zeroed dummy (zero_out_wgrad): a 50304 x 64 bf16 fill,
    1.588 + 6,438,912 / 4576.2e3 = 2.995043 us of device and 12.53 us (an element-wise op's
    dispatch) of host in the output row's weight gradient. Untied: no fill."""
    def out_wg(fusion, tied):
        cfg = _gpt(fusion, tied=tied)
        return ComputeModel(cfg, megatron_params(cfg)).row_costs("final_column")[2]
    tied_on, tied_off = out_wg(True, True), out_wg(False, True)
    extra = tied_on.kernels[len(tied_off.kernels):]
    assert len(extra) == 1
    assert extra[0][0] == pytest.approx(1.588 + 6_438_912 / 4576.2e3, abs=1e-9)
    assert 1.588 + 6_438_912 / 4576.2e3 == pytest.approx(2.995043, abs=1e-6)
    assert extra[0][1] == pytest.approx(12.53)
    assert len(out_wg(True, False).kernels) == len(out_wg(False, False).kernels)


def test_deepspeed_zero_never_fuses():
    """DeepSpeed's engine owns the gradients (no Megatron main_grad): ZeRO turns it off."""
    cfg = resolve(get_preset("gpt-7b"), 16, tp=4, gpu="h100",
                  features=Features(zero_stage=1))
    assert cfg.features.gradient_accumulation_fusion is False
    assert "DeepSpeed ZeRO" in cfg.features.describe()["gradient_accumulation"]


def test_options_flags_and_reports(tmp_path):
    """On by default (Megatron-LM's); --no-... and the YAML key turn it off; --deepspeed's
    default is off and asking for it there is refused in one line; the sidecar says which."""
    assert GenerateOptions().gradient_accumulation_fusion is True
    assert Features().gradient_accumulation_fusion is True
    opts = from_mapping(GenerateOptions, {"gradient_accumulation_fusion": False})
    assert opts.features().gradient_accumulation_fusion is False
    base = ["generate", "--model", "gpt3-125m", "--world-size", "1", "--seq-length", "256",
            "--gpu", "h200", "--quiet"]
    feats = {}
    for name, extra in (("on", []), ("off", ["--no-gradient-accumulation-fusion"]),
                        ("ds", ["--deepspeed"])):
        out = tmp_path / f"{name}.txt"
        rc, _, err = run_cli(base + extra + ["-o", str(out)])
        assert rc == 0, err
        feats[name] = json.loads((tmp_path / f"{name}.txt.meta.json").read_text())["features"]
    assert feats["on"]["gradient_accumulation"].startswith("fused into the weight-gradient")
    assert feats["off"]["gradient_accumulation"].startswith("separate")
    assert feats["ds"]["gradient_accumulation"] == feats["off"]["gradient_accumulation"]
    assert (tmp_path / "off.txt").read_text() == (tmp_path / "ds.txt").read_text()
    rc, _, err = run_cli(base + ["--deepspeed", "--gradient-accumulation-fusion",
                                 "-o", str(tmp_path / "x.txt")])
    assert rc == 2
    assert err.strip().count("\n") == 0 and "--gradient-accumulation-fusion" in err
