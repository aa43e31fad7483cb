"""An agent whose scheduler hangs in the middle of a run, for test_task.py to SIGKILL.

Run in a subprocess, never imported by the tests::

    python task_crash_agent.py DB NOW STEP MARKER

It starts an agent on the SQLite file DB with the task service, whose clock
stands at NOW (ISO 8601, UTC), and one extra plugin that blocks the first
task run at STEP:

* ``authorize`` — in ``task_authorize``: the run is claimed, its turn not queued;
* ``turn`` — in ``turn_prompt``: the run's turn is accepted (its message is
  stored) and running, and the task's ``next_run`` is not yet advanced.

Then it runs the scheduler once (``run_due``); when the run blocks, MARKER
is written and the process waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path

from turnkit.agent import Agent
from turnkit.config import parse_config
from turnkit.manager import PluginManager
from turnkit_hookspecs import Prompt, hookimpl
from turnkit_services.task import TaskService


class Hang:
    """Blocks the first task run at ``step`` and writes ``marker`` when it does."""

    def __init__(self, step: str, marker: Path) -> None:
        self.step = step
        self.marker = marker

    async def _block(self) -> None:
        self.marker.write_text("blocked\n", encoding="utf-8")
        await asyncio.sleep(3600)

    @hookimpl
    async def task_authorize(self) -> None:
        if self.step == "authorize":
            await self._block()

    @hookimpl
    async def turn_prompt(self, prompt: Prompt) -> None:
        if self.step == "turn" and "task" in prompt.messages[-1].metadata:
            await self._block()


async def main(db: str, now: str, step: str, marker: str) -> None:
    moment = datetime.fromisoformat(now)
    config = parse_config({"store": {"url": db}})
    manager = PluginManager(config.plugins)
    service = TaskService(clock=lambda: moment)
    manager.add_service(service)
    manager.register(Hang(step, Path(marker)), "hang")
    async with Agent(config, manager=manager):
        await service.run_due()
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
