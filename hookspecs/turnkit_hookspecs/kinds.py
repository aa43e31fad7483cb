"""The four extension point kinds and the decorators that declare them.

A hookspec is declared with exactly one kind decorator. The decorator applies
pluggy's ``hookspec`` marker and records a :class:`PointKind` on the function,
which the runtime reads to choose the dispatch rule (the full rules are in
docs/architecture.md, "The four kinds"):

* ``guard``    -- in order; the first :class:`~turnkit_hookspecs.model.Deny` stops.
* ``pipeline`` -- one argument is threaded through every implementation.
* ``effect``   -- every implementation runs after the observed state is committed.
* ``resolve``  -- in order; the first non-``None`` answer wins.

pluggy's ``firstresult`` is never used: it cannot await coroutines, and the
runtime must mix ``def`` and ``async def`` implementations.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, overload

import attrs

from .markers import hookspec

F = TypeVar("F", bound=Callable[..., Any])

KIND_ATTRIBUTE = "turnkit_kind"


class Kind(enum.StrEnum):
    """How an extension point is dispatched."""

    GUARD = "guard"
    PIPELINE = "pipeline"
    EFFECT = "effect"
    RESOLVE = "resolve"


@attrs.frozen
class PointKind:
    """What the runtime needs to know about a point beyond its signature.

    ``value`` names the argument a pipeline threads through and ``value_type``
    the type every non-``None`` return of a pipeline or resolve must have; ``timeout`` is the
    point's own default per-implementation time limit in seconds, instead of its kind's
    (config may override either).
    """

    kind: Kind
    value: str | None = None
    value_type: type | None = None
    timeout: float | None = None


def kind_of(spec_function: Callable[..., Any]) -> PointKind | None:
    """Return the kind recorded on a hookspec function, or ``None``."""
    return getattr(spec_function, KIND_ATTRIBUTE, None)


def _declare(function: F, kind: PointKind) -> F:
    if function.__doc__ is None:
        raise TypeError(f"extension point {function.__name__!r} needs a docstring with an example")
    setattr(function, KIND_ATTRIBUTE, kind)
    return hookspec(function)


@overload
def guard(function: F, *, timeout: float | None = None) -> F: ...
@overload
def guard(function: None = None, *, timeout: float | None = None) -> Callable[[F], F]: ...
def guard(function: F | None = None, *, timeout: float | None = None) -> F | Callable[[F], F]:
    """Declare a guard point: implementations return ``None`` to allow or a ``Deny``.

    Usable bare (``@guard``) or with the point's own time limit (``@guard(timeout=1.0)``).
    """

    def decorate(fn: F) -> F:
        return _declare(fn, PointKind(Kind.GUARD, timeout=timeout))

    return decorate if function is None else decorate(function)


@overload
def resolve(function: F, *, timeout: float | None = None) -> F: ...
@overload
def resolve(function: None = None, *, timeout: float | None = None) -> Callable[[F], F]: ...
def resolve(function: F | None = None, *, timeout: float | None = None) -> F | Callable[[F], F]:
    """Declare a resolve point: the first implementation returning non-``None`` wins.

    When the return annotation is ``X | None`` for a class ``X``, an answer
    that is not an ``X`` fails the point, naming the plugin. Usable bare
    (``@resolve``) or with the point's own time limit (``@resolve(timeout=120)``).
    """

    def decorate(fn: F) -> F:
        return _declare(fn, PointKind(Kind.RESOLVE, value_type=_answer_type(fn), timeout=timeout))

    return decorate if function is None else decorate(function)


def _answer_type(function: Callable[..., Any]) -> type | None:
    annotation = typing.get_type_hints(function).get("return")
    options = [a for a in typing.get_args(annotation) if a is not type(None)]
    answer = typing.get_origin(options[0]) or options[0] if len(options) == 1 else None
    return answer if isinstance(answer, type) else None


@overload
def effect(function: F, *, timeout: float | None = None) -> F: ...
@overload
def effect(function: None = None, *, timeout: float | None = None) -> Callable[[F], F]: ...
def effect(function: F | None = None, *, timeout: float | None = None) -> F | Callable[[F], F]:
    """Declare an effect point, optionally with its own default timeout.

    Usable bare (``@effect``) or with arguments (``@effect(timeout=2.0)``).
    """

    def decorate(fn: F) -> F:
        return _declare(fn, PointKind(Kind.EFFECT, timeout=timeout))

    return decorate if function is None else decorate(function)


def pipeline(value: str, *, timeout: float | None = None) -> Callable[[F], F]:
    """Declare a pipeline point threading the argument named ``value``.

    The type every implementation must return (or ``None`` for "unchanged")
    is read from that argument's annotation, so the contract states it once.
    ``timeout`` is the point's own time limit, instead of the kind's.
    """

    def decorate(fn: F) -> F:
        parameters = inspect.signature(fn).parameters
        if value not in parameters:
            raise TypeError(f"pipeline {fn.__name__!r} has no argument {value!r} to thread")
        annotation = typing.get_type_hints(fn).get(value)
        if annotation is None:
            raise TypeError(f"pipeline {fn.__name__!r} must annotate its threaded argument {value!r}")
        value_type = typing.get_origin(annotation) or annotation
        # ``X | None`` has origin ``types.UnionType``, itself a class: refuse it
        # rather than record a type no returned value can ever be an instance of.
        if not isinstance(value_type, type) or value_type is types.UnionType:
            raise TypeError(f"pipeline {fn.__name__!r}: {annotation!r} is not a checkable type")
        return _declare(fn, PointKind(Kind.PIPELINE, value=value, value_type=value_type, timeout=timeout))

    return decorate
