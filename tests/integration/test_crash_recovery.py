"""Crash recovery: a process killed mid-turn loses nothing and doubles nothing.

See docs/architecture.md, "A turn" (the message is stored first; interrupted
turns are found and marked).

``crash_agent.py`` runs in a subprocess on a SQLite file: one message is
answered, then a turn blocks inside ``turn_prompt`` with two more messages
queued behind it, and the test SIGKILLs the process. A fresh agent on the
same file, without the blocking plugin, must find the killed turn, mark it
``interrupted`` and, per ``[turns] interrupted``, re-run its message once or
only report it, while the queued messages are answered in order.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import attrs
import pytest
from turnkit import PluginManager, load_config
from turnkit.agent import Agent
from turnkit.store import AuditEvent, Store, StoredMessage, TurnRecord, open_store
from turnkit_hookspecs import Prompt, TurnInfo, hookimpl

from tests.support.dists import subprocess_env

SCRIPT = Path(__file__).with_name("crash_agent.py")
SESSION = "crashed"
#: Answered before the crash, blocking when killed, queued behind it.
BEFORE, HANG, QUEUED = "before the crash", "hang here", ["after 1", "after 2"]
MESSAGES = [BEFORE, HANG, *QUEUED]
#: How long the subprocess may take to reach the blocking hook, and the restart to settle.
STARTUP, SETTLE = 20.0, 5.0

Policy = Literal["rerun", "report"]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "turnkit.toml"
    path.write_text('[store]\nurl = "t.db"\n\n[turns]\ninterrupted = "rerun"\ninbox_poll = 0.05\n')
    return path


def crash(config_file: Path, messages: list[str] = MESSAGES) -> None:
    """Run crash_agent.py until a turn blocks with the others queued, then SIGKILL it."""
    marker = config_file.parent / "blocked"
    marker.unlink(missing_ok=True)
    argv = [sys.executable, str(SCRIPT), str(config_file), SESSION, str(marker), *messages]
    process = subprocess.Popen(
        argv,
        cwd=config_file.parent,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP
        while not marker.exists():
            if process.poll() is not None:
                out, err = process.communicate()
                pytest.fail(f"crash_agent.py exited {process.returncode} before blocking\n{out}{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"crash_agent.py did not block within {STARTUP}s")
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL


class PromptRecorder:
    """Remembers the texts of every prompt the model is given, by turn."""

    def __init__(self) -> None:
        self.prompts: dict[str, list[str]] = {}

    @hookimpl
    def turn_prompt(self, turn: TurnInfo, prompt: Prompt) -> None:
        self.prompts[turn.turn_id] = [m.text for m in prompt.messages]


@asynccontextmanager
async def restart(config_file: Path, policy: Policy, *plugins: object) -> AsyncIterator[Agent]:
    """A fresh agent on the crashed file (installed services, no blocking plugin), settled."""
    config = load_config(config_file)
    config = attrs.evolve(config, turns=attrs.evolve(config.turns, interrupted=policy))
    env = subprocess_env()
    manager = PluginManager.load(config, env)
    for plugin in plugins:
        manager.register(plugin, type(plugin).__name__)
    async with Agent(config, env=env, manager=manager) as agent:
        await settled(agent)
        yield agent


async def settled(agent: Agent) -> list[TurnRecord]:
    """The session's turns once none is queued or running (polled, with a deadline)."""
    deadline = time.monotonic() + SETTLE
    while True:
        turns = await agent.store.turns(SESSION)
        if not any(t.status in ("queued", "running") for t in turns):
            return turns
        if time.monotonic() > deadline:
            pytest.fail(f"turns still pending after {SETTLE}s: {[(t.number, t.status) for t in turns]}")
        await asyncio.sleep(0.02)


@attrs.frozen
class State:
    """What the store holds about the crashed session."""

    turns: list[TurnRecord]
    messages: list[StoredMessage]
    audit: list[AuditEvent]

    def inbound(self, turn: TurnRecord) -> str:
        (message,) = [m for m in self.messages if m.id == turn.message_id]
        return message.message.text

    def turn_of(self, text: str, *, rerun: bool = False) -> TurnRecord:
        (turn,) = [t for t in self.turns if self.inbound(t) == text and (t.rerun_of is not None) == rerun]
        return turn

    def reply_to(self, turn: TurnRecord) -> StoredMessage:
        (reply,) = [m for m in self.messages if m.turn_id == turn.turn_id and m.message.role == "assistant"]
        return reply

    def history(self) -> list[tuple[str, str]]:
        return [(m.message.role, m.message.text) for m in self.messages]


async def read(store: Store) -> State:
    return State(await store.turns(SESSION), await store.messages(SESSION), await store.audit_events(SESSION))


def exchange(*texts: str) -> list[tuple[str, str]]:
    """The history of messages each answered by its echo."""
    return [pair for text in texts for pair in (("user", text), ("assistant", text))]


def interrupted_events(audit: list[AuditEvent]) -> list[dict[str, Any]]:
    """The takeovers audited, without the two owners (the killed process's and the restart's)."""
    events = [e.detail for e in audit if e.action == "lease_taken_over" and e.extension_id == "turnkit"]
    assert all(e["owner"] != e["by"] for e in events), "a process never takes over from itself"
    return [{k: v for k, v in e.items() if k not in ("owner", "by")} for e in events]


