"""An agent that hangs in the middle of a turn, for test_crash_recovery.py to kill.

Run in a subprocess, never imported by the tests::

    python crash_agent.py CONFIG SESSION MARKER MESSAGE...

It starts the agent of CONFIG with one extra plugin, registered in code,
whose ``turn_prompt`` blocks for an hour on a message containing "hang".
The MESSAGEs before the first "hang" one are sent to SESSION one by one and
answered; from the "hang" one on they are queued one after another (each is
durable once queued), so the first of them blocks and the rest wait behind
it. Without MESSAGEs it only starts, so that the re-run of a "hang" message
a previous kill interrupted blocks. When a turn is blocked and every
message is queued, MARKER is written, and the process waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from turnkit import PluginManager, load_config
from turnkit.agent import Agent
from turnkit_hookspecs import Message, Prompt, hookimpl

HANG = "hang"


class Hang:
    """Blocks ``turn_prompt`` of a turn whose message mentions "hang"."""

    def __init__(self) -> None:
        self.blocked = asyncio.Event()

    @hookimpl
    async def turn_prompt(self, prompt: Prompt) -> None:
        if HANG in prompt.messages[-1].text:
            self.blocked.set()
            await asyncio.sleep(3600)


async def main(config_path: str, session_id: str, marker: str, texts: list[str]) -> None:
    config = load_config(config_path)
    manager = PluginManager.load(config)
    hang = Hang()
    manager.register(hang, "hang")
    async with Agent(config, manager=manager) as agent:
        await agent.sessions.open(session_id)
        first = next((i for i, text in enumerate(texts) if HANG in text), len(texts))
        for text in texts[:first]:
            result = await agent.send(text, session_id)
            assert result.turn.status == "completed", result
        for text in texts[first:]:
            await agent.orchestrator.enqueue(session_id, Message.of("user", text))
        await asyncio.wait_for(hang.blocked.wait(), 30)
        Path(marker).write_text("blocked\n", encoding="utf-8")
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
