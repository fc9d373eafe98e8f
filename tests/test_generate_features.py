"""Megatron-LM features of `collsim generate` (issue 12): rows and sizes derived by hand."""
from __future__ import annotations

import warnings

import pytest

from simulator.engine import SimulationOptions, simulate
from simulator.errors import InputError, SimulationWarning
from simulator.generate import generate, resolve
from simulator.generate.features import Features
from simulator.generate.models import ModelSpec
from simulator.generate.sizes import memory_estimate
from simulator.workload import Group, Op

# 4 layers, no SP (TP 1): rows are grad_gather, grad_param_comm (0-1), then per micro-batch
# embedding_layer, 4 x (attention_layer, mlp_layer), final_column, cross_entropy1-3
TINY4 = ModelSpec("tiny4", layers=4, hidden=256, ffn=1024, heads=4, vocab=1000,
                  max_position=0, tied_embeddings=False)


def gen(world=1, features=Features(), compute="model", model=TINY4, **kw):
    cfg = resolve(model, world, features=features, seq_length=kw.pop("seq_length", 128), distributed_optimizer=kw.pop("distributed_optimizer", True), **kw)
    return generate(cfg, compute=compute, check_memory=False)


def sim(w, **opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        return simulate(w, options=SimulationOptions(**opts))


# ------------------------------------------------------------------------------ recompute

def test_full_uniform_groups_of_two_layers():
    # micro-batch 0 occupies rows 2-14 (13 rows), micro-batch 1 rows 15-27; the layers of
    # micro-batch 0 are rows 3-4, 5-6, 7-8, 9-10. Groups of 2 layers: checkpoint at the
    # group's first row, recompute initiated at the row after its last, so the replay of
    # rows c .. j-1 covers the whole group: (3, 7), (7, 11) (row 7 is the second group's
    # checkpoint too: its initiate replays from the checkpoint before it), then +13.
    w = gen(features=Features(recompute_granularity="full", recompute_num_layers=2),
            global_batch=2).workload
    assert w.checkpoints == (3, 7, 16, 20)
    assert w.checkpoint_initiates == (7, 11, 20, 24)


def test_full_block_recomputes_only_the_first_layers():
    # block 1: only layer 0 of each micro-batch (rows 3-4 and 16-17), initiated at the row
    # after it (layer 1's first row, 5 and 18) so that rows c .. j-1 are the whole layer
    w = gen(features=Features(recompute_granularity="full", recompute_method="block",
                              recompute_num_layers=1), global_batch=2).workload
    assert (w.checkpoints, w.checkpoint_initiates) == ((3, 16), (5, 18))


def test_legacy_recompute_flag_is_full_uniform_per_layer():
    w = gen(recompute=True, global_batch=1).workload
    # layers at rows 3-4, 5-6, 7-8, 9-10; each initiated at the row after it (the next
    # layer's checkpoint, then the output layer at 11)
    assert w.checkpoints == (3, 5, 7, 9) and w.checkpoint_initiates == (5, 7, 9, 11)


def test_recompute_groups_stay_inside_model_chunks():
    # PP 2 x vpp 2: a stage holds 2 layers, one per chunk; groups of 2 cannot span chunks,
    # so every layer is its own group
    m = ModelSpec("t", layers=4, hidden=256, ffn=1024, heads=4, vocab=1000, max_position=0,
                  tied_embeddings=False)
    w = gen(world=2, model=m, pp=2, vpp=2, global_batch=2,
            features=Features(recompute_granularity="full", recompute_num_layers=2)).workload
    # block: embedding (2), layer (3-4), recompute_chunk_end (5), layer (6-7), final + loss
    # (8-11); 10 rows; mb 1 at 12. The replay runs rows c .. j-1 before row j's backward, so
    # each layer initiates at the row after it inside its chunk's pass: the first chunk's at
    # the zero-work recompute_chunk_end row (5), the last chunk's at the output layer (8).
    # Before, the first chunk's layer initiated at its own last row (4) and its MLP row's
    # forward was never recomputed.
    assert [r.name for r in w.rows[2:12]] == [
        "embedding_layer", "attention_layer", "mlp_layer", "recompute_chunk_end",
        "attention_layer", "mlp_layer", "final_column", "cross_entropy1", "cross_entropy2",
        "cross_entropy3"]
    assert w.checkpoints == (3, 6, 13, 16)
    assert w.checkpoint_initiates == (5, 8, 15, 18)
    end = w.rows[5]
    assert (end.fwd_ns, end.ig_ns, end.wg_ns) == (0, 0, 0) and end.fwd.op is None
    # simulated (interleaved, as generated): Megatron's full recompute replays each layer's
    # whole forward, so the recompute is the four layer rows' forwards of each of the two
    # micro-batches (rows 3, 4, 6, 7 and 13, 14, 16, 17); the old table left rows 4 and 14
    # out
    r = sim(w, pp_schedule="interleaved", vpp_chunks=2)
    layers = [3, 4, 6, 7, 13, 14, 16, 17]
    assert r.critical.recompute_ns == sum(w.rows[i].fwd_ns for i in layers)
    assert all(w.rows[i].fwd_ns > 0 for i in layers)


def test_selective_recompute_replays_core_attention_only():
    plain = gen(global_batch=2).workload
    sel = gen(features=Features(recompute_granularity="selective"), global_batch=2).workload
    names = [r.name for r in sel.rows]
    # each layer: attention_layer, attention_core, mlp_layer; a micro-batch is 1 + 4 x 3 +
    # 1 + 3 = 17 rows from row 2: cores at 4, 7, 10, 13 and, 17 rows later, 21, 24, 27, 30
    cores = [i for i, n in enumerate(names) if n == "attention_core"]
    assert cores == [4, 7, 10, 13, 21, 24, 27, 30]
    # checkpoint at the core, initiate at the next row: rows c .. j-1 is the core alone
    assert sel.checkpoints == tuple(cores)
    assert sel.checkpoint_initiates == tuple(k + 1 for k in cores)
    # the core row holds no collective and no backward: its forward was moved out of
    # attention_layer, so the table's total work is unchanged (to a ns of rounding per row)
    assert all(sel.rows[i].fwd.op is None and sel.rows[i].ig_ns == 0 for i in cores)
    total = lambda w: sum(r.fwd_ns + r.ig_ns + r.wg_ns for r in w.rows)  # noqa: E731
    assert abs(total(sel) - total(plain)) <= len(sel.rows)
    # simulated: the recompute is exactly the 8 core-attention forwards
    r = sim(sel)
    assert r.critical.recompute_ns == sum(sel.rows[i].fwd_ns for i in cores)
    assert r.critical.recompute_ns > 0


def test_recompute_memory_follows_the_method():
    def gib(**f):
        cfg = resolve(TINY4, 1, seq_length=128, features=Features(**f) if f else None, distributed_optimizer=True)
        return memory_estimate(cfg).activations_gib
    none, full1 = gib(), gib(recompute_granularity="full")
    block2 = gib(recompute_granularity="full", recompute_method="block", recompute_num_layers=2)
    assert full1 < block2 < none


@pytest.mark.parametrize("features, key", [
    (Features(recompute_method="block"), "recompute_method"),
    (Features(recompute_granularity="selective", recompute_num_layers=2),
     "recompute_num_layers"),
    (Features(recompute_granularity="partial"), "recompute_granularity"),
])
def test_recompute_flags_megatron_rejects(features, key):
    # the library names the option key (the CLI shows the flag: test_cli_* below)
    with pytest.raises(InputError, match=f"^{key}: "):
        resolve(TINY4, 1, features=features, distributed_optimizer=True)


# ---------------------------------------------------------------------- overlap-grad-reduce

def test_gradient_buckets_on_the_last_micro_batch():
    # TINY4 on 4 GPUs (DP 4), ga 2, buckets of 1,000,000 parameters. Per GPU: attention
    # 4h^2 = 262,144 + norm 256 = 262,400; MLP 2 x 256 x 1024 = 524,288 + 256 = 524,544;
    # embedding 1024 (padded vocab) x 256 = 262,144; output layer + final norm 262,400.
    # Backward order: output 262,400 + MLP3 -> 786,944 + attention3 -> 1,049,344 (closes at
    # attention3); MLP2 + attention2 + MLP1 -> 1,311,488 (closes at MLP1); attention1 + MLP0
    # + attention0 -> 1,049,344 (closes at attention0); the embedding's 262,144 is left.
    # Rows: grad_gather (0; its reduce-scatter moved into the buckets), micro-batch 0 at 1-13,
    # micro-batch 1 at 14-26: embedding 14, attention0 15, MLP1 18, attention3 21.
    g = gen(world=4, global_batch=8,
            features=Features(overlap_grad_reduce=True, bucket_size=1_000_000))
    w = g.workload
    assert [r.name for r in w.rows[:1]] == ["grad_gather"]
    dp = {i: r.wg.size_bytes for i, r in enumerate(w.rows) if r.wg.group is Group.DP
          and r.wg.op is Op.REDUCESCATTER}
    assert dp == {14: 4 * 262_144, 15: 4 * 1_049_344, 18: 4 * 1_311_488, 21: 4 * 1_049_344}
    # all of the stage's gradients, 4 bytes each: what the single reduce-scatter carried
    assert sum(dp.values()) == 4 * g.params.dense == 4 * 3_672_320


def test_overlapped_gradient_reduction_hides_behind_the_backward():
    kw = dict(world=64, model=ModelSpec("m", layers=8, hidden=2048, ffn=8192, heads=16,
                                        vocab=32000, max_position=0), tp=8, global_batch=32,
              seq_length=1024)
    after = sim(gen(**kw).workload)
    over = sim(gen(features=Features(overlap_grad_reduce=True), **kw).workload)
    assert over.critical.exposed_ns["DP"] < after.critical.exposed_ns["DP"]
    assert over.iteration_ns < after.iteration_ns
    assert over.compute_ns == after.compute_ns


def test_feature_flags_on_the_command_line(tmp_path, capsys):
    from simulator.cli import main
    from simulator.readers.workload import read_workload

    out = tmp_path / "w.txt"
    rc = main(["generate", "--model", "gpt-7b", "--world-size", "8", "--tp", "4",
               "--global-batch", "4", "--recompute-granularity", "selective",
               "--overlap-grad-reduce", "--ddp-bucket-size", "50000000", "-o", str(out),
               "--quiet", "--use-distributed-optimizer"])
    assert rc == 0
    w = read_workload(str(out))
    # selective: checkpoint at each core-attention row, recompute initiated at the next row
    assert w.checkpoints and w.checkpoint_initiates == tuple(c + 1 for c in w.checkpoints)
    assert any(r.wg.op is Op.REDUCESCATTER and r.name != "grad_param_comm" for r in w.rows)
    rc = main(["generate", "--model", "gpt-7b", "--world-size", "8", "--recompute-method",
               "block", "-o", str(out)])
    assert rc == 2 and "--recompute-method" in capsys.readouterr().err


# ---------------------------------------------------------------------- context parallelism

@pytest.mark.parametrize("comm_type", ["p2p", "allgather", "a2a"])
def test_context_parallel_rows_and_sizes(comm_type):
    # 8 GPUs, TP 2, CP 2 -> DP 2; sequence 128 -> 64 tokens a rank; global batch 4 -> ga 2.
    # The header's EP is the CP group; the table's DP (gradient reduction) is DP x CP = 4.
    g = gen(world=8, tp=2, global_batch=4, features=Features(cp=2, cp_comm_type=comm_type))
    w = g.workload
    assert (w.tp, w.ep, w.all_gpus, w.ga) == (2, 2, 8, 2)
    assert g.info()["dp"] == 2 and g.info()["cp"] == 2
    # TP all-reduce of one activation: 2 bytes x 64 tokens x hidden 256 = 32768
    att = next(r for r in w.rows if r.name == "attention_layer")
    assert (att.fwd.op, att.fwd.size_bytes) == (Op.ALLREDUCE, 32768)
    # 2 heads and 2 KV heads of 64 a TP rank
    if comm_type == "a2a":
        qkv = [r for r in w.rows if r.name == "attention_cp_qkv"]
        out = [r for r in w.rows if r.name == "attention_cp_out"]
        assert len(qkv) == len(out) == 4 * 2
        # Q, K, V of 64 tokens: 2 bytes x 64 x (2 + 2 x 2) heads x 64 = 49152; output 16384
        assert {(r.fwd.op, r.fwd.group, r.fwd.size_bytes, r.ig.size_bytes) for r in qkv} == {
            (Op.ALLTOALL, Group.EP, 49152, 49152)}
        assert {(r.fwd.size_bytes, r.ig.size_bytes) for r in out} == {(16384, 16384)}
    else:
        kv = [r for r in w.rows if r.name == "attention_cp_kv"]
        assert len(kv) == 4 * 2
        # K and V of the whole sequence: 2 x 2 bytes x 64 tokens x CP 2 x 2 heads x 64 = 65536
        assert {(r.fwd.op, r.fwd.group, r.fwd.size_bytes, r.ig.op, r.ig.size_bytes)
                for r in kv} == {(Op.ALLGATHER, Group.EP, 65536, Op.REDUCESCATTER, 65536)}
    # gradients over DP x CP: 4 bytes a parameter of the whole (unsplit) layer stack
    rs = next(r for r in w.rows if r.name == "grad_param_comm")
    assert rs.wg.size_bytes == 4 * g.params.dense
    r = sim(w)
    assert (r.ep, r.dp) == (2, 4)


def test_context_parallel_halves_the_attention_work_per_rank():
    one = gen(world=2, global_batch=2, seq_length=256)
    two = gen(world=2, global_batch=1, seq_length=256, features=Features(cp=2))
    att = lambda g: next(r for r in g.workload.rows if r.name == "attention_layer")  # noqa
    assert att(two).fwd_ns < att(one).fwd_ns and att(two).ig_ns < att(one).ig_ns


@pytest.mark.parametrize("kw, flag", [
    (dict(world=6, features=Features(cp=4)), "gpus"),
    (dict(world=4, seq_length=100, features=Features(cp=4)), "seq_length"),
    (dict(world=8, features=Features(cp=8, cp_comm_type="a2a")), "cp_comm_type"),
])
def test_context_parallel_checks(kw, flag):
    with pytest.raises(InputError, match=f"^{flag}: "):
        resolve(TINY4, distributed_optimizer=kw.pop("distributed_optimizer", True), **kw)


# ------------------------------------------------------------ expert tensor parallelism

MOE = ModelSpec("moe", layers=2, hidden=256, ffn=1024, heads=4, vocab=1000, max_position=0,
                tied_embeddings=False, experts=4, topk=2, moe_ffn=512)


def test_expert_tensor_parallel_one_keeps_whole_experts():
    # 8 GPUs, TP 2, DP 4, EP 2; sequence 128, micro-batch 1 (SP on for MoE with TP)
    tp2 = gen(world=8, tp=2, ep=2, model=MOE, global_batch=4)
    et1 = gen(world=8, tp=2, ep=2, model=MOE, global_batch=4, features=Features(etp=1))
    # local experts 4 / EP 2 = 2, each 2 x 256 x 512 = 262,144 parameters; 2 layers:
    # ETP = TP 2 -> 2 x 2 x 262,144 / 2 = 524,288; ETP 1 -> 1,048,576
    assert tp2.params.expert == 524_288 and et1.params.expert == 1_048_576
    slot = lambda g, k: [r for r in g.workload.rows if r.name == "mlp_moelayer"][k]  # noqa
    # slots 2 and 3 gather / scatter the routed tokens over TP: top-2 x 2 bytes x 128 x 256
    assert (slot(tp2, 2).fwd.op, slot(tp2, 2).fwd.size_bytes) == (Op.ALLGATHER, 131072)
    assert slot(et1, 2).fwd.op is None and slot(et1, 3).fwd.op is None
    assert slot(et1, 2).ig.op is None and slot(et1, 3).ig.op is None
    # the expert gradients: 4 bytes a parameter over DP_EP
    rs = lambda g: next(r for r in g.workload.rows if r.name == "moe_grad_norm2")  # noqa
    assert rs(et1).wg.size_bytes == 4 * 1_048_576
    with pytest.raises(InputError, match="expert_tensor_parallel_size"):
        resolve(MOE, 8, tp=2, ep=2, features=Features(etp=4), distributed_optimizer=True)


def test_shared_experts_gather_and_scatter_over_tp():
    # one shared expert on 8 GPUs, TP 2 (SP): its own all-gather / reduce-scatter of one
    # activation, 2 bytes x 128 tokens x 256 = 65536, per MoE layer (2 layers)
    shared = ModelSpec("moe_s", layers=2, hidden=256, ffn=1024, heads=4, vocab=1000,
                       max_position=0, tied_embeddings=False, experts=4, topk=2, moe_ffn=512,
                       shared_experts=1)
    w = gen(world=8, tp=2, ep=2, model=shared, global_batch=4).workload
    col = [r for r in w.rows if r.name == "mlp_shared_column"]
    row = [r for r in w.rows if r.name == "mlp_shared_row"]
    assert len(col) == len(row) == 2  # DP 4, global batch 4: one micro-batch
    assert {(r.fwd.op, r.fwd.size_bytes, r.ig.op, r.ig.size_bytes) for r in col} == {
        (Op.ALLGATHER, 65536, Op.REDUCESCATTER, 65536)}
    assert {(r.fwd.op, r.ig.op) for r in row} == {(Op.REDUCESCATTER, Op.ALLGATHER)}
    # without a shared expert the layer has the five routed-expert rows only
    plain = gen(world=8, tp=2, ep=2, model=MOE, global_batch=4).workload
    assert not any(r.name.startswith("mlp_shared") for r in plain.rows)


# --------------------------------------------------------------------------- DeepSpeed ZeRO
# TINY4 on 4 GPUs (DP 4), ga 2: 3,672,320 parameters a GPU (see the bucket test), bf16 on the
# wire (2 bytes a parameter)

def _dp_comms(w, column):
    return {i: (getattr(r, column).op, getattr(r, column).group, getattr(r, column).size_bytes)
            for i, r in enumerate(w.rows) if getattr(r, column).op is not None}


def test_zero1_reduces_and_gathers_once_after_the_backward():
    w = gen(world=4, global_batch=8, features=Features(zero_stage=1)).workload
    assert [r.name for r in w.rows[:2]] == ["zero_param_gather", "zero_grad_reduce"]
    assert _dp_comms(w, "wg") == {0: (Op.ALLGATHER, Group.DP, 7_344_640),
                                  1: (Op.REDUCESCATTER, Group.DP, 7_344_640)}


def test_zero2_reduces_buckets_in_every_backward():
    # the buckets of the Megatron test (1,049,344 / 1,311,488 / 1,049,344 / 262,144 params)
    # at 2 bytes, in both micro-batches (rows 1-13 and 14-26), after the gather row 0
    w = gen(world=4, global_batch=8,
            features=Features(zero_stage=2, bucket_size=1_000_000)).workload
    buckets = {0: 524_288, 1: 2_098_688, 4: 2_622_976, 7: 2_098_688}
    expect = {0: (Op.ALLGATHER, Group.DP, 7_344_640)}
    for start in (1, 14):
        expect.update({start + k: (Op.REDUCESCATTER, Group.DP, b) for k, b in buckets.items()})
    assert _dp_comms(w, "wg") == expect


def test_zero3_gathers_every_layer_twice_and_reduces_it():
    # a layer: attention 262,144 + 2 norms 512 + MLP 524,288 = 786,944 params -> 1,573,888
    # bytes; embedding 262,144 -> 524,288; output layer + final norm 262,400 -> 524,800
    w = gen(world=4, global_batch=8, features=Features(zero_stage=3)).workload
    gathers = [r for r in w.rows if r.name == "zero3_param_gather"]
    regathers = [r for r in w.rows if r.name == "zero3_param_regather"]
    assert [r.fwd.size_bytes for r in gathers[:6]] == [524_288] + [1_573_888] * 4 + [524_800]
    assert all(r.fwd.op is Op.ALLGATHER and r.fwd.group is Group.DP_EP for r in gathers)
    assert all(r.wg.op is Op.REDUCESCATTER and r.wg.group is Group.DP and
               r.wg.size_bytes == r.fwd.size_bytes for r in gathers)
    assert [(r.ig.op, r.ig.size_bytes) for r in regathers] == [
        (Op.ALLGATHER, r.fwd.size_bytes) for r in gathers]
    # per micro-batch the reduce-scatters carry every parameter once: 2 x 3,672,320
    assert sum(r.wg.size_bytes for r in gathers) == 2 * 2 * 3_672_320
    assert not any(r.name.startswith(("grad_", "zero_")) for r in w.rows)
    # the DP_EP group of a dense job is the DP group
    assert sim(w).dp_ep == 4


@pytest.mark.parametrize("kw, match", [
    (dict(world=4, pp=2, features=Features(zero_stage=2)), "stage 0 or 1"),
    (dict(world=4, model=MOE, features=Features(zero_stage=1)), "experts"),
])
def test_zero_combinations_deepspeed_refuses(kw, match):
    model = kw.pop("model", TINY4)
    with pytest.raises(InputError, match=match):
        resolve(model, distributed_optimizer=kw.pop("distributed_optimizer", True), **kw)


# ------------------------------------------------------------------- FP8, attention backend

BIG = ModelSpec("big", layers=2, hidden=8192, ffn=32768, heads=64, vocab=32000,
                max_position=0, tied_embeddings=False)


def _row(g, name):
    return next(r for r in g.workload.rows if r.name == name)


def test_fp8_halves_gemm_bound_layers_only():
    # an MLP of 4096 tokens x 8192 x 32768 is tensor-core bound. The H200 fit's FP8 GEMMs
    # (torch._scaled_mm, traces/h200/compute/run5): e_max 0.750 on 2 x 989.4 TFLOP/s with
    # x0 97.5, so each 2.2 TFLOP GEMM takes 2.2e12 / (1978.8e12 x 0.750 x 0.977 x 0.988 x
    # 0.997) = 1.54 ms against bf16's 2.91 ms (0.53x). The weight gradient is its GEMMs
    # alone: ~0.53x. The input gradient adds the output gradient's cast-transpose (4 bytes
    # an element of 4096 x (32768 + 8192) at the fitted cast's 3.4 TB/s: 0.2 ms on 6.4 ms):
    # ~0.6x. The forward adds the input's and the weights' cast-transposes (4 bytes an
    # element of 4096 x 8192, 32768 x 8192 twice, 4096 x 32768: 0.83 ms) to 3.1 ms of GEMMs,
    # with 0.4 ms of element-wise kernels unchanged: ~0.7x (0.75 with the host lead of
    # compute.py _host_lead). The output layer and the attention kernel are bf16.
    kw = dict(model=BIG, seq_length=4096, features=Features(recompute_granularity="selective"))
    bf16 = gen(**kw)
    fp8 = gen(**{**kw, "features": Features(recompute_granularity="selective", fp8="hybrid")})
    for col, lo, hi in (("fwd_ns", 0.66, 0.80), ("ig_ns", 0.55, 0.68), ("wg_ns", 0.48, 0.58)):
        ratio = getattr(_row(fp8, "mlp_layer"), col) / getattr(_row(bf16, "mlp_layer"), col)
        assert lo <= ratio <= hi, col
    assert _row(fp8, "attention_core").fwd_ns == _row(bf16, "attention_core").fwd_ns
    # the output layer keeps bf16's kernels; its row takes the lead factor of the step's
    # chain, which with FP8 layers is another one (compute.py ComputeModel.link_fp8)
    from simulator.generate.builder import fp8_gpu
    from simulator.generate.compute import ComputeModel
    from simulator.generate.sizes import megatron_params
    cfgs = [resolve(BIG, 1, features=f, seq_length=4096, distributed_optimizer=True)
            for f in (kw["features"], Features(recompute_granularity="selective",
                                               fp8="hybrid"))]
    cm_bf16 = ComputeModel(cfgs[0], megatron_params(cfgs[0]))
    cm = ComputeModel(cfgs[1], megatron_params(cfgs[1]))
    cm.link_fp8(ComputeModel(cfgs[1], megatron_params(cfgs[1]), gpu=fp8_gpu(cfgs[1].gpu_spec)))
    assert cm.row_costs("final_column") == cm_bf16.row_costs("final_column")
    for col, i in (("fwd_ns", 0), ("ig_ns", 1)):
        ratio = getattr(_row(fp8, "final_column"), col) / getattr(_row(bf16, "final_column"),
                                                                  col)
        assert ratio == pytest.approx(cm.lead[i > 0] / cm_bf16.lead[i > 0], rel=1e-5), col
    assert _row(fp8, "attention_layer").fwd_ns < _row(bf16, "attention_layer").fwd_ns
    with pytest.raises(InputError, match="fp8: FP8 GEMMs need Hopper"):
        resolve(TINY4, 1, gpu="a100", features=Features(fp8="hybrid"), distributed_optimizer=True)


def test_unfused_attention_prices_the_score_matrix():
    from simulator.generate.gpu import get_gpu

    gpu = get_gpu("h100")
    # 1 sequence of 1024, 64 heads of 128 (TP 1): one batched kernel of 64 GEMMs of
    # 1024 x 1024 x 128 (QK^T, one fixed cost), the passes over the 64 x 1024^2 scores
    # (mask, softmax: the H200 fit on the measured unfused path, t0 + ns per score; the H100
    # keeps t0 and takes the ns per score x 4800/3350, memory-bound: 0.006953 -> 0.0099625,
    # 0.007236 -> 0.010368), one of 64 GEMMs of 1024 x 128 x 1024 (PV). Backward: dV, dQ, dK
    # (1024 x 128 x 1024) and dP (1024 x 1024 x 128), the scores' backward passes.
    n, s, d = 64, 1024, 128
    t0 = gpu.gemm_t0_us
    square = t0 + n * (gpu.gemm_us(s, s, d) - t0)
    thin = t0 + n * (gpu.gemm_us(s, d, s) - t0)
    (f0, fns), (b0, bns) = gpu.unfused_fwd, gpu.unfused_bwd
    assert f0 == 0.0 and fns == pytest.approx(0.0099625, abs=1e-7)
    assert b0 == 68.052 and bns == pytest.approx(0.010368, abs=1e-7)
    fwd = square + thin + f0 + fns * n * s * s / 1e3    # 668.6 us of score passes
    bwd = square + 3 * thin + b0 + bns * n * s * s / 1e3   # 764.1 us
    # (the measured path: PyTorch's separate kernels, no attention dropout)
    feats = dict(recompute_granularity="selective")
    un = gen(model=BIG, seq_length=1024,
             features=Features(attention_backend="unfused", masked_softmax_fusion=False,
                               attention_dropout=0.0, **feats))
    fl = gen(model=BIG, seq_length=1024, features=Features(**feats))
    assert abs(_row(un, "attention_core").fwd_ns - fwd * 1000) <= 1
    # the backward lives in attention_layer's input gradient: it moved by (unfused - flash),
    # 137 us, give or take the host's share: the unfused GPT's measured host floor (x1.19 per
    # layer backward, compute.py _host_variant) changes how much of the row the dispatch
    # lead carried over the micro-batch hides (here 96 us moved)
    flash_bwd = ComputeModelCore(fl)
    moved = (_row(un, "attention_layer").ig_ns - _row(fl, "attention_layer").ig_ns) / 1000
    assert 0.6 * (bwd - flash_bwd) <= moved <= 1.1 * (bwd - flash_bwd)
    # memory: the bf16 probabilities, 2 bytes x 64 heads x 1024^2, kept by each of 2 layers
    # (selective recompute drops them again); with Megatron's attention dropout (0.1 by
    # default) also its 1-byte mask and 2-byte output: 5 bytes (Korthikanti et al.'s
    # 5 a s^2 b per layer)
    plain = resolve(BIG, 1, seq_length=1024, distributed_optimizer=True)
    unf = resolve(BIG, 1, seq_length=1024, distributed_optimizer=True,
                  features=Features(attention_backend="unfused", attention_dropout=0.0))
    grown = (memory_estimate(unf).activations_gib - memory_estimate(plain).activations_gib)
    assert abs(grown * 2**30 - 2 * 2 * 64 * 1024**2) < 1e3
    drop = resolve(BIG, 1, seq_length=1024, distributed_optimizer=True,
                   features=Features(attention_backend="unfused"))
    grown = (memory_estimate(drop).activations_gib - memory_estimate(plain).activations_gib)
    assert abs(grown * 2**30 - 2 * 5 * 64 * 1024**2) < 1e3


def test_megatron_fused_softmax_and_attention_dropout():
    """Megatron's core attention (the default of --attention-backend unfused): the fused
    scale-mask-softmax, one kernel each way, priced as the measured layer-norm kernel over
    its bytes, and the dropout on the probabilities as the measured dropout kernels.

    H100 (derived: the H200 fit's bandwidths x 3350/4800), 64 heads of 128, 1 x 1024
    (TP 1): 64 x 1024^2 = 67,108,864 scores.
    softmax forward: 4 bytes a score = 268,435,456 B at layer_norm.fwd 3028.1 x 3350/4800 =
      2113.36 GB/s x 1024/(1024 + 552.2) = 0.649664 -> 1372.99 GB/s: 195.51 + 4.833 =
      200.34 us
    softmax backward: 6 bytes = 402,653,184 B at layer_norm.bwd 2814.4 x 3350/4800 =
      1964.23 GB/s x 1024/(1024 + 700.1) = 0.593933 -> 1166.62 GB/s: 345.14 + 5.794 =
      350.94 us
    dropout: 5 bytes = 335,544,320 B each way; forward at dropout.fwd 3024.2 x 3350/4800 =
      2110.64 GB/s x 1024/1024.1: 158.99 + 2.444 = 161.43 us; backward at dropout.bwd
      4403.8 x 3350/4800 = 3073.49 GB/s (c0 0): 109.17 + 1.76 = 110.93 us
    The batched GEMMs are those of the measured path (test above)."""
    from simulator.generate.compute import unfused_attention_us, unfused_gemms_us
    from simulator.generate.gpu import get_gpu

    gpu = get_gpu("h100")
    gf, gb = unfused_gemms_us(gpu, 1, 1024, 64, 128)
    f, b, _ = unfused_attention_us(gpu, 1, 1024, 64, 128, fused_softmax=True)
    assert f - gf == pytest.approx(200.34, abs=0.02)
    assert b - gb == pytest.approx(350.94, abs=0.02)
    f, b, _ = unfused_attention_us(gpu, 1, 1024, 64, 128, fused_softmax=True, dropout=0.1)
    assert f - gf == pytest.approx(200.34 + 161.43, abs=0.03)
    assert b - gb == pytest.approx(350.94 + 110.93, abs=0.03)
    # against the measured PyTorch path (on the H100 0.0099625 ns a score forward, 68.316 us
    # + 0.010368 ns backward: 668.57 / 764.10 us): the fused kernel moves far fewer bytes
    f, b, _ = unfused_attention_us(gpu, 1, 1024, 64, 128)
    assert f - gf == pytest.approx(668.57, abs=0.02)
    assert b - gb == pytest.approx(763.84, abs=0.02)   # t0 68.052 after the GEMM refit


def test_fused_softmax_is_the_default_of_megatron_local_attention():
    """--transformer-impl local / --attention-backend unfused: Megatron's fused softmax and
    attention dropout 0.1 unless told otherwise; the kernel's limits (keys in (16, 4096],
    micro-batch x heads of a rank a multiple of 4) fall back to PyTorch's kernels with a
    note; the assumptions say which runs."""
    cfg = resolve(BIG, 1, seq_length=1024, features=Features(attention_backend="unfused"))
    f = cfg.features
    assert f.masked_softmax_fusion and f.attention_dropout == 0.1
    on = f.describe()
    assert on["attention_softmax"] == "Megatron's fused scale-mask-softmax"
    assert on["attention_dropout"] == 0.1
    # 8192 keys: beyond the kernel's 4096
    long = resolve(BIG, 1, seq_length=8192, features=Features(attention_backend="unfused"))
    assert not long.features.masked_softmax_fusion
    assert any("fused scale-mask-softmax does not take 8192 keys" in n for n in long.notes)
    # 1 x 2 heads a rank (TINY-like: 2 heads over TP 1): not a multiple of 4
    two = ModelSpec("two", layers=2, hidden=256, ffn=1024, heads=2, vocab=1000,
                    max_position=0, tied_embeddings=False)
    odd = resolve(two, 1, seq_length=1024, features=Features(attention_backend="unfused"))
    assert not odd.features.masked_softmax_fusion
    # flash: no score passes, the attention dropout is the kernel's
    assert "attention_softmax" not in resolve(BIG, 1, seq_length=1024).features.describe()
    with pytest.raises(InputError) as e:
        resolve(BIG, 1, seq_length=1024, features=Features(attention_dropout=1.0))
    assert e.value.field == "attention_dropout"


def ComputeModelCore(g):
    """The flash kernel's backward the compute model prices (us) for a generated config."""
    from simulator.generate.compute import ComputeModel
    from simulator.generate.sizes import megatron_params

    return ComputeModel(g.config, megatron_params(g.config)).core_attention_us()[1]


# ------------------------------------------------------------------------------ assumptions

def test_generate_and_simulate_report_what_they_assumed(tmp_path, capsys):
    import json

    from simulator.cli import main

    out, gj, sj = tmp_path / "w.txt", tmp_path / "g.json", tmp_path / "s.json"
    assert main(["generate", "--model", "gpt-7b", "--world-size", "8", "--tp", "4",
                 "--global-batch", "4", "--gpu", "h200", "--fp8-format", "hybrid",
                 "--recompute-granularity", "full", "--json", str(gj), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "assumed: H200" in text and "fp8 hybrid" in text
    g = json.loads(gj.read_text())["assumptions"]
    assert g["gpu"] == "h200" and g["compute"].startswith("GPU model")
    assert g["features"]["fp8"] == "hybrid"
    assert g["features"]["recompute"] == "full (uniform, 1 layer(s))"
    assert json.loads((tmp_path / "w.txt.meta.json").read_text()) == g
    assert main(["simulate", str(out), "--json", str(sj)]) == 0
    s = json.loads(sj.read_text())["assumptions"]
    assert (s["gpu"], s["features"]["fp8"]) == ("h200", "hybrid")
    assert "assumed      GPU H200" in capsys.readouterr().out
    # a table without its sidecar says its compute times are of unknown origin
    (tmp_path / "w.txt.meta.json").unlink()
    assert main(["simulate", str(out), "--json", str(sj), "--quiet"]) == 0
    assert "not recorded" in json.loads(sj.read_text())["assumptions"]["compute"]


def test_no_compute_is_said_to_be_communication_only():
    g = gen(compute="none")
    assert g.assumptions()["compute"].startswith("none")


def test_gradient_buckets_stay_inside_model_chunks():
    # PP 2 x vpp 2 on 4 GPUs (DP 2): a stage holds 2 of the 4 layers, one per chunk. With
    # buckets far larger than the stage, each chunk still reduces its own gradients in one
    # bucket at its earliest row: chunk 0 = embedding (no table on a PP stage here: 0 params)
    # + layer 0 -> at its attention row; chunk 1 = layer 1 + output layer -> at its attention
    # row. Micro-batch rows: embedding, (attention, mlp) x 2, final, 3 loss = 9; the last
    # micro-batch (ga 2) starts after grad_gather and one micro-batch: row 1 + 9 = 10.
    g = gen(world=4, pp=2, vpp=2, global_batch=4,
            features=Features(overlap_grad_reduce=True, bucket_size=10**9))
    w = g.workload
    rs = {i: r.wg.size_bytes for i, r in enumerate(w.rows) if r.wg.op is Op.REDUCESCATTER}
    # layer: 262,400 + 524,544 = 786,944 params; the output layer and final norm get the rest
    # of the stage's 2 x 786,944 + 262,144 (table) + 256 (final norm) = 1,836,288
    assert rs == {11: 4 * 786_944, 13: 4 * (786_944 + 262_400)}
    assert sum(rs.values()) == 4 * g.params.dense
