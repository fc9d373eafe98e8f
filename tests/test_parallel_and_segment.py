"""Megatron rank layout, group placement on servers, and micro-batch segmentation."""
import warnings

import pytest

from repo_paths import WORKLOADS, shared_path
from simulator.engine.segment import segment
from simulator.errors import SimulationWarning
from simulator.parallel import make_parallel, stage_placements
from simulator.readers.workload import read_workload, read_workload_text
from simulator.workload import Group


def groups_of_rank0(par, group, stage=0):
    firsts, stride, size = par.progression(group, stage)
    return [tuple(int(f) + stride * k for k in range(size)) for f in firsts]


def test_megatron_order_tp2_pp2_dp4_ep2():
    # 16 GPUs: TP 2 innermost, DP 4 (stride 2), PP 2 outermost (stride 8)
    par = make_parallel(16, tp=2, pp=2, ep=2)
    assert (par.dp, par.dp_ep) == (4, 2)
    assert groups_of_rank0(par, Group.TP)[:2] == [(0, 1), (2, 3)]
    assert groups_of_rank0(par, Group.DP) == [(0, 2, 4, 6), (1, 3, 5, 7)]
    # EP: same TP position from EP consecutive DP replicas
    assert groups_of_rank0(par, Group.EP) == [(0, 2), (1, 3), (4, 6), (5, 7)]
    # DP_EP: DP replicas i, i+EP
    assert groups_of_rank0(par, Group.DP_EP) == [(0, 4), (1, 5), (2, 6), (3, 7)]
    assert groups_of_rank0(par, Group.TP, stage=1)[0] == (8, 9)


def test_placements_on_servers_of_4():
    par = make_parallel(16, tp=2, pp=2, ep=2)
    tp = stage_placements(par, Group.TP, 0, gpus_per_server=4)
    assert [(p.size, p.servers, p.max_per_server) for p in tp] == [(2, 1, 2)]
    dp = stage_placements(par, Group.DP, 0, gpus_per_server=4)   # (0,2,4,6): servers 0,0,1,1
    assert [(p.size, p.servers, p.max_per_server) for p in dp] == [(4, 2, 2)]
    pp = stage_placements(par, Group.PP, 0, gpus_per_server=4)   # (r, r+8): always across
    assert [(p.size, p.servers, p.same_local_index) for p in pp] == [(2, 2, True)]


def test_straddling_groups_have_distinct_placements():
    # TP 3 on 8-GPU servers: group (6,7,8) straddles two servers, (0,1,2) does not
    par = make_parallel(24, tp=3, pp=1, ep=1)
    tp = stage_placements(par, Group.TP, 0, gpus_per_server=8)
    assert sorted((p.servers, p.max_per_server) for p in tp) == [(1, 3), (2, 2)]


def test_segment_aicb_gpt13b():
    wl = read_workload(WORKLOADS / "aicb_gpt_13B-world_size64-tp8-pp2-ep1-gbs128-mbs1-seq4096.txt")
    seg = segment(wl)
    # grad_norm, layernorm, moe_grad_norm1/2 before; 32 x (embedding, 40 layers' rows, norm);
    # cross_entropy x3 and optimizer x4 after
    assert (len(seg.prefix), seg.ga, len(seg.micro_batch), len(seg.suffix)) == (4, 32, 42, 7)
    assert wl.rows[seg.micro_batch[0]].name == "embedding_layer"
    assert [wl.rows[i].name for i in seg.suffix][0] == "cross_entropy1"


def test_segment_keeps_micro_batches_that_differ_in_compute():
    # SimAI's 9216-GPU example: the first micro-batch's embedding has a longer weight gradient
    wl = read_workload(WORKLOADS / "simai_example_9216.txt")
    seg = segment(wl)
    assert (len(seg.prefix), seg.ga, len(seg.micro_batch), len(seg.suffix)) == (6, 24, 74, 7)
    assert len(seg.variants) == 2 and seg.mb_variant == (0,) + (1,) * 23
    assert wl.rows[seg.variants[0][0]].wg_ns == 15091072
    assert wl.rows[seg.variants[1][0]].wg_ns == 875420


def test_segment_falls_back_to_whole_file_with_a_warning():
    rows = [f"r{i} -1 {i} ALLREDUCE {i + 1} 1 NONE 0 1 NONE 0 0" for i in range(5)]
    wl = read_workload_text("HYBRID_TRANSFORMER model_parallel_NPU_group: 2 ga: 2\n5\n" + "\n".join(rows), "t.txt")
    with pytest.warns(SimulationWarning, match="no 2 repeating micro-batches"):
        seg = segment(wl)
    assert seg.ga == 1 and len(seg.micro_batch) == 5


def test_segment_seed_004_is_one_micro_batch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        wl = read_workload(shared_path("seeds", "004_69078ecc3753ee65.txt"))
    seg = segment(wl)
    assert seg.ga == 1 and len(seg.micro_batch) == 98 and "ga 1" in seg.method
