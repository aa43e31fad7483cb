"""How OpenAI requests find their conversations: exact transcripts, forks, new sessions, instructions.

Every client here is the official ``openai`` client over loopback; it keeps
its conversation as OpenAI clients do (the whole list of messages, resent
with each request). The invariant every test checks through
:class:`Conversation`: **the model is asked exactly what the client sent**
(its user and assistant messages, in order, after the instructions), so no
client ever sees a message it did not send, and nothing it sent is lost or
doubled. The model is the echo model, answering the last user text, with a
:class:`~tests.support.agents.ModelSpy` in front of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from turnkit_hookspecs import Deny, ForkOptions, hookimpl

from tests.chat.http_server import Served, serving_http
from tests.support.agents import ModelSpy, texts
from tests.support.dists import run_turnkit

#: The agent's own instructions (``[agent] instructions``), for requests without system messages.
AGENT_SAYS = "You are the agent."


class Conversation:
    """One client's conversation: its messages, resent whole with every request, as OpenAI clients do."""

    def __init__(self, served: Served, spy: ModelSpy, system: str | None = None, **options: Any) -> None:
        self.client = openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key="-", max_retries=0, **options)
        self.spy = spy
        self.messages: list[dict[str, str]] = [] if system is None else [system_message(system)]
        self.session_id = ""
        self.chat = ""
        self.model: str | None = None  # what the agent's model serves, asked once

    async def say(self, text: str, *, stream: bool = False, **options: Any) -> str:
        """Send ``text`` after the conversation so far; check what the model saw; keep the reply."""
        messages = [*self.messages, {"role": "user", "content": text}]
        asked = len(self.spy.prompts)
        if self.model is None:
            self.model = (await self.client.models.list()).data[0].id
        raw = await self.client.chat.completions.with_raw_response.create(
            model=self.model, messages=messages, stream=stream, **options
        )
        if stream:
            reply = "".join([c.choices[0].delta.content or "" async for c in raw.parse()])
        else:
            reply = raw.parse().choices[0].message.content or ""
            self.session_id = raw.headers["x-turnkit-session"]
        self.chat = raw.headers["x-turnkit-chat"]
        (prompt,) = [p for p in self.spy.prompts[asked:] if seen(p)[-1] == ("user", text)]  # one turn
        assert seen(prompt) == expected(messages), "the model saw exactly the request"
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        return reply

    async def say_instead(self, index: int, text: str, **options: Any) -> str:
        """Say ``text`` in place of message ``index`` and all after it, as a chat UI's "edit" does."""
        self.messages = self.messages[:index]
        return await self.say(text, **options)


def system_message(text: str) -> dict[str, str]:
    return {"role": "system", "content": text}


def seen(prompt: Any) -> list[tuple[str, str]]:
    """What the model was asked, as ``(role, text)``."""
    return texts(prompt.messages)


def expected(messages: list[dict[str, str]]) -> list[tuple[str, str]]:
    """What the model must be asked for ``messages``: the instructions first, then the rest in order."""
    told = [m["content"] for m in messages if m["role"] == "system"]
    instructions = "\n\n".join(told) if told else AGENT_SAYS
    return [("system", instructions)] + [(m["role"], m["content"]) for m in messages if m["role"] != "system"]


#: Starts a client's conversation with the served agent (``talk(system=..., **client options)``).
Talk = Callable[..., Conversation]


@asynccontextmanager
async def serving(tmp_path: Path, spy: ModelSpy, **options: Any) -> AsyncIterator[tuple[Served, Talk]]:
    """The served agent (with the spy, instructions of its own and a window longer than any test),
    and a way to start conversations with it, whose clients are closed at the end."""
    started: list[Conversation] = []

    def talk(system: str | None = None, **client: Any) -> Conversation:
        started.append(Conversation(served, spy, system, **client))
        return started[-1]

    plugins = {"spy": spy, **options.pop("plugins", {})}
    tables = {"agent": {"instructions": AGENT_SAYS}, "turns": {"history": 200}}
    async with serving_http(tmp_path, plugins=plugins, **tables, **options) as served:
        try:
            yield served, talk
        finally:
            for conversation in started:
                await conversation.client.close()


async def history(served: Served, session_id: str) -> list[str]:
    return [m.text for m in await served.agent.sessions.history(session_id)]


# ---------------------------------------------------------------- privacy


