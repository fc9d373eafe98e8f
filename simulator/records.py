"""``@record``: a dataclass made without the ``dataclasses`` module.

``dataclasses.dataclass`` writes the source of every method it adds (``__init__``,
``__repr__``, ``__eq__`` and, frozen, ``__hash__``, ``__setattr__``, ``__delattr__``),
compiles each one and runs a regular expression per annotation when the class is made,
0.3-0.8 ms a class, and importing ``dataclasses`` costs 5 ms more (``inspect``, ``ast``,
``dis``, ``tokenize``): about 17 ms of a plain ``collsim simulate`` start for its ~40 classes.
A record reads its fields from the class body itself and builds ``__repr__``, ``__eq__``,
``__hash__`` and the frozen guards from the field list by closures. Its ``__init__``
compiles nothing for a plain record (fields with at most a default): it is a function of
``record_templates`` (one per kind and field count, bytecode from that module's ``.pyc``)
with the fields' names put in, as cheap per call as one written out by hand; any other
record (default factories, ``init=False``, ``__post_init__``, more than 24 fields) gets a
generic ``__init__`` that compiles the dataclass-style one on the class's 33rd object.
A record behaves as dataclass's class would (same ``__init__`` signature and defaults,
``__post_init__``, default factories, same repr text, comparisons, hash values, the same
rules for a class's own methods, frozen and slotted classes, pickling), and it is still a
dataclass to ``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass``: the class's
``__dataclass_fields__`` and ``__dataclass_params__`` are made by ``dataclasses`` on first
access only. Code on the simulate path uses this module's :func:`field`, :func:`fields` and
:func:`replace` (the same calls, no ``dataclasses`` import); to a type checker they are
``dataclasses``' own. A class body this module does not handle (``ClassVar``, ``InitVar``,
``KW_ONLY`` annotations, a plain dataclass base) is made by ``dataclasses.dataclass``.
"""
from __future__ import annotations

import sys
from operator import attrgetter
from types import FunctionType, MappingProxyType

from . import record_templates as _templates

try:
    from _thread import get_ident
except ImportError:  # pragma: no cover - a Python without threads
    def get_ident() -> int:
        return 0

TYPE_CHECKING = False  # typing is 12 M instructions to import; mypy reads the block


class _MissingType:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _MissingType()
_EMPTY_METADATA: Any = MappingProxyType({})


class _Field:
    """One field of a record, with the attributes of ``dataclasses.Field`` a caller reads.

    (Slotted: a field's options are read often, and a class attribute of the same name
    would keep Python from specialising those reads.)"""

    __slots__ = ("name", "type", "default", "default_factory", "init", "repr", "hash",
                 "compare", "metadata", "kw_only")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool,
                 hash: bool | None, compare: bool, metadata: Any) -> None:
        self.name: str = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.metadata = (_EMPTY_METADATA if not metadata else
                         metadata if isinstance(metadata, MappingProxyType)
                         else MappingProxyType(metadata))
        self.kw_only = False

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r},type={self.type!r},default={self.default!r},"
                f"default_factory={self.default_factory!r},init={self.init!r},"
                f"repr={self.repr!r},hash={self.hash!r},compare={self.compare!r},"
                f"metadata={self.metadata!r})")

    def _named(self, name: str, tp: Any) -> _Field:
        made = _Field(self.default, self.default_factory, self.init, self.repr, self.hash,
                      self.compare, self.metadata)
        made.name, made.type = name, tp
        return made


def _plain_field(name: str, tp: Any, default: Any) -> _Field:
    """A field written as ``name: tp`` or ``name: tp = default`` (``_Field``'s own
    ``__init__`` without its call and its metadata test: most fields are these)."""
    f = _new_field(_Field)
    f.name = name
    f.type = tp
    f.default = default
    f.default_factory = _MISSING
    f.init = f.repr = f.compare = True
    f.hash = None
    f.metadata = _EMPTY_METADATA
    f.kw_only = False
    return f


_new_field = object.__new__


