"""The chat main path: channel message → chat points → session turn → reply delivered on the channel.

A small in-process channel (``Inbox``) stands in for a transport; the chat
service, the turn machinery and the store are the real ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from turnkit_hookspecs import ChannelMessage, Deny, Message, Origin, Principal, TurnInfo, hookimpl
from turnkit_services.chat import Channel, ChatService, split_text

from tests.support.agents import running_agent


class Inbox(Channel):
    """A channel whose transport is a list: ``deliver`` appends the parts."""

    name = "inbox"
    max_length = 40

    def __init__(self, chat: Any) -> None:
        super().__init__(chat, None)
        self.delivered: list[tuple[str, list[str]]] = []

    async def deliver(self, inbound: ChannelMessage, parts: Sequence[str]) -> None:
        self.delivered.append((inbound.chat_id, list(parts)))


def said(text: str, chat_id: str = "c1", user: str = "u1", thread: str | None = None) -> ChannelMessage:
    return ChannelMessage(
        "inbox", chat_id, Principal("inbox", user, name=user.title()), Message.of("user", text), thread
    )


class Recorder:
    """Records the chat points and the turn points in call order."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.inbound: list[ChannelMessage] = []

    @hookimpl
    def chat_principal_seen(self, principal: Principal) -> None:
        self.calls.append(f"seen {principal.id}")

    @hookimpl
    def chat_inbound(self, inbound: ChannelMessage, session_id: str) -> None:
        self.calls.append("chat_inbound")

    @hookimpl
    def chat_authorize(self, inbound: ChannelMessage, turn: TurnInfo) -> None:
        self.inbound.append(inbound)
        self.calls.append(f"chat_authorize {turn.initiator_id}")

    @hookimpl
    def turn_authorize(self) -> None:
        self.calls.append("turn_authorize")

    @hookimpl
    def turn_completed(self) -> None:
        self.calls.append("turn_completed")

    @hookimpl
    def chat_outbound(self, reply: Message) -> None:
        self.calls.append(f"chat_outbound {reply.text}")

    @hookimpl
    def chat_replied(self, turn: TurnInfo, reply: Message) -> None:
        self.calls.append(f"chat_replied {turn.status} {reply.text}")


async def test_a_message_runs_the_points_in_order_and_the_reply_is_delivered(tmp_path: Path) -> None:
    chat, recorder = ChatService(), Recorder()
    async with running_agent(tmp_path, services=[chat], plugins={"rec": recorder}) as agent:
        channel = Inbox(chat)
        outcome = await chat.handle(said("hello there"), channel)
        await agent.dispatcher.drain()
        history = await agent.sessions.history(outcome.session_id)
    assert outcome.status == "completed" and outcome.reply.text == "hello there"
    assert channel.delivered == [("c1", ["hello there"])]
    calls = recorder.calls
    assert "seen u1" in calls  # an effect: it runs beside the main path, not in its order
    assert calls.index("chat_inbound") < calls.index("turn_authorize")
    assert "chat_authorize inbox:u1" in calls
    assert calls.index("chat_outbound hello there") < calls.index("chat_replied completed hello there")
    assert "turn_completed" in calls
    stored = history[0]
    assert stored.author == "U1"
    assert stored.metadata["chat"]["principal"] == {
        "channel": "inbox",
        "id": "u1",
        "name": "U1",
        "role": "user",
    }
    assert stored.metadata["chat"]["chat_id"] == "c1"


async def test_one_session_per_chat_and_thread_remembered_across_restarts(tmp_path: Path) -> None:
    async with running_agent(tmp_path, services=[chat := ChatService()]) as agent:
        channel = Inbox(chat)
        first = await chat.handle(said("one"), channel)
        again = await chat.handle(said("two", user="u2"), channel)
        other_chat = await chat.handle(said("three", chat_id="c2"), channel)
        thread = await chat.handle(said("four", thread="t9"), channel)
        bindings = (await agent.invoke("chat.bindings")).value
    assert first.session_id == again.session_id
    assert len({first.session_id, other_chat.session_id, thread.session_id}) == 3
    assert {b["chat"] for b in bindings} == {"inbox:c1", "inbox:c2", "inbox:c1:t9"}

    async with running_agent(tmp_path, services=[chat := ChatService()]) as agent:
        later = await chat.handle(said("five"), Inbox(chat))
        history = await agent.sessions.history(later.session_id)
    assert later.session_id == first.session_id
    assert [m.text for m in history] == ["one", "one", "two", "two", "five", "five"]


