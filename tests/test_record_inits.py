"""A plain record's ``__init__`` is a copy of a ``record_templates`` function with the
fields' names put in (simulator/records.py): nothing is compiled, and it must be exactly
what ``dataclasses`` writes: parameters and defaults, the object's state, frozenness, slots,
and Python's own error messages for bad calls. The reference is the standard library's
dataclass made from the same class body, plus messages written out by hand."""
from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import os

import pytest

from simulator import record_templates, records
from simulator.costmodel.nccl import Estimate
from simulator.engine.replay import PricedRow
from simulator.parallel import GroupPlacement
from simulator.records import record
from simulator.result import RowResult
from simulator.workload import NO_COMM, Comm, Group, Op, Row

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = [{}, {"frozen": True}, {"slots": True}, {"frozen": True, "slots": True}]
OPTION_IDS = ["plain", "frozen", "slots", "frozen,slots"]


def _body(names, defaults=0):
    """A fresh class body with the fields ``names`` (the last ``defaults`` of them default
    to a value of their own), as a class statement would make it."""
    annotations = {n: "int" for n in names}
    ns = {"__annotations__": annotations, "__doc__": "A body.", "__module__": __name__,
          "__qualname__": "Body"}
    for i, n in enumerate(names[len(names) - defaults:]):
        ns[n] = 100 + i
    return type("Body", (), ns)


def _made(cls, args, kwargs):
    """What a call gives: the fields' values, or the TypeError's text."""
    try:
        obj = cls(*args, **kwargs)
    except TypeError as e:
        return "TypeError: " + str(e)
    return [getattr(obj, f.name) for f in records.fields(cls)]


