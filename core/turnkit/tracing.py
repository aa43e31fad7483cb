"""The in-process trace of every hook call.

The dispatcher hands each point's calls to a :class:`TraceSink` in one batch
(a list of plain tuples) so that tracing stays cheap on the hot path;
:class:`MemoryTraceSink` keeps a bounded window and materialises
:class:`TraceRecord` objects only when read. ``trace_scope`` lets the caller
(the orchestrator) tag calls with the turn they belong to.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol

import attrs
from turnkit_hookspecs import Kind

#: The id the current calls belong to (a turn id, typically); ``None`` outside a turn.
trace_scope: ContextVar[str | None] = ContextVar("turnkit_trace_scope", default=None)

#: One implementation call: plugin name, duration in seconds, outcome, error text.
Call = tuple[str, float, str, str | None]


@attrs.frozen
class TraceRecord:
    """One traced hook call.

    ``outcome`` is one of ``ok`` (returned ``None``/allowed/unchanged),
    ``value`` (returned a value that was used), ``deny``, ``error``,
    ``timeout``.
    """

    scope: str | None
    point: str
    kind: Kind
    plugin: str
    duration: float
    outcome: str
    error: str | None = None


class TraceSink(Protocol):
    """Where the dispatcher reports calls; must be cheap and must not raise."""

    def record(self, scope: str | None, point: str, kind: Kind, calls: list[Call]) -> None:
        """Take the calls of one dispatch of ``point``."""


class MemoryTraceSink:
    """Keeps the calls of the last ``maxlen`` dispatches in memory."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._batches: deque[tuple[str | None, str, Kind, list[Call]]] = deque(maxlen=maxlen)

    def record(self, scope: str | None, point: str, kind: Kind, calls: list[Call]) -> None:
        """Keep one dispatch's calls (O(1); old batches fall off the end)."""
        self._batches.append((scope, point, kind, calls))

    def records(self, scope: str | None = None) -> list[TraceRecord]:
        """The kept calls in dispatch order, optionally only those of ``scope``."""
        return list(self._iter(scope))

    def clear(self) -> None:
        """Forget everything kept so far."""
        self._batches.clear()

    def _iter(self, scope: str | None) -> Iterator[TraceRecord]:
        for batch_scope, point, kind, calls in self._batches:
            if scope is not None and batch_scope != scope:
                continue
            for plugin, duration, outcome, error in calls:
                yield TraceRecord(batch_scope, point, kind, plugin, duration, outcome, error)
