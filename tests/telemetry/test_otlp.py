"""``[telemetry] otlp_endpoint``: the spans of turns reach an OTLP/HTTP collector on loopback.

The collector here speaks the protocol's HTTP binding as a real one does
(``POST /v1/traces``, a protobuf ``ExportTraceServiceRequest``), decoded with
the protocol's own message classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from turnkit.config import parse_config
from turnkit.errors import ConfigError

from tests.support.agents import running_agent
from tests.support.threaded import serving


class Collector(ThreadingHTTPServer):
    """Takes OTLP/HTTP trace exports; keeps each request's path and decoded body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.exports: list[tuple[str, ExportTraceServiceRequest]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def span_names(self) -> list[tuple[str, str]]:
        """``(service.name, span name)`` of every span received."""
        names = []
        for _, request in self.exports:
            for resource in request.resource_spans:
                service = next(
                    a.value.string_value for a in resource.resource.attributes if a.key == "service.name"
                )
                names += [(service, span.name) for scope in resource.scope_spans for span in scope.spans]
        return names


class _Handler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers["Content-Type"] != "application/x-protobuf":
            self.send_error(415)
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.exports.append((self.path, request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the exports are kept."""


@pytest.fixture
def collector() -> Iterator[Collector]:
    with serving(Collector()) as server:
        yield server


async def test_spans_are_exported_to_the_collector_by_the_time_the_agent_stops(
    tmp_path: Path, collector: Collector
) -> None:
    telemetry = {"otlp_endpoint": collector.url, "service_name": "support-bot"}
    async with running_agent(tmp_path, telemetry=telemetry) as agent:
        await agent.send("hello")
        await agent.send("again")
    assert {path for path, _ in collector.exports} == {"/v1/traces"}  # the standard path, added
    names = collector.span_names()
    assert names.count(("support-bot", "turn")) == 2
    assert ("support-bot", "turn_reply") in names


@pytest.mark.parametrize("url", ["collector:4318", "ftp://collector/v1/traces", "http://"])
def test_an_endpoint_that_is_no_http_url_is_refused_naming_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"OTLP over HTTP.*\$\.telemetry\.otlp_endpoint"):
        parse_config({"telemetry": {"otlp_endpoint": url}})
