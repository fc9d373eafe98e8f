"""Megatron-core MoE layers in `collsim generate` (issue 12): the router's kernels and its
loss all-reduce, grouped vs sequential expert GEMMs, capacity and load imbalance. Expected
values are derived by hand in the comments."""
from __future__ import annotations

import pytest

from simulator.cli import main
from simulator.errors import InputError
from simulator.generate import generate, resolve
from simulator.generate.compute import ComputeModel
from simulator.generate.features import Features
from simulator.generate.models import ModelSpec
from simulator.generate.moe import expert_load
from simulator.generate.sizes import megatron_params
from simulator.workload import Group, Op

# 8 experts, top-2, SwiGLU experts of 2048 on a 1024 hidden size; sequence 256, micro-batch 1
MOE8 = ModelSpec("moe8", layers=2, hidden=1024, ffn=4096, heads=8, vocab=1000,
                 max_position=0, gated_mlp=True, tied_embeddings=False, experts=8, topk=2,
                 moe_ffn=2048)
# the test_generate_features MoE: 4 experts, top-2, hidden 256, expert FFN 512
MOE4 = ModelSpec("moe4", layers=2, hidden=256, ffn=1024, heads=4, vocab=1000, max_position=0,
                 tied_embeddings=False, experts=4, topk=2, moe_ffn=512)


def cfg_of(model=MOE8, world=2, ep=2, tp=1, features=Features(), **kw):
    return resolve(model, world, tp=tp, ep=ep, seq_length=kw.pop("seq_length", 256),
                   distributed_optimizer=True, gpu=kw.pop("gpu", "h200"), features=features,
                   **kw)


def model_of(cfg):
    return ComputeModel(cfg, megatron_params(cfg))


def launches(cost):
    """Kernels the host dispatches (a host time > 0)."""
    return sum(1 for k in cost.kernels if k[1] > 0)


# ------------------------------------------------------------------------------ load

def test_balanced_load_is_k_tokens_over_experts():
    # EP 2, TP 1: each rank routes 256 tokens; an expert gets 2 ranks x 256 x top-2 / 8 = 128
    # tokens; a rank holds 4 experts: receives 4 x 128 = 512 = 2 x 256 routed rows
    load = expert_load(cfg_of())
    assert (load.router_tokens, load.per_expert, load.received, load.sent) == (256, 128, 512,
                                                                               512)
    assert load.capacity is None and load.load == 1.0


def test_imbalance_and_capacity_bound_the_busiest_rank():
    # imbalance 1.5: ceil(128 x 1.5) = 192 tokens an expert, 4 x 192 = 768 received
    imb = expert_load(cfg_of(features=Features(moe_expert_load_imbalance=1.5)))
    assert (imb.per_expert, imb.received, imb.sent) == (192, 768, 512)
    # capacity factor 1.25: ceil(256 x 2 / 8 x 1.25) = 80 per expert and source rank; 2
    # source ranks: at most 160, so the 1.5 imbalance is cut to 160 (load 1.25)
    cut = expert_load(cfg_of(features=Features(moe_expert_load_imbalance=1.5,
                                               moe_expert_capacity_factor=1.25)))
    assert (cut.capacity, cut.per_expert, cut.received) == (80, 160, 640)
    assert cut.load == pytest.approx(1.25)
    # below the bound the imbalance stays: 1.1 -> ceil(140.8) = 141
    kept = expert_load(cfg_of(features=Features(moe_expert_load_imbalance=1.1,
                                                moe_expert_capacity_factor=1.25)))
    assert kept.per_expert == 141
    # padded to capacity: exactly 80 x 2 = 160 whatever the routing; every rank sends its
    # capacity to each of the 8 experts, 80 x 8 = 640 rows (not 2 x 256 = 512)
    pad = expert_load(cfg_of(features=Features(moe_expert_capacity_factor=1.25,
                                               moe_pad_expert_input_to_capacity=True)))
    assert (pad.per_expert, pad.received, pad.sent) == (160, 640, 640)