async def test_two_clients_opening_alike_never_see_each_others_messages(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        alice, bob = talk(), talk()
        assert await alice.say("Hi!") == await bob.say("Hi!") == "Hi!"
        assert alice.session_id != bob.session_id, "the same opening is not the same conversation"

        await alice.say("my secret is 42")
        await bob.say("what is my secret?")
        await alice.say("remember it")
        await bob.say("tell me everything you know", stream=True)
        for prompt in spy.prompts:
            said = " ".join(text for _, text in seen(prompt))
            assert not ("42" in said and "what is my secret" in said), "a prompt mixed both clients"
        for conversation, other in ((alice, "what is my secret?"), (bob, "my secret is 42")):
            lineage = await served.agent.store.messages(conversation.session_id, lineage=True)
            assert other not in [m.message.text for m in lineage]


async def test_the_same_user_field_apart_or_not_keeps_conversations_apart(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        alice = talk()
        bob = talk()
        await alice.say("Hi!", user="alice")
        await bob.say("Hi!", user="bob")
        await alice.say("I am Alice", user="alice")
        await bob.say("I am Bob", user="bob")
        assert await history(served, alice.session_id) == ["Hi!", "Hi!", "I am Alice", "I am Alice"]
        assert await history(served, bob.session_id) == ["Hi!", "Hi!", "I am Bob", "I am Bob"]


async def test_requests_going_on_from_one_point_at_once_each_get_exactly_their_conversation(
    tmp_path: Path,
) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        opening = talk()
        await opening.say("shared start")
        branches = [talk() for _ in range(4)]
        for branch in branches:
            branch.messages = list(opening.messages)
        await asyncio.gather(*(b.say(f"branch {i}") for i, b in enumerate(branches)))
        sessions = {b.session_id for b in branches}
        assert len(sessions) == 4, "one request continued the session, the others forked it"
        assert len(spy.prompts) == 5
        for i, branch in enumerate(branches):
            lineage = await served.agent.store.messages(branch.session_id, lineage=True)
            assert [m.message.text for m in lineage] == ["shared start"] * 2 + [f"branch {i}"] * 2


# ---------------------------------------------------------------- continuing and forking


async def test_a_conversation_continues_in_one_session_over_many_turns(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        conversation = talk()
        for number in range(12):
            await conversation.say(f"message {number}", stream=number % 3 == 1)
        sessions = await served.agent.sessions.list_sessions("chat")
        assert [s.session_id for s in sessions] == [conversation.session_id]
        assert len(await served.agent.store.turns(conversation.session_id)) == 12


async def test_a_client_editing_an_earlier_message_gets_a_fork_there(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        conversation = talk()
        for text in ("plan a trip", "to Rome", "in May"):
            await conversation.say(text)
        original, original_chat = conversation.session_id, conversation.chat
        before = await history(served, original)

        await conversation.say_instead(2, "to Oslo")  # keep "plan a trip" and its reply
        fork = conversation.session_id
        assert fork != original and conversation.chat != original_chat
        assert await history(served, original) == before, "the original conversation is untouched"
        info = await served.agent.sessions.get(fork)
        stored = await served.agent.store.messages(original)
        assert info is not None and (info.parent_session_id, info.fork_point) == (original, int(stored[1].id))
        assert [c.session_id for c in await served.agent.store.child_sessions(original)] == [fork]

        await conversation.say("in June")
        await conversation.say("by train", stream=True)
        assert conversation.session_id == fork, "the fork goes on as a conversation of its own"
        lineage = await served.agent.store.messages(fork, lineage=True)
        assert [m.message.text for m in lineage][::2] == ["plan a trip", "to Oslo", "in June", "by train"]

    (tmp_path / "turnkit.toml").write_text(f'[store]\nurl = "{tmp_path / "t.db"}"\n')
    tree = run_turnkit("sessions", "tree", cwd=tmp_path).stdout.splitlines()
    assert tree[:2] == [
        f"{original}  chat active",
        f"    {fork}  chat active  (an OpenAI client went on from an earlier point of the conversation)",
    ]


async def test_regenerating_the_last_reply_forks_instead_of_asking_twice(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        conversation = talk()
        await conversation.say("one")
        await conversation.say("two")
        first = conversation.session_id
        await conversation.say_instead(2, "two")  # "regenerate": the same last message again
        assert conversation.session_id != first
        assert await history(served, first) == ["one", "one", "two", "two"], "not asked 'two' twice"


async def test_a_history_the_agent_never_produced_starts_a_new_session(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk), served.client() as http:
        known = talk()
        await known.say("hello")
        made_up = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "HELLO!"}]
        body = {"messages": [*made_up, {"role": "user", "content": "and?"}]}
        response = await http.post("/v1/chat/completions", json=body)
        session = response.headers["x-turnkit-session"]
        assert session != known.session_id
        assert seen(spy.prompts[-1]) == [("system", AGENT_SAYS), ("user", "and?")], "nothing made up"
        assert await history(served, session) == ["and?", "and?"]
        assert await history(served, known.session_id) == ["hello", "hello"]


async def test_a_refused_fork_is_a_409_saying_why(tmp_path: Path) -> None:
    class NoForks:
        @hookimpl
        def session_fork(self, options: ForkOptions) -> Deny:
            return Deny("this agent does not branch conversations")

    spy = ModelSpy()
    async with serving(tmp_path, spy, plugins={"noforks": NoForks()}) as (served, talk):
        conversation = talk()
        await conversation.say("one")
        await conversation.say("two")
        with pytest.raises(openai.ConflictError, match="this agent does not branch conversations"):
            await conversation.say_instead(2, "deux")
        assert len(await served.agent.sessions.list_sessions("chat")) == 1


# ---------------------------------------------------------------- the chat header and retries


async def test_a_pinned_request_carrying_the_whole_transcript_keeps_the_conversation_whole(
    tmp_path: Path,
) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        conversation = talk()
        await conversation.say("one")
        session, chat = conversation.session_id, conversation.chat
        await conversation.say("two", extra_headers={"X-Turnkit-Chat": chat})
        await conversation.say("three")
        assert conversation.session_id == session
        assert await history(served, session) == ["one", "one", "two", "two", "three", "three"]


async def test_after_a_pinned_request_elsewhere_the_conversation_forks_rather_than_skip_it(
    tmp_path: Path,
) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        conversation = talk()
        await conversation.say("one")
        session = conversation.session_id
        pinned = served.client(headers={"X-Turnkit-Chat": conversation.chat})
        async with pinned:
            body = {"messages": [{"role": "user", "content": "aside"}]}
            assert (await pinned.post("/v1/chat/completions", json=body)).headers[
                "x-turnkit-session"
            ] == session
        spy.prompts.pop()
        await conversation.say("two")  # the model must not see "aside", which this client never sent
        assert conversation.session_id != session
        assert await history(served, session) == ["one", "one", "aside", "aside"]


async def test_a_retried_edit_gets_the_first_requests_turn_in_the_same_fork(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk), served.client() as http:
        conversation = talk()
        await conversation.say("one")
        await conversation.say("two")
        edited = {"messages": [*conversation.messages[:2], {"role": "user", "content": "2"}]}
        headers = {"Idempotency-Key": "edit-1"}
        first = await http.post("/v1/chat/completions", json=edited, headers=headers)
        again = await http.post("/v1/chat/completions", json=edited, headers=headers)
        assert again.headers["x-turnkit-turn"] == first.headers["x-turnkit-turn"]
        assert again.headers["x-turnkit-session"] == first.headers["x-turnkit-session"]
        assert len(await served.agent.store.child_sessions(conversation.session_id)) == 1, "one fork"


# ---------------------------------------------------------------- instructions


async def test_system_messages_become_the_conversations_instructions(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        french = talk(system="Answer in French.")
        await french.say("hello")
        french.messages.insert(1, system_message("Be brief."))
        await french.say("and now?")  # the model sees both, joined
        assert await served.agent.sessions.instructions(french.session_id) == "Answer in French.\n\nBe brief."

        french.messages = [system_message("Answer in German."), *french.messages[2:]]
        session = french.session_id
        await french.say("still there?")
        assert french.session_id == session, "a changed system message goes on in the same session"
        assert await served.agent.sessions.instructions(session) == "Answer in German."

        plain = talk()
        await plain.say("no system message")
        assert await served.agent.sessions.instructions(plain.session_id) is None, "the agent's apply"


async def test_a_request_dropping_the_system_message_does_not_inherit_it(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        secretive = talk(system="The password is swordfish.")
        await secretive.say("hello")
        other = talk()
        other.messages = secretive.messages[1:]  # the same transcript, without the system message
        await other.say("what is the password?")  # asked under the agent's instructions only
        assert other.session_id != secretive.session_id
        assert await served.agent.sessions.instructions(other.session_id) is None


async def test_a_pinned_request_sets_its_chats_instructions(tmp_path: Path) -> None:
    spy = ModelSpy()
    async with serving(tmp_path, spy) as (served, talk):
        ticket = talk(system="You handle ticket 7.", default_headers={"X-Turnkit-Chat": "t7"})
        await ticket.say("status?")
        assert await served.agent.sessions.instructions(ticket.session_id) == "You handle ticket 7."
