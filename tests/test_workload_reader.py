"""The workload reader on real files and on every kind of malformed input."""
import glob
import warnings

import pytest

from repo_paths import WORKLOADS, shared_path
from simulator.errors import InputError, SimulationWarning
from simulator.readers.workload import read_workload, read_workload_text
from simulator.workload import Group, Op

HDR = ("HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 8 ep: 4 pp: 4 vpp: 8 ga: 1 "
       "all_gpus: 128 checkpoints: 0 checkpoint_initiates: 0 pp_comm 50331648")
ROW = "layer -1 100 ALLGATHER 4096 200 REDUCESCATTER 2048 300 ALLREDUCE 1024 100"


def read(text, **kw):
    return read_workload_text(text, path="t.txt", **kw)


def test_seed_004_header_and_rows():
    wl = read_workload(WORKLOADS / "seed004_moe_tp8_ep4_pp4_128gpus.txt")
    assert (wl.tp, wl.ep, wl.pp, wl.vpp, wl.ga, wl.all_gpus) == (8, 4, 4, 8, 1, 128)
    assert wl.pp_comm_bytes == 50331648
    assert wl.declared_rows == 96 and len(wl.rows) == 98  # the file has two more rows than it says
    # real-runs.md: compute columns sum to forward 18.25 ms, input-gradient 17.72, weight-gradient 5.01
    assert sum(r.fwd_ns for r in wl.rows) / 1e6 == pytest.approx(18.25, abs=0.005)
    assert sum(r.ig_ns for r in wl.rows) / 1e6 == pytest.approx(17.72, abs=0.005)
    assert sum(r.wg_ns for r in wl.rows) / 1e6 == pytest.approx(5.01, abs=0.005)
    gather = wl.rows[0]
    assert gather.name == "grad_gather" and gather.wg.op is Op.ALLGATHER
    assert gather.wg.group is Group.DP and gather.wg.size_bytes == 175484928
    moe = wl.rows[4]
    assert moe.wg.op is Op.ALLGATHER and moe.wg.group is Group.DP_EP
    a2a = [r for r in wl.rows if r.name == "mlp_moelayer_3"][0]
    assert a2a.fwd.op is Op.ALLTOALL and a2a.fwd.group is Group.EP


def test_row_count_mismatch_warns_and_keeps_rows():
    text = f"{HDR}\n1\n{ROW}\n{ROW}\n"
    with pytest.warns(SimulationWarning, match="declares 1 rows but 2 follow"):
        wl = read(text)
    assert len(wl.rows) == 2


def test_row_count_mismatch_is_an_error_when_strict():
    with pytest.raises(InputError, match=r"t.txt:2: row count: .*--strict"):
        read(f"{HDR}\n1\n{ROW}\n{ROW}\n", strict=True)


def test_header_tokens_any_order_any_whitespace_and_glued():
    text = ("HYBRID_TRANSFORMER\tall_gpus:64  pp: 2\tmodel_parallel_NPU_group:\t4 ga: 2 "
            "pp_comm: 8388608.0 ep:2\n2\n" + ROW + "\n" + ROW + "\n")
    wl = read(text)
    assert (wl.tp, wl.ep, wl.pp, wl.ga, wl.all_gpus, wl.pp_comm_bytes) == (4, 2, 2, 2, 64, 8388608)
    assert wl.vpp == 1  # default


def test_defaults_for_old_headers():
    wl = read("HYBRID_TRANSFORMER_FWD_IN_BCKWD\tmodel_parallel_NPU_group: 2 checkpoints: 0 "
              "checkpoint_initiates: 0\n1\n" + ROW + "\n")
    assert (wl.tp, wl.ep, wl.pp, wl.vpp, wl.ga, wl.all_gpus, wl.pp_comm_bytes) == (2, 1, 1, 1, 1, None, 0)


def test_micro_header_has_no_fields():
    wl = read("MICRO\n1\nmicro_test -1 1 NONE 0 1 NONE 0 1 ALLTOALL 4096 1\n")
    assert wl.policy == "MICRO" and wl.tp == 1
    assert wl.rows[0].wg.op is Op.ALLTOALL and wl.rows[0].wg.group is Group.DP


def test_checkpoint_lists_read_all_indices():
    # SimAI reads only the first index of each list; we read them all
    rows = "\n".join([ROW] * 6)
    wl = read(f"HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 1 checkpoints: 2 0 3 "
              f"checkpoint_initiates: 2 2 5\n6\n{rows}\n")
    assert wl.checkpoints == (0, 3) and wl.checkpoint_initiates == (2, 5)


