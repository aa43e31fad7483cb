"""Sessions and turns through a real agent: FIFO per session, parallel sessions, recovery policy.

What docs/architecture.md, "A turn", promises: the inbound message is
stored first, one turn at a time per session in FIFO order, many sessions
in parallel, and a turn a crash interrupted is found at restart and marked,
never dropped or duplicated.
(The crash itself — a killed process — is tested elsewhere; here the
crash's state is made through the store API before the agent starts.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from turnkit.errors import SessionError, TurnkitError
from turnkit.store import SQLiteStore
from turnkit_hookspecs import Message, Prompt, SessionInfo, TurnInfo, hookimpl

from tests.support.agents import PromptSpy, build_agent, eventually, running_agent, texts


class Overlap:
    """An async ``turn_prompt`` that takes a while and records when each turn enters and leaves it."""

    def __init__(self, pause: float = 0.03) -> None:
        self.pause = pause
        self.events: list[tuple[str, str, int]] = []

    @hookimpl
    async def turn_prompt(self, turn: TurnInfo, prompt: Prompt) -> None:
        self.events.append(("enter", turn.session_id, turn.number))
        await asyncio.sleep(self.pause)
        self.events.append(("exit", turn.session_id, turn.number))

    def of(self, session_id: str) -> list[tuple[str, int]]:
        return [(what, number) for what, sid, number in self.events if sid == session_id]


@pytest.mark.parametrize("count", [2, 5])
async def test_racing_messages_on_one_session_run_in_fifo_order_without_overlap(
    tmp_path: Path, count: int
) -> None:
    overlap = Overlap()
    async with running_agent(tmp_path, plugins={"overlap": overlap}) as agent:
        sid = (await agent.sessions.open()).session_id
        sent = [f"message {n}" for n in range(count)]
        results = await asyncio.gather(*(agent.send(text, sid) for text in sent))

        assert [r.turn.number for r in results] == list(range(1, count + 1))
        assert all(r.turn.status == "completed" for r in results)
        assert [r.reply.text for r in results if r.reply] == sent, "each caller gets its own turn's reply"
        expected = [event for n in range(1, count + 1) for event in (("enter", n), ("exit", n))]
        assert overlap.of(sid) == expected, "turns of one session never interleave"

        turns = await agent.store.turns(sid)
        assert [t.number for t in turns] == list(range(1, count + 1))
        assert [t.status for t in turns] == ["completed"] * count
        started = [t.started_at for t in turns]
        finished = [t.finished_at for t in turns]
        assert all(
            f is not None and s is not None and f <= s for f, s in zip(finished, started[1:], strict=False)
        )


async def test_racing_messages_keep_the_history_conversational(tmp_path: Path) -> None:
    spy, overlap = PromptSpy(), Overlap(pause=0.01)
    async with running_agent(tmp_path, plugins={"overlap": overlap, "spy": spy}) as agent:
        sid = (await agent.sessions.open()).session_id
        first, second, third = await asyncio.gather(
            agent.send("a", sid), agent.send("b", sid), agent.send("c", sid)
        )
        history = texts(await agent.store.messages(sid))
        assert history == [
            ("user", "a"),
            ("assistant", "a"),
            ("user", "b"),
            ("assistant", "b"),
            ("user", "c"),
            ("assistant", "c"),
        ]
        assert spy.of(first.turn) == [("user", "a")], "a queued message is not part of an earlier prompt"
        assert spy.of(second.turn) == [("user", "a"), ("assistant", "a"), ("user", "b")]
        assert spy.of(third.turn) == [*history[:4], ("user", "c")]


async def test_racing_messages_to_a_new_session_id_create_it_once(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        results = await asyncio.gather(*(agent.send(f"m{n}", "fresh") for n in range(3)))
        assert [(r.turn.number, r.turn.status) for r in results] == [(n, "completed") for n in (1, 2, 3)]
        assert [s.session_id for s in await agent.sessions.list_sessions()] == ["fresh"]


async def test_different_sessions_run_their_turns_in_parallel(tmp_path: Path) -> None:
    overlap = Overlap(pause=0.05)
    async with running_agent(tmp_path, plugins={"overlap": overlap}) as agent:
        a = (await agent.sessions.open()).session_id
        b = (await agent.sessions.open()).session_id
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(agent.send("to a", a), agent.send("to b", b))
        elapsed = loop.time() - started

        entered = [sid for what, sid, _ in overlap.events[:2] if what == "enter"]
        assert sorted(entered) == sorted([a, b]), "both sessions were inside turn_prompt at once"
        assert elapsed < 0.1 + 0.05, f"two 50 ms turns took {elapsed:.3f}s: not run in parallel"


async def test_history_of_sequential_turns_alternates_and_prompts_grow(tmp_path: Path) -> None:
    spy = PromptSpy()
    async with running_agent(tmp_path, plugins={"spy": spy}, turns={"history": 3}) as agent:
        sid = (await agent.sessions.open()).session_id
        results = [await agent.send(text, sid) for text in ("one", "two", "three")]
        assert texts(await agent.sessions.history(sid)) == [
            (role, text) for text in ("one", "two", "three") for role in ("user", "assistant")
        ]
        assert spy.of(results[0].turn) == [("user", "one")]
        assert spy.of(results[1].turn) == [("user", "one"), ("assistant", "one"), ("user", "two")]
        # [turns] history = 3: the window is the three newest messages, the inbound one included
        assert spy.of(results[2].turn) == [("user", "two"), ("assistant", "two"), ("user", "three")]


async def test_sessions_view_opens_lists_and_reports(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        created = await agent.sessions.open("chosen-id", kind="task", metadata={"owner": "ops"})
        assert (created.session_id, created.kind, created.metadata) == ("chosen-id", "task", {"owner": "ops"})
        assert await agent.sessions.open("chosen-id") == created, "opening an existing id returns it"
        other = await agent.sessions.open()
        assert other.kind == "chat" and other.session_id != created.session_id
        assert await agent.sessions.get("nope") is None
        assert [s.session_id for s in await agent.sessions.list_sessions(kind="task")] == ["chosen-id"]

        result = await agent.send("hello", "fresh", initiator="system", initiator_id="cron")
        assert (result.turn.initiator, result.turn.initiator_id, result.turn.number) == ("system", "cron", 1)
        assert await agent.sessions.get("fresh") is not None, "send creates a session it is given"
        with pytest.raises(SessionError, match="no session 'missing'"):
            await agent.sessions.turn("missing", Message.of("user", "hi"))
    with pytest.raises(TurnkitError, match="not started"):
        _ = agent.store


# ---------------------------------------------------------------------- recovery policy


async def crashed_store(path: Path, *, rerun_crashed_too: bool = False) -> str | None:
    """Leave the store as a crash would: turn ``t1`` of session ``s1`` running, its lease gone.

    With ``rerun_crashed_too`` the crash happened while re-running ``t1``:
    ``t1`` is interrupted and its re-run (whose id is returned) is the one left running.
    """
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.register_agent("default")
        await store.create_session(SessionInfo("s1", "chat"), "default")
        await store.accept("s1", "t1", Message.of("user", "do the thing"), "user", "alice")
        assert await store.claim_turn("s1") is not None  # no lease registered: as if it had run out
        if not rerun_crashed_too:
            return None
        [taken] = await store.take_over("default", "rerun")
        assert taken.rerun is not None
        assert await store.claim_turn("s1") is not None
        return taken.rerun.turn_id
    finally:
        await store.close()


async def test_an_interrupted_turn_is_rerun_once_at_start(tmp_path: Path) -> None:
    await crashed_store(tmp_path / "t.db")
    async with running_agent(tmp_path, turns={"interrupted": "rerun"}) as agent:

        async def rerun_done() -> bool:
            return [t.status for t in await agent.store.turns("s1")] == ["interrupted", "completed"]

        await eventually(rerun_done)
        first, rerun = await agent.store.turns("s1")
        assert first.error is not None and "interrupted" in first.error
        assert (rerun.rerun_of, rerun.message_id, rerun.initiator_id) == ("t1", first.message_id, "alice")
        assert texts(await agent.store.messages("s1")) == [
            ("user", "do the thing"),
            ("assistant", "do the thing"),
        ]
        [event] = await agent.store.audit_events("s1")
        assert (event.extension_id, event.action, event.turn_id) == ("turnkit", "lease_taken_over", "t1")
        assert event.detail == {
            "turn": "t1",
            "number": 1,
            "owner": first.owner,
            "by": agent.store.owner,
            "policy": "rerun",
            "rerun": rerun.turn_id,
        }

    async with running_agent(tmp_path, turns={"interrupted": "rerun"}) as agent:
        await asyncio.sleep(0.05)
        assert len(await agent.store.turns("s1")) == 2, "a restart does not run it again"


async def test_an_interrupted_turn_is_reported_not_rerun(tmp_path: Path) -> None:
    await crashed_store(tmp_path / "t.db")
    async with running_agent(tmp_path, turns={"interrupted": "report"}) as agent:
        [turn] = await agent.store.turns("s1")
        assert turn.status == "interrupted" and turn.error is not None
        assert texts(await agent.store.messages("s1")) == [("user", "do the thing")], (
            "the message stays stored"
        )
        [event] = await agent.store.audit_events("s1")
        assert (event.action, event.detail["policy"]) == ("lease_taken_over", "report")
        assert "rerun" not in event.detail
        result = await agent.send("next", "s1")
        assert (result.turn.number, result.turn.status) == (2, "completed"), "the session goes on"


async def test_a_crash_during_the_rerun_is_reported_not_rerun_again(tmp_path: Path) -> None:
    rerun = await crashed_store(tmp_path / "t.db", rerun_crashed_too=True)
    async with running_agent(tmp_path, turns={"interrupted": "rerun"}) as agent:
        await asyncio.sleep(0.1)
        turns = await agent.store.turns("s1")
        assert [(t.turn_id, t.status) for t in turns] == [("t1", "interrupted"), (rerun, "interrupted")]
        assert texts(await agent.store.messages("s1")) == [("user", "do the thing")]
        events = [e for e in await agent.store.audit_events("s1") if e.turn_id == rerun]
        assert [(e.action, e.detail["policy"]) for e in events] == [("lease_taken_over", "report")]


async def test_queued_turns_left_by_a_stop_run_at_the_next_start(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "t.db"))
    await store.open()
    await store.register_agent("default")
    await store.create_session(SessionInfo("s1", "chat"), "default")
    await store.accept("s1", "q1", Message.of("user", "first"), "user")
    await store.accept("s1", "q2", Message.of("user", "second"), "user")
    await store.close()

    agent = build_agent(tmp_path)
    async with agent:

        async def both_done() -> bool:
            return [t.status for t in await agent.store.turns("s1")] == ["completed", "completed"]

        await eventually(both_done)
        replies = [m.message.text for m in await agent.store.messages("s1") if m.message.role == "assistant"]
        assert replies == ["first", "second"]
