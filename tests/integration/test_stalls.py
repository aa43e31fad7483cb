"""No plugin can stall the agent: every kind has a time limit, and ``def`` code cannot block the loop.

Each hung implementation below waits on an event the test sets at the end,
so that the threads it holds end with the test. The second session's turn
must answer while the first one's plugin hangs: the proof that a hang costs
only its own turn.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from turnkit.agent import Agent
from turnkit.manager import PluginManager
from turnkit.store import SQLiteStore
from turnkit_hookspecs import (
    ForkOptions,
    Message,
    Prompt,
    SessionExtensionContext,
    TurnInfo,
    hookimpl,
)

from tests.support.agents import agent_config, running_agent

LIMIT = 0.5  # every kind's time limit in these tests
TIMES = {
    "guard_timeout": LIMIT,
    "pipeline_timeout": LIMIT,
    "resolve_timeout": LIMIT,
    "effect_timeout": LIMIT,
    "timeouts": {"turn_reply": LIMIT},  # the model's own default is 120 s
}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test: every hung implementation returns then."""
    event = threading.Event()
    yield event
    event.set()


def hangs(message: Message | Prompt) -> bool:
    text = message.text if isinstance(message, Message) else message.messages[-1].text
    return text == "hang"


class SyncHang:
    """``def`` implementations that block (as ``time.sleep`` would) on the message "hang"."""

    def __init__(self, point: str, release: threading.Event) -> None:
        self.point, self.release = point, release

    def _maybe_hang(self, point: str, value: Message | Prompt) -> None:
        if point == self.point and hangs(value):
            self.release.wait(30)

    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        self._maybe_hang("turn_authorize", message)

    @hookimpl
    def turn_inbound(self, message: Message) -> None:
        self._maybe_hang("turn_inbound", message)

    @hookimpl(tryfirst=True)
    def turn_reply(self, prompt: Prompt) -> None:
        self._maybe_hang("turn_reply", prompt)


class AsyncHang:
    """``async def`` implementations that await for ever on the message "hang"."""

    def __init__(self, point: str) -> None:
        self.point = point

    async def _maybe_hang(self, point: str, value: Message | Prompt) -> None:
        if point == self.point and hangs(value):
            await asyncio.Event().wait()

    @hookimpl
    async def turn_authorize(self, message: Message) -> None:
        await self._maybe_hang("turn_authorize", message)

    @hookimpl
    async def turn_inbound(self, message: Message) -> None:
        await self._maybe_hang("turn_inbound", message)

    @hookimpl(tryfirst=True)
    async def turn_reply(self, prompt: Prompt) -> None:
        await self._maybe_hang("turn_reply", prompt)


@pytest.mark.parametrize("style", ["sync", "async"])
@pytest.mark.parametrize("point", ["turn_authorize", "turn_inbound", "turn_reply"])
async def test_a_hung_implementation_ends_its_turn_by_its_kind_while_another_session_answers(
    tmp_path: Path, point: str, style: str, release: threading.Event
) -> None:
    plugin = SyncHang(point, release) if style == "sync" else AsyncHang(point)
    async with running_agent(tmp_path, plugins={"stuck": plugin}, plugins_table=TIMES) as agent:
        started = time.monotonic()
        hung = asyncio.create_task(agent.send("hang"))
        other = await agent.send("hello")  # another session, while the first one's plugin hangs
        answered = time.monotonic() - started
        assert other.reply is not None and other.reply.text == "hello"
        assert answered < LIMIT, f"the other session waited {answered:.2f}s behind the hung plugin"
        result = await asyncio.wait_for(hung, 10)
        took = time.monotonic() - started
    assert LIMIT <= took < LIMIT + 2
    if point == "turn_authorize":  # a guard that runs out of time denies (fail closed)
        assert result.turn.status == "denied"
        assert result.deny is not None and result.deny.plugin == "stuck"
        assert result.deny.reason == f"stuck timed out after {LIMIT:g}s"
    else:  # a pipeline or resolve that runs out of time fails the turn, naming the plugin
        assert result.turn.status == "failed"
        kind = "pipeline" if point == "turn_inbound" else "resolve"
        assert result.turn.error == f"{type_of(kind)}: {kind} {point!r}: plugin 'stuck' timed out after 0.5s"


def type_of(kind: str) -> str:
    return "PipelineError" if kind == "pipeline" else "ResolveError"


