"""Streaming replies: a listener passed with a turn gets the reply's chunks as the model writes them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from turnkit_hookspecs import Message, Prompt, ReplyStream, hookimpl

from tests.support.agents import running_agent


class Chunks:
    """A listener recording what it is given."""

    def __init__(self) -> None:
        self.chunks: list[str] = []

    async def __call__(self, text: str) -> None:
        self.chunks.append(text)


async def test_the_echo_model_streams_word_by_word_and_the_whole_reply_is_stored(tmp_path: Path) -> None:
    listener = Chunks()
    async with running_agent(tmp_path) as agent:
        result = await agent.send("streams arrive  in order", stream=listener)
        history = await agent.sessions.history(result.turn.session_id)
    assert listener.chunks == ["streams ", "arrive  ", "in ", "order"]
    assert result.reply is not None and result.reply.text == "streams arrive  in order"
    assert history[-1].text == "streams arrive  in order"


async def test_nothing_is_streamed_without_a_listener(tmp_path: Path) -> None:
    seen: list[bool] = []

    class Model:
        @hookimpl
        async def turn_reply(self, stream: ReplyStream) -> Message:
            seen.append(stream.active)
            await stream.write("ignored")
            return Message.of("assistant", "whole")

    async with running_agent(tmp_path, plugins={"model": Model()}) as agent:
        result = await agent.send("hi")
    assert seen == [False] and result.reply is not None and result.reply.text == "whole"


async def test_turn_chunk_rewrites_each_chunk_but_not_the_stored_reply(tmp_path: Path) -> None:
    class Shout:
        @hookimpl
        def turn_chunk(self, text: str) -> str:
            return text.upper()

    listener = Chunks()
    async with running_agent(tmp_path, plugins={"shout": Shout()}) as agent:
        result = await agent.send("quiet words", stream=listener)
    assert listener.chunks == ["QUIET ", "WORDS"]
    assert result.reply is not None and result.reply.text == "quiet words"


async def test_a_failing_listener_stops_streaming_but_the_turn_completes(tmp_path: Path) -> None:
    calls: list[str] = []

    async def broken(text: str) -> None:
        calls.append(text)
        raise ConnectionResetError("client went away")

    async with running_agent(tmp_path) as agent:
        result = await agent.send("one two three", stream=broken)
    assert calls == ["one "]
    assert result.turn.status == "completed"
    assert result.reply is not None and result.reply.text == "one two three"


async def test_a_queued_turn_streams_to_its_own_listener(tmp_path: Path) -> None:
    release = asyncio.Event()

    class Slow:
        @hookimpl
        async def turn_reply(self, prompt: Prompt, stream: ReplyStream) -> Message | None:
            if prompt.messages[-1].text == "first":
                await release.wait()
            return None  # the echo model answers

    first, second = Chunks(), Chunks()
    async with running_agent(tmp_path, plugins={"slow": Slow()}) as agent:
        session = await agent.sessions.open()
        one = asyncio.create_task(agent.send("first", session.session_id, stream=first))
        await asyncio.sleep(0.05)
        two = asyncio.create_task(agent.send("second turn", session.session_id, stream=second))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(one, two)
    assert first.chunks == ["first"]
    assert second.chunks == ["second ", "turn"]