def test_expert_tp_one_gathers_nothing_and_keeps_whole_experts():
    # TP 2 with SP, ETP 1, EP 2 on 4 GPUs: a rank routes 256 / 2 = 128 tokens; its experts are
    # fed by EP 2 x ETP 1 ranks: 2 x 128 x 2 / 8 = 64 tokens an expert (ETP 2: 128)
    et1 = expert_load(cfg_of(world=4, tp=2, features=Features(etp=1)))
    et2 = expert_load(cfg_of(world=4, tp=2))
    assert (et1.router_tokens, et1.per_expert, et2.per_expert) == (128, 64, 128)
    # ETP 1: the expert GEMMs are whole (2 x 2048 wide); ETP 2: half as wide, twice the rows
    gpu = cfg_of().gpu_spec
    e1 = model_of(cfg_of(world=4, tp=2, features=Features(etp=1))).costs["moe_experts"][0]
    e2 = model_of(cfg_of(world=4, tp=2)).costs["moe_experts"][0]
    assert e1.kernels[0][0] == pytest.approx(gpu.gemm_us(64, 2 * 2048, 1024))
    assert e2.kernels[0][0] == pytest.approx(gpu.gemm_us(128, 2 * 1024, 1024))


# ------------------------------------------------------------------------------ rows

def test_all_to_all_and_gather_sizes_follow_the_load():
    def moe_rows(features, **kw):
        w = generate(cfg_of(model=MOE4, world=8, tp=2, features=features, **kw),
                     compute="none", check_memory=False).workload
        return [r for r in w.rows if r.name == "mlp_moelayer"][:5]
    # TP 2 (SP), EP 2, seq 128: 64 router tokens a rank, 2 x 64 = 128 routed rows each way:
    # 128 x 256 x 2 bytes = 65536; the TP gather's whole buffer twice that
    base = moe_rows(Features(), seq_length=128)
    assert (base[1].fwd.op, base[1].fwd.size_bytes) == (Op.ALLTOALL, 65536)
    assert (base[2].fwd.op, base[2].fwd.size_bytes) == (Op.ALLGATHER, 131072)
    # padded to capacity 1.1: ceil(64 x 2 / 4 x 1.1) = ceil(35.2) = 36 per expert and source;
    # 36 x 4 experts = 144 rows sent: 144 x 512 = 73728 bytes; gathered over TP 2: 147456
    pad = moe_rows(Features(moe_expert_capacity_factor=1.1,
                            moe_pad_expert_input_to_capacity=True), seq_length=128)
    for r in (pad[1], pad[4]):
        assert (r.fwd.size_bytes, r.ig.size_bytes) == (73728, 73728)
    assert (pad[2].fwd.size_bytes, pad[3].fwd.size_bytes) == (147456, 147456)
    # imbalance 1.25, dropless: an expert's balanced share is EP 2 x ETP 2 x 64 x 2 / 4 =
    # 128 tokens, 160 on the busiest rank; its 2 local experts / ETP 2 = 160 rows arrive by
    # the all-to-all (160 x 512 = 81920 bytes), 2 x 81920 after the TP gather
    imb = moe_rows(Features(moe_expert_load_imbalance=1.25), seq_length=128)
    assert imb[1].fwd.size_bytes == 81920 and imb[2].fwd.size_bytes == 163840


def test_aux_loss_all_reduces_the_counts_over_tp():
    def aux_rows(features, world=8, tp=2):
        w = generate(cfg_of(model=MOE4, world=world, tp=tp, features=features,
                            seq_length=128), compute="none", check_memory=False).workload
        return [r for r in w.rows if r.name == "moe_aux_loss_counts"]
    # coefficient 0.01, TP 2: one all-reduce of 4 experts x 8 bytes (int64) per MoE layer
    # forward, 2 layers x 1 micro-batch (DP 4, global batch 4 by default: one each)
    rows = aux_rows(Features(moe_aux_loss_coeff=0.01))
    assert len(rows) == 2
    assert {(r.fwd.op, r.fwd.group, r.fwd.size_bytes, r.ig.op) for r in rows} == {
        (Op.ALLREDUCE, Group.TP, 32, None)}
    # Megatron's default coefficient 0: no loss, no all-reduce; TP 1: no partition group
    assert not aux_rows(Features())
    assert not aux_rows(Features(moe_aux_loss_coeff=0.01), world=2, tp=1)


