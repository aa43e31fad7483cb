"""The OpenAI-compatible endpoint, driven by the official ``openai`` client over a real loopback socket.

The agent is served as in :mod:`tests.chat.test_http`; the client is
``openai.AsyncOpenAI`` pointed at ``<address>/v1``. The echo model (the
model ``echo``) answers with the user's last text. What the client receives
is compared with what the store holds. How requests find their
conversations is :mod:`tests.chat.test_openai_conversations`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from turnkit_hookspecs import ChannelMessage, Deny, ImageBlock, Message, Prompt, hookimpl

from tests.chat.http_server import Served, serving_http

DENIED = "Not for you, sorry."
#: The model the built-in echo model serves.
ECHO = "echo"


class Refuser:
    """Refuses the OpenAI ``user`` mallory (``chat_authorize``)."""

    @hookimpl
    def chat_authorize(self, inbound: ChannelMessage) -> Deny | None:
        return Deny("mallory is banned") if inbound.principal.id == "mallory" else None


class Llama:
    """A model plugin serving two models, and answering as the first of them."""

    @hookimpl
    def model_names(self) -> list[str]:
        return ["llama3.1", "llama3.1:70b"]

    @hookimpl
    def turn_reply(self, prompt: Prompt) -> Message:
        return Message.of("assistant", f"llama says {prompt.messages[-1].text}")


class BrokenInbound:
    """A ``chat_inbound`` that fails: the chat path cannot run the message."""

    @hookimpl
    def chat_inbound(self, inbound: ChannelMessage) -> None:
        raise RuntimeError("inbound rewriter broke")


def client_of(served: Served, api_key: str = "unused", **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{served.url}/v1", api_key=api_key, max_retries=0, **options)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


async def chat_sessions(served: Served) -> dict[str, list[str]]:
    """Chat key → texts of the history, of every chat session."""
    found = {}
    for info in await served.agent.sessions.list_sessions("chat"):
        history = await served.agent.sessions.history(info.session_id)
        found[info.metadata["chat_id"]] = [m.text for m in history]
    return found


async def test_a_completion_runs_a_turn_and_the_conversation_continues(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served:
        client = client_of(served)
        system = {"role": "system", "content": "Be brief."}
        raw = await client.chat.completions.with_raw_response.create(
            model=ECHO, messages=[system, user("hello there")]
        )
        first = raw.parse()
        assert first.object == "chat.completion"
        assert first.model == ECHO
        assert first.choices[0].message.content == "hello there"
        assert first.choices[0].finish_reason == "stop"
        assert raw.headers["x-turnkit-status"] == "completed"
        session_id = raw.headers["x-turnkit-session"]
        chat = raw.headers["x-turnkit-chat"]
        assert chat.startswith("openai-")

        again = await client.chat.completions.with_raw_response.create(
            model=ECHO,
            messages=[system, user("hello there"), assistant("hello there"), user("what now?")],
        )
        assert again.parse().choices[0].message.content == "what now?"
        assert (again.headers["x-turnkit-session"], again.headers["x-turnkit-chat"]) == (session_id, chat)

        other = await client.chat.completions.create(model=ECHO, messages=[user("a different opening")])
        assert other.choices[0].message.content == "a different opening"
        sessions = await chat_sessions(served)
        assert sessions.pop(chat) == ["hello there", "hello there", "what now?", "what now?"]
        assert list(sessions.values()) == [["a different opening", "a different opening"]]


async def test_a_streamed_completion_sends_chunks_that_add_up_to_the_stored_reply(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served:
        client = client_of(served)
        stream = await client.chat.completions.create(
            model=ECHO, messages=[user("streaming works word by word")], stream=True
        )
        chunks = [chunk async for chunk in stream]
        assert {c.object for c in chunks} == {"chat.completion.chunk"}
        assert len({c.id for c in chunks}) == 1
        assert chunks[0].choices[0].delta.role == "assistant"
        texts = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
        assert texts == ["streaming ", "works ", "word ", "by ", "word"]
        assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"

        (history,) = (await chat_sessions(served)).values()
        assert "".join(texts) == history[-1]


async def test_the_chat_header_chooses_the_conversation(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served:
        first = client_of(served, default_headers={"X-Turnkit-Chat": "ticket-1"})
        second = client_of(served, default_headers={"X-Turnkit-Chat": "ticket-2"})
        await first.chat.completions.create(model=ECHO, messages=[user("hi")])
        await second.chat.completions.create(model=ECHO, messages=[user("hi")])
        stream = await first.chat.completions.create(
            model=ECHO, messages=[user("a new opening"), assistant("?"), user("more")], stream=True
        )
        assert [c.choices[0].delta.content async for c in stream][1] == "more"
        assert await chat_sessions(served) == {
            "ticket-1": ["hi", "hi", "more", "more"],
            "ticket-2": ["hi", "hi"],
        }


async def test_the_user_field_is_the_principal_and_separates_conversations(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served:
        client = client_of(served)
        await client.chat.completions.create(model=ECHO, messages=[user("hi")], user="alice")
        await client.chat.completions.create(model=ECHO, messages=[user("hi")], user="bob")
        sessions = await served.agent.sessions.list_sessions("chat")
        assert len(sessions) == 2
        authors = {(await served.agent.sessions.history(s.session_id))[0].author for s in sessions}
        assert authors == {"alice", "bob"}


async def test_the_models_listed_are_those_the_model_serves(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served:
        client = client_of(served)
        models = [model async for model in client.models.list()]
        assert [(m.id, m.owned_by) for m in models] == [(ECHO, served.agent.id)]
        assert (await client.models.retrieve(ECHO)).id == ECHO

    async with (
        serving_http(tmp_path, plugins={"llama": Llama()}, db="llama.db") as served,
        served.client() as http,
    ):
        client = client_of(served)
        assert [model.id async for model in client.models.list()] == ["llama3.1", "llama3.1:70b"]
        assert (await client.models.retrieve("llama3.1:70b")).id == "llama3.1:70b"
        named = await client.chat.completions.create(model="llama3.1:70b", messages=[user("hi")])
        assert (named.model, named.choices[0].message.content) == ("llama3.1:70b", "llama says hi")
        unnamed = await http.post("/v1/chat/completions", json={"messages": [user("hi")]})
        assert unnamed.json()["model"] == "llama3.1", "no model asked for: the default, named"


async def test_an_unknown_model_is_openais_404_and_runs_nothing(tmp_path: Path) -> None:
    not_found = {
        "error": {
            "message": "The model 'gpt-4o' does not exist",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    async with serving_http(tmp_path) as served, served.client() as http:
        client = client_of(served)
        with pytest.raises(openai.NotFoundError) as raised:
            await client.chat.completions.create(model="gpt-4o", messages=[user("hi")])
        assert raised.value.code == "model_not_found" and raised.value.param == "model"
        with pytest.raises(openai.NotFoundError, match="The model 'gpt-4o' does not exist"):
            await client.chat.completions.create(model="gpt-4o", messages=[user("hi")], stream=True)
        with pytest.raises(openai.NotFoundError, match="The model 'gpt-4o' does not exist"):
            await client.models.retrieve("gpt-4o")
        for response in (
            await http.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [user("hi")]}),
            await http.get("/v1/models/gpt-4o"),
        ):
            assert (response.status_code, response.json()) == (404, not_found)
        assert await served.agent.sessions.list_sessions() == [], "nothing was run"
        assert await served.chat.bindings() == []


async def test_a_denied_completion_gets_the_polite_reply(tmp_path: Path) -> None:
    async with serving_http(
        tmp_path, plugins={"refuser": Refuser()}, chat={"denied_reply": DENIED}
    ) as served:
        client = client_of(served)
        raw = await client.chat.completions.with_raw_response.create(
            model=ECHO, messages=[user("let me in")], user="mallory"
        )
        completion = raw.parse()
        assert completion.choices[0].message.content == DENIED
        assert completion.choices[0].finish_reason == "content_filter"
        assert raw.headers["x-turnkit-status"] == "denied"
        turns = await served.agent.store.turns(raw.headers["x-turnkit-session"])
        assert [t.status for t in turns] == ["denied"]

        stream = await client.chat.completions.create(
            model=ECHO, messages=[user("let me in")], user="mallory", stream=True
        )
        chunks = [chunk async for chunk in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == DENIED
        assert chunks[-1].choices[0].finish_reason == "content_filter"


async def test_a_failing_chat_path_is_an_error_the_client_raises(tmp_path: Path) -> None:
    async with serving_http(tmp_path, plugins={"broken": BrokenInbound()}) as served:
        client = client_of(served)
        with pytest.raises(openai.InternalServerError, match="inbound rewriter broke"):
            await client.chat.completions.create(model=ECHO, messages=[user("hi")])
        stream = await client.chat.completions.create(model=ECHO, messages=[user("hi")], stream=True)
        with pytest.raises(openai.APIError, match="inbound rewriter broke"):
            [chunk async for chunk in stream]


async def test_the_token_is_the_api_key(tmp_path: Path) -> None:
    async with serving_http(tmp_path, http={"token": "s3cret"}) as served:
        with pytest.raises(openai.AuthenticationError, match="invalid bearer token"):
            await client_of(served, api_key="wrong").chat.completions.create(
                model=ECHO, messages=[user("hi")]
            )
        completion = await client_of(served, api_key="s3cret").chat.completions.create(
            model=ECHO, messages=[user("hi")]
        )
        assert completion.choices[0].message.content == "hi"


@pytest.mark.parametrize(
    ("messages", "extra", "problem"),
    [
        ([user("hi"), assistant("hello")], {}, "got role 'assistant' @ $.messages[1].role"),
        ([], {}, "'messages' must be a non-empty list @ $.messages"),
        ([{"role": "wizard", "content": "x"}], {}, "got 'wizard' @ $.messages[0].role"),
        ([{"role": "user", "content": [{"type": "audio"}]}], {}, "'audio' (supported: text, image_url)"),
        ([{"role": "user", "content": 7}], {}, "a string or a list of content parts @ $.messages[0].content"),
        ([user("  ")], {}, "empty message"),
        ([user("hi")], {"n": 2}, "n=2 is not supported"),
        ([user("hi")], {"tools": [{"type": "function", "function": {"name": "f"}}]}, "client-side tools"),
        ([user("hi")], {"stream": "yes"}, "expected bool, got str 'yes' @ $.stream"),
    ],
)
async def test_a_request_a_turn_cannot_answer_is_a_400_naming_the_problem(
    tmp_path: Path, messages: list[Any], extra: dict[str, Any], problem: str
) -> None:
    async with serving_http(tmp_path) as served:
        with pytest.raises(openai.BadRequestError) as raised:
            await client_of(served).chat.completions.create(model=ECHO, messages=messages, extra_body=extra)
        assert problem in raised.value.message
        assert await served.agent.sessions.list_sessions() == [], "nothing was run"


async def test_image_parts_become_image_blocks_of_the_stored_message(tmp_path: Path) -> None:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.org/cat.jpg"}},
    ]
    async with serving_http(tmp_path) as served, served.client() as http:
        completion = await client_of(served).chat.completions.with_raw_response.create(
            model=ECHO, messages=[{"role": "user", "content": parts}]
        )
        assert completion.parse().choices[0].message.content == "what is this?"
        read = (await http.get(f"/api/sessions/{completion.headers['x-turnkit-session']}")).json()
        inline = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
        linked = {"type": "url", "url": "https://example.org/cat.jpg", "media_type": None}
        assert read["messages"][0]["blocks"] == [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": inline, "alt": None},
            {"type": "image", "source": linked, "alt": None},
        ]
        history = await served.agent.sessions.history(completion.headers["x-turnkit-session"])
        assert [type(b) for b in history[0].blocks][1:] == [ImageBlock, ImageBlock]
