"""Records whose ``__init__`` is written out in their class body behave as the generated one.

A record's generated ``__init__`` is compiled from source once its class has made 32
objects (simulator/records.py), 0.4-1.5 M instructions a class; the classes a simulate run
makes most of (rows, collectives, priced rows, row results, NCCL estimates, placements)
write it out instead. Each written one must be what records would compile: the same
parameters and defaults, the same values on the object for positional and keyword calls,
frozen records still frozen, and Python's own errors for bad calls.
"""
import dataclasses
import inspect

import pytest

from simulator import records
from simulator.costmodel.nccl import Estimate
from simulator.engine.replay import PricedRow
from simulator.parallel import GroupPlacement
from simulator.result import RowResult
from simulator.workload import NO_COMM, Comm, Group, Op, Row

WRITTEN = [Comm, Row, PricedRow, RowResult, Estimate, GroupPlacement]


def _generated(cls):
    slots = "__slots__" in cls.__dict__
    return records._compiled_init(cls, records.fields(cls), cls.__record_frozen__, slots)


def _sample(cls) -> list:
    """A distinct value for each init parameter (what they are does not matter here)."""
    return [(i, f.name) for i, f in enumerate(records.fields(cls)) if f.init]


@pytest.mark.parametrize("cls", WRITTEN, ids=lambda c: c.__name__)
def test_the_class_uses_its_written_init(cls):
    init = cls.__dict__["__init__"]
    assert inspect.getsourcefile(init) == inspect.getsourcefile(cls)
    assert init.__code__.co_filename != "<string>"


@pytest.mark.parametrize("cls", WRITTEN, ids=lambda c: c.__name__)
def test_same_parameters_and_defaults_as_the_generated_init(cls):
    mine = inspect.signature(cls.__dict__["__init__"]).parameters
    theirs = inspect.signature(_generated(cls)).parameters
    assert [(p.name, p.kind, p.default) for p in mine.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()]


@pytest.mark.parametrize("cls", WRITTEN, ids=lambda c: c.__name__)
def test_same_object_state_positional_keyword_and_defaults(cls):
    generated = _generated(cls)
    names = [f.name for f in records.fields(cls)]
    values = _sample(cls)
    required = [f for f in records.fields(cls) if f.init
                and f.default is records.MISSING and f.default_factory is records.MISSING]
    calls = [(values, {}),
             ([], {f.name: v for f, v in zip(records.fields(cls), values)}),
             (values[:len(required)], {})]      # the defaults
    for args, kwargs in calls:
        a, b = object.__new__(cls), object.__new__(cls)
        cls.__init__(a, *args, **kwargs)
        generated(b, *args, **kwargs)
        assert [getattr(a, n) for n in names] == [getattr(b, n) for n in names]
        assert a == b and repr(a) == repr(b)


@pytest.mark.parametrize("cls", WRITTEN, ids=lambda c: c.__name__)
def test_bad_calls_fail_as_python_makes_them(cls):
    values = _sample(cls)
    with pytest.raises(TypeError):
        cls(*values, "one too many")
    with pytest.raises(TypeError):
        cls(*values[:-1], no_such_field=1)
    with pytest.raises(TypeError):
        cls()


@pytest.mark.parametrize("cls", [c for c in WRITTEN if c.__record_frozen__],
                         ids=lambda c: c.__name__)
def test_frozen_records_stay_frozen(cls):
    obj = cls(*_sample(cls))
    name = records.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, name, 1)
    assert hash(obj) == hash(cls(*_sample(cls)))


def test_real_values():
    # the reader's objects, made as the reader makes them
    comm = Comm(Op.ALLREDUCE, Group.TP, 1024)
    row = Row("layer", 1, comm, 2, NO_COMM, 3, NO_COMM, 4, line=7)
    assert (row.name, row.fwd.op, row.fwd.size_bytes, row.line, row.policy) == (
        "layer", Op.ALLREDUCE, 1024, 7, "")
    assert row == Row(name="layer", fwd_ns=1, fwd=Comm(Op.ALLREDUCE, Group.TP, 1024),
                      ig_ns=2, ig=NO_COMM, wg_ns=3, wg=NO_COMM, update_ns=4, line=7)
    assert GroupPlacement(8, 1, 8, False).ranks == ()