# ------------------------------------------------------------------------------ kernels

def test_router_kernels_per_option():
    # EP 2, TP 1: forward launches of the router row: layer norm 1, gating GEMM 1, routing 6
    # (top-k, softmax of the k values, zeros + scatter of the probabilities and of the map),
    # the dispatcher's preprocessing 8 (count sum, split sums, the 3 slices/sums of the
    # gathered counts, 3 host copies) = 16
    def n(features):
        return launches(model_of(cfg_of(features=features)).costs["moe_router"][0])
    assert n(Features()) == 16
    # + load-balancing loss: its softmax, top-k, map zeroed/scattered/made bool, count sum,
    # the probabilities' sum, product, sum, scale = 10 -> 26
    assert n(Features(moe_aux_loss_coeff=0.01)) == 26
    # + z-loss: log-sum-exp, square, mean, scale = 4 -> 20
    assert n(Features(moe_z_loss_coeff=0.001)) == 20
    # sigmoid scores: the sigmoid and the normalisation (sum, divide) -> 18
    assert n(Features(moe_router_score_function="sigmoid")) == 18
    # a capacity factor: top-k over each expert's tokens, mask scattered, and-ed, applied -> 20
    assert n(Features(moe_expert_capacity_factor=1.0)) == 20


def test_grouped_gemm_launches_once_for_all_local_experts():
    # 4 local experts (8 / EP 2) of 128 tokens each. Sequential: per expert the SwiGLU fc1
    # (1024 -> 2 x 2048), its 2 activation kernels and fc2: 4 x 4 = 16 forward launches;
    # grouped: fc1 once, the activation over all rows (2), fc2 once = 4
    seq = model_of(cfg_of()).costs["moe_experts"]
    grp = model_of(cfg_of(features=Features(moe_grouped_gemm=True))).costs["moe_experts"]
    assert (launches(seq[0]), launches(grp[0])) == (16, 4)
    # the device time: the same GEMM work, but each linear layer pays its fixed GEMM cost
    # once, not 4 times: 2 layers x 3 x t0 less forward, dgrad (input gradient) and wgrad
    t0 = cfg_of().gpu_spec.gemm_t0_us          # 3.426 us on the H200 fit
    for i in range(3):
        assert seq[i].dev - grp[i].dev == pytest.approx(2 * 3 * t0)
    # and the host dispatches 12 fewer forward launches: never slower
    assert seq[0].host > grp[0].host and seq[0].us > grp[0].us


def test_expert_gemms_take_the_busiest_ranks_tokens():
    # imbalance 1.5: every local expert's fc1 is 192 x (2 x 2048) x 1024, on the GEMM curve
    cfg = cfg_of(features=Features(moe_expert_load_imbalance=1.5))
    fwd = model_of(cfg).costs["moe_experts"][0]
    gpu = cfg.gpu_spec
    fc1 = [k[0] for k in fwd.kernels][0]
    assert fc1 == pytest.approx(gpu.gemm_us(192, 4096, 1024))
    # balanced, 128 tokens: at this small M the GEMM runs below its large-M efficiency, so
    # 1.5 x the tokens costs less than 1.5 x the time
    bal = [k[0] for k in model_of(cfg_of()).costs["moe_experts"][0].kernels][0]
    assert bal == pytest.approx(gpu.gemm_us(128, 4096, 1024)) and fc1 < 1.5 * bal


