"""``@record`` behaves as ``@dataclass`` would: each class below is made both ways from the
same body and the two are compared on what a caller can see (repr text, equality, hash
values, hashability, frozenness, fields, replace, pickling). The reference is the standard
library's dataclass, not the code under test."""
from __future__ import annotations

import dataclasses
import math
import pickle

import pytest

from simulator.records import record


def _both(body, **options):
    """The class made by dataclass and by record from one class body (a function that
    returns a fresh class each call)."""
    return dataclasses.dataclass(body(), **options), record(body(), **options)


def _plain():
    class Plain:
        name: str
        size_bytes: int = 0
        extra: tuple = ()
    return Plain


def _one():
    class One:
        x: float
    return One


def _empty():
    class Empty:
        pass
    return Empty


def _hidden():
    class Hidden:
        shown: int
        secret: int = dataclasses.field(default=0, repr=False)
        loose: int = dataclasses.field(default=0, compare=False)
        unhashed: int = dataclasses.field(default=0, hash=False)
    return Hidden


def _own_eq():
    class OwnEq:
        a: int
        b: int = 0

        def __eq__(self, other):
            return isinstance(other, OwnEq) and self.a == other.a
    return OwnEq


def _own_hash_and_repr():
    class OwnHash:
        a: int

        def __hash__(self):
            return 7

        def __repr__(self):
            return "mine"
    return OwnHash


def _posted():
    class Posted:
        a: int
        twice: int = 0

        def __post_init__(self):
            object.__setattr__(self, "twice", 2 * self.a)
    return Posted


SHAPES = [(_plain, ("n", 3, (1, 2))), (_one, (float("nan"),)), (_empty, ()),
          (_hidden, (1, 2, 3, 4)), (_own_eq, (1, 2)), (_own_hash_and_repr, (1,)),
          (_posted, (5,))]
OPTIONS = [{}, {"frozen": True}, {"slots": True}, {"frozen": True, "slots": True}]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("shape,args", SHAPES, ids=lambda s: getattr(s, "__name__", ""))
def test_record_acts_as_dataclass(shape, args, options):
    ref_cls, rec_cls = _both(shape, **options)
    ref, rec = ref_cls(*args), rec_cls(*args)
    assert dataclasses.is_dataclass(rec_cls)
    assert [f.name for f in dataclasses.fields(rec_cls)] == \
        [f.name for f in dataclasses.fields(ref_cls)]
    # same text, class name included (the reference's class has the same qualname)
    assert repr(rec) == repr(ref)
    # equality: with itself, an equal copy, a changed copy, and another class
    ref2, rec2 = ref_cls(*args), rec_cls(*args)
    assert (rec == rec2) == (ref == ref2)
    assert (rec == rec) == (ref == ref)
    assert (rec != rec2) == (ref != ref2)
    assert (rec == ref) is False and (rec == args) is False
    if args and isinstance(args[0], int):
        changed = (args[0] + 1,) + args[1:]
        assert (rec == rec_cls(*changed)) == (ref == ref_cls(*changed))
    # hashability and the hash value itself
    assert (rec_cls.__hash__ is None) == (ref_cls.__hash__ is None)
    if ref_cls.__hash__ is not None:
        # the class's own hash (7), or, frozen, the hash of the hashed fields' tuple
        assert hash(rec) == hash(ref)
    if options.get("frozen") and dataclasses.fields(rec_cls):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(rec, dataclasses.fields(rec_cls)[0].name, 1)
    if dataclasses.fields(rec_cls) and isinstance(args[0], int):
        name = dataclasses.fields(rec_cls)[0].name
        assert repr(dataclasses.replace(rec, **{name: 9})) == \
            repr(dataclasses.replace(ref, **{name: 9}))
        assert dataclasses.asdict(rec) == dataclasses.asdict(ref)


def test_nan_field_equal_to_itself_as_in_dataclass():
    # dataclass compares field tuples: the same NaN object is equal to itself there
    nan = float("nan")
    ref_cls, rec_cls = _both(_one, frozen=True)
    assert (rec_cls(nan) == rec_cls(nan)) is (ref_cls(nan) == ref_cls(nan)) is True
    assert math.isnan(rec_cls(nan).x)


def test_recursive_repr():
    ref_cls, rec_cls = _both(_plain)
    ref, rec = ref_cls("r"), rec_cls("r")
    ref.extra, rec.extra = (ref,), (rec,)
    assert repr(rec) == repr(ref)
    assert repr(rec).endswith("Plain(name='r', size_bytes=0, extra=(...,))")


def test_subclass_of_a_record():
    base = record(_plain(), frozen=True)

    class Child(base):   # a plain subclass keeps its parent's fields and methods
        pass

    @record(frozen=True)
    class Grown(base):
        more: int = 1

    ref_base = dataclasses.dataclass(_plain(), frozen=True)

    @dataclasses.dataclass(frozen=True)
    class RefGrown(ref_base):
        more: int = 1

    assert repr(Child("c")).endswith(".Child(name='c', size_bytes=0, extra=())")
    assert (Child("c") == base("c")) is False   # other class, as dataclass's eq says
    assert repr(Grown("g", 1, (), 2)) == repr(RefGrown("g", 1, (), 2)).replace("RefGrown",
                                                                              "Grown")
    assert repr(Grown("g")).endswith(".Grown(name='g', size_bytes=0, extra=(), more=1)")
    assert hash(Grown("g", 1, (), 2)) == hash(RefGrown("g", 1, (), 2))


def test_pickle_round_trip():
    # at module level so that pickle finds the classes by name
    for cls in (Frozen, FrozenSlots, Mutable):
        obj = cls("p", 2)
        back = pickle.loads(pickle.dumps(obj))
        assert back == obj and repr(back) == repr(obj)


@record(frozen=True)
class Frozen:
    name: str
    size_bytes: int = 0


@record(frozen=True, slots=True)
class FrozenSlots:
    name: str
    size_bytes: int = 0


@record
class Mutable:
    name: str
    size_bytes: int = 0


def test_hidden_fields_still_hold_their_values():
    hidden = record(_hidden(), frozen=True)(1, 2, 3, 4)
    assert (hidden.shown, hidden.secret, hidden.loose, hidden.unhashed) == (1, 2, 3, 4)
    assert "secret" not in repr(hidden)
    # compare=False: a different "loose" leaves two records equal and their hashes alike
    other = record(_hidden(), frozen=True)
    assert other(1, 2, 99, 4) == other(1, 2, 3, 4)
    assert hash(other(1, 2, 99, 4)) == hash(other(1, 2, 3, 4))
    # hash=False: "unhashed" takes part in equality but not in the hash
    assert other(1, 2, 3, 5) != other(1, 2, 3, 4)
    assert hash(other(1, 2, 3, 5)) == hash(other(1, 2, 3, 4))