def _field(*, default: Any = _MISSING, default_factory: Any = _MISSING, init: bool = True,
           repr: bool = True, hash: bool | None = None, compare: bool = True,
           metadata: Any = None) -> Any:
    """``dataclasses.field`` for records (and, made into one on first use, for dataclasses)."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _Field(default, default_factory, init, repr, hash, compare, metadata)


def _from_dataclass_field(f: Any) -> _Field:
    """A ``dataclasses.Field`` written in a record's body, as a record field."""
    import dataclasses
    def own(v: Any) -> Any:
        return _MISSING if v is dataclasses.MISSING else v
    return _Field(own(f.default), own(f.default_factory), f.init, f.repr, f.hash, f.compare,
                  f.metadata)


# ---------------------------------------------------------------- the methods, by closures

def _values(names: tuple[str, ...]) -> Any:
    """A function giving the fields' values as a tuple (attrgetter gives a bare value for one
    name; a tuple keeps dataclass's identity-first comparison of each field)."""
    if len(names) >= 2:
        return attrgetter(*names)
    if names:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return lambda obj: ()


def _repr_fn(names: tuple[str, ...]) -> Any:
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


def _eq_fn(values: Any) -> Any:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return values(self) == values(other)
        return NotImplemented
    return __eq__


def _hash_fn(values: Any) -> Any:
    def __hash__(self: Any) -> int:
        return hash(values(self))
    return __hash__


def _frozen_error(text: str) -> Exception:
    from dataclasses import FrozenInstanceError   # only when someone writes to a record
    return FrozenInstanceError(text)


