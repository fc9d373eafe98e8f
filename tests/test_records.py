"""``@record`` behaves as ``@dataclass`` would: each class below is made both ways from the
same body and the two are compared on what a caller can see (repr text, equality, hash
values, hashability, frozenness, fields, replace, pickling). The reference is the standard
library's dataclass, not the code under test."""
from __future__ import annotations

import dataclasses
import inspect
import math
import pickle
import typing

import pytest

from simulator import records
from simulator.records import record


def _outcome(fn, *args):
    try:
        return fn(*args)
    except TypeError as e:
        return str(e)


def _field_view(f):
    """What a caller reads of a field (dataclasses' MISSING and records' alike as None)."""
    def given(v):
        return None if type(v).__name__ in ("_MISSING_TYPE", "_MissingType") else v
    factory = given(f.default_factory)
    return (f.name, f.type, given(f.default), None if factory is None else factory(),
            f.init, f.repr, f.hash, f.compare, dict(f.metadata))


def _both(body, **options):
    """The class made by dataclass and by record from one class body (a function that
    returns a fresh class each call)."""
    return dataclasses.dataclass(body(), **options), record(body(), **options)


def _plain():
    class Plain:
        """Plain."""

        name: str
        size_bytes: int = 0
        extra: tuple = ()
    return Plain


def _one():
    class One:
        """One."""

        x: float
    return One


def _empty():
    class Empty:
        """Empty."""

        pass
    return Empty


def _hidden():
    class Hidden:
        """Hidden."""

        shown: int
        secret: int = dataclasses.field(default=0, repr=False)
        loose: int = dataclasses.field(default=0, compare=False)
        unhashed: int = dataclasses.field(default=0, hash=False)
    return Hidden


def _own_eq():
    class OwnEq:
        """OwnEq."""

        a: int
        b: int = 0

        def __eq__(self, other):
            return isinstance(other, OwnEq) and self.a == other.a
    return OwnEq


def _own_hash_and_repr():
    class OwnHash:
        """OwnHash."""

        a: int

        def __hash__(self):
            return 7

        def __repr__(self):
            return "mine"
    return OwnHash


def _posted():
    class Posted:
        """Posted."""

        a: int
        twice: int = 0

        def __post_init__(self):
            object.__setattr__(self, "twice", 2 * self.a)
    return Posted


def _factories():
    class Factories:
        """Factories."""

        a: int
        items: list = dataclasses.field(default_factory=list)
        table: dict = dataclasses.field(default_factory=lambda: {"k": 1}, compare=False)
        made: tuple = dataclasses.field(default=(), init=False)
        counted: list = dataclasses.field(default_factory=lambda: [0], init=False, repr=False)
    return Factories


def _self_named():
    class SelfNamed:    # a field called "self": dataclass renames __init__'s first parameter
        """SelfNamed."""

        self: int
        other: str = "o"
    return SelfNamed


SHAPES = [(_plain, ("n", 3, (1, 2))), (_one, (float("nan"),)), (_empty, ()),
          (_hidden, (1, 2, 3, 4)), (_own_eq, (1, 2)), (_own_hash_and_repr, (1,)),
          (_posted, (5,)), (_factories, (1,)), (_factories, (2, [1], {"x": 0})),
          (_self_named, (4, "s"))]
OPTIONS = [{}, {"frozen": True}, {"slots": True}, {"frozen": True, "slots": True}]


#: a plain record's __init__ comes from records' templates; any other record's first
#: objects are made by its generic __init__, later ones by the compiled one
#: (records.COMPILE_AFTER calls): the checks below run on all three (templates off for the
#: last two, so plain records take that path too)
INITS = pytest.mark.parametrize("compile_after", [None, 1000, 0],
                                ids=["template-init", "generic-init", "compiled-init"])


def _init_path(monkeypatch, compile_after):
    if compile_after is not None:
        monkeypatch.setattr(records, "TEMPLATE_INITS", False)
        monkeypatch.setattr(records, "COMPILE_AFTER", compile_after)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("shape,args", SHAPES, ids=lambda s: getattr(s, "__name__", ""))