async def check_crashed(config_file: Path) -> None:
    """What the kill left: the blocked turn running, the queued ones durable but not in the history yet."""
    config = load_config(config_file)
    store = await open_store(config.store, config.base_dir)
    try:
        then = await read(store)
    finally:
        await store.close()
    assert [(t.number, t.status) for t in then.turns] == [
        (1, "completed"),
        (2, "running"),
        (3, "queued"),
        (4, "queued"),
    ]
    assert then.history() == [*exchange(BEFORE), ("user", HANG)]
    assert [t.message_id for t in then.turns[2:]] == [None, None], "queued messages wait in their turn"


def check_queued_ran_in_order(now: State, prompts: PromptRecorder, history: list[tuple[str, str]]) -> None:
    """The turn before the crash untouched; the queued messages answered once each, in order."""
    before = now.turn_of(BEFORE)
    assert (before.number, before.status) == (1, "completed")
    first, second = (now.turn_of(text) for text in QUEUED)
    assert [(t.number, t.status) for t in (first, second)] == [(3, "completed"), (4, "completed")]
    assert [now.reply_to(t).message.text for t in (first, second)] == QUEUED
    assert first.finished_at is not None and second.started_at is not None
    assert first.finished_at <= second.started_at, "FIFO, one at a time"
    assert prompts.prompts[first.turn_id] == [m for _, m in history] + [QUEUED[0]], (
        "a turn sees the history before it, never a message queued after it"
    )
    assert not [t for t in now.turns if t.status in ("queued", "running")]


async def test_a_killed_turn_is_rerun_once_and_nothing_is_lost_or_doubled(config_file: Path) -> None:
    crash(config_file)
    await check_crashed(config_file)

    prompts = PromptRecorder()
    async with restart(config_file, "rerun", prompts) as agent:
        now = await read(agent.store)
    assert now.history() == exchange(*MESSAGES), "each message once, each answered once, in order"
    check_queued_ran_in_order(now, prompts, exchange(BEFORE, HANG))
    killed = now.turn_of(HANG)
    assert (killed.number, killed.status) == (2, "interrupted")
    assert killed.error is not None and "interrupted" in killed.error
    assert killed.started_at is not None and killed.finished_at is not None
    rerun = now.turn_of(HANG, rerun=True)
    assert rerun.rerun_of == killed.turn_id
    assert (rerun.number, rerun.status) == (5, "completed")
    assert (rerun.initiator, rerun.initiator_id) == (killed.initiator, killed.initiator_id) == ("user", None)
    assert rerun.message_id == killed.message_id, "the re-run answers the stored message, not a copy"
    assert now.reply_to(rerun).message.text == HANG
    assert rerun.finished_at is not None and now.turn_of(QUEUED[0]).started_at is not None
    assert rerun.finished_at <= now.turn_of(QUEUED[0]).started_at, "the re-run goes before the queued ones"
    assert prompts.prompts[rerun.turn_id] == [BEFORE, BEFORE, HANG]
    assert not [m for m in now.messages if m.turn_id == killed.turn_id and m.message.role == "assistant"]
    assert len(now.turns) == 5
    assert interrupted_events(now.audit) == [
        {"turn": killed.turn_id, "number": 2, "policy": "rerun", "rerun": rerun.turn_id}
    ]

    async with restart(config_file, "rerun") as agent:
        again = await read(agent.store)
    assert again == now, "a second restart re-runs nothing and records nothing"


async def test_a_rerun_killed_too_is_reported_not_rerun_again(config_file: Path) -> None:
    crash(config_file)
    crash(config_file, messages=[])  # its start re-runs the killed message, which blocks again

    async with restart(config_file, "rerun") as agent:
        now = await read(agent.store)
    assert now.history() == [*exchange(BEFORE), ("user", HANG), *exchange(*QUEUED)], (
        "the message stays stored once, unanswered; the queued ones are answered"
    )
    killed = now.turn_of(HANG)
    rerun = now.turn_of(HANG, rerun=True)
    assert [(t.number, t.status, t.rerun_of) for t in now.turns] == [
        (1, "completed", None),
        (2, "interrupted", None),
        (3, "completed", None),
        (4, "completed", None),
        (5, "interrupted", killed.turn_id),
    ]
    assert interrupted_events(now.audit) == [
        {"turn": killed.turn_id, "number": 2, "policy": "rerun", "rerun": rerun.turn_id},
        {"turn": rerun.turn_id, "number": 5, "policy": "report"},
    ]

    async with restart(config_file, "rerun") as agent:
        again = await read(agent.store)
    assert again == now, "nothing is re-run at a later restart either"


async def test_report_keeps_the_message_and_reruns_nothing(config_file: Path) -> None:
    crash(config_file)

    prompts = PromptRecorder()
    async with restart(config_file, "report", prompts) as agent:
        now = await read(agent.store)
    assert now.history() == [*exchange(BEFORE), ("user", HANG), *exchange(*QUEUED)], (
        "the message stays stored, unanswered"
    )
    check_queued_ran_in_order(now, prompts, [*exchange(BEFORE), ("user", HANG)])
    killed = now.turn_of(HANG)
    assert (killed.number, killed.status) == (2, "interrupted")
    assert not [t for t in now.turns if t.rerun_of is not None]
    assert len(now.turns) == 4
    assert interrupted_events(now.audit) == [{"turn": killed.turn_id, "number": 2, "policy": "report"}]

    async with restart(config_file, "rerun") as agent:
        again = await read(agent.store)
    assert again == now, "a reported turn is not re-run by a later restart either"