def _frozen_guards(holder: list, names: frozenset) -> tuple[Any, Any]:
    """dataclass's frozen ``__setattr__``/``__delattr__``: a field, or any attribute of the
    class itself, cannot be set or deleted; ``holder[0]`` is the finished class."""
    def __setattr__(self: Any, name: str, value: Any) -> None:
        cls = holder[0]
        if type(self) is cls or name in names:
            raise _frozen_error(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        cls = holder[0]
        if type(self) is cls or name in names:
            raise _frozen_error(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)
    return __setattr__, __delattr__


def _slots_getstate(names: tuple[str, ...]) -> tuple[Any, Any]:
    # a frozen slotted class has no __dict__ for pickle to fill and refuses setattr
    def __getstate__(self: Any) -> list:
        return [getattr(self, n) for n in names]

    def __setstate__(self: Any, state: list) -> None:
        for n, v in zip(names, state):
            object.__setattr__(self, n, v)
    return __getstate__, __setstate__


class _Factory:
    """The marker default of a parameter whose field has a default factory."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_HAS_FACTORY = _Factory()


def _slot_setter(cls: type, name: str) -> Any:
    """``__set__`` of the slot ``object.__setattr__(obj, name, v)`` writes on a ``cls``
    object (the first class in the MRO that names ``name``), or None when that is not a
    slot (a property, a class attribute)."""
    for c in cls.__mro__:
        if name in c.__dict__:
            d = c.__dict__[name]
            return d.__set__ if d.__class__ is _MEMBER_DESCRIPTOR else None
    return None


# ------------------------------------------- the __init__ of a plain record, from a template

def _template_init(cls: type, fields: tuple[_Field, ...], names: list[str], frozen: bool,
                   slots: bool) -> Any:
    """The ``__init__`` the compiled path would write (same parameters, defaults, object
    state and errors), made without compiling: a function of ``record_templates``
    (bytecode from its ``.pyc``) with the fields' names put in (``CodeType.replace``, a few
    thousand instructions, where compiling one costs about 0.9 M and the first compile of
    a process 10 M). For a plain record only (every field an ``__init__`` parameter, no
    default factory, no ``__post_init__``, at most ``FIELDS_MAX`` fields). A frozen slotted
    record's slot setters are put in its globals by :func:`_give_slot_setters` once the
    slotted class exists."""
    kind = "slots" if frozen and slots else "frozen" if frozen else "attrs"
    code = getattr(_templates, f"{kind}{len(names)}").__code__
    # the template's own names: "self", a<i> the parameters, f<i> the attribute names
    # (attrs) or their constants (frozen); anything else stays
    rename = dict(zip(_PARAMS, names))
    rename.update(zip(_ATTRS, names))
    rename["self"] = "__dataclass_self__" if "self" in names else "self"
    names_of = rename.get
    changes: dict[str, Any] = {"co_varnames": tuple(map(names_of, code.co_varnames,
                                                        code.co_varnames)),
                               "co_name": "__init__"}
    if kind == "attrs":
        changes["co_names"] = tuple(map(names_of, code.co_names, code.co_names))
    elif kind == "frozen":
        changes["co_consts"] = tuple(map(names_of, code.co_consts, code.co_consts))
    qualname = f"{cls.__qualname__}.__init__"
    if hasattr(code, "co_qualname"):    # Python 3.11: errors name the function by it
        changes["co_qualname"] = qualname
    defaults = [f.default for f in fields if f.default is not _MISSING]
    fn = FunctionType(code.replace(**changes),
                      {"put": object.__setattr__} if kind == "frozen" else {}, "__init__",
                      tuple(defaults) if defaults else None)
    fn.__qualname__ = qualname
    fn.__module__ = cls.__module__
    annotations = dict(zip(names, [f.type for f in fields]))
    annotations["return"] = None
    fn.__annotations__ = annotations
    return fn


#: the templates' parameter and attribute names, in field order
_PARAMS = tuple(f"a{i}" for i in range(_templates.FIELDS_MAX))
_ATTRS = tuple(f"f{i}" for i in range(_templates.FIELDS_MAX))


def _give_slot_setters(cls: type, init: Any, names: list[str]) -> bool:
    """Put each field's slot ``__set__`` (what ``object.__setattr__`` ends in, at 60% of its
    cost) where a ``slots<n>`` template ``__init__`` looks for it; False when a field is not
    a slot of ``cls`` (then the template cannot set it)."""
    env = init.__globals__
    own = cls.__dict__
    for i, name in enumerate(names):
        slot: Any = own.get(name)
        setter = (slot.__set__ if slot.__class__ is _MEMBER_DESCRIPTOR
                  else _slot_setter(cls, name))     # (inherited, or no slot)
        if setter is None:
            return False
        env[_SETTERS[i]] = setter
    return True


_MEMBER_DESCRIPTOR = type(type.__dict__["__dictoffset__"])   # what a slot is, in a class
_SETTERS = tuple(f"s{i}" for i in range(_templates.FIELDS_MAX))


def _compiled_init(cls: type, fields: tuple[_Field, ...], frozen: bool, slots: bool) -> Any:
    """The class's ``__init__``, as dataclass writes it, compiled from a line per field."""
    names = {f.name for f in fields}
    me = "__dataclass_self__" if "self" in names else "self"
    env: dict[str, Any] = {"__record_factory__": _HAS_FACTORY,
                           "__record_setattr__": object.__setattr__}
    params: list[str] = []
    defaults: list[Any] = []
    body: list[str] = []
    for i, f in enumerate(fields):
        if f.init:
            if f.default is not _MISSING or f.default_factory is not _MISSING:
                defaults.append(_HAS_FACTORY if f.default is _MISSING else f.default)
            params.append(f.name)
        if f.default_factory is not _MISSING:
            env[f"__record_f{i}__"] = f.default_factory
            value = (f"__record_f{i}__() if {f.name} is __record_factory__ else {f.name}"
                     if f.init else f"__record_f{i}__()")
        elif f.init:
            value = f.name
        elif slots and f.default is not _MISSING:
            env[f"__record_d{i}__"] = f.default
            value = f"__record_d{i}__"
        else:
            continue        # read from the class attribute that holds the default
        slot = _slot_setter(cls, f.name) if frozen and slots else None
        if slot is not None:
            # the slot's own setter: what object.__setattr__ ends in, at 60% of its cost
            env[f"__record_s{i}__"] = slot
            body.append(f"  __record_s{i}__({me}, {value})")
        else:
            body.append(f"  __record_setattr__({me}, {f.name!r}, {value})" if frozen
                        else f"  {me}.{f.name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append(f"  {me}.__post_init__()")
    src = f"def __init__({', '.join([me] + params)}):\n" + ("\n".join(body) or "  pass") + "\n"
    exec(src, env)
    fn = env["__init__"]
    fn.__defaults__ = tuple(defaults) or None
    fn.__qualname__ = f"{cls.__qualname__}.__init__"
    fn.__module__ = cls.__module__
    fn.__annotations__ = {**{f.name: f.type for f in fields if f.init}, "return": None}
    return fn


#: calls of a class's generic ``__init__`` before its compiled one replaces it
COMPILE_AFTER = 32
#: plain records take their ``__init__`` from ``record_templates`` (off: the generic and
#: compiled path for every record, which tests compare)
TEMPLATE_INITS = True
_UNSET: Any = object()


def _lazy_init(holder: list, fields: tuple[_Field, ...], frozen: bool, slots: bool) -> Any:
    """An ``__init__`` that does what the compiled one does without compiling anything, for
    the first ``COMPILE_AFTER`` objects of the class; then (or at once for a call it cannot
    bind, so that the error is Python's own) it compiles the real one, puts it on the class
    and calls it. Most classes make a handful of objects a run, so most never compile."""
    state: dict[str, Any] = {"calls": 0}

    def real() -> Any:
        fn = state.get("fn")
        if fn is None:
            cls = holder[0]
            fn = state["fn"] = _compiled_init(cls, fields, frozen, slots)
            if cls.__dict__.get("__init__") is __init__:
                cls.__init__ = fn
        return fn

    def plan() -> tuple:
        init = [f for f in fields if f.init]
        names = tuple(f.name for f in init)
        required = sum(1 for f in init if f.default is _MISSING
                       and f.default_factory is _MISSING)
        tail = tuple(_HAS_FACTORY if f.default is _MISSING else f.default
                     for f in init[required:])
        steps = []          # (name, 0: bound value, 1: bound or factory, 2: factory, 3: const)
        for f in fields:
            if f.init:
                pos = names.index(f.name)
                steps.append((f.name, 0, pos) if f.default_factory is _MISSING
                             else (f.name, 1, (pos, f.default_factory)))
            elif f.default_factory is not _MISSING:
                steps.append((f.name, 2, f.default_factory))
            elif slots and f.default is not _MISSING:
                steps.append((f.name, 3, f.default))
        plain = all(kind == 0 for _, kind, _ in steps) and len(steps) == len(names)
        made = (names, {n: i for i, n in enumerate(names)}, required, tail, tuple(steps),
                plain and not hasattr(holder[0], "__post_init__"),
                hasattr(holder[0], "__post_init__"),
                object.__setattr__ if frozen else setattr)
        state["plan"] = made
        return made

    def __init__(*args: Any, **kwargs: Any) -> None:
        state["calls"] += 1
        if state["calls"] > COMPILE_AFTER or not args:
            return real()(*args, **kwargs)
        names, index, required, tail, steps, plain, post, put = state.get("plan") or plan()
        self = args[0]
        given = len(args) - 1
        n = len(names)
        if given == n and not kwargs:
            values: Any = args[1:]
        else:
            if given > n:
                return real()(*args, **kwargs)
            values = list(args[1:]) + [_UNSET] * (n - given)
            for key, value in kwargs.items():
                i = index.get(key, -1)
                if i < given:           # unknown, or given twice
                    return real()(*args, **kwargs)
                values[i] = value
            for i in range(given, n):
                if values[i] is _UNSET:
                    if i < required:
                        return real()(*args, **kwargs)
                    values[i] = tail[i - required]
        if plain:
            for name, value in zip(names, values):
                put(self, name, value)
            return None
        for name, kind, ref in steps:
            if kind == 0:
                put(self, name, values[ref])
            elif kind == 1:
                value = values[ref[0]]
                put(self, name, ref[1]() if value is _HAS_FACTORY else value)
            elif kind == 2:
                put(self, name, ref())
            else:
                put(self, name, ref)
        if post:
            self.__post_init__()
        return None
    # inspect.signature follows __wrapped__: it sees the compiled __init__'s parameters
    __init__.__wrapped__ = _SignatureOf(real)  # type: ignore[attr-defined]
    return __init__


class _SignatureOf:
    """What ``inspect.signature`` reads for a lazily compiled ``__init__``: the compiled
    one's signature (compiling it then: only introspection asks)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._real()(*args, **kwargs)

    @property
    def __signature__(self) -> Any:
        import inspect
        return inspect.signature(self._real())


# ------------------------------------------------------------ dataclasses' view, on demand

class _DataclassView:
    """``__dataclass_fields__`` / ``__dataclass_params__`` of a record: made by
    ``dataclasses`` from the record's fields the first time anything asks, then kept on the
    class."""

    def __init__(self, attr: str) -> None:
        self.attr = attr
        self.holder: Any = None

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        cls = self.holder
        made = _dataclass_of(cls)
        cls.__dataclass_fields__ = made.__dataclass_fields__
        cls.__dataclass_params__ = made.__dataclass_params__
        return getattr(cls, self.attr)


def _dataclass_of(cls: Any) -> Any:
    """A dataclass with the record's fields (in order, with their options), made by
    ``dataclasses`` itself, whose field objects and parameters the record then shows."""
    import dataclasses
    frozen = cls.__record_frozen__
    body: dict[str, Any] = {"__annotations__": {}, "__module__": cls.__module__,
                            "__qualname__": cls.__qualname__, "__doc__": cls.__doc__}
    for f in cls.__record_fields__:
        body["__annotations__"][f.name] = f.type
        body[f.name] = dataclasses.field(
            default=dataclasses.MISSING if f.default is _MISSING else f.default,
            default_factory=(dataclasses.MISSING if f.default_factory is _MISSING
                             else f.default_factory),
            init=f.init, repr=f.repr, hash=f.hash, compare=f.compare,
            metadata=dict(f.metadata) or None)
    return dataclasses.dataclass(type(cls.__name__, (), body), frozen=frozen, repr=False,
                                 eq=False)


# ------------------------------------------------------------------------ making a record

def _unsupported(annotation: Any) -> bool:
    """ClassVar, InitVar and KW_ONLY change what a field is: dataclass handles those."""
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return "ClassVar" in text or "InitVar" in text or "KW_ONLY" in text


def _slots_of(c: type) -> Any:
    slots = c.__dict__.get("__slots__")
    if slots is None:
        return ()
    return (slots,) if isinstance(slots, str) else slots


def _make(cls: Any, frozen: bool, slots: bool) -> Any:
    own = cls.__dict__
    annotations = own.get("__annotations__", {})
    fields: dict[str, _Field] = {}
    base_frozen: set[bool] = set()
    for base in cls.__mro__[-2:0:-1]:       # (object holds neither)
        base_dict = base.__dict__
        base_fields = base_dict.get("__record_fields__")
        if base_fields is not None:
            base_frozen.add(base_dict["__record_frozen__"])
            for f in base_fields:
                fields[f.name] = f
        elif "__dataclass_fields__" in base_dict:
            return None                 # a plain dataclass base: dataclass merges it
    if base_frozen:
        if frozen and False in base_frozen:
            raise TypeError("cannot inherit frozen dataclass from a non-frozen one")
        if not frozen and True in base_frozen:
            raise TypeError("cannot inherit non-frozen dataclass from a frozen one")
    dc = sys.modules.get("dataclasses")     # no dataclasses loaded: no Field can exist
    dc_field: Any = dc.Field if dc is not None else None
    # every field written as `name: tp [= default]`, none inherited: the name lists below
    # are all the field names (most records; it saves a pass reading each field's options)
    simple = not fields
    seen_default = False
    out_of_order = None     # the first such field's name (raised once all fields are read,
                            # as dataclass checks a mutable default first)
    for name, tp in annotations.items():
        if tp.__class__ is str:     # (from __future__ import annotations: the usual case)
            if "ClassVar" in tp or "InitVar" in tp or "KW_ONLY" in tp:
                return None
        elif _unsupported(tp):
            return None
        value = own.get(name, _MISSING)
        if isinstance(value, _Field):
            f = value._named(name, tp)
        elif dc is not None and isinstance(value, dc_field):
            f = _from_dataclass_field(value)._named(name, tp)
        else:
            # a plain default (or none): made named at once (a field(...) is copied)
            f = _plain_field(name, tp, value)
            if value is _MISSING:
                if seen_default and out_of_order is None:
                    out_of_order = name
            else:
                seen_default = True
                if value.__class__.__hash__ is None:
                    raise ValueError(f"mutable default {type(value)} for field {name} is not "
                                     "allowed: use default_factory")
            fields[name] = f
            continue
        simple = False
        if f.default is not _MISSING and f.default.__class__.__hash__ is None:
            raise ValueError(f"mutable default {type(f.default)} for field {name} is not "
                             "allowed: use default_factory")
        # a field(...) in the body: the class shows its default
        if f.default is _MISSING:
            delattr(cls, name)
        else:
            setattr(cls, name, f.default)
        fields[name] = f
    if _Field in set(map(type, own.values())):     # (C loops: most bodies have none)
        for name, value in own.items():
            if isinstance(value, _Field) and name not in annotations:
                raise TypeError(f"{name!r} is a field but has no type annotation")
    all_fields = tuple(fields.values())
    plain = not hasattr(cls, "__post_init__")       # (one from a base too)
    if simple and out_of_order is not None:
        raise TypeError(f"non-default argument {out_of_order!r} follows default argument")
    if simple:
        names = list(fields)
        init_names = repr_names = compare_names = hash_names = names
    else:
        names, init_names, repr_names, compare_names, hash_names = [], [], [], [], []
        seen_default = False
    for f in () if simple else all_fields:
        names.append(f.name)
        if f.init:
            init_names.append(f.name)
            if f.default is _MISSING and f.default_factory is _MISSING:
                if seen_default:
                    raise TypeError(f"non-default argument {f.name!r} follows default "
                                    "argument")
            else:
                seen_default = True
        if not f.init or f.default_factory is not _MISSING:
            plain = False
        if f.repr:
            repr_names.append(f.name)
        if f.compare:
            compare_names.append(f.name)
        if f.compare if f.hash is None else f.hash:
            hash_names.append(f.name)

    # dataclass's test for a hash the class wrote itself (a class body with __eq__ and no
    # __hash__ holds __hash__ = None, which does not count)
    own_hash = own.get("__hash__", _MISSING)
    explicit_hash = not (own_hash is _MISSING or (own_hash is None and "__eq__" in own))
    holder: list = [cls]
    # the methods, then set on the class at once (a slotted class: in the body of the class
    # made again with slots, so the first one is not changed attribute by attribute)
    made: dict[str, Any] = {}
    template_init = None
    if "__init__" not in own:
        if plain and len(names) <= _templates.FIELDS_MAX and TEMPLATE_INITS:
            template_init = _template_init(cls, all_fields, names, frozen, slots)
        made["__init__"] = template_init or _named_lazy_init(cls, holder, all_fields,
                                                             frozen, slots)
    if "__repr__" not in own:
        made["__repr__"] = _repr_fn(tuple(repr_names))
    if "__eq__" not in own:
        made["__eq__"] = _eq_fn(_values(tuple(compare_names)))
    if not explicit_hash:
        # frozen: by the fields; mutable and compared by value: unhashable
        made["__hash__"] = _hash_fn(_values(tuple(hash_names))) if frozen else None
    if frozen:
        if "__setattr__" in own or "__delattr__" in own:
            name = "__setattr__" if "__setattr__" in own else "__delattr__"
            raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")
        made["__setattr__"], made["__delattr__"] = _frozen_guards(holder, frozenset(names))
    if "__match_args__" not in own:
        made["__match_args__"] = tuple(init_names)
    made["__record_fields__"] = all_fields
    made["__record_frozen__"] = frozen
    views = (_DataclassView("__dataclass_fields__"), _DataclassView("__dataclass_params__"))
    made["__dataclass_fields__"], made["__dataclass_params__"] = views
    if slots and "__slots__" in own:
        raise TypeError(f"{cls.__name__} already specifies __slots__")
    if not slots or cls.__doc__ is None:
        for key, value in made.items():
            setattr(cls, key, value)
    if cls.__doc__ is None:
        # dataclass's own docstring: the class's signature (needs inspect: a record should
        # have a docstring of its own)
        import inspect
        cls.__doc__ = cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")
    if slots:
        body = dict(own)
        body.update(made)
        inherited = {s for c in cls.__mro__[1:-1] for s in _slots_of(c)}
        body["__slots__"] = tuple(n for n in names if n not in inherited)
        for n in names:
            body.pop(n, None)
        body.pop("__dict__", None)
        body.pop("__weakref__", None)
        if frozen:
            getstate, setstate = _slots_getstate(tuple(names))
            body.setdefault("__getstate__", getstate)
            body.setdefault("__setstate__", setstate)
        qualname = getattr(cls, "__qualname__", None)
        cls = type(cls)(cls.__name__, cls.__bases__, body)
        if qualname is not None:
            cls.__qualname__ = qualname
    holder[0] = cls
    for view in views:
        view.holder = cls
    if (template_init is not None and frozen and slots
            and not _give_slot_setters(cls, template_init, names)):
        # a field that is no slot of this class (a base's class attribute): compiled path
        cls.__init__ = _named_lazy_init(cls, holder, all_fields, frozen, slots)
    return cls


def _named_lazy_init(cls: Any, holder: list, fields: tuple[_Field, ...], frozen: bool,
                     slots: bool) -> Any:
    init = _lazy_init(holder, fields, frozen, slots)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {f.name: f.type for f in fields if f.init}
    init.__annotations__["return"] = None
    return init


def _record(cls: Any = None, /, *, frozen: bool = False, slots: bool = False) -> Any:
    def wrap(c: Any) -> Any:
        made = _make(c, frozen, slots)
        if made is None:
            import dataclasses
            return dataclasses.dataclass(c, frozen=frozen, slots=slots)
        return made
    return wrap if cls is None else wrap(cls)


def _record_fields(cls: type) -> Any:
    """The record fields of ``cls``, or None where the nearest dataclass in its MRO is not a
    record (a plain dataclass subclass of a record has fields of its own)."""
    for c in cls.__mro__:
        d = c.__dict__
        if "__record_fields__" in d:
            return d["__record_fields__"]
        if "__dataclass_fields__" in d:
            return None
    return None


def _fields(class_or_instance: Any) -> tuple:
    """``dataclasses.fields``: a record's fields (all but ClassVars, in order)."""
    cls = class_or_instance if isinstance(class_or_instance, type) else type(class_or_instance)
    own = _record_fields(cls)
    if own is not None:
        return own
    import dataclasses
    return dataclasses.fields(class_or_instance)


def _replace(obj: Any, /, **changes: Any) -> Any:
    """``dataclasses.replace``: a new object of the same class, some fields changed."""
    own = _record_fields(type(obj))
    if own is None:
        import dataclasses
        return dataclasses.replace(obj, **changes)
    for f in own:
        if not f.init:
            if f.name in changes:
                raise ValueError(f"field {f.name} is declared with init=False, it cannot be "
                                 "specified with replace()")
            continue
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)


if TYPE_CHECKING:
    from typing import Any
    # to a type checker a record is exactly a dataclass (same fields, __init__, frozenness)
    from dataclasses import MISSING, Field, field, fields, replace
    from dataclasses import dataclass as record
else:
    record = _record
    field = _field
    fields = _fields
    replace = _replace
    MISSING = _MISSING
    Field = _Field
