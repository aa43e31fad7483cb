"""A point's call plan: its implementations resolved once into plain tuples, in call order.

The dispatcher builds a plan per point and reuses it until the registry
changes (or an implementation moves between the event loop and a thread):
calling through a plan costs a tuple unpacking per implementation instead of
pluggy's per-call bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

import attrs
from turnkit_hookspecs import PointKind

#: Where a step runs: on the event loop, awaited on the loop, or on a worker thread.
INLINE, AWAITED, THREADED = 0, 1, 2

#: (plugin name, function, mode, argument getter, where it runs). ``mode`` 0 calls without
#: arguments, 1 with ``kwargs[getter]``, 2 with ``*getter(kwargs)`` (an ``itemgetter`` or a
#: function): calling through a getter avoids building an argument list per call, which is
#: most of a hook call's cost.
Step = tuple[str, Callable[..., Any], int, Any, int]


class ContextSource:
    """A ``ctx`` argument that hands each plugin its own view.

    The orchestrator passes one per dispatch; an implementation taking
    ``ctx`` receives ``for_plugin(its name)``, so what it does through the
    context is audited under its own extension id. (A base class rather than
    a Protocol: the check runs per call and a class check is cheap.) Any
    other ``ctx`` value is passed to every implementation as it is.
    """

    def for_plugin(self, plugin: str) -> Any:
        """The view of the context ``plugin`` acts through."""
        raise NotImplementedError


def step(plugin: str, function: Callable[..., Any], argnames: tuple[str, ...], runs: int) -> Step:
    """The step calling ``function`` with the arguments it names."""
    if "ctx" in argnames:
        return (plugin, function, 2, _context_getter(plugin, argnames), runs)
    arity = len(argnames)
    getter = None if arity == 0 else argnames[0] if arity == 1 else itemgetter(*argnames)
    return (plugin, function, min(arity, 2), getter, runs)


def _context_getter(plugin: str, argnames: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Arguments for an implementation taking ``ctx``: the plugin's own view in its place."""

    def arguments(kwargs: dict[str, Any]) -> tuple[Any, ...]:
        source = kwargs["ctx"]
        view = source.for_plugin(plugin) if isinstance(source, ContextSource) else source
        return tuple(view if name == "ctx" else kwargs[name] for name in argnames)

    return arguments


def bind(step: Step, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The positional arguments of ``step`` for a dispatch's ``kwargs``."""
    _, _, mode, getter, _ = step
    return () if mode == 0 else (kwargs[getter],) if mode == 1 else getter(kwargs)


@attrs.frozen
class Plan:
    """A point's implementations, resolved once, in call order.

    ``needed`` is every argument some implementation takes: a dispatch
    missing one is the caller's error, found before any plugin runs.
    ``timeout`` is each implementation's time limit (seconds).
    """

    point: str
    kind: PointKind
    steps: tuple[Step, ...]
    plugins: tuple[str, ...]
    wrappers: tuple[Step, ...]
    needed: frozenset[str]
    timeout: float
