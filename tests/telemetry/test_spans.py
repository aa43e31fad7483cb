"""The OpenTelemetry spans of turns, captured with the SDK's in-memory exporter.

An agent given an application's tracer provider makes a span per turn and,
under it, a span per hook call, each matching one row of the turn's stored
trace (point, plugin, outcome, duration), in order; a tool step is a span
holding the hook calls made for it; failures are error spans.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from turnkit.agent import Agent
from turnkit_hookspecs import Deny, Message, ToolCallBlock, hookimpl

from tests.integration.test_tools_and_actions import Calculator, script, tool
from tests.support.agents import running_agent


class Plugins:
    """A guard denying messages saying "forbidden", a pipeline, a tool guard and an effect that fails."""

    @hookimpl
    def turn_authorize(self, message: Message) -> Deny | None:
        return Deny("not that word") if "forbidden" in message.text else None

    @hookimpl
    def turn_inbound(self, message: Message) -> Message:
        return Message.of("user", message.text.upper())

    @hookimpl
    def tool_authorize(self, call: ToolCallBlock) -> None:
        return None

    @hookimpl
    def turn_completed(self) -> None:
        raise RuntimeError("the audit sink is down")


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


def provider_for(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def of_turn(spans: tuple[ReadableSpan, ...], turn_id: str) -> list[ReadableSpan]:
    """The hook-call spans of a turn, in the order they started."""
    calls = [
        s
        for s in spans
        if s.attributes and s.attributes.get("turnkit.turn_id") == turn_id and "turnkit.point" in s.attributes
    ]
    return sorted(calls, key=lambda span: span.start_time or 0)


async def stored_trace(agent: Agent, turn_id: str) -> list[tuple[str, str, str, float]]:
    await agent.dispatcher.drain()
    await agent.orchestrator.flush_traces()  # effects that finished after the commit
    return [(t.point, t.plugin, t.outcome, t.duration) for t in await agent.store.trace(turn_id)]


async def test_the_spans_of_a_turn_match_its_stored_trace_one_to_one(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    model = script(tool("calc.add", a=2, b=3), {"text": "five"})
    async with running_agent(
        tmp_path,
        plugins={"checks": Plugins()},
        services=[Calculator()],
        model=model,
        tracer_provider=provider_for(exporter),
    ) as agent:
        result = await agent.send("add two and three")
        turn_id = result.turn.turn_id
        stored = await stored_trace(agent, turn_id)
    spans = exporter.get_finished_spans()
    calls = of_turn(spans, turn_id)
    assert [(s.name, s.attributes["turnkit.plugin"], s.attributes["turnkit.outcome"]) for s in calls] == [
        (point, plugin, outcome) for point, plugin, outcome, _ in stored
    ]
    for span, (_, _, _, duration) in zip(calls, stored, strict=True):
        assert span.end_time is not None and span.start_time is not None
        assert abs((span.end_time - span.start_time) / 1e9 - duration) < 1e-6
    # the turn's span holds them all; the tool step's span holds the tool's guard
    [turn] = [s for s in spans if s.name == "turn" and s.attributes["turnkit.turn_id"] == turn_id]
    assert turn.attributes["turnkit.status"] == "completed"
    assert turn.attributes["turnkit.session_id"] == result.turn.session_id
    [step] = [s for s in spans if s.name == "tool calc.add"]
    assert step.parent is not None and step.parent.span_id == turn.context.span_id
    by_parent = {s.name: s.parent.span_id for s in calls if s.parent is not None}
    assert by_parent["tool_authorize"] == step.context.span_id
    assert by_parent["turn_authorize"] == turn.context.span_id
    assert by_parent["turn_completed"] == turn.context.span_id  # an effect, after the commit
    assert {s.context.trace_id for s in [*calls, step]} == {turn.context.trace_id}
    assert {s.attributes["turnkit.session_id"] for s in [*calls, step]} == {result.turn.session_id}


async def test_denials_and_failures_are_marked(tmp_path: Path, exporter: InMemorySpanExporter) -> None:
    async with running_agent(
        tmp_path, plugins={"checks": Plugins()}, tracer_provider=provider_for(exporter)
    ) as agent:
        denied = await agent.send("a forbidden word")
        completed = await agent.send("fine")
        await stored_trace(agent, completed.turn.turn_id)
    spans = exporter.get_finished_spans()
    [guard] = [s for s in of_turn(spans, denied.turn.turn_id) if s.name == "turn_authorize"]
    assert guard.attributes["turnkit.outcome"] == "deny"
    [turn] = [s for s in spans if s.name == "turn" and s.attributes["turnkit.turn_id"] == denied.turn.turn_id]
    assert turn.attributes["turnkit.status"] == "denied"
    [effect] = [s for s in of_turn(spans, completed.turn.turn_id) if s.name == "turn_completed"]
    assert effect.attributes["turnkit.outcome"] == "error"
    assert effect.status.status_code is StatusCode.ERROR
    assert "the audit sink is down" in (effect.status.description or "")
