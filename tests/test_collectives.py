"""The one table of collective operations (simulator/collectives.py): its factors derived by
hand from nccl-tests' definitions (doc/PERFORMANCE.md of nccl-tests: busbw = algbw x factor,
2(n-1)/n for all-reduce, (n-1)/n for all-gather, reduce-scatter and all-to-all, 1 for
broadcast and send/recv), its names, and the modules that read their names and factors
from it."""
import pytest

from simulator.collectives import (BY_NAME, BY_OP, COLLECTIVES, ENGINE_NAMES, NCCL_TESTS_STEMS,
                                   OP_NAMES, by_name, of_type_word)
from simulator.workload import Op


@pytest.mark.parametrize("name, ranks, factor", [
    ("all_reduce", 8, 1.75),       # 2 x 7/8: a ring sends each of 2(n-1) chunks of S/n
    ("all_reduce", 2, 1.0),        # 2 x 1/2
    ("all_reduce", 16, 1.875),     # 2 x 15/16
    ("all_gather", 8, 0.875),      # 7/8: n-1 chunks of S/n
    ("reduce_scatter", 4, 0.75),   # 3/4
    ("all_to_all", 8, 0.875),      # 7 of 8 blocks leave the rank
    ("broadcast", 8, 1.0),         # the whole buffer passes every rank's link once
    ("sendrecv", 2, 1.0),
    ("moe_all_to_all", 4, 0.75),   # even: 3/4 leaves
])
def test_bus_factors_by_hand(name, ranks, factor):
    assert BY_NAME[name].bus_factor(ranks) == factor


def test_wire_bytes_by_hand():
    # a 1,000-byte all-reduce on 4 ranks puts 2 x 3/4 x 1000 = 1,500 bytes on each rank's link
    assert BY_NAME["all_reduce"].wire_bytes(4, 1000) == 1500
    assert BY_NAME["all_gather"].wire_bytes(4, 1000) == 750      # 3/4 x 1000
    assert BY_NAME["broadcast"].wire_bytes(4, 1000) == 1000
    # an uneven all-to-all whose remote share is a quarter sends a quarter of its buffer
    assert BY_NAME["moe_all_to_all"].wire_bytes(2, 1000, 0.25) == 250
    assert BY_NAME["moe_all_to_all"].bus_factor(8, 0.1) == 0.1
    # an even all-to-all has no remote share to give: it stays (n-1)/n
    assert BY_NAME["all_to_all"].bus_factor(8, 0.1) == 0.875


def test_names():
    assert ENGINE_NAMES == ("all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                            "broadcast", "sendrecv")
    assert OP_NAMES[Op.ALLREDUCE] == "all_reduce" and OP_NAMES[Op.SENDRECV] == "sendrecv"
    # every workload word but ASTRA-sim's composite ALLREDUCEALLTOALL has a row
    assert set(BY_OP) == set(Op) - {Op.ALLREDUCEALLTOALL}
    assert len({c.name for c in COLLECTIVES}) == len(COLLECTIVES)
    # nccl-tests' binaries: all_reduce_perf, all_gather_perf, reduce_scatter_perf,
    # alltoall_perf, broadcast_perf, sendrecv_perf
    assert sorted(c.nccl_tests for c in COLLECTIVES if c.nccl_tests) == [
        "all_gather", "all_reduce", "alltoall", "broadcast", "reduce_scatter", "sendrecv"]
    assert NCCL_TESTS_STEMS["alltoall"] == NCCL_TESTS_STEMS["all_to_all"] == "all_to_all"
    assert "moe_all_to_all" not in NCCL_TESTS_STEMS.values()
    assert by_name("All-Reduce").name == "all_reduce" and by_name("a2a").name == "all_to_all"
    assert by_name("p2p").name == "sendrecv" and by_name("gemm") is None
    assert of_type_word("ALLTOALL_DP_EP").op is Op.ALLTOALL
    assert of_type_word("REDUCESCATTER_EP").op is Op.REDUCESCATTER
    assert of_type_word("ALLREDUCEALLTOALL") is None and of_type_word("NONE") is None


def test_the_modules_read_the_table():
    from simulator.calibration.costmodel import ENGINE_OPS
    from simulator.calibration.model import CAL_OPS, wire_bytes
    from simulator.costmodel import nccl
    from simulator.measurements import OPS, bus_factor, canonical_op
    from simulator.readers.nccl_tests import BINARY_OPS
    from simulator.report.simai_csv import _bus_factor
    from simulator.topology.spec import OP_NAMES as TOPOLOGY_OPS

    assert nccl.OP_NAMES is OP_NAMES and ENGINE_OPS is OP_NAMES
    assert BINARY_OPS is NCCL_TESTS_STEMS and TOPOLOGY_OPS is ENGINE_NAMES
    assert CAL_OPS == tuple(BY_NAME) and OPS == (*BY_NAME, "gemm")
    assert canonical_op("AllToAll") == "all_to_all" and canonical_op("mm") == "gemm"
    # same hand values through every reader of the factors
    assert bus_factor("all_reduce", 8) == 1.75 and bus_factor("gemm", 8) is None
    assert bus_factor("moe_all_to_all", 4, 0.25) == 0.25
    assert _bus_factor("ALLREDUCE", 8) == 1.75 and _bus_factor("ALLGATHER_EP", 8) == 0.875
    assert _bus_factor("BROADCAST", 8) == 1.0 and _bus_factor("NONE", 8) == 1.0
    assert _bus_factor("ALLREDUCE", 0) == 0.0
    assert wire_bytes("all_reduce", 4, 1000) == 1500 and wire_bytes("sendrecv", 2, 64) == 64
