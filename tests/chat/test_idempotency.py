"""Safe retries over HTTP: the ``Idempotency-Key`` header, queued messages, workers sharing a port.

A client that resends a message with the same ``Idempotency-Key`` (its
request timed out, its connection dropped, the load balancer sent the retry
to another worker) must get the first request's turn, never a second one.
Every test serves real agents over loopback (:mod:`tests.chat.http_server`);
the two-worker tests serve two agents with the same id on one store (a
SQLite file, or a PostgreSQL database), each with its own HTTP channel,
store connection and lease, exactly like two ``turnkit serve`` processes.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from turnkit.errors import TurnkitError
from turnkit_hookspecs import Message, Prompt, ReplyStream, hookimpl

from tests.chat.http_server import Event, Served, read_events, serving_http
from tests.support.agents import eventually

#: Store settings that let one agent hear quickly of another's commits (the defaults suit production).
QUICK_STORE = {"lease": 2.0, "heartbeat": 0.2, "poll": 0.01}
#: How long a request must stay unanswered to count as waiting (it would be answered in milliseconds).
STILL_WAITING = 0.1


class Gate:
    """A streaming model answering ``re: <text>``; on a text starting ``wait`` it awaits :attr:`opened`."""

    def __init__(self, *, open: bool = False) -> None:
        self.opened = asyncio.Event()
        self.waiting = asyncio.Event()
        self.asked: list[str] = []
        if open:
            self.opened.set()

    @hookimpl(tryfirst=True)
    async def turn_reply(self, prompt: Prompt, stream: ReplyStream) -> Message:
        text = prompt.messages[-1].text
        self.asked.append(text)
        await stream.write("re: ")
        if text.startswith("wait"):
            self.waiting.set()
            await self.opened.wait()
        await stream.write(text)
        return Message.of("assistant", f"re: {text}")


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def post(client: httpx.AsyncClient, chat: str, text: str, key: str | None = None) -> httpx.Response:
    return await client.post(
        f"/api/chats/{chat}/messages", json={"text": text}, headers=keyed(key) if key else None
    )


async def streamed(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], key: str
) -> tuple[httpx.Response, list[Event]]:
    """POST ``body`` with ``stream`` set; the response and all its events."""
    async with client.stream("POST", path, json={**body, "stream": True}, headers=keyed(key)) as response:
        if response.status_code != 200:  # an error before the stream: a JSON body
            await response.aread()
            return response, []
        return response, [event async for event in read_events(response)]


def completion(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}  # no model: the agent's default


async def all_turns(served: Served) -> list[Any]:
    """Every turn of every session of the agent."""
    found = []
    for info in await served.agent.sessions.list_sessions():
        found += await served.agent.store.turns(info.session_id)
    return found


def outcome(response: httpx.Response) -> tuple[str, int, str]:
    """``(turn_id, number, reply)`` of a plain ``/api`` answer."""
    assert response.status_code == 200, response.text
    body = response.json()
    return body["turn_id"], body["number"], body["reply"]


# ---------------------------------------------------------------- one agent


async def test_a_retried_post_is_answered_with_the_first_turn(tmp_path: Path) -> None:
    gate = Gate(open=True)
    async with serving_http(tmp_path, plugins={"gate": gate}) as served, served.client() as client:
        first = await post(client, "alice", "hello", key="k-1")
        again = await post(client, "alice", "hello", key="k-1")
        assert outcome(again) == outcome(first) == (first.json()["turn_id"], 1, "re: hello")
        session_id = first.json()["session_id"]
        assert len(await served.agent.store.turns(session_id)) == 1
        assert gate.asked == ["hello"], "the model was asked once"

        _, events = await streamed(client, "/api/chats/alice/messages", {"text": "hello"}, "k-1")
        assert [(e.name, e.json().get("text")) for e in events] == [("chunk", "re: hello"), ("done", None)]
        assert events[-1].json()["turn_id"] == first.json()["turn_id"], "the whole reply as one chunk"

        fresh = await post(client, "alice", "hello", key="k-2")
        assert outcome(fresh)[1:] == (2, "re: hello"), "another key is another message"
        unkeyed = await post(client, "alice", "hello")
        assert outcome(unkeyed)[1] == 3
        assert gate.asked == ["hello"] * 3


async def test_a_retry_while_the_first_request_runs_waits_for_its_turn(tmp_path: Path) -> None:
    gate = Gate()
    async with serving_http(tmp_path, plugins={"gate": gate}) as served, served.client() as client:
        first = asyncio.create_task(post(client, "alice", "wait", key="k"))
        await asyncio.wait_for(gate.waiting.wait(), 5)
        retry = asyncio.create_task(post(client, "alice", "wait", key="k"))
        streamed_retry = asyncio.create_task(
            streamed(client, "/api/chats/alice/messages", {"text": "wait"}, "k")
        )
        await asyncio.sleep(STILL_WAITING)
        assert not retry.done() and not streamed_retry.done(), "the retries wait for the running turn"
        gate.opened.set()
        one, two = await asyncio.wait_for(asyncio.gather(first, retry), 5)
        assert outcome(one) == outcome(two)
        _, events = await asyncio.wait_for(streamed_retry, 5)
        assert [(e.name, e.json().get("text")) for e in events] == [("chunk", "re: wait"), ("done", None)]
        assert len(await all_turns(served)) == 1 and gate.asked == ["wait"]


async def test_a_retried_completion_is_answered_with_the_first_turn(tmp_path: Path) -> None:
    gate = Gate(open=True)
    async with serving_http(tmp_path, plugins={"gate": gate}) as served, served.client() as client:
        first = await client.post("/v1/chat/completions", json=completion("hi"), headers=keyed("c-1"))
        again = await client.post("/v1/chat/completions", json=completion("hi"), headers=keyed("c-1"))
        for response in (first, again):
            assert response.status_code == 200
            assert response.json()["choices"][0]["message"]["content"] == "re: hi"
        assert again.headers["x-turnkit-turn"] == first.headers["x-turnkit-turn"]
        assert again.headers["x-turnkit-chat"] == first.headers["x-turnkit-chat"], "the same conversation"

        response, events = await streamed(client, "/v1/chat/completions", completion("hi"), "c-1")
        assert response.headers["x-turnkit-chat"] == first.headers["x-turnkit-chat"]
        deltas = [e.data if e.data == "[DONE]" else e.json()["choices"][0]["delta"] for e in events]
        assert deltas == [{"role": "assistant", "content": ""}, {"content": "re: hi"}, {}, "[DONE]"]
        assert len(await all_turns(served)) == 1 and gate.asked == ["hi"]


# ---------------------------------------------------------------- refused keys


async def test_a_key_reused_for_another_session_is_a_409_and_stores_nothing(tmp_path: Path) -> None:
    gate = Gate(open=True)
    async with serving_http(tmp_path, plugins={"gate": gate}) as served, served.client() as client:
        assert (await post(client, "alice", "pay", key="k")).status_code == 200

        refused = [
            await post(client, "bob", "pay", key="k"),
            (await streamed(client, "/api/chats/bob/messages", {"text": "pay"}, "k"))[0],
            await client.post("/v1/chat/completions", json=completion("pay"), headers=keyed("k")),
            (await streamed(client, "/v1/chat/completions", completion("pay"), "k"))[0],
        ]
        for response in refused:
            assert response.status_code == 409
            error = response.json()["error"]
            assert error["type"] == "conflict_error"
            assert error["message"].startswith("Idempotency-Key reused for another session: ")
            assert "idempotency key 'k' was used for a message to session" in error["message"]
        assert len(await all_turns(served)) == 1 and gate.asked == ["pay"], "nothing more was stored"


async def test_a_malformed_key_is_a_400_naming_the_header_and_runs_nothing(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        bad: list[tuple[str | bytes, str]] = [
            ("", "Idempotency-Key must be 1 to 200 visible ASCII characters"),
            ("two words", "Idempotency-Key must be 1 to 200 visible ASCII characters"),
            ("clé".encode(), "Idempotency-Key must be 1 to 200 visible ASCII characters"),
            ("k" * 201, "Idempotency-Key too long: 201 characters, at most 200"),
        ]
        for key, problem in bad:
            for path, body in (
                ("/api/chats/alice/messages", {"text": "hi"}),
                ("/v1/chat/completions", completion("hi")),
            ):
                for stream in (False, True):
                    response = await client.post(
                        path, json={**body, "stream": stream}, headers={"Idempotency-Key": key}
                    )
                    assert response.status_code == 400, (key, path)
                    error = response.json()["error"]
                    assert error["type"] == "invalid_request_error" and problem in error["message"]
        twice = await client.post(
            "/api/chats/alice/messages",
            json={"text": "hi"},
            headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
        )
        assert twice.status_code == 400 and "sent 2 times" in twice.json()["error"]["message"]
        assert await served.agent.sessions.list_sessions() == [], "nothing was run"
        assert (await post(client, "alice", "hi", key="k" * 200)).status_code == 200, "200 characters will do"


# ---------------------------------------------------------------- two workers on one store


@asynccontextmanager
async def two_workers(
    tmp_path: Path, store: dict[str, Any]
) -> AsyncIterator[tuple[Served, Gate, Served, Gate]]:
    """Two agents with the same id on one store, each serving HTTP on a port of its own."""
    gates = Gate(), Gate()
    async with AsyncExitStack() as stack:
        served = [
            await stack.enter_async_context(serving_http(tmp_path, plugins={"gate": gate}, store=store))
            for gate in gates
        ]
        yield served[0], gates[0], served[1], gates[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``[store]`` table of the two workers: the test's SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return QUICK_STORE
    return {**QUICK_STORE, "url": request.getfixturevalue("postgres_url")}


async def test_a_retry_sent_to_another_worker_gets_the_first_workers_turn(
    tmp_path: Path, shared_store: dict[str, Any]
) -> None:
    async with two_workers(tmp_path, shared_store) as (a, gate_a, b, gate_b):
        async with a.client() as client_a, b.client() as client_b:
            first = asyncio.create_task(post(client_a, "alice", "wait", key="K"))
            await asyncio.wait_for(gate_a.waiting.wait(), 5)
            retry = asyncio.create_task(post(client_b, "alice", "wait", key="K"))
            streamed_retry = asyncio.create_task(
                streamed(client_b, "/api/chats/alice/messages", {"text": "wait"}, "K")
            )
            await asyncio.sleep(STILL_WAITING)
            assert not retry.done() and not streamed_retry.done(), "B waits for A's turn"
            gate_a.opened.set()
            one, two = await asyncio.wait_for(asyncio.gather(first, retry), 5)
            assert outcome(two) == outcome(one) == (one.json()["turn_id"], 1, "re: wait")
            _, events = await asyncio.wait_for(streamed_retry, 5)
            assert [(e.name, e.json().get("text")) for e in events] == [
                ("chunk", "re: wait"),
                ("done", None),
            ], "produced on A: the whole reply as one chunk"

            late = await post(client_b, "alice", "wait", key="K")
            assert outcome(late) == outcome(one), "after the turn: answered at once"
        assert len(await b.agent.store.turns(one.json()["session_id"])) == 1
        assert (gate_a.asked, gate_b.asked) == (["wait"], []), "the model was asked once, on A"


async def test_a_completion_retried_on_another_worker_gets_the_first_workers_turn(
    tmp_path: Path, shared_store: dict[str, Any]
) -> None:
    async with two_workers(tmp_path, shared_store) as (a, gate_a, b, gate_b):
        async with a.client() as client_a, b.client() as client_b:
            body, headers = completion("wait for it"), keyed("K")
            first = asyncio.create_task(client_a.post("/v1/chat/completions", json=body, headers=headers))
            await asyncio.wait_for(gate_a.waiting.wait(), 5)
            retry = asyncio.create_task(client_b.post("/v1/chat/completions", json=body, headers=headers))
            await asyncio.sleep(STILL_WAITING)
            assert not retry.done()
            gate_a.opened.set()
            one, two = await asyncio.wait_for(asyncio.gather(first, retry), 5)
        assert two.status_code == 200
        assert two.json()["choices"][0]["message"]["content"] == "re: wait for it"
        assert two.headers["x-turnkit-turn"] == one.headers["x-turnkit-turn"]
        assert len(await b.agent.store.turns(one.headers["x-turnkit-session"])) == 1
        assert (gate_a.asked, gate_b.asked) == (["wait for it"], [])


# ---------------------------------------------------------------- reading a busy session


async def test_reading_a_session_shows_the_messages_queued_behind_its_running_turn(tmp_path: Path) -> None:
    gate = Gate()
    async with serving_http(tmp_path, plugins={"gate": gate}) as served, served.client() as client:
        running = asyncio.create_task(post(client, "alice", "wait"))
        await asyncio.wait_for(gate.waiting.wait(), 5)
        queued = asyncio.create_task(post(client, "alice", "and then"))
        [session] = await served.agent.sessions.list_sessions("chat")
        path = f"/api/sessions/{session.session_id}"

        async def shows_it() -> bool:
            return bool((await client.get(path)).json()["queued"])

        await eventually(shows_it)
        read = (await client.get(path)).json()
        [_, waiting] = await served.agent.store.turns(session.session_id)
        assert read["queued"] == [
            {"turn_id": waiting.turn_id, "number": 2, "status": "queued", "role": "user", "text": "and then"}
        ]
        assert [(m["role"], m["blocks"][0]["text"]) for m in read["messages"]] == [("user", "wait")]
        assert read["session"]["session_id"] == session.session_id, "the existing fields are unchanged"

        gate.opened.set()
        await asyncio.wait_for(asyncio.gather(running, queued), 5)
        read = (await client.get(path)).json()
        assert read["queued"] == []
        assert len(read["messages"]) == 4


# ---------------------------------------------------------------- workers sharing a port


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT on this platform")
async def test_with_reuse_port_two_workers_listen_on_one_port_and_share_its_connections(
    tmp_path: Path,
) -> None:
    port = free_port()
    http = {"port": port, "reuse_port": True}
    async with (
        serving_http(tmp_path, http=http, agent={"id": "one"}, db="one.db") as one,
        serving_http(tmp_path, http=http, agent={"id": "two"}, db="two.db") as two,
    ):
        assert one.url == two.url == f"http://127.0.0.1:{port}"
        seen: set[str] = set()
        no_reuse = httpx.Limits(max_keepalive_connections=0)  # a new connection per request
        async with one.client(limits=no_reuse) as client:
            for _ in range(100):  # the kernel hashes each connection to one of the listeners
                seen.add((await client.get("/v1/models")).json()["data"][0]["owned_by"])
                if len(seen) == 2:
                    break
        assert seen == {"one", "two"}


async def test_reuse_port_needs_a_fixed_port(tmp_path: Path) -> None:
    with pytest.raises(TurnkitError, match=r"'reuse_port' needs a fixed 'port'.* @ \$\.service\.chat\.http"):
        async with serving_http(tmp_path, http={"port": 0, "reuse_port": True}):
            pass


async def test_reuse_port_is_refused_where_the_platform_has_no_so_reuseport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    with pytest.raises(
        TurnkitError, match=r"\[service.chat.http\] reuse_port: this platform .* has no SO_REUSEPORT"
    ):
        async with serving_http(tmp_path, http={"port": free_port(), "reuse_port": True}):
            pass