async def test_new_session_rebinds_the_chat_and_a_closed_session_is_replaced(tmp_path: Path) -> None:
    async with running_agent(tmp_path, services=[chat := ChatService()]) as agent:
        channel = Inbox(chat)
        first = await chat.handle(said("one"), channel)
        fresh = await chat.new_session("inbox", "c1")
        second = await chat.handle(said("two"), channel)
        assert second.session_id == fresh != first.session_id
        await agent.orchestrator.set_status(fresh, "closed")
        third = await chat.handle(said("three"), channel)
        assert third.session_id not in (first.session_id, fresh)
        await chat.bind("inbox", "c1", first.session_id)
        assert (await chat.handle(said("back"), channel)).session_id == first.session_id


async def test_a_refused_sender_gets_the_polite_reply_and_a_denied_turn_is_stored(tmp_path: Path) -> None:
    class Gate:
        @hookimpl
        def chat_principal_role(self, principal: Principal) -> str | None:
            return "admin" if principal.id == "boss" else None

        @hookimpl
        def chat_authorize(self, inbound: ChannelMessage) -> Deny | None:
            if inbound.principal.role != "admin":
                return Deny("admins only")
            return None

    services = [chat := ChatService()]
    table = {"chat": {"denied_reply": "Sorry, not for you."}}
    async with running_agent(tmp_path, services=services, plugins={"gate": Gate()}, service=table) as agent:
        channel = Inbox(chat)
        refused = await chat.handle(said("let me in", chat_id="x", user="guest"), channel)
        allowed = await chat.handle(said("hello", chat_id="y", user="boss"), channel)
        turns = await agent.store.turns(refused.session_id)
    assert refused.status == "denied" and refused.reply.text == "Sorry, not for you."
    assert channel.delivered[0] == ("x", ["Sorry, not for you."])
    assert [t.status for t in turns] == ["denied"]
    assert turns[0].error is not None and "gate: admins only" in turns[0].error
    assert allowed.status == "completed" and allowed.reply.text == "hello"


async def test_a_chat_turn_is_known_by_its_origin_never_by_message_metadata(tmp_path: Path) -> None:
    """The origin travels with the turn (stored, typed); copied chat metadata makes no chat turn."""

    class AdminsOnly:
        def __init__(self) -> None:
            self.asked: list[str] = []
            self.origins: list[Origin | None] = []

        @hookimpl
        def turn_authorize(self, turn: TurnInfo) -> None:
            self.origins.append(turn.origin)

        @hookimpl
        def chat_authorize(self, inbound: ChannelMessage) -> Deny | None:
            self.asked.append(inbound.principal.id)
            return Deny("admins only") if inbound.principal.id != "boss" else None

    gate = AdminsOnly()
    services = [chat := ChatService()]
    async with running_agent(tmp_path, services=services, plugins={"gate": gate}) as agent:
        refused = await chat.handle(said("let me in", chat_id="x", user="guest"), Inbox(chat))
        [stored] = [m for m in await agent.sessions.history(refused.session_id) if m.role == "user"]
        # the same message and metadata, passed on outside any channel: not a chat turn
        session = await agent.sessions.open(None)
        copied = await agent.sessions.turn(session.session_id, stored, initiator_id="inbox:guest")
        turns = await agent.store.turns(refused.session_id)
    assert refused.status == "denied" and gate.asked == ["guest"]
    assert copied.turn.status == "completed" and copied.turn.origin is None
    first = gate.origins[0]
    assert first is not None and (first.channel, first.chat_id, first.principal.id) == ("inbox", "x", "guest")
    assert turns[0].origin == first  # stored with the turn, for whichever process runs it


