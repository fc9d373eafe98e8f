"""Named constants that behave as the enums they replace, without the ``enum`` module.

``enum`` is a large module and each Enum class costs tens of thousands of instructions to
create; a simulate run used four, only for what this base gives: members as class
attributes, in definition order, each with ``name`` and ``value``; ``Cls(value)`` and
``Cls[name]`` lookups (a member for itself); iteration and ``len``; Enum's ``repr``, ``str``
and ``format``; pickling and copying to the same member. A class that also derives from
``str`` compares and hashes as its value, as a ``(str, Enum)`` does; otherwise members
compare and hash by identity. Members are the class body's public string attributes.

mypy checks these classes as Enums (``if TYPE_CHECKING`` where they are defined), and
``tests/test_names.py`` compares each behaviour with the Enum the class replaces.
"""
from __future__ import annotations


def _repr(self) -> str:
    return f"<{type(self).__name__}.{self.name}: {self.value!r}>"


def _str(self) -> str:
    return f"{type(self).__name__}.{self.name}"


def _format(self, spec: str) -> str:
    return format(str(self), spec)


def _reduce_ex(self, protocol):
    return type(self), (self.value,)


def _same(self, *memo):
    return self


#: what every class gets unless its body defines it (as EnumType does: ``str``'s own would
#: come first in a ``(str, Names)`` class's method order)
_METHODS = {"__repr__": _repr, "__str__": _str, "__format__": _format,
            "__reduce_ex__": _reduce_ex, "__copy__": _same, "__deepcopy__": _same}


class _NamesType(type):
    _member_map_: dict
    _value2member_map_: dict

    def __new__(mcls, cls_name, bases, namespace):
        cls = super().__new__(mcls, cls_name, bases, namespace)
        for key, method in _METHODS.items():
            if key not in namespace:
                setattr(cls, key, method)
        text = issubclass(cls, str)
        members: dict = {}
        by_value: dict = {}
        for key, value in namespace.items():
            if key.startswith("_") or not isinstance(value, str):
                continue
            member: Names = (str.__new__(cls, value) if text   # type: ignore[arg-type]
                             else object.__new__(cls))          # type: ignore[arg-type]
            member.name = key
            member.value = value
            members[key] = member
            by_value[value] = member
            setattr(cls, key, member)
        cls._member_map_ = members
        cls._value2member_map_ = by_value
        return cls

    def __call__(cls, value):
        if isinstance(value, cls):
            return value
        try:
            return cls._value2member_map_[value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

    def __getitem__(cls, name):
        return cls._member_map_[name]

    def __iter__(cls):
        return iter(cls._member_map_.values())

    def __len__(cls):
        return len(cls._member_map_)


class Names(metaclass=_NamesType):
    """Base of a class of named constants (see the module's docstring)."""

    name: str
    value: str