@INITS
def test_record_acts_as_dataclass(shape, args, options, compile_after, monkeypatch):
    _init_path(monkeypatch, compile_after)
    ref_cls, rec_cls = _both(shape, **options)
    ref, rec = ref_cls(*args), rec_cls(*args)
    # the same __init__ (parameters, defaults, the factory marker's place) and fields, as
    # dataclasses sees them and as records.fields gives them without dataclasses
    assert str(inspect.signature(rec_cls.__init__)) == str(inspect.signature(ref_cls.__init__))
    assert rec_cls.__match_args__ == ref_cls.__match_args__
    assert dataclasses.is_dataclass(rec_cls)
    for mine in (dataclasses.fields(rec_cls), records.fields(rec_cls), records.fields(rec)):
        assert [_field_view(f) for f in mine] == [_field_view(f) for f in
                                                  dataclasses.fields(ref_cls)]
    assert rec_cls.__dataclass_params__.frozen == ref_cls.__dataclass_params__.frozen
    # what __init__ set (init=False fields from their default or factory), and the class
    # attributes (a field's default, none for a factory; a slotted class has neither)
    assert {f.name: getattr(rec, f.name) for f in records.fields(rec)} == \
        {f.name: getattr(ref, f.name) for f in dataclasses.fields(ref)}
    if not options.get("slots"):
        assert vars(rec) == vars(ref)
        for f in dataclasses.fields(ref_cls):
            assert getattr(rec_cls, f.name, "none") == getattr(ref_cls, f.name, "none")
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
        # the class's own hash (7), or, frozen, the hash of the hashed fields' tuple (a
        # list among them: both refuse)
        assert _outcome(hash, rec) == _outcome(hash, ref)
    if options.get("frozen") and dataclasses.fields(rec_cls):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(rec, dataclasses.fields(rec_cls)[0].name, 1)
    if dataclasses.fields(rec_cls) and isinstance(args[0], int):
        name = dataclasses.fields(rec_cls)[0].name
        assert repr(dataclasses.replace(rec, **{name: 9})) == \
            repr(dataclasses.replace(ref, **{name: 9})) == \
            repr(records.replace(rec, **{name: 9})).replace("Ref", "")
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
        """Grown."""

        more: int = 1

    ref_base = dataclasses.dataclass(_plain(), frozen=True)

    @dataclasses.dataclass(frozen=True)
    class RefGrown(ref_base):
        """RefGrown."""

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


def test_records_field_makes_the_same_class_as_dataclasses_field():
    # simulate-path modules write records.field (no dataclasses import); the class is the
    # one dataclasses.field gives
    def body(make):
        class Opts:
            """Opts."""

            a: int = make(default=1, metadata={"help": "the a"})
            b: list = make(default_factory=list, repr=False)
        return Opts
    ref_cls = dataclasses.dataclass(body(dataclasses.field), frozen=True)
    rec_cls = record(body(records.field), frozen=True)
    assert [_field_view(f) for f in records.fields(rec_cls)] == \
        [_field_view(f) for f in dataclasses.fields(ref_cls)] == \
        [_field_view(f) for f in dataclasses.fields(rec_cls)]
    assert records.fields(rec_cls)[0].metadata["help"] == "the a"
    assert repr(rec_cls()) == repr(ref_cls()).replace(ref_cls.__qualname__, rec_cls.__qualname__)
    assert records.fields(rec_cls)[0].default == 1 and rec_cls.a == 1


def test_class_body_errors_as_dataclass():
    def mutable():
        class Bad:
            items: list = []
        return Bad

    def order():
        class Bad:
            a: int = 0
            b: int
        return Bad

    def untyped():
        class Bad:
            a = records.field(default=0)
        return Bad
    for body, error in ((mutable, ValueError), (order, TypeError)):
        with pytest.raises(error) as ref:
            dataclasses.dataclass(body())
        with pytest.raises(error) as mine:
            record(body())
        assert str(mine.value) == str(ref.value)
    with pytest.raises(TypeError, match="'a' is a field but has no type annotation"):
        record(untyped())
    with pytest.raises(TypeError, match="cannot inherit frozen dataclass from a non-frozen"):
        record(frozen=True)(type("Child", (record(_plain()),), {}))
    with pytest.raises(TypeError, match="cannot inherit non-frozen dataclass from a frozen"):
        record(type("Child", (record(_plain(), frozen=True),), {}))