async def test_a_failed_turn_answers_with_the_failed_reply_and_keeps_the_message(tmp_path: Path) -> None:
    class Broken:
        @hookimpl
        def turn_prompt(self) -> None:
            raise RuntimeError("model down")

    async with running_agent(
        tmp_path, services=[chat := ChatService()], plugins={"broken": Broken()}
    ) as agent:
        channel = Inbox(chat)
        outcome = await chat.handle(said("are you there?"), channel)
        history = await agent.sessions.history(outcome.session_id)
    assert outcome.status == "failed"
    assert channel.delivered[0][1][0].startswith("Sorry, something went wrong")
    assert [m.text for m in history] == ["are you there?"]


async def test_plugins_rewrite_inbound_and_outbound_and_choose_the_session(tmp_path: Path) -> None:
    class Rewriter:
        @hookimpl
        def chat_session(self, inbound: ChannelMessage) -> str:
            return f"person-{inbound.principal.id}"

        @hookimpl
        def chat_inbound(self, inbound: ChannelMessage) -> ChannelMessage:
            text = inbound.message.text.removeprefix("/ask ")
            return attrs.evolve(inbound, message=Message.of("user", text))

        @hookimpl
        def chat_outbound(self, reply: Message) -> Message:
            return Message.of("assistant", f"[{reply.text}]")

    async with running_agent(tmp_path, services=[chat := ChatService()], plugins={"rw": Rewriter()}) as agent:
        channel = Inbox(chat)
        one = await chat.handle(said("/ask weather?", chat_id="a"), channel)
        two = await chat.handle(said("and tomorrow?", chat_id="b"), channel)
        history = await agent.sessions.history("person-u1")
    assert one.session_id == two.session_id == "person-u1"
    assert channel.delivered == [("a", ["[weather?]"]), ("b", ["[and tomorrow?]"])]
    assert [m.text for m in history] == ["weather?", "weather?", "and tomorrow?", "and tomorrow?"]


async def test_long_replies_are_split_to_the_channel_limit_and_streams_reach_the_listener(
    tmp_path: Path,
) -> None:
    text = "word " * 30
    chunks: list[str] = []

    async def listen(chunk: str) -> None:
        chunks.append(chunk)

    async with running_agent(tmp_path, services=[chat := ChatService()]):
        channel = Inbox(chat)
        outcome = await chat.handle(said(text.strip()), channel, stream=listen)
    parts = channel.delivered[0][1]
    assert all(len(part) <= Inbox.max_length for part in parts) and len(parts) == 4
    assert " ".join(parts) == text.strip() == outcome.reply.text
    assert "".join(chunks) == text.strip()


async def test_deliver_needs_a_running_channel(tmp_path: Path) -> None:
    async with running_agent(tmp_path, services=[ChatService()]) as agent:
        result = await agent.invoke("chat.deliver", {"channel": "telegram", "chat_id": "1", "text": "hi"})
    assert not result.ok and "channel 'telegram' is not running (running: none)" in (result.error or "")


async def test_an_unknown_channel_fails_the_chat_service_with_the_known_ones(tmp_path: Path) -> None:
    table = {"chat": {"channels": ["htp"]}}
    async with running_agent(tmp_path, services=[ChatService()], service=table) as agent:
        error = agent.service_errors["chat"]
    assert "unknown channel 'htp'" in error and "http" in error and "telegram" in error


@pytest.mark.parametrize(
    ("text", "limit", "parts"),
    [
        ("", 5, [""]),
        ("short", 10, ["short"]),
        ("para one\n\npara two", 12, ["para one", "para two"]),
        ("line one\nline two", 12, ["line one", "line two"]),
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("one two three four", 9, ["one two", "three", "four"]),
    ],
)
def test_split_text(text: str, limit: int, parts: list[str]) -> None:
    assert split_text(text, limit) == parts
