"""The agent's telemetry: what ``[telemetry]`` switches on, behind the one object the runtime calls.

Off (the default), every call is a no-op and neither OpenTelemetry nor
prometheus-client is imported: an agent without telemetry pays a method
call per turn. On, the parts are :class:`~turnkit.spans.TurnSpans` (a span
per turn, hook call and tool step, exported over OTLP/HTTP) and
:class:`~turnkit.metrics.Metrics` (served at ``/metrics``); both take the
dispatcher's batches as trace sinks, beside the store's.

An application that already set OpenTelemetry up hands its tracer
provider to the agent (``Agent(..., tracer_provider=...)``): the spans go
wherever that provider sends them, and ``otlp_endpoint`` is not needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from turnkit_hookspecs import ToolCallBlock, TurnInfo

from .errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import TracerProvider as AnyTracerProvider

    from .config import Config
    from .metrics import Metrics
    from .spans import TurnSpans
    from .store.records import TurnRecord
    from .tracing import TraceSink

#: Where OTLP/HTTP collectors take traces, when ``otlp_endpoint`` gives no path.
TRACES_PATH = "/v1/traces"
#: How the missing packages are installed.
EXTRA = "pip install 'turnkit[telemetry]'"


class Telemetry:
    """The spans and metrics of one agent, each ``None`` while off."""

    def __init__(
        self,
        spans: TurnSpans | None = None,
        metrics: Metrics | None = None,
        owned: TracerProvider | None = None,
    ) -> None:
        self.spans = spans
        self.metrics = metrics
        #: A provider made here (for ``otlp_endpoint``), shut down (its spans flushed) at :meth:`close`.
        self._owned = owned

    @classmethod
    def of(cls, config: Config, tracer_provider: AnyTracerProvider | None = None) -> Telemetry:
        """What ``config``'s ``[telemetry]`` table switches on; missing packages are a ``ConfigError``."""
        settings = config.telemetry
        agent_id = config.agent.id
        spans, owned = None, None
        if tracer_provider is not None or settings.otlp_endpoint:
            from .spans import TurnSpans

            if tracer_provider is None:
                owned = _otlp_provider(config)
                tracer_provider = owned
            spans = TurnSpans(tracer_provider.get_tracer("turnkit"), agent_id)
        metrics = None
        if settings.metrics:
            try:
                from .metrics import Metrics
            except ImportError as exc:
                raise ConfigError(
                    f"{config.source}: [telemetry] metrics needs prometheus-client ({EXTRA})"
                    " @ $.telemetry.metrics"
                ) from exc
            metrics = Metrics(agent_id)
        return cls(spans, metrics, owned)

    @property
    def sinks(self) -> list[TraceSink]:
        """The trace sinks of the parts that are on."""
        return [part for part in (self.spans, self.metrics) if part is not None]

    def turn_started(self, info: TurnInfo) -> None:
        if self.spans is not None:
            self.spans.turn_started(info)

    def turn_finished(self, turn: TurnRecord) -> None:
        if self.spans is not None:
            self.spans.turn_finished(turn)
        if self.metrics is not None:
            self.metrics.turn_finished(turn)

    @contextmanager
    def tool_step(self, info: TurnInfo, call: ToolCallBlock) -> Iterator[None]:
        if self.spans is None:
            yield
            return
        with self.spans.tool_step(info, call):
            yield

    async def close(self) -> None:
        """Flush and stop the exporter made for ``otlp_endpoint`` (an application's provider is its own)."""
        if self._owned is not None:
            owned, self._owned = self._owned, None
            await asyncio.to_thread(owned.shutdown)


def _otlp_provider(config: Config) -> TracerProvider:
    """A tracer provider exporting in batches to ``otlp_endpoint``, for the agent alone."""
    settings = config.telemetry
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"{config.source}: [telemetry] otlp_endpoint needs the OpenTelemetry SDK and its OTLP"
            f" exporter ({EXTRA}) @ $.telemetry.otlp_endpoint"
        ) from exc
    resource = Resource.create({"service.name": settings.service_name, "turnkit.agent_id": config.agent.id})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint)))
    )
    return provider


def traces_url(endpoint: str) -> str:
    """``endpoint`` with the standard traces path when it gives none."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        parts = parts._replace(path=TRACES_PATH)
    return urlunsplit(parts)
