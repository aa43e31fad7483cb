"""OpenTelemetry spans of turns: one per turn, a child per hook call and per tool step.

The hook-call spans are made from the batches the dispatcher hands its
trace sinks, the very batches the store keeps as the turn's trace, so a
turn's spans and its stored trace match one to one (an effect that
finishes after its turn was committed is a child of that turn too). They
are made after the calls, with the calls' own start and end times (the
dispatcher's ``perf_counter`` stamps moved onto the wall clock): the hot
path pays for a span only what it already pays for the trace.

A tool step (one tool call the model made: its ``tool_authorize`` and
``tool_call`` calls, or the service action it ran) is a span of its own
under the turn, holding the hook calls made while it ran.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from turnkit_hookspecs import Kind, ToolCallBlock, TurnInfo

from .store.records import TurnRecord
from .tracing import Marks

#: Outcomes of a hook call that make its span an error.
FAILED = frozenset({"error", "timeout", "dropped"})
#: Turns whose span is kept after it ended, for the effects that finish later.
KEPT_TURNS = 1_000

#: The tool step running in this task, whose span the hook calls made now belong to.
_tool_step: ContextVar[Span | None] = ContextVar("turnkit_tool_step", default=None)


class TurnSpans:
    """Makes the spans of an agent's turns with ``tracer`` (a trace sink, see :mod:`turnkit.tracing`)."""

    def __init__(self, tracer: Tracer, agent_id: str) -> None:
        self._tracer = tracer
        self._agent_id = agent_id
        #: The span and session of each recent turn, by turn id: open while it runs, then kept for
        #: the effects that finish later.
        self._turns: OrderedDict[str, tuple[Span, str]] = OrderedDict()
        #: Add to a ``perf_counter_ns`` reading to get nanoseconds since the epoch.
        self._offset = time.time_ns() - time.perf_counter_ns()

    def turn_started(self, info: TurnInfo) -> None:
        """Open the span of the turn ``info`` describes."""
        span = self._tracer.start_span(
            "turn",
            kind=SpanKind.INTERNAL,
            attributes={
                "turnkit.agent_id": self._agent_id,
                "turnkit.session_id": info.session_id,
                "turnkit.turn_id": info.turn_id,
                "turnkit.turn.number": info.number,
            },
        )
        self._turns[info.turn_id] = span, info.session_id
        while len(self._turns) > KEPT_TURNS:
            _, (old, _) = self._turns.popitem(last=False)
            if old.is_recording():  # still open this long after: its turn was lost (the process stops)
                old.end()

    def turn_finished(self, turn: TurnRecord) -> None:
        """End the span of ``turn``, with its status (and its error)."""
        found = self._turns.get(turn.turn_id)
        if found is None:
            return
        span = found[0]
        span.set_attribute("turnkit.status", turn.status)
        if turn.status == "failed":
            span.set_status(Status(StatusCode.ERROR, turn.error))
        span.end()

    @contextmanager
    def tool_step(self, info: TurnInfo, call: ToolCallBlock) -> Iterator[None]:
        """A span for one tool call of turn ``info``, holding the hook calls made meanwhile."""
        found = self._turns.get(info.turn_id)
        context = trace.set_span_in_context(found[0]) if found is not None else None
        attributes = {
            "turnkit.session_id": info.session_id,
            "turnkit.turn_id": info.turn_id,
            "turnkit.tool": call.name,
            "turnkit.tool_call_id": call.tool_call_id,
        }
        span = self._tracer.start_span(f"tool {call.name}", context=context, attributes=attributes)
        token = _tool_step.set(span)
        try:
            yield
        finally:
            _tool_step.reset(token)
            span.end()

    def record(
        self,
        scope: str | None,
        point: str,
        kind: Kind,
        plugins: Sequence[str],
        stamps: Sequence[float],
        marks: Marks,
    ) -> None:
        """Make a span per call of one dispatch of ``point`` (calls outside a turn make none)."""
        if scope is None:
            return
        turn_span, session_id = self._turns.get(scope, (None, None))
        parent = _tool_step.get() or turn_span
        context = trace.set_span_in_context(parent) if parent is not None else None
        for index, plugin in enumerate(plugins):
            outcome, error = marks.get(index, ("ok", None))
            attributes = {
                "turnkit.session_id": session_id or "",
                "turnkit.turn_id": scope,
                "turnkit.point": point,
                "turnkit.kind": kind.value,
                "turnkit.plugin": plugin,
                "turnkit.outcome": outcome,
            }
            span = self._tracer.start_span(
                point, context=context, start_time=self._ns(stamps[index]), attributes=attributes
            )
            if outcome in FAILED:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end(end_time=self._ns(stamps[index + 1]))

    def _ns(self, stamp: float) -> int:
        return int(stamp * 1e9) + self._offset
