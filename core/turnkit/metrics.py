"""Prometheus metrics of an agent: its turns, its hook calls, its effect queue, its store.

Counted as things happen: turns by status and their durations (when a turn
is committed), hook calls by point, plugin and outcome with their
durations, and dropped effect dispatches (from the batches the dispatcher
hands its trace sinks, as the stored trace). Read when scraped: the effect queue's depth (the dispatcher's
own count), the turns queued in the store for this agent and
the live leases on it (one query each, so that what every process of the
agent sees is the same). Each agent has a registry of its own: two agents
in one process never mix their counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from turnkit_hookspecs import Kind

from .dispatch import Dispatcher
from .store import Store
from .store.records import TurnRecord
from .tracing import Marks

#: The content type of the text exposition format ``render`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Turn durations, in seconds: from a cached answer to a slow model with tools.
TURN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Hook call durations, in seconds: most take microseconds, a model call seconds.
CALL_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)


class Metrics:
    """The metrics of one agent (a trace sink, see :mod:`turnkit.tracing`)."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.turns = Counter("turnkit_turns", "Turns finished, by status.", ["status"], registry=registry)
        self.turn_seconds = Histogram(
            "turnkit_turn_duration_seconds",
            "Time from a turn's claim to its commit.",
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self.calls = Counter(
            "turnkit_hook_calls",
            "Hook calls, by point, plugin and outcome.",
            ["point", "kind", "plugin", "outcome"],
            registry=registry,
        )
        self.call_seconds = Histogram(
            "turnkit_hook_call_duration_seconds",
            "Duration of hook calls, by point and plugin.",
            ["point", "kind", "plugin"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.effect_queue = Gauge(
            "turnkit_effect_queue_depth", "Effect dispatches waiting for a worker.", registry=registry
        )
        self.effects_dropped = Counter(
            "turnkit_effects_dropped",
            "Effect dispatches dropped because the queue was full.",
            registry=registry,
        )
        self.queued_turns = Gauge(
            "turnkit_queued_turns", "Turns of this agent waiting in the store to be run.", registry=registry
        )
        self.leases = Gauge(
            "turnkit_active_leases",
            "Processes holding a live lease to run this agent's turns.",
            registry=registry,
        )

    def record(
        self,
        scope: str | None,
        point: str,
        kind: Kind,
        plugins: Sequence[str],
        stamps: Sequence[float],
        marks: Marks,
    ) -> None:
        """Count the calls of one dispatch of ``point``, and how long each took."""
        if kind is Kind.EFFECT and plugins and marks.get(0, ("ok", None))[0] == "dropped":
            self.effects_dropped.inc()  # the dispatcher traces a dropped dispatch as its calls, dropped
        for index, plugin in enumerate(plugins):
            outcome = marks.get(index, ("ok", None))[0]
            self.calls.labels(point, kind.value, plugin, outcome).inc()
            self.call_seconds.labels(point, kind.value, plugin).observe(stamps[index + 1] - stamps[index])

    def turn_finished(self, turn: TurnRecord) -> None:
        """Count a committed turn by its status, and how long it ran."""
        self.turns.labels(turn.status).inc()
        if turn.started_at is not None and turn.finished_at is not None:
            self.turn_seconds.observe(max(0.0, turn.finished_at - turn.started_at))

    async def render(self, store: Store, dispatcher: Dispatcher) -> bytes:
        """The metrics in Prometheus' text format, read from the store and the dispatcher now."""
        self.effect_queue.set(dispatcher.effects_waiting)
        self.queued_turns.set(await store.queued_count(self.agent_id))
        self.leases.set(sum(1 for owner in await store.owners(self.agent_id) if owner.live))
        return generate_latest(self.registry)


class MetricsEndpoint:
    """``GET /metrics``: an ASGI application (the HTTP channel serves it behind its token).

    ``parts`` gives the store and the dispatcher when a scrape comes: the
    agent's, which exist only while it runs.
    """

    def __init__(self, metrics: Metrics, parts: Callable[[], tuple[Store, Dispatcher]]) -> None:
        self.metrics = metrics
        self.parts = parts

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(
                send,
                405,
                b'{"error": "/metrics answers GET"}',
                "application/json",
                [(b"allow", b"GET, HEAD")],
            )
            return
        body = await self.metrics.render(*self.parts())
        await _respond(send, 200, b"" if scope["method"] == "HEAD" else body, CONTENT_TYPE)


async def _respond(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    status: int,
    body: bytes,
    content_type: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    fields = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})