class SlowEffect:
    """A ``def`` effect that hangs on every call."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    @hookimpl
    def turn_completed(self, reply: Message) -> None:
        self.release.wait(30)


class CountingEffect:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def turn_completed(self, reply: Message) -> None:
        self.seen.append(reply.text)


async def test_hung_sync_effects_do_not_starve_the_others(tmp_path: Path, release: threading.Event) -> None:
    counting = CountingEffect()
    plugins = {"a-stuck": SlowEffect(release), "b-counting": counting}
    table = {"effect_timeout": 0.2, "effect_workers": 2, "hung_limit": 10}
    async with running_agent(tmp_path, plugins=plugins, plugins_table=table) as agent:
        for index in range(5):  # more hung calls than there are effect threads
            await agent.send(f"turn {index}")
        await agent.dispatcher.drain()
        outcomes = [(r.plugin, r.outcome) for r in agent.traces.records() if r.point == "turn_completed"]
    assert counting.seen == [f"turn {index}" for index in range(5)]
    assert outcomes.count(("a-stuck", "timeout")) == 5
    assert outcomes.count(("b-counting", "ok")) == 5


class AlwaysHangs:
    def __init__(self, release: threading.Event) -> None:
        self.release = release

    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        self.release.wait(30)


async def test_a_plugin_that_always_hangs_is_refused_threads_beyond_its_hung_limit(
    tmp_path: Path, release: threading.Event
) -> None:
    table = {"guard_timeout": 0.2, "hung_limit": 2}
    before = set(threading.enumerate())  # earlier tests' threads may still be ending
    async with running_agent(tmp_path, plugins={"stuck": AlwaysHangs(release)}, plugins_table=table) as agent:
        first = [await agent.send(f"try {index}") for index in range(2)]
        started = time.monotonic()
        refused = await agent.send("once more")
        assert time.monotonic() - started < 0.2  # not called at all: no thread, no wait
        assert agent.dispatcher.hung() == {"stuck": 2}
        threads = [t for t in set(threading.enumerate()) - before if t.name.startswith("turnkit-call")]
    assert [r.deny.reason if r.deny else None for r in first] == ["stuck timed out after 0.2s"] * 2
    assert refused.deny is not None
    assert refused.deny.reason == (
        "stuck not called: 2 earlier call(s) of plugin 'stuck' are still hung ([plugins] hung_limit)"
    )
    assert len(threads) <= 3  # two hung, and at most one fresh one


class FastThenBlocking:
    """Fast until told to block, then blocks in a ``def`` guard for ``seconds``."""

    def __init__(self) -> None:
        self.block = 0.0
        self.threads: list[str] = []

    @hookimpl
    def turn_authorize(self, message: Message) -> None:
        self.threads.append(threading.current_thread().name)
        if message.text == "block":
            time.sleep(self.block)


async def test_fast_code_earns_the_loop_and_loses_it_when_it_blocks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = FastThenBlocking()
    table = {"inline_after": 3, "watchdog": 0.1, "guard_timeout": 5.0}
    async with running_agent(tmp_path, plugins={"sometimes": plugin}, plugins_table=table) as agent:
        for index in range(4):
            await agent.send(f"fast {index}")
        loop_thread = threading.current_thread().name
        # on probation on a thread for three calls, then on the event loop
        assert [name == loop_thread for name in plugin.threads] == [False, False, False, True]
        plugin.block = 0.3
        with caplog.at_level(logging.WARNING):
            await agent.send("block")  # on the loop: it blocks every session, and is seen
        assert "by plugin 'sometimes' at point 'turn_authorize'" in caplog.text
        assert "plugin 'sometimes' blocked the event loop for" in caplog.text
        # back on a thread for good: blocking again costs only its own turn
        blocked = asyncio.create_task(agent.send("block"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        other = await agent.send("hello")
        assert time.monotonic() - started < 0.2
        assert other.reply is not None and other.reply.text == "hello"
        await blocked
    assert plugin.threads[-1] != loop_thread


class ForkingEffect:
    """After a user's turn, forks a child whose first message starts a turn of its own."""

    @hookimpl
    async def turn_completed(self, ctx: SessionExtensionContext, turn: TurnInfo) -> None:
        if turn.initiator == "user":
            await ctx.fork(ForkOptions(reason="follow up", initial_message=Message.of("user", "child hi")))


async def test_stopping_finishes_the_work_effects_started(tmp_path: Path) -> None:
    """As ``turnkit send`` does: one turn, then stop; the effect's fork and its turn complete."""
    config = agent_config(tmp_path)
    manager = PluginManager(config.plugins)
    manager.register(ForkingEffect(), "forker")
    agent = Agent(config, manager=manager, resume=False)
    await agent.start()
    result = await agent.send("hi")
    await agent.stop()
    store = SQLiteStore(str(tmp_path / "t.db"))
    await store.open()
    try:
        (child,) = await store.child_sessions(result.turn.session_id)
        history = [(m.message.role, m.message.text) for m in await store.messages(child.info.session_id)]
        turns = await store.turns(child.info.session_id)
    finally:
        await store.close()
    assert history[-2:] == [("user", "child hi"), ("assistant", "child hi")]
    assert [turn.status for turn in turns] == ["completed"]
