"""The parts of pybind11's behaviour the TensorRT stand-in needs to be as strict as the bindings.

* ``make_enum``: a ``py::enum_`` of a C++ ``enum class`` (all of TensorRT's): members are
  instances and class attributes, ``EnumType(int)`` constructs one,
  ``int()``/``__index__``/``.name``/``.value``/``__members__`` work, ``str()`` is
  ``"Type.MEMBER"``. An ``enum class`` is not convertible to int, so pybind11 (``enum_base::init``,
  the ``else`` branch of ``is_convertible``) makes ``==`` strict (a member never equals an int) and
  gives ``py::arithmetic`` enums only ordering against the same type ("Expected an enumeration of
  matching type!"), no bitwise operators. A member the version does not have is an
  AttributeError.
* ``check``: pybind11's overload resolution refuses an argument of the wrong type with
  "TypeError: f(): incompatible function arguments" (no implicit int -> enum conversion).
* ``TrampolineMeta``: a Python subclass of a trampolined class (``ILogger``,
  ``IProgressMonitor``) must call the base ``__init__`` or instantiating it raises TypeError
  "<base>.__init__() must be called when overriding __init__".

Keyword names are the Python functions' own parameter names, copied from the ``"name"_a``
annotations of the bindings, so a made-up keyword is a TypeError as with pybind11.

Checked against pybind11 tag v2.13.6 (a2e59f0e7065404b44dfe92a28aca47ba1378dc4):
``include/pybind11/pybind11.h`` (``enum_base::init``, ``enum_`` with ``is_convertible =
std::is_convertible<Type, Underlying>`` false for an ``enum class``, ``__int__``/``__index__``) and
``include/pybind11/detail/class.h`` ("%.200s.__init__() must be called when overriding
__init__").
"""

from __future__ import annotations

from typing import Any

MODULE = "tensorrt"


class PybindEnum:
    """Base of every generated enum type."""

    __slots__ = ("_name", "_value")
    _arithmetic = False
    _by_value: dict[int, PybindEnum]
    __members__: dict[str, PybindEnum]

    def __new__(cls, value: int) -> PybindEnum:  # noqa: PYI034 - pybind's int constructor
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"__init__(): incompatible constructor arguments. The following "
                            f"argument types are supported:\n    1. {MODULE}.{cls.__name__}"
                            f"(value: int)\n\nInvoked with: {value!r}")
        member = cls._by_value.get(value)
        if member is not None:
            return member
        obj = object.__new__(cls)  # pybind11 allows values without a name: "???"
        obj._name, obj._value = "???", value
        return obj

    @property
    def name(self) -> str:
        return self._name

    @property
    def value(self) -> int:
        return self._value

    def __int__(self) -> int:
        return self._value

    def __index__(self) -> int:
        return self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._value == self._value  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self._name}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self._name}: {self._value}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._value,))



def _ordering(op: str) -> Any:  # noqa: ANN401
    def f(self: PybindEnum, other: object) -> bool:
        if type(other) is not type(self):
            raise TypeError("Expected an enumeration of matching type!")
        return getattr(int(self), op)(int(other))  # type: ignore[call-overload]

    f.__name__ = op
    return f


def make_enum(name: str, members: list[tuple[str, int]], arithmetic: bool = False,
              export_to: type | None = None) -> type[PybindEnum]:
    ns: dict[str, Any] = {"__slots__": (), "_arithmetic": arithmetic, "__module__": MODULE,
                          "__qualname__": name}
    if arithmetic:
        for op in ("__lt__", "__le__", "__gt__", "__ge__"):
            ns[op] = _ordering(op)
    cls = type(name, (PybindEnum,), ns)
    cls._by_value = {}
    cls.__members__ = {}
    for member, value in members:
        obj = object.__new__(cls)
        obj._name, obj._value = member, value
        existing = cls._by_value.setdefault(value, obj)  # an alias keeps the first's identity
        cls.__members__[member] = existing
        setattr(cls, member, existing)
        if export_to is not None:
            setattr(export_to, member, existing)
    return cls


def check(fn: str, sig: str, value: Any, *types: type, allow_none: bool = False) -> None:  # noqa: ANN401
    """Raises pybind11's TypeError unless ``value`` is one of ``types``."""
    if value is None and allow_none:
        return
    ok = isinstance(value, types)
    if ok and int in types and isinstance(value, bool) and bool not in types:
        ok = False
    if not ok:
        raise TypeError(f"{fn}(): incompatible function arguments. The following argument types "
                        f"are supported:\n    1. {sig}\n\nInvoked with: {value!r}")


def dims(fn: str, value: Any) -> tuple[int, ...]:  # noqa: ANN401
    """A Dims argument: pybind11 converts any sequence of ints (implicitly_convertible)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{fn}(): incompatible function arguments: expected a tensorrt.Dims or "
                        f"a sequence of ints, got {value!r}")
    out = tuple(value)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        raise TypeError(f"{fn}(): incompatible function arguments: Dims must be ints, got "
                        f"{value!r}")
    if len(out) > 8:
        raise ValueError(f"{fn}(): Dims has at most MAX_DIMS = 8 dimensions, got {len(out)}")
    return out


class TrampolineMeta(type):
    """Instantiating a Python subclass that skipped the base ``__init__`` is a TypeError."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        obj = super().__call__(*args, **kwargs)
        if not obj.__dict__.get("_pybind_initialised"):
            base = next(b for b in cls.__mro__ if b.__dict__.get("_trampoline_base"))
            raise TypeError(f"{MODULE}.{base.__name__}.__init__() must be called when "
                            "overriding __init__")
        return obj