def test_every_collective_type_and_group():
    rows = [
        "a -1 1 BROADCAST 10 1 ALLREDUCEALLTOALL 20 1 BROADCAST 30 1",
        "b -1 1 ALLTOALL_EP 10 1 ALLGATHER_DP_EP 20 1 REDUCESCATTER_EP 30 1",
        "c -1 1 NONE 99 1 ALLTOALL 20 1 ALLTOALL 30 1",
    ]
    wl = read("HYBRID_TRANSFORMER model_parallel_NPU_group: 2\n3\n" + "\n".join(rows) + "\n")
    a, b, c = wl.rows
    assert (a.fwd.op, a.fwd.group) == (Op.BROADCAST, Group.TP)
    assert (a.ig.op, a.ig.group) == (Op.ALLREDUCEALLTOALL, Group.TP)
    assert (a.wg.op, a.wg.group) == (Op.BROADCAST, Group.DP)
    assert (b.fwd.op, b.fwd.group) == (Op.ALLTOALL, Group.EP)
    assert (b.ig.op, b.ig.group) == (Op.ALLGATHER, Group.DP_EP)
    assert (b.wg.op, b.wg.group) == (Op.REDUCESCATTER, Group.EP)
    assert c.fwd.op is None and c.fwd.size_bytes == 0  # NONE moves no data whatever the size says
    assert (c.ig.group, c.wg.group) == (Group.TP, Group.DP)


@pytest.mark.parametrize("rows, line, fragment", [
    (["a -1 1 ALLGATHER 10 1 NONE 0 1 NONE 0"], 3, "expected 12 whitespace-separated fields"),
    (["a -1 1 ALLGATHER 1.2e 1 NONE 0 1 NONE 0 1"], 3, "field 5 (fwd_bytes): expected a non-negative integer, got '1.2e'"),
    (["a -1 -5 ALLGATHER 10 1 NONE 0 1 NONE 0 1"], 3, "field 3 (fwd_ns): must not be negative"),
    (["a -1 1 NONE 0 1 NONE 0 1 NONE 0 1", "b -1 1 ALLGATHERX 10 1 NONE 0 1 NONE 0 1"], 4,
     "field 4 (fwd_type): unknown collective type 'ALLGATHERX'"),
    (["a -1 1 NONE 0 1 NONE 0 1 ALLREDUCE 10.5 1"], 3, "field 11 (wg_bytes): expected a whole number"),
    (["a -1 1 NONE 0 1 NONE 0 1 ALLREDUCE nan 1"], 3, "field 11 (wg_bytes): expected a non-negative integer, got 'nan'"),
    (["a -1 1 NONE 0 1 NONE 0 1 ALLREDUCE 1e400 1"], 3, "field 11 (wg_bytes): expected a finite number"),
    (["a x 1 NONE 0 1 NONE 0 1 NONE 0 1"], 3, "field 2 (dep)"),
])
def test_malformed_rows_name_line_and_field(rows, line, fragment):
    with pytest.raises(InputError) as exc:
        read("HYBRID_TRANSFORMER model_parallel_NPU_group: 2\n" + str(len(rows)) + "\n"
             + "\n".join(rows) + "\n")
    message = str(exc.value)
    assert message.startswith(f"t.txt:{line}: ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("text, fragment", [
    ("", "the file is empty"),
    ("HYBRID_TRANSFORMER model_parallel_NPU_group: 2\n", "t.txt:2: row count: truncated"),
    ("HYBRID_TRANSFORMER model_parallel_NPU_group: 2\n3\n", "declares 3 rows but none follow"),
    ("TRANSFORMERS model_parallel_NPU_group: 2\n1\n" + ROW, "t.txt:1: policy: unknown policy 'TRANSFORMERS'"),
    ("HYBRID_TRANSFORMER model_parallel_NPU_group: two\n1\n" + ROW, "t.txt:1: model_parallel_NPU_group: expected a non-negative integer"),
    ("HYBRID_TRANSFORMER model_parallel_NPU_group: 0\n1\n" + ROW, "must be at least 1"),
    ("HYBRID_TRANSFORMER model_parallel_NPU_group: 2 ep:\n1\n" + ROW, "t.txt:1: ep: missing value"),
    ("HYBRID_TRANSFORMER checkpoints: 2 0\n1\n" + ROW, "checkpoints: missing value for 'checkpoints' (index 2 of 2)"),
    ("HYBRID_TRANSFORMER checkpoints: 1 7\n1\n" + ROW, "row index 7 is past the last row (0)"),
    ("HYBRID_TRANSFORMER\nmany\n" + ROW, "t.txt:2: row count: expected a non-negative integer, got 'many'"),
    ("HYBRID_TRANSFORMER ga: 2 ga: 3\n1\n" + ROW, "header key 'ga' given twice"),
])
def test_malformed_headers(text, fragment):
    with pytest.raises(InputError) as exc:
        read(text)
    assert fragment in str(exc.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="nope.txt: no such file"):
        read_workload(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="is a directory"):
        read_workload(tmp_path)


def test_binary_file(tmp_path):
    p = tmp_path / "bin.txt"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="not a text file"):
        read_workload(p)


def test_every_corpus_file_and_seed_004_load():
    files = sorted(glob.glob(str(shared_path("corpus") / "*.txt")))
    files.append(str(shared_path("seeds", "004_69078ecc3753ee65.txt")))
    assert len(files) >= 18
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimulationWarning)
        loaded = {f.split("/")[-1]: read_workload(f) for f in files}
    assert len(loaded["simai_example_9216.txt"].rows) == 1789
    assert loaded["simai_example_9216.txt"].all_gpus == 9216
    # the 65B file says 839 rows and has 33: all are kept
    l65 = loaded["aicbrepo_L65B-M1-C05_Llama65B_megatron_tp8_pp1_mbs1_A100.txt"]
    assert (l65.declared_rows, len(l65.rows)) == (839, 33)
