"""simulator.names: each class of named constants behaves as the Enum it replaced.

The reference classes below are the Enums as they were defined before (workload.Group, Op,
Phase; engine.messages.Direction); every behaviour the code and its users can see is compared
member by member: identity of lookups, repr/str/format, equality and hashes with strings,
order, pickling and copying, errors.
"""
import copy
import pickle
from enum import Enum

import pytest

from simulator.engine.messages import Direction
from simulator.names import Names
from simulator.workload import Group, Op, Phase


class RefGroup(str, Enum):
    TP = "TP"
    EP = "EP"
    DP = "DP"
    DP_EP = "DP_EP"
    PP = "PP"

    def __str__(self) -> str:
        return self.value


class RefOp(str, Enum):
    ALLREDUCE = "ALLREDUCE"
    ALLGATHER = "ALLGATHER"
    REDUCESCATTER = "REDUCESCATTER"
    ALLTOALL = "ALLTOALL"
    BROADCAST = "BROADCAST"
    ALLREDUCEALLTOALL = "ALLREDUCEALLTOALL"
    SENDRECV = "SENDRECV"

    def __str__(self) -> str:
        return self.value


class RefPhase(str, Enum):
    FWD = "fwd"
    IG = "ig"
    WG = "wg"


class RefDirection(Enum):
    NEXT = "next"
    PREV = "prev"

    __hash__ = object.__hash__


PAIRS = [(Group, RefGroup), (Op, RefOp), (Phase, RefPhase), (Direction, RefDirection)]


def _shown(text: str, ref_name: str, name: str) -> str:
    return text.replace(ref_name, name)


@pytest.mark.parametrize("cls, ref", PAIRS, ids=lambda c: c.__name__)
def test_members_names_values_and_order(cls, ref):
    assert [(m.name, m.value) for m in cls] == [(m.name, m.value) for m in ref]
    assert len(cls) == len(ref)
    for m, r in zip(cls, ref):
        assert getattr(cls, r.name) is m
        assert cls(r.value) is m and cls(m) is m and cls[r.name] is m
        assert isinstance(m, cls)
        assert type(m.value) is str and type(m.name) is str
        assert cls._value2member_map_[r.value] is m


@pytest.mark.parametrize("cls, ref", PAIRS, ids=lambda c: c.__name__)
def test_text_forms(cls, ref):
    for m, r in zip(cls, ref):
        rn, n = ref.__name__, cls.__name__
        assert repr(m) == _shown(repr(r), rn, n)
        assert str(m) == _shown(str(r), rn, n)
        assert format(m) == _shown(format(r), rn, n)
        # (the Enum pads its own text; the names differ in length, so pad after renaming)
        assert f"{r:>20}" == f"{format(r):>20}"
        assert f"{m:>20}" == f"{_shown(format(r), rn, n):>20}"
        assert f"{m!s}|{m!r}" == _shown(f"{r!s}|{r!r}", rn, n)
        assert "%s" % m == _shown("%s" % r, rn, n)  # noqa: UP031 (the % operator's text)


@pytest.mark.parametrize("cls, ref", PAIRS, ids=lambda c: c.__name__)
def test_equality_hash_and_order(cls, ref):
    members, refs = list(cls), list(ref)
    for m, r in zip(members, refs):
        assert (m == r.value) == (r == r.value)
        assert (m != r.value) == (r != r.value)
        assert (hash(m) == hash(r.value)) == (hash(r) == hash(r.value))
        assert ({r.value: 1}.get(m) is None) == ({r.value: 1}.get(r) is None)
        assert m == m and hash(m) == hash(m)
        assert [m2 == m for m2 in members] == [r2 == r for r2 in refs]
    if issubclass(ref, str):
        assert [m.value for m in sorted(reversed(members))] == [
            r.value for r in sorted(reversed(refs))]
        assert bool(members[0]) is True
    else:
        with pytest.raises(TypeError):
            members[0] < members[1]   # noqa: B015 (an Enum without str has no order)
        with pytest.raises(TypeError):
            refs[0] < refs[1]   # noqa: B015


@pytest.mark.parametrize("cls, ref", PAIRS, ids=lambda c: c.__name__)
def test_pickle_and_copy_give_the_same_member(cls, ref):
    for m in cls:
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            assert pickle.loads(pickle.dumps(m, protocol)) is m
        assert copy.copy(m) is m and copy.deepcopy(m) is m
        assert copy.deepcopy({m: [m]}) == {m: [m]}


@pytest.mark.parametrize("cls, ref", PAIRS, ids=lambda c: c.__name__)
def test_errors(cls, ref):
    for bad in ("nope", 3, None, [1]):
        with pytest.raises(ValueError) as theirs:
            ref(bad)
        with pytest.raises(ValueError) as mine:
            cls(bad)
        assert str(mine.value) == _shown(str(theirs.value), ref.__name__, cls.__name__)
    with pytest.raises(KeyError):
        cls["nope"]
    # a value of another class is not a member
    assert all(cls(m.value) is m for m in cls)
    other = Phase if cls is not Phase else Group
    with pytest.raises(ValueError):
        cls(next(iter(other)))


def test_direction_methods_and_phase_helpers_still_work():
    assert Direction.NEXT.reverse is Direction.PREV and Direction.PREV.reverse is Direction.NEXT
    assert Direction.NEXT.of(3, 4) == 0 and Direction.PREV.of(0, 4) == 3
    assert str(Group.DP_EP) == "DP_EP" and f"{Op.ALLTOALL}_{Group.EP}" == "ALLTOALL_EP"


def test_a_class_body_defines_its_own_methods_and_only_public_strings_are_members():
    class Colour(str, Names):
        """Not a member: the docstring."""

        RED = "red"
        _hidden = "x"
        BLUE = "blue"
        count = 3       # not a string: not a member

        def __str__(self) -> str:
            return self.value.upper()

    assert [m.name for m in Colour] == ["RED", "BLUE"]
    assert str(Colour.RED) == "RED" and repr(Colour.BLUE) == "<Colour.BLUE: 'blue'>"
    assert Colour._hidden == "x" and Colour.count == 3
