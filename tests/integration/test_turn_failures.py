"""A plugin failing in each kind of point gives its kind's outcome for the turn.

See docs/architecture.md, "The four kinds" and "A turn":

guard → the turn is ``denied`` (fail closed) naming the plugin; pipeline and
resolve → the turn ``failed`` naming the plugin; effect → the turn completes
and the failure is only recorded in the trace. In every case the inbound
message stays stored and the matching effect (``turn_denied``,
``turn_failed``, ``turn_completed``) fires.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from turnkit.store import SQLiteStore
from turnkit_hookspecs import Message, Prompt, hookimpl

from tests.support.agents import EffectRecorder, build_agent, running_agent, texts


class Boom(Exception):
    """What the failing plugins raise."""


class RaisingGuard:
    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        raise Boom("guard exploded")


class GarbageGuard:
    @hookimpl
    def turn_authorize(self, message: Message) -> str:
        return "yes please"


class RaisingInbound:
    @hookimpl
    async def turn_inbound(self, message: Message) -> Message:
        raise Boom("inbound exploded")


class WrongPrompt:
    @hookimpl
    def turn_prompt(self, prompt: Prompt) -> str:
        return "not a prompt"


class RaisingOutbound:
    @hookimpl
    def turn_outbound(self, message: Message) -> Message:
        raise Boom("outbound exploded")


class RaisingModel:
    @hookimpl
    async def turn_reply(self, prompt: Prompt) -> Message:
        raise Boom("model exploded")


class GarbageModel:
    @hookimpl
    def turn_reply(self, prompt: Prompt) -> dict[str, str]:
        return {"role": "assistant", "text": "almost a message"}


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (RaisingGuard(), "bad failed: Boom('guard exploded')"),
        (GarbageGuard(), "bad returned str, expected a Deny or None"),
    ],
    ids=["raises", "returns-garbage"],
)
async def test_a_failing_guard_denies_the_turn(tmp_path: Path, plugin: Any, reason: str) -> None:
    recorder = EffectRecorder()
    async with running_agent(tmp_path, plugins={"bad": plugin, "recorder": recorder}) as agent:
        result = await agent.send("let me in")
        sid = result.turn.session_id

        assert result.turn.status == "denied" and result.reply is None
        assert result.deny is not None and (result.deny.plugin, result.deny.reason) == ("bad", reason)
        [turn] = await agent.store.turns(sid)
        assert (turn.status, turn.error) == ("denied", f"denied by bad: {reason}")
        assert texts(await agent.store.messages(sid)) == [("user", "let me in")], "inbound kept, no reply"

        await agent.dispatcher.drain()
        [denied] = recorder.named("turn_denied")
        assert denied["deny"] == result.deny and denied["turn"].status == "denied"
        assert recorder.named("turn_completed") == [] and recorder.named("turn_failed") == []
        guard = [t for t in await agent.store.trace(turn.turn_id) if t.point == "turn_authorize"]
        assert [(t.plugin, t.outcome) for t in guard] == [("bad", "error")]


@pytest.mark.parametrize(
    ("plugin", "error"),
    [
        (RaisingInbound(), "pipeline 'turn_inbound': plugin 'bad' raised Boom('inbound exploded')"),
        (WrongPrompt(), "pipeline 'turn_prompt': plugin 'bad' returned str, expected Prompt or None"),
        (RaisingOutbound(), "pipeline 'turn_outbound': plugin 'bad' raised Boom('outbound exploded')"),
        (RaisingModel(), "resolve 'turn_reply': plugin 'bad' raised Boom('model exploded')"),
        (GarbageModel(), "resolve 'turn_reply': plugin 'bad' returned dict, expected Message or None"),
    ],
    ids=["inbound-raises", "prompt-wrong-type", "outbound-raises", "reply-raises", "reply-garbage"],
)
async def test_a_failing_pipeline_or_resolve_fails_the_turn(tmp_path: Path, plugin: Any, error: str) -> None:
    recorder = EffectRecorder()
    async with running_agent(tmp_path, plugins={"bad": plugin, "recorder": recorder}) as agent:
        result = await agent.send("hello")
        sid = result.turn.session_id

        assert result.turn.status == "failed" and result.reply is None and result.deny is None
        assert result.turn.error is not None and error in result.turn.error
        [turn] = await agent.store.turns(sid)
        assert turn.status == "failed" and turn.error == result.turn.error
        assert texts(await agent.store.messages(sid)) == [("user", "hello")], "inbound kept, no reply stored"

        await agent.dispatcher.drain()
        [failed] = recorder.named("turn_failed")
        assert failed["error"] == result.turn.error and failed["turn"].status == "failed"
        assert recorder.named("turn_completed") == []

        # the session is not broken: remove the plugin and the next turn completes
        agent.manager.unregister("bad")
        after = await agent.send("again", sid)
        assert (after.turn.number, after.turn.status) == (2, "completed")


class FailingEffects:
    """One ``turn_completed`` implementation per failure mode, selected by ``mode``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.release = threading.Event()

    @hookimpl
    async def turn_completed(self, reply: Message) -> None:
        if self.mode == "raises":
            raise Boom("effect exploded")
        if self.mode == "hangs":
            await asyncio.sleep(30)


class BlockingEffect:
    """A sync ``turn_completed`` that blocks its worker thread until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    @hookimpl
    def turn_completed(self, reply: Message) -> None:
        self.release.wait(5)


async def test_a_raising_effect_is_recorded_and_the_turn_completes(tmp_path: Path) -> None:
    recorder = EffectRecorder()
    async with running_agent(
        tmp_path, plugins={"bad": FailingEffects("raises"), "recorder": recorder}
    ) as agent:
        first = await agent.send("one")
        assert first.turn.status == "completed" and first.reply is not None and first.reply.text == "one"
        await agent.dispatcher.drain()
        assert len(recorder.named("turn_completed")) == 1, "the other effects still ran"
        # late effect traces are stored with the next turn's commit
        await agent.send("two", first.turn.session_id)
        trace = await agent.store.trace(first.turn.turn_id)
        effects = {t.plugin: t for t in trace if t.point == "turn_completed"}
        assert effects["bad"].outcome == "error" and "effect exploded" in (effects["bad"].error or "")
        assert effects["recorder"].outcome == "ok"
        assert [t.point for t in trace if t.outcome == "value"][-1] == "turn_reply"


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_a_hanging_effect_times_out_and_is_recorded(tmp_path: Path, kind: str) -> None:
    hanging: Any = FailingEffects("hangs") if kind == "async" else BlockingEffect()
    agent = build_agent(tmp_path, plugins={"slow": hanging}, plugins_table={"effect_timeout": 0.1})
    try:
        async with agent:
            loop = asyncio.get_running_loop()
            started = loop.time()
            result = await agent.send("quick")
            assert result.turn.status == "completed"
            assert loop.time() - started < 0.5, "the turn does not wait for its effects"
            turn_id = result.turn.turn_id
        # stopping the agent stores the trace of effects that finished after their turn
    finally:
        hanging.release.set()
    store = SQLiteStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        [call] = [t for t in await store.trace(turn_id) if t.point == "turn_completed"]
    finally:
        await store.close()
    assert (call.plugin, call.outcome, call.error) == ("slow", "timeout", "exceeded 0.1s")
    assert call.duration < 1