def test_what_records_does_not_handle_is_a_plain_dataclass():
    # (typing imported at module level: dataclass reads a string ClassVar through it)
    class WithClassVar:
        """WithClassVar."""

        a: int
        limit: typing.ClassVar[int] = 3
    made = record(WithClassVar)
    assert [f.name for f in dataclasses.fields(made)] == ["a"]
    assert made(1) == made(1) and made.limit == 3
    # a plain dataclass below a record: fields and replace see the subclass's own fields
    base = record(_plain(), frozen=True)

    @dataclasses.dataclass(frozen=True)
    class Below(base):
        """Below."""

        more: int = 5
    assert [f.name for f in records.fields(Below)] == ["name", "size_bytes", "extra", "more"]
    assert records.replace(Below("b"), more=6).more == 6
    # and a record below a plain dataclass
    above = record(type("Above", (dataclasses.dataclass(_plain()),), {"__annotations__":
                                                                       {"x": int}, "x": 0}))
    assert [f.name for f in records.fields(above)] == ["name", "size_bytes", "extra", "x"]


def test_replace_refuses_init_false_fields_as_dataclass():
    rec = record(_factories())(1)
    with pytest.raises(ValueError, match="init=False"):
        records.replace(rec, made=(1,))
    assert records.replace(rec, a=3).a == 3


def _calls():
    class Calls:
        """Calls."""

        a: int
        b: str = "b"
        c: list = dataclasses.field(default_factory=list)
        d: float = 1.5
    return Calls


CALLS = [((1,), {}), ((1, "x"), {}), ((1, "x", [2], 3.0), {}), ((), {"a": 1}),
         ((1,), {"d": 2.0}), ((1,), {"c": [1], "b": "y"}), ((), {"d": 0.0, "a": 5}),
         # wrong calls: the error is Python's own for the compiled __init__
         ((), {}), ((1, "x", [2], 3.0, 9), {}), ((1,), {"a": 2}), ((1,), {"zz": 2}),
         ((), {"b": "only"})]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
@pytest.mark.parametrize("args,kwargs", CALLS, ids=str)
@INITS
def test_record_init_binds_arguments_as_dataclass(args, kwargs, options, compile_after,
                                                   monkeypatch):
    _init_path(monkeypatch, compile_after)
    ref_cls, rec_cls = _both(_calls, **options)

    def made(cls):
        try:
            obj = cls(*args, **kwargs)
        except TypeError as e:
            return "TypeError: " + str(e).replace(cls.__qualname__, "Calls")
        return [getattr(obj, f.name) for f in dataclasses.fields(cls)]
    assert made(rec_cls) == made(ref_cls)
    assert made(rec_cls) == made(rec_cls)      # a second object alike (a fresh factory list)


def test_generic_init_gives_way_to_the_compiled_one(monkeypatch):
    monkeypatch.setattr(records, "COMPILE_AFTER", 3)    # (a default factory: no template)
    cls = record(_calls(), frozen=True, slots=True)
    generic = cls.__init__
    objs = [cls(i) for i in range(5)]
    assert cls.__init__ is not generic       # compiled and put on the class at the 4th call
    assert [o.a for o in objs] == list(range(5)) and objs[4].c == [] and objs[4].c is not objs[3].c
    assert generic(objs[0].__class__.__new__(cls), 7) is None   # the old one still works


def test_a_record_without_docstring_gets_dataclasses_one():
    def body():
        class Bare:
            a: int
            b: str = "x"
        return Bare
    ref_cls, rec_cls = _both(body)
    assert rec_cls.__doc__ == ref_cls.__doc__ == "Bare(a: 'int', b: 'str' = 'x')"
