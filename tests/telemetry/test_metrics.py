"""The agent's Prometheus metrics, parsed with prometheus-client's own parser, against the store."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from turnkit.agent import Agent
from turnkit_hookspecs import hookimpl

from tests.support.agents import running_agent
from tests.telemetry.test_spans import Plugins

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(agent: Agent) -> Samples:
    """What ``/metrics`` would answer now, parsed: each sample by name and labels."""
    assert agent.telemetry.metrics is not None
    text = (await agent.telemetry.metrics.render(agent.store, agent.dispatcher)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_the_counters_match_the_store_after_some_turns(tmp_path: Path) -> None:
    async with running_agent(tmp_path, plugins={"checks": Plugins()}, telemetry={"metrics": True}) as agent:
        for text in ["one", "a forbidden word", "two", "three", "forbidden again"]:
            await agent.send(text)
        await agent.dispatcher.drain()
        await agent.orchestrator.flush_traces()
        sessions = await agent.store.list_sessions()
        turns = [turn for session in sessions for turn in await agent.store.turns(session.session_id)]
        trace = [record for turn in turns for record in await agent.store.trace(turn.turn_id)]
        samples = await scrape(agent)
    by_status = Counter(turn.status for turn in turns)
    assert by_status == {"completed": 3, "denied": 2}
    for status, count in by_status.items():
        assert samples["turnkit_turns_total", (("status", status),)] == count
    assert samples["turnkit_turn_duration_seconds_count", ()] == len(turns)
    calls = Counter((r.point, r.kind.value, r.plugin, r.outcome) for r in trace)
    # every call is counted, those outside a turn too (the model's names, asked at start)
    in_turns = [
        value
        for (name, labels), value in samples.items()
        if name == "turnkit_hook_calls_total" and dict(labels)["point"] != "model_names"
    ]
    assert sum(in_turns) == len(trace)
    for (point, kind, plugin, outcome), count in calls.items():
        labels = (("kind", kind), ("outcome", outcome), ("plugin", plugin), ("point", point))
        assert samples["turnkit_hook_calls_total", labels] == count, (point, plugin, outcome)
        timed = (("kind", kind), ("plugin", plugin), ("point", point))
        assert samples["turnkit_hook_call_duration_seconds_count", timed] >= count
    assert samples["turnkit_queued_turns", ()] == 0
    assert samples["turnkit_active_leases", ()] == 1  # this process
    assert samples["turnkit_effect_queue_depth", ()] == 0
    assert samples["turnkit_effects_dropped_total", ()] == 0


class Slow:
    """An effect slower than the turns that fire it."""

    @hookimpl
    async def turn_completed(self) -> None:
        await asyncio.sleep(0.2)


async def test_dropped_effects_are_counted(tmp_path: Path) -> None:
    # A queue of one dispatch and one slow worker: effects of turns in a row are dropped.
    options = {"effect_queue": 1, "effect_workers": 1}
    async with running_agent(
        tmp_path, plugins={"slow": Slow()}, plugins_table=options, telemetry={"metrics": True}
    ) as agent:
        for index in range(4):
            await agent.send(f"turn {index}")
        samples = await scrape(agent)
        assert samples["turnkit_effect_queue_depth", ()] == agent.dispatcher.effects_waiting
    assert samples["turnkit_effects_dropped_total", ()] == agent.dispatcher.dropped > 0
