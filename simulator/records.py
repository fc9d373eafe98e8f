"""``@record``: a dataclass that costs less to create at import.

``dataclasses.dataclass`` writes the source of every method it adds (``__init__``,
``__repr__``, ``__eq__`` and, frozen, ``__hash__``, ``__setattr__``, ``__delattr__``) and
compiles each one when the class is made, 0.3-0.8 ms a class; the ~40 classes a plain
``collsim simulate`` run creates spend about 20 ms of its start-up in that compiler. ``record``
lets ``dataclass`` make ``__init__`` (and the frozen guards) as usual and gives the class
``__repr__``, ``__eq__`` and ``__hash__`` built from the field list without compiling anything:
they behave as dataclass's would (same text, same comparisons, same hash values, the same
rules for a class's own methods and for ``unhashable`` mutable classes), and the class is a
dataclass to ``fields``, ``replace``, ``asdict`` and to type checkers.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

try:
    from _thread import get_ident
except ImportError:  # pragma: no cover - a Python without threads
    def get_ident() -> int:
        return 0


def _values(names: tuple[str, ...]) -> Callable[[Any], tuple]:
    """A function giving the fields' values as a tuple (attrgetter gives a bare value for one
    name; a tuple keeps dataclass's identity-first comparison of each field)."""
    if len(names) >= 2:
        return attrgetter(*names)
    if names:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return lambda obj: ()


def _repr_fn(names: tuple[str, ...]) -> Callable[[Any], str]:
    running: set = set()

    def __repr__(self: Any) -> str:
        # a record holding itself prints "..." there, as dataclass's repr does
        key = (id(self), get_ident())
        if key in running:
            return "..."
        running.add(key)
        try:
            return (self.__class__.__qualname__ + "("
                    + ", ".join(f"{name}={getattr(self, name)!r}" for name in names) + ")")
        finally:
            running.discard(key)
    return __repr__


def _eq_fn(values: Callable[[Any], tuple]) -> Callable[[Any, Any], Any]:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented
    return __eq__


def _hash_fn(values: Callable[[Any], tuple]) -> Callable[[Any], int]:
    def __hash__(self: Any) -> int:
        return hash(values(self))
    return __hash__


def _add_methods(cls: type, frozen: bool, explicit_hash: bool) -> None:
    fields = dataclasses.fields(cls)
    own = cls.__dict__
    if "__repr__" not in own:
        cls.__repr__ = _repr_fn(tuple(f.name for f in fields if f.repr))  # type: ignore[assignment]
    if "__eq__" not in own:
        cls.__eq__ = _eq_fn(_values(tuple(f.name for f in fields if f.compare)))  # type: ignore[method-assign,assignment]
    if explicit_hash:
        return
    if frozen:
        hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
        cls.__hash__ = _hash_fn(_values(hashed))  # type: ignore[method-assign,assignment]
    else:
        cls.__hash__ = None  # type: ignore[assignment]   # mutable and compared by value


def _record(cls: Any = None, /, *, frozen: bool = False, slots: bool = False) -> Any:
    def wrap(c: type) -> type:
        # dataclass's test for a hash the class wrote itself (a class body with __eq__ and
        # no __hash__ holds __hash__ = None, which does not count)
        own_hash = c.__dict__.get("__hash__", dataclasses.MISSING)
        explicit = not (own_hash is dataclasses.MISSING
                        or (own_hash is None and "__eq__" in c.__dict__))
        made: type = dataclasses.dataclass(c, frozen=frozen, slots=slots, repr=False, eq=False)
        _add_methods(made, frozen, explicit)
        return made
    return wrap if cls is None else wrap(cls)


if TYPE_CHECKING:
    # to a type checker a record is exactly a dataclass (same fields, __init__, frozenness)
    from dataclasses import dataclass as record
else:
    record = _record
