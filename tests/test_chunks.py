"""Interleaved model chunks follow layers, not row counts (issue 12, defect 1)."""
from __future__ import annotations

import warnings

import pytest

from simulator.engine import SimulationOptions, simulate
from simulator.engine.chunks import chunk_split, find_layers
from simulator.errors import SimulationWarning
from simulator.readers.workload import read_workload_text

from engine_helpers import UNIT, run

LAYER_ROW_NAMES = ["attention_column", "attention_row", "mlp_column", "mlp_row", "mlp_extra"]


def _layered_rows(layers: int, rows_per_layer: int, ga: int, ckpt: bool = False):
    """One micro-batch: a zero-time embedding row, ``layers`` layers of ``rows_per_layer``
    rows carrying 1200 ns forward, 1200 input-gradient and 1200 weight-gradient per layer,
    a zero-time output layer and three loss rows; unrolled ``ga`` times."""
    share = 1200 // rows_per_layer
    zero = "{} -1 0 NONE 0 0 NONE 0 0 NONE 0 0"
    block = [zero.format("embedding_layer")]
    for _ in range(layers):
        for k in range(rows_per_layer):
            block.append(f"{LAYER_ROW_NAMES[k]} -1 {share} NONE 0 {share} NONE 0 {share} NONE 0 0")
    block += [zero.format("final_column")] + [zero.format(f"cross_entropy{j}") for j in (1, 2, 3)]
    marks = ""
    if ckpt:  # checkpoint at each layer's first row, recompute initiated at its last
        period = len(block)
        firsts = [m * period + 1 + i * rows_per_layer for m in range(ga) for i in range(layers)]
        lasts = [f + rows_per_layer - 1 for f in firsts]
        marks = (f" checkpoints: {len(firsts)} {' '.join(map(str, firsts))}"
                 f" checkpoint_initiates: {len(lasts)} {' '.join(map(str, lasts))}")
    return block * ga, marks


@pytest.mark.parametrize("rows_per_layer", [1, 2, 3, 5])
@pytest.mark.parametrize("chunks, bubble_ns", [
    # PP 4, ga 8, 4 layers per stage of tf = 1200 and tb = 2400 ns: one micro-batch is
    # 4 x 3600 = 14400 ns, the ideal 8 x 14400 = 115200. The first stage idles (pp-1) times
    # one chunk's tf+tb: 2 chunks of 2 layers -> 3 x 7200 = 21600 = 3/16 of 115200;
    # 4 chunks of 1 layer -> 3 x 3600 = 10800 = 3/32 of 115200 ((pp-1)/(ga*vpp)).
    (2, 21600), (4, 10800)])
def test_interleaved_bubble_is_closed_form_whatever_the_rows_per_layer(rows_per_layer, chunks,
                                                                       bubble_ns):
    rows, _ = _layered_rows(4, rows_per_layer, 8)
    r = run(f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: 4 ga: 8 "
            f"vpp: {chunks} all_gpus: 4", rows, pp_schedule="interleaved")
    ideal = 8 * 4 * 3600
    assert r.compute_ns == ideal
    assert r.bubble_ns == bubble_ns
    assert r.bubble_ns * 8 * chunks == ideal * 3
    assert r.iteration_ns == ideal + bubble_ns


def test_recompute_stays_whole_when_chunks_follow_layers():
    # every layer replays the forward of its rows c .. j-1 (ASTRA-sim 1.0: from the checkpoint
    # at its first row up to the row before the initiating last row: 2 of 3 rows, 800 ns)
    # before its backward, in any schedule: compute is 8 micro-batches x 4 layers x
    # (3600 + 800) = 140800 ns per stage
    rows, marks = _layered_rows(4, 3, 8, ckpt=True)
    hdr = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: 4 ga: 8 all_gpus: 4"
    for sched, vpp in (("1f1b", None), ("interleaved", 2), ("interleaved", 4)):
        r = run(hdr + marks, rows, pp_schedule=sched, vpp_chunks=vpp)
        assert r.compute_ns == 140800, sched
        assert r.critical.recompute_ns == 8 * 4 * 800


