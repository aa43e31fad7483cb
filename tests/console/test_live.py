"""The live stream reads on past a full batch of turns it already sent, so a busy store never stalls it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from turnkit.console import live
from turnkit.console.reader import ConsoleReader

from tests.support.agents import running_agent


async def test_more_turns_than_a_batch_within_the_lookback_all_arrive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "BATCH", 4)  # a small batch: a dozen quick turns overflow it many times
    async with running_agent(tmp_path) as agent:
        for index in range(12):
            await agent.send(f"turn {index}")
        stopping = asyncio.Event()
        completed: set[str] = set()
        stream = live.turn_events(ConsoleReader(agent.store), since=0.0, stopping=stopping)

        async def read() -> None:
            async for event in stream:
                if event.startswith("event: turn") and '"status": "completed"' in event:
                    completed.add(event.split('"turn_id": "', 1)[1].split('"', 1)[0])
                if len(completed) == 12:
                    stopping.set()

        await asyncio.wait_for(read(), timeout=20)
    assert len(completed) == 12