def test_the_module_is_what_the_script_writes():
    spec = importlib.util.spec_from_file_location(
        "write_record_templates", os.path.join(ROOT, "scripts", "write_record_templates.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with open(record_templates.__file__) as f:
        assert f.read() == script.source()


@pytest.mark.parametrize("kind", ["slots", "frozen", "attrs"])
def test_templates_hold_only_the_names_records_replaces(kind):
    # records renames self/a<i> in co_varnames, f<i> in co_names (attrs) or co_consts
    # (frozen): a Python whose compiler laid them out otherwise would fail here first
    for n in range(record_templates.FIELDS_MAX + 1):
        code = getattr(record_templates, f"{kind}{n}").__code__
        params = tuple(f"a{i}" for i in range(n))
        assert code.co_varnames == ("self",) + params
        assert code.co_argcount == n + 1 and code.co_kwonlyargcount == 0
        assert code.co_freevars == () and code.co_cellvars == ()
        attrs = {f"f{i}" for i in range(n)}
        if kind == "attrs":
            assert set(code.co_names) == attrs
        elif kind == "frozen":
            assert set(code.co_names) <= {"put"}
            assert {c for c in code.co_consts if isinstance(c, str)} == attrs
        else:
            assert set(code.co_names) == {f"s{i}" for i in range(n)}


@pytest.mark.parametrize("cls", [Comm, Row, PricedRow, RowResult, Estimate, GroupPlacement],
                         ids=lambda c: c.__name__)
def test_the_busiest_records_take_a_template_init(cls):
    init = cls.__dict__["__init__"]
    assert init.__code__.co_filename == record_templates.__file__
    assert init.__qualname__ == f"{cls.__qualname__}.__init__"
    assert init.__module__ == cls.__module__


def test_a_plain_record_compiles_nothing(monkeypatch):
    def refuse(*args):
        raise AssertionError("compiled")
    monkeypatch.setattr(records, "_compiled_init", refuse)
    monkeypatch.setattr(records, "COMPILE_AFTER", 0)    # (the generic init would compile)
    for options in OPTIONS:
        cls = record(_body(["a", "b", "c"], defaults=1), **options)
        objs = [cls(1, 2), cls(1, 2, 3), cls(c=3, b=2, a=1)]
        assert [(o.a, o.b, o.c) for o in objs] == [(1, 2, 100), (1, 2, 3), (1, 2, 3)]


NAMES = [
    [],
    ["x"],
    ["name", "fwd_ns", "fwd"],
    # the templates' own names as field names: self, a<i>, f<i>, s<i>, put
    ["a1", "a0", "f0", "s1", "put"],
    ["self", "f2", "s0"],
    [f"field_{i}" for i in range(record_templates.FIELDS_MAX)],
]
#: calls against (a, b, c)-like fields: good ones and each kind of error
CALLS = [((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3), {}), ((1, 2, 3, 4), {}),
         ((), {"x": 1}), ((1,), {"zz": 2}), ((1,), {"x": 2})]


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("names", NAMES, ids=lambda n: ",".join(n[:5]) or "none")
@pytest.mark.parametrize("defaults", [0, 1, 2])
def test_template_init_is_dataclasses_init(names, defaults, options):
    defaults = min(defaults, len(names))
    ref = dataclasses.dataclass(_body(names, defaults), **options)
    rec = record(_body(names, defaults), **options)
    assert rec.__init__.__code__.co_filename == record_templates.__file__
    assert str(inspect.signature(rec.__init__)) == str(inspect.signature(ref.__init__))
    assert rec.__init__.__defaults__ == ref.__init__.__defaults__
    values = list(range(1, len(names) + 1))
    calls = CALLS + [(values, {}), ((), dict(zip(names, values))),
                     (values[:len(names) - defaults], {}), (values + [0], {})]
    if names:
        calls += [(values[1:], {names[0]: 0}), (values, {names[-1]: 0})]
    for args, kwargs in calls:
        kwargs = {({"x": names[0] if names else "x"}.get(k, k)): v for k, v in kwargs.items()}
        assert _made(rec, args, kwargs) == _made(ref, args, kwargs)
    if names:
        obj, same = rec(*values), ref(*values)
        assert repr(obj) == repr(same) and obj == rec(*values)
        if not options.get("slots"):
            assert vars(obj) == vars(same)
        else:
            assert not hasattr(obj, "__dict__")
        if options.get("frozen"):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(obj, names[0], 0)
            assert hash(obj) == hash(rec(*values))


def test_errors_name_the_class_as_python_does():
    # written by hand: CPython's messages for a def __init__(self, x, y, z=100)
    cls = record(_body(["x", "y", "z"], defaults=1), frozen=True, slots=True)
    cases = [((1,), {}, "Body.__init__() missing 1 required positional argument: 'y'"),
             ((), {}, "Body.__init__() missing 2 required positional arguments: 'x' and 'y'"),
             ((1, 2, 3, 4), {},
              "Body.__init__() takes from 3 to 4 positional arguments but 5 were given"),
             ((1, 2), {"w": 1}, "Body.__init__() got an unexpected keyword argument 'w'"),
             ((1, 2), {"x": 1}, "Body.__init__() got multiple values for argument 'x'")]
    for args, kwargs, text in cases:
        with pytest.raises(TypeError) as e:
            cls(*args, **kwargs)
        assert str(e.value) == text
    assert (cls(1, 2).x, cls(1, 2).y, cls(1, 2).z, cls(z=3, y=2, x=1).z) == (1, 2, 100, 3)


def test_records_a_template_cannot_make_take_the_compiled_path():
    wide = [f"w{i}" for i in range(record_templates.FIELDS_MAX + 1)]
    factory = _body(["a"])
    factory.b = records.field(default_factory=list)
    factory.__annotations__["b"] = "list"

    class Posted:
        """Posted."""

        a: int

        def __post_init__(self):
            object.__setattr__(self, "seen", self.a + 1)

    class Hidden:
        """Hidden."""

        a: int
        b: int = records.field(default=7, init=False)
    made = {}
    for label, body, args in (("wide", _body(wide), range(len(wide))),
                              ("factory", factory, (1,)), ("posted", Posted, (1,)),
                              ("hidden", Hidden, (1,))):
        cls = record(body, frozen=True)
        assert cls.__init__.__code__.co_filename != record_templates.__file__
        made[label] = cls(*args)
    assert (made["wide"].w0, made["wide"].w24) == (0, 24)
    assert made["factory"].b == [] and made["posted"].seen == 2 and made["hidden"].b == 7


def test_a_frozen_slotted_field_that_is_no_slot_falls_back_as_dataclass():
    # a base's slot "a" shadowed by a property in between: the subclass declares no slot
    # "a", and what object.__setattr__ meets is the property (no setter), so the template
    # (which would write the slot) is not used and both refuse alike
    def body():
        class Slotted:
            __slots__ = ("a",)

        class Shadow(Slotted):
            a = property(lambda self: 0)

        class Sub(Shadow):
            """Sub."""

            __annotations__ = {"a": "int"}
        return Sub
    ref = dataclasses.dataclass(body(), frozen=True, slots=True)
    rec = record(body(), frozen=True, slots=True)
    assert rec.__init__.__code__.co_filename != record_templates.__file__
    with pytest.raises(AttributeError) as mine:
        rec(1)
    with pytest.raises(AttributeError) as theirs:
        ref(1)
    assert str(mine.value) == str(theirs.value)


def test_real_values():
    # the reader's objects, made as the reader makes them
    comm = Comm(Op.ALLREDUCE, Group.TP, 1024)
    row = Row("layer", 1, comm, 2, NO_COMM, 3, NO_COMM, 4, line=7)
    assert (row.name, row.fwd.op, row.fwd.size_bytes, row.line, row.policy) == (
        "layer", Op.ALLREDUCE, 1024, 7, "")
    assert row == Row(name="layer", fwd_ns=1, fwd=Comm(Op.ALLREDUCE, Group.TP, 1024),
                      ig_ns=2, ig=NO_COMM, wg_ns=3, wg=NO_COMM, update_ns=4, line=7)
    assert GroupPlacement(8, 1, 8, False).ranks == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.name = "other"
