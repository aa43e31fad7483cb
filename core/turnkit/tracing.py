"""The in-process trace of every hook call.

The dispatcher hands each point's calls to a :class:`TraceSink` in one batch
(timestamps and the exceptional outcomes) so that tracing stays cheap on the
hot path;
:class:`MemoryTraceSink` keeps a bounded window and materialises
:class:`TraceRecord` objects only when read. ``trace_scope`` lets the caller
(the orchestrator) tag calls with the turn they belong to.

What the store keeps is a :data:`Trace`: each scope's calls as plain
:data:`Call` tuples, the shape its rows encode. :class:`TurnTraceSink` builds
it straight from the batches, since every turn's commit stores one and a
record object per call would cost more than the rest of the trace.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Protocol

import attrs
from turnkit_hookspecs import Kind

#: The id the current calls belong to (a turn id, typically); ``None`` outside a turn.
trace_scope: ContextVar[str | None] = ContextVar("turnkit_trace_scope", default=None)

#: A call's outcome and its error text (or ``None``).
Outcome = tuple[str, str | None]
#: Outcomes that differ from ``ok``, by call index.
Marks = Mapping[int, Outcome]


@attrs.frozen
class TraceRecord:
    """One traced hook call.

    ``outcome`` is one of ``ok`` (returned ``None``: allowed, unchanged, no
    answer, or an effect that finished), ``value`` (returned a value that was
    used), ``deny``, ``error``, ``timeout``. ``started`` is when the call
    began, in Unix seconds (``None`` in rows stored before it was kept): the
    console draws a turn's calls on a time axis with it.
    """

    scope: str | None
    point: str
    kind: Kind
    plugin: str
    duration: float
    outcome: str
    error: str | None = None
    started: float | None = None


#: One call as stored: point, kind, plugin, nanoseconds, outcome, error, and when it began in
#: whole microseconds since the epoch (``None`` for calls stored before that was kept).
Call = tuple[str, str, str, int, str, str | None, int | None]
#: Calls by scope, each scope's in call order, scopes in the order they were first traced.
Trace = dict[str | None, list[Call]]


def compact(records: Iterable[TraceRecord]) -> Trace:
    """``records`` as a :data:`Trace` (the records of a store test, say)."""
    trace: Trace = {}
    for r in records:
        started = None if r.started is None else round(r.started * 1e6)
        call = (r.point, r.kind, r.plugin, round(r.duration * 1e9), r.outcome, r.error, started)
        trace.setdefault(r.scope, []).append(call)
    return trace


def call_records(scope: str | None, calls: Iterable[Call]) -> list[TraceRecord]:
    """The records of ``scope``'s ``calls`` (the inverse of :func:`compact`)."""
    return [
        TraceRecord(
            scope,
            point,
            Kind(kind),
            plugin,
            nanoseconds / 1e9,
            outcome,
            error,
            None if started is None else started / 1e6,
        )
        for point, kind, plugin, nanoseconds, outcome, error, started in calls
    ]


class TraceSink(Protocol):
    """Where the dispatcher reports calls; must be cheap and must not raise.

    One dispatch arrives as one batch: ``stamps[0]`` is its start and
    ``stamps[i + 1]`` the end of call ``i`` (of ``plugins[i]``), so call ``i``
    took ``stamps[i + 1] - stamps[i]`` seconds; a call without an entry in
    ``marks`` had outcome ``ok``. This shape keeps tracing to one
    ``perf_counter`` and one append per call on the hot path.
    """

    def record(
        self,
        scope: str | None,
        point: str,
        kind: Kind,
        plugins: Sequence[str],
        stamps: Sequence[float],
        marks: Marks,
    ) -> None:
        """Take the calls of one dispatch of ``point``."""


Batch = tuple[str | None, str, Kind, Sequence[str], Sequence[float], Marks]


class TraceSinks:
    """Hands every batch to several sinks: the store's, and telemetry's when it is on."""

    def __init__(self, sinks: Sequence[TraceSink]) -> None:
        self._sinks = tuple(sinks)

    def record(
        self,
        scope: str | None,
        point: str,
        kind: Kind,
        plugins: Sequence[str],
        stamps: Sequence[float],
        marks: Marks,
    ) -> None:
        """Give one dispatch's calls to each sink, in order."""
        for sink in self._sinks:
            sink.record(scope, point, kind, plugins, stamps, marks)


class MemoryTraceSink:
    """Keeps the calls of the last ``maxlen`` dispatches in memory."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._batches: deque[Batch] = deque(maxlen=maxlen)

    def record(
        self,
        scope: str | None,
        point: str,
        kind: Kind,
        plugins: Sequence[str],
        stamps: Sequence[float],
        marks: Marks,
    ) -> None:
        """Keep one dispatch's calls (O(1); old batches fall off the end)."""
        self._batches.append((scope, point, kind, plugins, stamps, marks))

    def records(self, scope: str | None = None) -> list[TraceRecord]:
        """The kept calls in dispatch order, optionally only those of ``scope``."""
        batches = [b for b in self._batches if scope is None or b[0] == scope]
        return [record for batch in batches for record in expand(batch)]

    def clear(self) -> None:
        """Forget everything kept so far."""
        self._batches.clear()


#: Unix time minus ``perf_counter`` time: the stamps (``perf_counter``, cheap and monotonic) as
#: wall-clock times, read once so that the hot path never calls ``time.time``.
_EPOCH = time.time() - time.perf_counter()


def expand(batch: Batch) -> Iterator[TraceRecord]:
    """Turn one recorded batch into its :class:`TraceRecord` objects."""
    scope, point, kind, plugins, stamps, marks = batch
    for index in range(len(stamps) - 1):
        outcome, error = marks.get(index, ("ok", None))
        duration = stamps[index + 1] - stamps[index]
        yield TraceRecord(
            scope, point, kind, plugins[index], duration, outcome, error, _EPOCH + stamps[index]
        )


class TurnTraceSink(MemoryTraceSink):
    """Holds the calls made within turns until the orchestrator stores them.

    The orchestrator takes what is pending in the same transaction that ends
    a turn (so a turn's trace costs no extra write); effects finish after
    that commit and are stored with the next turn's, or when the agent
    stops. Calls outside any turn (no ``trace_scope``) are not kept. At most
    ``maxlen`` dispatches wait; older ones fall off, keeping memory bounded
    if nothing is ever taken.
    """

    def __init__(self, maxlen: int = 100_000) -> None:
        super().__init__(maxlen)

    def record(
        self,
        scope: str | None,
        point: str,
        kind: Kind,
        plugins: Sequence[str],
        stamps: Sequence[float],
        marks: Marks,
    ) -> None:
        """Keep one dispatch's calls if they belong to a turn."""
        if scope is not None:
            self._batches.append((scope, point, kind, plugins, stamps, marks))

    def take(self) -> Trace:
        """Everything pending, leaving nothing pending.

        Times become integers here: they encode in half a float's time, and
        no hook call is timed more finely than a nanosecond (its start than
        a microsecond).
        """
        trace: Trace = {}
        for scope, point, kind, plugins, stamps, marks in self._batches:
            calls = trace.get(scope)
            if calls is None:
                calls = trace[scope] = []
            start = stamps[0]
            for index in range(len(stamps) - 1):
                end = stamps[index + 1]
                outcome, error = marks.get(index, _OK)
                calls.append(
                    (
                        point,
                        kind,
                        plugins[index],
                        int((end - start) * 1e9),
                        outcome,
                        error,
                        int((_EPOCH + start) * 1e6),
                    )
                )
                start = end
        self._batches.clear()
        return trace


_OK: Outcome = ("ok", None)
