"""Read-only containers, so that what one plugin receives cannot change what the next one sees.

The contract's values are frozen attrs classes, but a frozen class holding a
plain ``dict`` still lets a guard write ``message.metadata["k"] = v`` and so
change the prompt, the in-process history and the caller's ``TurnResult``
while the stored row keeps the original. Every container field of the data
model is therefore *deep-frozen* when the value is built: mappings become
:class:`FrozenDict`, lists :class:`FrozenList`, tuples and sets keep their
kind with frozen members (a set becomes a ``frozenset``); anything else
(scalars, attrs values, a tuple subclass …) is kept as it is.

Both classes subclass the builtin they stand for, so ``isinstance(x, dict)``,
equality with plain values, ``json.dumps``, ``dict(x)`` and ``list(x)``
behave as before and code that only reads is unaffected. Their mutating
methods raise :class:`TypeError` saying what to do instead. ``x.copy()``,
``dict(x)``, ``{**x, ...}`` and ``x | {...}`` give ordinary mutable copies.
This guards against accidents, not malice: ``dict.__setitem__(x, k, v)``
still writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, SupportsIndex, TypeVar

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

_ADVICE = (
    "the values turnkit hands to plugins are read-only; build a new value instead "
    "(a pipeline returns attrs.evolve(message, metadata={**message.metadata, key: value})) "
    "or change a copy (dict(x), list(x))"
)


def _refuse(container: object, method: str) -> NoReturn:
    raise TypeError(f"cannot {method} a {type(container).__name__}: {_ADVICE}")


class FrozenDict(dict[K, V]):
    """A ``dict`` that cannot be changed after it is built; its values are frozen too."""

    __slots__ = ()

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = (), /) -> None:
        super().__init__(items)
        _freeze_values(self)

    def __setitem__(self, key: K, value: V) -> NoReturn:
        _refuse(self, "set an item of")

    def __delitem__(self, key: K) -> NoReturn:
        _refuse(self, "delete an item of")

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        _refuse(self, "update")

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self, "update")

    def setdefault(self, *args: Any) -> NoReturn:
        _refuse(self, "setdefault on")

    def pop(self, *args: Any) -> NoReturn:
        _refuse(self, "pop from")

    def popitem(self) -> NoReturn:
        _refuse(self, "popitem from")

    def clear(self) -> NoReturn:
        _refuse(self, "clear")

    def __reduce__(self) -> tuple[type[FrozenDict[K, V]], tuple[dict[K, V]]]:
        # pickle and copy would otherwise refill an empty instance item by item
        return type(self), (dict(self),)

    def __copy__(self) -> FrozenDict[K, V]:
        return self


class FrozenList(list[T]):
    """A ``list`` that cannot be changed after it is built; its items are frozen too.

    A list rather than a tuple so that it still equals the list it was made
    from (and the list JSON reads back), and ``isinstance(x, list)`` holds.
    """

    __slots__ = ()

    def __init__(self, items: Iterable[T] = (), /) -> None:
        super().__init__(items)
        _freeze_items(self)

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        _refuse(self, "set an item of")

    def __delitem__(self, index: SupportsIndex | slice) -> NoReturn:
        _refuse(self, "delete an item of")

    def __iadd__(self, other: Iterable[T]) -> NoReturn:  # type: ignore[misc,override]
        _refuse(self, "extend")

    def __imul__(self, count: SupportsIndex) -> NoReturn:
        _refuse(self, "extend")

    def append(self, item: T) -> NoReturn:
        _refuse(self, "append to")

    def extend(self, items: Iterable[T]) -> NoReturn:
        _refuse(self, "extend")

    def insert(self, index: SupportsIndex, item: T) -> NoReturn:
        _refuse(self, "insert into")

    def pop(self, index: SupportsIndex = -1) -> NoReturn:
        _refuse(self, "pop from")

    def remove(self, item: T) -> NoReturn:
        _refuse(self, "remove from")

    def clear(self) -> NoReturn:
        _refuse(self, "clear")

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(self, "sort")

    def reverse(self) -> NoReturn:
        _refuse(self, "reverse")

    def __reduce__(self) -> tuple[type[FrozenList[T]], tuple[list[T]]]:
        return type(self), (list(self),)

    def __copy__(self) -> FrozenList[T]:
        return self


#: Types returned as they are: immutable, or frozen all the way down by construction.
_KEPT = frozenset({str, int, float, bool, bytes, type(None), FrozenDict, FrozenList})


def _freeze_values(mapping: dict[Any, Any]) -> None:
    """Freeze the values of a new ``FrozenDict`` in place (replacing a key's value keeps the size)."""
    for key, value in dict.items(mapping):
        if type(value) not in _KEPT:
            frozen = freeze(value)
            if frozen is not value:
                dict.__setitem__(mapping, key, frozen)


def _freeze_items(items: list[Any]) -> None:
    """Freeze the items of a new ``FrozenList`` in place."""
    for index, item in enumerate(items):
        if type(item) not in _KEPT:
            frozen = freeze(item)
            if frozen is not item:
                list.__setitem__(items, index, frozen)


#: The frozen empty mapping every value without metadata shares: building it costs nothing.
EMPTY: FrozenDict[Any, Any] = FrozenDict()


def _frozen_dict(mapping: Mapping[Any, Any]) -> FrozenDict[Any, Any]:
    """``FrozenDict(mapping)`` without the cost of calling ``__init__``: the data model's hot path."""
    if not mapping:
        return EMPTY
    new: FrozenDict[Any, Any] = dict.__new__(FrozenDict)
    dict.__init__(new, mapping)
    _freeze_values(new)
    return new


def _frozen_list(items: Iterable[Any]) -> FrozenList[Any]:
    """``FrozenList(items)`` without the cost of calling ``__init__``."""
    new: FrozenList[Any] = list.__new__(FrozenList)
    list.__init__(new, items)
    _freeze_items(new)
    return new


def freeze(value: Any) -> Any:
    """``value`` with every container in it replaced by its read-only form (see the module doc).

    Already frozen containers are returned as they are: a ``FrozenDict`` or
    ``FrozenList`` is frozen all the way down by construction, which keeps
    ``attrs.evolve`` (which re-runs the converters) cheap. Exact types are
    checked first because this runs for every value built.
    """
    kind = type(value)
    if kind in _KEPT:
        return value
    if kind is dict:
        return _frozen_dict(value)
    if kind is list:
        return _frozen_list(value)
    if kind is tuple:
        return tuple(freeze(item) for item in value)
    if isinstance(value, Mapping):
        return _frozen_dict(value)
    if isinstance(value, list):
        return _frozen_list(value)
    if isinstance(value, set | frozenset):
        return frozenset(freeze(item) for item in value)
    return value


def freeze_mapping(value: Mapping[str, Any]) -> FrozenDict[str, Any]:
    """The converter of the data model's mapping fields (``metadata``, ``args`` …)."""
    if isinstance(value, FrozenDict):
        return value
    return _frozen_dict(value)


__all__ = ["EMPTY", "FrozenDict", "FrozenList", "freeze", "freeze_mapping"]
