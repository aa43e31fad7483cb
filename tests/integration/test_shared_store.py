"""Two agents on one store, as two processes would be: neither disturbs the other's turns.

The agents share a SQLite file and the agent id, and each has its own store
connection, lease and orchestrator, exactly like two ``turnkit`` processes;
tests/workers runs the same scenarios in real separate processes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from turnkit.agent import Agent
from turnkit.errors import StoreError, TurnkitError
from turnkit_hookspecs import Message, Prompt, TurnInfo, TurnResult, hookimpl

from tests.support.agents import build_agent, texts


class Gate:
    """A model step that waits for :meth:`open` on turns whose text is ``wait``, then echoes."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.waiting = asyncio.Event()
        self.asked: list[str] = []

    @hookimpl(tryfirst=True)
    async def turn_reply(self, turn: TurnInfo, prompt: Prompt) -> Message | None:
        text = prompt.messages[-1].text
        self.asked.append(text)
        if text == "wait":
            self.waiting.set()
            await self.opened.wait()
        return Message.of("assistant", f"re: {text}")


def agent(tmp_path: Path, gate: Gate, **store: object) -> Agent:
    options = {"lease": 2.0, "heartbeat": 0.2, "poll": 0.01, **store}
    return build_agent(tmp_path, plugins={"gate": gate}, store=options)


async def test_a_second_agent_starting_leaves_a_running_turn_alone(tmp_path: Path) -> None:
    gate = Gate()
    async with agent(tmp_path, gate) as first:
        running = asyncio.create_task(first.send("wait", "s1"))
        await asyncio.wait_for(gate.waiting.wait(), 5)
        async with agent(tmp_path, Gate()) as second:  # recovery, sweeps, resumes: nothing to take
            await asyncio.sleep(0.5)  # several heartbeats and sweeps of the second agent
            [turn] = await second.store.turns("s1")
            assert turn.status == "running" and turn.owner == first.store.owner
        gate.opened.set()
        result = await asyncio.wait_for(running, 5)
    assert result.turn.status == "completed" and result.reply is not None and result.reply.text == "re: wait"
    assert gate.asked == ["wait"], "the model was asked once"


async def test_a_turn_queued_behind_another_agents_turn_answers_its_own_caller(tmp_path: Path) -> None:
    gate = Gate()
    async with agent(tmp_path, gate) as first, agent(tmp_path, Gate()) as second:
        await first.sessions.open("s1")
        running = asyncio.create_task(first.send("wait", "s1"))
        await asyncio.wait_for(gate.waiting.wait(), 5)
        queued = asyncio.create_task(second.send("after", "s1"))
        await asyncio.sleep(0.1)
        [(info, message)] = await second.sessions.queued("s1")
        assert (info.number, message.text) == (2, "after"), "a queued message is visible before it runs"
        gate.opened.set()
        one, two = await asyncio.wait_for(asyncio.gather(running, queued), 5)
        assert (one.turn.number, two.turn.number) == (1, 2)
        assert two.reply is not None and two.reply.text == "re: after", "the second caller gets its answer"
        assert texts(await second.store.messages("s1")) == [
            ("user", "wait"),
            ("assistant", "re: wait"),
            ("user", "after"),
            ("assistant", "re: after"),
        ]


async def _turn_and_retry(
    gate: Gate, first: Agent, second: Agent
) -> tuple[Message, asyncio.Task[TurnResult], asyncio.Task[TurnResult]]:
    """A turn sent through ``first`` with key ``k1``, held by ``gate``, and its retry through ``second``."""
    await first.sessions.open("s1")
    message = Message.of("user", "wait")
    original = asyncio.create_task(first.sessions.turn("s1", message, idempotency_key="k1"))
    await asyncio.wait_for(gate.waiting.wait(), 5)
    retry = asyncio.create_task(second.sessions.turn("s1", message, idempotency_key="k1"))
    return message, original, retry


async def test_an_idempotent_retry_on_another_agent_answers_with_the_first_turn(tmp_path: Path) -> None:
    gate = Gate()
    async with agent(tmp_path, gate) as first, agent(tmp_path, Gate()) as second:
        message, original, retry = await _turn_and_retry(gate, first, second)
        await asyncio.sleep(0.1)
        assert not retry.done(), "the retry waits for the turn the key names"
        gate.opened.set()
        one, two = await asyncio.wait_for(asyncio.gather(original, retry), 5)
        assert one.turn.turn_id == two.turn.turn_id
        assert two.reply is not None and one.reply is not None and two.reply.text == one.reply.text
        late = await second.sessions.turn("s1", message, idempotency_key="k1")
        assert late.turn.turn_id == one.turn.turn_id
        assert len(await second.store.turns("s1")) == 1 and gate.asked == ["wait"]


async def test_a_caller_giving_up_leaves_a_retry_with_the_same_key_waiting(tmp_path: Path) -> None:
    gate = Gate()
    async with agent(tmp_path, gate) as one:
        _, original, retry = await _turn_and_retry(gate, one, one)
        await asyncio.sleep(0.05)
        original.cancel()
        await asyncio.sleep(0.05)
        assert original.cancelled() and not retry.done(), "the retry still waits for the turn"
        gate.opened.set()
        result = await asyncio.wait_for(retry, 5)
        assert (
            result.turn.status == "completed" and result.reply is not None and result.reply.text == "re: wait"
        )
        assert gate.asked == ["wait"], "the turn ran once, to its end"


async def test_a_stopped_agents_cancelled_turn_is_taken_over_by_the_other(tmp_path: Path) -> None:
    gate, open_gate = Gate(), Gate()
    open_gate.opened.set()
    async with agent(tmp_path, open_gate) as survivor:
        first = agent(tmp_path, gate)
        await first.start()
        await first.sessions.open("s1")
        cut = asyncio.create_task(first.send("wait", "s1"))
        await asyncio.wait_for(gate.waiting.wait(), 5)
        await first.orchestrator.stop(timeout=0.05)  # cancels the turn, releases the lease
        await first.stop()
        assert isinstance(cut.exception(), TurnkitError), "its caller is told the agent stopped"

        async def rerun_done() -> bool:
            return [t.status for t in await survivor.store.turns("s1")] == ["interrupted", "completed"]

        for _ in range(200):
            if await rerun_done():
                break
            await asyncio.sleep(0.02)
        assert await rerun_done(), "the survivor's sweep took the turn over and ran it again"
        [event] = await survivor.store.audit_events("s1")
        assert event.action == "lease_taken_over" and event.detail["by"] == survivor.store.owner


async def test_a_turn_whose_commit_failed_is_disowned_rerun_and_answers_its_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    gate.opened.set()
    async with agent(tmp_path, gate) as only:
        real = only.store.finish_turn
        failures = iter([StoreError("disk I/O error")])

        async def finish_failing_once(*args: Any, **kwargs: Any) -> Any:
            for failure in failures:
                raise failure
            return await real(*args, **kwargs)

        monkeypatch.setattr(only.store, "finish_turn", finish_failing_once)
        result = await asyncio.wait_for(only.send("hello", "s1"), 5)
        assert result.reply is not None and result.reply.text == "re: hello", "the re-run's answer"
        first, rerun = await only.store.turns("s1")
        assert (first.status, rerun.status, rerun.rerun_of) == ("interrupted", "completed", first.turn_id)
        later = await asyncio.wait_for(only.send("next", "s1"), 5)
        assert later.turn.status == "completed", "the session is not stuck behind the failed turn"
        assert gate.asked == ["hello", "hello", "next"]