def test_assumptions_say_the_imbalance():
    gen = generate(cfg_of(), check_memory=False)
    on = gen.assumptions()["features"]
    assert on["moe_expert_gemms"].startswith("sequential")
    assert str(on["moe_expert_load_imbalance"]).startswith("1.0 (balanced routing")
    on = generate(cfg_of(features=Features(moe_expert_load_imbalance=1.2)),
                  check_memory=False).assumptions()["features"]
    assert on["moe_expert_load_imbalance"] == 1.2


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("features,field", [
    (Features(moe_expert_load_imbalance=0.5), "moe_expert_load_imbalance"),
    (Features(moe_pad_expert_input_to_capacity=True), "moe_pad_expert_input_to_capacity"),
    (Features(moe_expert_capacity_factor=0.0), "moe_expert_capacity_factor"),
    (Features(moe_aux_loss_coeff=-1.0), "moe_aux_loss_coeff"),
    (Features(moe_router_load_balancing_type="sinkhorn"), "moe_router_load_balancing_type"),
])
def test_bad_moe_options_name_their_key(features, field):
    with pytest.raises(InputError) as err:
        cfg_of(features=features)
    assert err.value.field == field


def test_moe_options_need_experts():
    dense = ModelSpec("dense", layers=2, hidden=256, ffn=1024, heads=4, vocab=1000)
    with pytest.raises(InputError) as err:
        resolve(dense, 1, features=Features(moe_grouped_gemm=True))
    assert err.value.field == "moe_grouped_gemm"


def test_cli_flag_in_the_error(capsys, tmp_path):
    rc = main(["generate", "--model", "mixtral-8x7b", "--world-size", "64", "--tp", "1",
               "--ep", "8", "--moe-expert-load-imbalance", "0.5", "-o",
               str(tmp_path / "x.txt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--moe-expert-load-imbalance" in err
    assert not (tmp_path / "x.txt").exists()


# ------------------------------------------------------------------------------ validation

def test_modelled_moe_step_is_no_faster_than_its_expert_flops():
    # traces/h200x2/moe_step.csv, case 'mixtral': per rank and layer 4096 tokens x top-2 =
    # 8192 routed rows, each 6 h F FLOPs forward (gate, up: 2 x 2hF; down: 2hF) and twice
    # that backward: 18 x 4096 x 14336 x 8192 x 4 layers = 3.46e13 FLOP, 35.0 ms at the
    # H200's 989.4 TFLOP/s peak; the modelled device time cannot be below it
    from simulator.validation.common import TRACES
    from simulator.validation.moe_modelled import modelled_compute_us
    from simulator.validation.moe_step import _parts
    path = TRACES / "h200x2" / "moe_step.csv"
    if not path.exists():
        pytest.skip("traces/h200x2/moe_step.csv not here")
    c = modelled_compute_us(_parts(path)["mixtral"])
    device_ms = (c["fwd_device_us"] + c["bwd_device_us"]) / 1e3
    assert 35.0 <= device_ms < 58.2   # and below the measured compute-only step, 58.2 ms
    assert (c["fwd_us"] + c["bwd_us"]) / 1e3 >= device_ms


def test_host_reads_the_splits_in_every_moe_layer():
    # Megatron's alltoall dispatcher copies the split sizes to the host and synchronises
    # before the dispatch (dropless, or dropping beyond a capacity): one sync point in the
    # layer's forward (permutation row), none in its backward; padded to a capacity the
    # sizes are known: none
    def syncs(features):
        p = model_of(cfg_of(features=features)).costs["moe_permute"]
        return [sum(1 for kn in c.kernels if len(kn) > 2) for c in p]
    assert syncs(Features()) == [1, 0, 0]
    assert syncs(Features(moe_expert_capacity_factor=1.0)) == [1, 0, 0]
    assert syncs(Features(moe_expert_capacity_factor=1.0,
                          moe_pad_expert_input_to_capacity=True)) == [0, 0, 0]
    # the sync drains the host's lead: a 1000 us GPU kernel issued just before the
    # permutation makes the host wait for it, so the permutation's kernels issued after the
    # read finish no earlier than 1000 us + the read's host time + what follows it
    from simulator.generate.compute import Cost
    perm = model_of(cfg_of()).costs["moe_permute"][0]
    after = perm.kernels[[len(kn) > 2 for kn in perm.kernels].index(True):]
    chained = Cost(((1000.0, 0.0),) + perm.kernels).us
    assert chained >= 1000.0 + sum(host for _, host, *rest in after)