def _names(*parts):
    return [type("R", (), {"name": n})() for n in parts]


def test_embedding_in_the_first_chunk_head_and_loss_in_the_last():
    layer = ["attention_column", "attention_row", "mlp_column", "mlp_row"]
    rows = _names("embedding_layer", *layer * 4, "final_column", "cross_entropy1",
                  "cross_entropy2", "cross_entropy3")
    split = chunk_split(rows, 2, "t.txt")
    # 1 embedding + 2 layers of 4 rows = rows 0-8; 2 layers + output + 3 loss rows = 9-20
    assert split.ranges == [(0, 9), (9, 21)]
    assert split.layers == 4
    assert "4 layers, 2 per chunk" in split.note


def test_numbered_and_moe_layer_names():
    # DeepSpeed-style numbered layers, two rows each, between an embedding and a loss row
    rows = _names("embedding", "Llama_layer1", "Llama_layer1", "Llama_layer2", "Llama_layer2",
                  "Llama_layer3", "Llama_layer3", "loss")
    assert find_layers([r.name for r in rows]) == (1, [1, 3, 5], 7)
    assert chunk_split(rows, 3, "t").ranges == [(0, 3), (3, 5), (5, 8)]
    # SimAI's numbered MoE rows: 'mlp_moelayer_N' numbers slots, not layers
    moe = ["embedding_layer"]
    for i in (1, 2):
        moe += [f"attention_column_{i}", f"attention_row_{i}"] + [
            f"mlp_moelayer_{5 * (i - 1) + k}" for k in range(1, 6)]
    moe.append("final_column")
    assert find_layers(moe) == (1, [1, 8], 15)
    assert chunk_split(_names(*moe), 2, "t").ranges == [(0, 8), (8, 16)]


def test_rows_without_layer_names_are_cut_by_count_with_a_warning():
    rows = ["l -1 1000 NONE 0 1000 NONE 0 1000 NONE 0 0"] * 8
    wl = read_workload_text("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: 2 "
                            "ga: 2 vpp: 2 all_gpus: 2\n8\n" + "\n".join(rows) + "\n", "t.txt")
    with pytest.warns(SimulationWarning, match="no layers found in the row names"):
        r = simulate(wl, UNIT, options=SimulationOptions(pp_schedule="interleaved"))
    assert any("cut by row count" in n for n in r.notes)


def test_more_chunks_than_layers_falls_back_to_row_count_with_a_warning():
    rows, _ = _layered_rows(2, 2, 4)
    wl = read_workload_text("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 pp: 2 "
                            f"ga: 4 all_gpus: 2\n{len(rows)}\n" + "\n".join(rows) + "\n", "t.txt")
    with pytest.warns(SimulationWarning, match="2 layer.* cannot make 4 chunks of whole layers"):
        simulate(wl, UNIT, options=SimulationOptions(pp_schedule="interleaved", vpp_chunks=4))


def test_generated_530b_interleaved_beats_1f1b():
    """The issue's example: 105 layers of hidden 20480 on 280 GPUs, TP 8 PP 35, vpp 3, 280
    micro-batches, full recompute. Cut by row count the interleaved schedule was slower than
    1F1B; with 3 layers per stage and one layer per chunk its bubble must shrink."""
    from simulator.generate import generate, get_preset, resolve, with_overrides

    model = with_overrides(get_preset("gpt-175b"), layers=105, hidden=20480, heads=128,
                           ffn=4 * 20480)
    cfg = resolve(model, 280, tp=8, pp=35, vpp=3, global_batch=280, seq_length=2048,
                  recompute=True, distributed_optimizer=True)
    wl = generate(cfg, check_memory=False).workload
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        one = simulate(wl, options=SimulationOptions(pp_schedule="1f1b"))
        inter = simulate(wl, options=SimulationOptions(pp_schedule="interleaved", vpp_chunks=3))
    assert inter.iteration_ns < one.iteration_ns
    assert inter.bubble_ns < one.bubble_ns
    # recompute is not lost at chunk boundaries: the same compute in both schedules
    assert inter.compute_ns == one.compute_ns
