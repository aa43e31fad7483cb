"""``ForkOptions(after_turn=...)``: forking a session as it was when one of its finished turns ended.

A real agent on a SQLite file; the fork is made through a plugin's
``SessionExtensionContext`` outside any turn, as a service does, and the
child's prompt (through a prompt spy) and lineage are read back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from turnkit.errors import StoreError
from turnkit_hookspecs import ForkOptions, Message, SessionExtensionContext, hookimpl

from tests.support.agents import PromptSpy, running_agent, texts


class Merger:
    """Merges a throwaway child into every session after its first turn, from ``turn_completed``.

    The summary it appends carries that turn's id but comes after later
    messages: the fork point must still be the turn's own reply.
    """

    def __init__(self) -> None:
        self.done = False

    @hookimpl
    async def turn_completed(self, ctx: SessionExtensionContext) -> None:
        if not self.done:
            self.done = True
            await ctx.merge(await ctx.fork(), "a side note")


async def test_a_fork_after_an_earlier_turn_sees_the_history_up_to_its_reply(tmp_path: Path) -> None:
    spy = PromptSpy()
    async with running_agent(tmp_path, plugins={"spy": spy}) as agent:
        first = await agent.send("one")
        session = first.turn.session_id
        await agent.send("two", session)
        await agent.send("three", session)
        parent = await agent.sessions.extension(session, "test")
        child = await parent.fork(ForkOptions(reason="edit", after_turn=first.turn.turn_id))

        info = await agent.sessions.get(child)
        stored = await agent.store.messages(session)
        assert info is not None and info.fork_point == stored[1].id, "the first turn's reply"
        first_turn = [("user", "one"), ("assistant", "one")]
        assert texts(await agent.store.messages(child, lineage=True)) == first_turn
        result = await agent.send(Message.of("user", "deux"), child)
        assert spy.of(result.turn)[-3:] == [*first_turn, ("user", "deux")]
        assert len(await agent.store.messages(session)) == 6, "the parent is unchanged"


async def test_the_fork_point_is_the_turns_reply_even_when_a_later_message_carries_its_id(
    tmp_path: Path,
) -> None:
    async with running_agent(tmp_path, plugins={"merger": Merger()}) as agent:
        first = await agent.send("one")
        session = first.turn.session_id
        await agent.dispatcher.drain()  # the merge summary (carrying turn one's id) is written now
        await agent.send("two", session)
        parent = await agent.sessions.extension(session, "test")
        child = await parent.fork(ForkOptions(after_turn=first.turn.turn_id))
        seen = [text for _, text in texts(await agent.store.messages(child, lineage=True))]
        assert seen == ["one", "one"]


async def test_forking_after_a_turn_that_is_not_the_sessions_is_refused(tmp_path: Path) -> None:
    async with running_agent(tmp_path) as agent:
        mine = await agent.send("mine")
        theirs = await agent.send("theirs")
        parent = await agent.sessions.extension(mine.turn.session_id, "test")
        with pytest.raises(StoreError, match=r"no turn '[0-9a-f]+' in session '[0-9a-f]+' to fork after"):
            await parent.fork(ForkOptions(after_turn=theirs.turn.turn_id))
        with pytest.raises(StoreError, match="no turn 'nope'"):
            await parent.fork(ForkOptions(after_turn="nope"))
        assert await agent.store.child_sessions(mine.turn.session_id) == []
