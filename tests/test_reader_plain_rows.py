"""The reader's shortcut for a row whose seven numbers are plain ASCII digits (at most 18)
gives what the field-by-field path gives, and errors name the same field."""
import pytest

from simulator.errors import InputError
from simulator.readers.workload import read_workload_text

HEADER = "HYBRID_TRANSFORMER_FWD_IN_BCKWD model_parallel_NPU_group: 2 ep: 1 pp: 1 ga: 1\n1\n"


def _row(text: str):
    return read_workload_text(HEADER + text + "\n", "t.txt").rows[0]


@pytest.mark.parametrize("plain, other", [
    # the same numbers written so that only the field-by-field path reads them
    ("a -1 10 ALLREDUCE 4096 20 NONE 0 30 ALLGATHER_EP 64 5",
     "a -1 10.0 ALLREDUCE +4096 2e1 NONE 00 30 ALLGATHER_EP 64.0 5"),
    ("b 0 0 NONE 0 0 NONE 0 0 NONE 0 0",
     "b 0 0.0 NONE 0 0 NONE 0 0 NONE 0 +0"),
    ("c -1 999999999999999999 ALLTOALL_DP_EP 1 1 BROADCAST 2 3 REDUCESCATTER 4 7",
     "c -1 0999999999999999999 ALLTOALL_DP_EP 1 1 BROADCAST 2 3 REDUCESCATTER 4 7"),
])
def test_plain_rows_read_as_the_field_by_field_path(plain, other):
    a, b = _row(plain), _row(other)
    assert a == b and (a.line, a.policy) == (b.line, b.policy) == (3, "")
    assert (a.fwd_ns, a.fwd.size_bytes, a.ig_ns, a.wg_ns, a.wg.size_bytes, a.update_ns) == (
        (b.fwd_ns, b.fwd.size_bytes, b.ig_ns, b.wg_ns, b.wg.size_bytes, b.update_ns))


@pytest.mark.parametrize("text, field", [
    ("a -1 1 BOGUS 4 2 NONE 0 3 NONE 0 0", "field 4 (fwd_type)"),
    ("a -1 1 NONE 4 2 BOGUS 0 3 BOGUS 0 0", "field 7 (ig_type)"),   # the first bad one
    ("a -1 1 NONE 4 2 NONE 0 3 BOGUS 0 0", "field 10 (wg_type)"),
    ("a -1 1 BOGUS 4 x NONE 0 3 NONE 0 0", "field 4 (fwd_type)"),   # type before ig_ns
    ("a -1 1 NONE 4 ２ NONE 0 3 NONE 0 0", "field 6 (ig_ns)"),       # not ASCII
    ("a -1 1 NONE 9999999999999999999999 2 NONE 0 3 NONE 0 0", "field 5 (fwd_bytes)"),
])
def test_errors_name_the_same_field(text, field):
    with pytest.raises(InputError) as e:
        _row(text)
    assert field in str(e.value)
