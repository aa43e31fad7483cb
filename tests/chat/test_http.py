"""The chat service's HTTP API, over real loopback sockets to a real uvicorn server.

Each test serves a real agent (SQLite file, the chat service, the echo model)
through ``agent.serve()`` on a free port (:mod:`tests.chat.http_server`); one
runs the real ``turnkit serve`` command and stops it with SIGTERM. The echo
model answers with the user's text, streamed word by word when the reply is
streamed.
"""

from __future__ import annotations

import asyncio
import queue
import re
import signal
import socket
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from turnkit.errors import TurnkitError
from turnkit_hookspecs import ChannelMessage, Deny, Message, ReplyStream, TurnInfo, hookimpl

from tests.chat.http_server import Event, read_events, serving_http
from tests.support.agents import eventually
from tests.support.dists import run_turnkit, subprocess_env, turnkit_command

DENIED = "Not for you, sorry."


class Refuser:
    """Refuses mallory (``chat_authorize``)."""

    @hookimpl
    def chat_authorize(self, inbound: ChannelMessage, turn: TurnInfo) -> Deny | None:
        return Deny("mallory is banned") if inbound.principal.id == "mallory" else None


class BrokenInbound:
    """A ``chat_inbound`` that fails: the chat path cannot run the message."""

    @hookimpl
    def chat_inbound(self, inbound: ChannelMessage) -> None:
        raise RuntimeError("inbound rewriter broke")


class GatedModel:
    """A streaming model that writes ``first ``, waits for ``gate``, then writes ``second``."""

    def __init__(self) -> None:
        self.called = asyncio.Event()
        self.gate = asyncio.Event()

    @hookimpl(tryfirst=True)
    async def turn_reply(self, stream: ReplyStream) -> Message:
        self.called.set()
        await stream.write("first ")
        await self.gate.wait()
        await stream.write("second")
        return Message.of("assistant", "first second")


async def post(client: httpx.AsyncClient, chat: str, body: Any) -> httpx.Response:
    return await client.post(f"/api/chats/{chat}/messages", json=body)


async def streamed(client: httpx.AsyncClient, chat: str, body: dict[str, Any]) -> list[Event]:
    """POST ``body`` with ``stream`` set and collect every event of the response."""
    async with client.stream(
        "POST", f"/api/chats/{chat}/messages", json={**body, "stream": True}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [event async for event in read_events(response)]


# ---------------------------------------------------------------- posting and reading


async def test_a_post_gets_the_reply_and_the_chat_continues_in_its_session(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        first = await post(client, "alice", {"text": "hello there", "user": "alice", "name": "Alice"})
        assert first.status_code == 200
        body = first.json()
        assert body["reply"] == "hello there"
        assert (body["chat"], body["status"], body["number"]) == ("alice", "completed", 1)

        second = (await post(client, "alice", {"text": "and again"})).json()
        assert second["session_id"] == body["session_id"]
        assert (second["number"], second["reply"]) == (2, "and again")

        other = (await post(client, "bob", {"text": "hi"})).json()
        assert other["session_id"] != body["session_id"]

        history = await served.agent.sessions.history(body["session_id"])
        assert [(m.role, m.text) for m in history] == [
            ("user", "hello there"),
            ("assistant", "hello there"),
            ("user", "and again"),
            ("assistant", "and again"),
        ]
        assert history[0].author == "Alice"
        assert history[0].metadata["chat"]["principal"]["id"] == "alice"
        assert history[2].metadata["chat"]["principal"]["id"] == "anonymous"


async def test_sessions_are_listed_and_read(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        alice = (await post(client, "alice", {"text": "one"})).json()["session_id"]
        bob = (await post(client, "bob", {"text": "two"})).json()["session_id"]

        listed = (await client.get("/api/sessions", params={"kind": "chat"})).json()["sessions"]
        assert {s["session_id"] for s in listed} == {alice, bob}
        assert {s["metadata"]["chat_id"] for s in listed} == {"alice", "bob"}
        assert (await client.get("/api/sessions", params={"kind": "task"})).json() == {"sessions": []}

        read = (await client.get(f"/api/sessions/{alice}")).json()
        assert read["session"]["session_id"] == alice
        assert read["session"]["status"] == "active"
        assert [(m["role"], m["blocks"]) for m in read["messages"]] == [
            ("user", [{"type": "text", "text": "one"}]),
            ("assistant", [{"type": "text", "text": "one"}]),
        ]

        missing = await client.get("/api/sessions/nope")
        assert missing.status_code == 404
        assert missing.json() == {"error": {"type": "not_found_error", "message": "no session 'nope'"}}


async def test_a_new_session_for_a_chat_takes_its_next_messages(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        old = (await post(client, "alice", {"text": "one"})).json()["session_id"]
        created = await client.post("/api/chats/alice/sessions")
        assert created.status_code == 201
        fresh = created.json()["session_id"]
        assert fresh != old
        after = (await post(client, "alice", {"text": "two"})).json()
        assert (after["session_id"], after["number"]) == (fresh, 1)
        assert [m.text for m in await served.agent.sessions.history(old)] == ["one", "one"]


async def test_a_post_to_a_session_by_id_continues_that_session(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        old = (await post(client, "alice", {"text": "one"})).json()["session_id"]
        await client.post("/api/chats/alice/sessions")  # alice's chat moves on to a new session

        response = await client.post(f"/api/sessions/{old}/messages", json={"text": "back to it"})
        assert response.status_code == 200
        body = response.json()
        assert (body["chat"], body["session_id"], body["number"]) == (f"session:{old}", old, 2)
        again = await client.post(f"/api/sessions/{old}/messages", json={"text": "more", "stream": True})
        assert '"number":3' in again.text and '"reply":"more"' in again.text
        assert [m.text for m in await served.agent.sessions.history(old)][-2:] == ["more", "more"]
        assert (await post(client, "alice", {"text": "new"})).json()["session_id"] != old

        missing = await client.post("/api/sessions/nope/messages", json={"text": "hi"})
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "no session 'nope'"
        await served.agent.store.set_session_status(old, "closed")
        closed = await client.post(f"/api/sessions/{old}/messages", json={"text": "hi"})
        assert closed.status_code == 409
        assert closed.json()["error"] == {
            "type": "conflict_error",
            "message": f"session '{old}' is closed: start a new one to go on",
        }


# ---------------------------------------------------------------- streaming


async def test_sse_streams_the_chunks_in_order_then_the_outcome(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        events = await streamed(client, "alice", {"text": "one two  three\nfour"})
        chunks = [e.json()["text"] for e in events if e.name == "chunk"]
        assert chunks == ["one ", "two  ", "three\n", "four"]
        assert [e.name for e in events] == ["chunk"] * 4 + ["done"]
        done = events[-1].json()
        assert (done["status"], done["reply"], done["number"]) == ("completed", "".join(chunks), 1)

        history = await served.agent.sessions.history(done["session_id"])
        assert history[-1].text == done["reply"]


async def test_a_client_leaving_mid_stream_does_not_stop_the_turn(tmp_path: Path) -> None:
    model = GatedModel()
    async with serving_http(tmp_path, plugins={"gated": model}) as served, served.client() as client:
        async with client.stream(
            "POST", "/api/chats/alice/messages", json={"text": "x", "stream": True}
        ) as r:
            first = await anext(aiter(read_events(r)))
        assert first == Event("chunk", '{"text":"first "}')
        model.gate.set()  # the client has gone; the model finishes

        async def stored() -> bool:
            sessions = await served.agent.sessions.list_sessions("chat")
            history = await served.agent.sessions.history(sessions[0].session_id)
            return [m.text for m in history] == ["x", "first second"]

        await eventually(stored)


async def test_stopping_refuses_new_connections_and_lets_a_running_request_finish(tmp_path: Path) -> None:
    model = GatedModel()
    async with serving_http(tmp_path, plugins={"gated": model}) as served, served.client() as client:
        running = asyncio.create_task(post(client, "alice", {"text": "x"}))
        await model.called.wait()
        served.agent.request_stop()

        async def refused() -> bool:
            async with served.client() as late:
                try:
                    await late.get("/v1/models")
                except httpx.TransportError:  # refused, or reset if it raced the listener's close
                    return True
            return False

        await eventually(refused)
        model.gate.set()
        response = await running
        assert (response.status_code, response.json()["reply"]) == (200, "first second")


# ---------------------------------------------------------------- guards and failures


async def test_a_denied_message_gets_the_polite_reply_and_a_denied_turn_is_stored(tmp_path: Path) -> None:
    async with (
        serving_http(tmp_path, plugins={"refuser": Refuser()}, chat={"denied_reply": DENIED}) as served,
        served.client() as client,
    ):
        response = await post(client, "alice", {"text": "let me in", "user": "mallory"})
        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["reply"]) == ("denied", DENIED)

        turns = await served.agent.store.turns(body["session_id"])
        assert [(t.turn_id, t.status) for t in turns] == [(body["turn_id"], "denied")]
        assert "mallory is banned" in (turns[0].error or "")

        events = await streamed(client, "alice", {"text": "please", "user": "mallory"})
        assert [e.name for e in events] == ["done"], "a denied turn streams no chunk"
        assert (events[0].json()["status"], events[0].json()["reply"]) == ("denied", DENIED)

        allowed = (await post(client, "alice", {"text": "hi", "user": "alice"})).json()
        assert (allowed["status"], allowed["reply"]) == ("completed", "hi")


async def test_a_failing_chat_path_is_a_json_500_or_an_error_event(tmp_path: Path) -> None:
    async with (
        serving_http(tmp_path, plugins={"broken": BrokenInbound()}) as served,
        served.client() as client,
    ):
        response = await post(client, "alice", {"text": "hi"})
        assert response.status_code == 500
        error = response.json()["error"]
        assert error["type"] == "server_error"
        assert "inbound rewriter broke" in error["message"]

        events = await streamed(client, "alice", {"text": "hi"})
        assert [e.name for e in events] == ["error"]
        assert "inbound rewriter broke" in events[0].json()["error"]["message"]


# ---------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"text": "hi"', "request body is not valid JSON: Expecting ',' delimiter: line 1 column 14"),
        (b"", "empty request body"),
        (b'{"text": 3}', "expected str, got int 3 @ $.text"),
        (b'{"txt": "hi"}', "extra fields found (txt) @ $"),
        (b'{"text": "hi", "stream": "yes"}', "expected bool, got str 'yes' @ $.stream"),
        (b'["hi"]', "expected an object, got list @ $"),
        (b'{"text": "  "}', "empty message"),
    ],
)
async def test_a_malformed_body_is_a_400_naming_the_problem(
    tmp_path: Path, body: bytes, problem: str
) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        response = await client.post(
            "/api/chats/alice/messages", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert problem in error["message"]
        assert await served.agent.sessions.list_sessions() == [], "nothing was run"


async def test_unknown_routes_and_methods_are_json_errors(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        missing = await client.get("/api/nothing")
        assert missing.status_code == 404
        assert missing.json()["error"] == {
            "type": "not_found_error",
            "message": "GET /api/nothing: Not Found",
        }
        wrong = await client.get("/api/chats/alice/messages")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["message"] == "GET /api/chats/alice/messages: Method Not Allowed"
        too_long = await post(client, "x" * 201, {"text": "hi"})
        assert too_long.status_code == 400
        assert "chat key too long" in too_long.json()["error"]["message"]


async def test_bodies_above_the_limit_are_refused_with_413(tmp_path: Path) -> None:
    async with serving_http(tmp_path, http={"max_body": 100}) as served, served.client() as client:
        assert (await post(client, "alice", {"text": "x" * 60})).status_code == 200

        declared = await post(client, "alice", {"text": "x" * 200})
        assert declared.status_code == 413
        assert declared.json()["error"] == {
            "type": "request_too_large",
            "message": "request body too large: 211 bytes, the limit is 100 bytes"
            " ([service.chat.http] max_body)",
        }

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            yield b'{"text": "'
            for _ in range(10):
                yield b"x" * 20
            yield b'"}'

        response = await client.post(
            "/api/chats/alice/messages", content=chunked(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert "more than 100 bytes" in response.json()["error"]["message"]


# ---------------------------------------------------------------- authentication


async def test_with_a_token_every_request_needs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_HTTP_TOKEN", "s3cret")
    async with serving_http(tmp_path, http={"token_env": "TEST_HTTP_TOKEN"}) as served:
        async with served.client() as anonymous:
            for response in (
                await post(anonymous, "alice", {"text": "hi"}),
                await anonymous.get("/v1/models"),
            ):
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["error"]["type"] == "authentication_error"
                assert "missing bearer token" in response.json()["error"]["message"]
        async with served.client(headers={"Authorization": "Bearer wrong"}) as wrong:
            response = await post(wrong, "alice", {"text": "hi"})
            assert response.status_code == 401
            assert response.json()["error"]["message"] == "invalid bearer token"
        async with served.client(headers={"Authorization": "Basic czNjcmV0"}) as basic:
            response = await post(basic, "alice", {"text": "hi"})
            assert response.status_code == 401
            assert "Bearer scheme" in response.json()["error"]["message"]
        assert await served.agent.sessions.list_sessions() == [], "no refused request reached the agent"

        async with served.client(headers={"Authorization": "Bearer s3cret"}) as allowed:
            response = await post(allowed, "alice", {"text": "hi"})
            assert (response.status_code, response.json()["reply"]) == (200, "hi")


async def test_a_token_env_naming_no_variable_stops_serving_with_the_key_named(tmp_path: Path) -> None:
    with pytest.raises(
        TurnkitError, match=r"\[service.chat.http\] token_env: .* TEST_UNSET_TOKEN is not set"
    ):
        async with serving_http(tmp_path, http={"token_env": "TEST_UNSET_TOKEN"}):
            pass


async def test_a_busy_port_stops_serving_with_the_address_named(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(TurnkitError, match=rf"\[service.chat.http\] cannot listen on 127.0.0.1:{port}"):
            async with serving_http(tmp_path, http={"port": port}):
                pass


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"port": 70000}, "'port' must be <= 65535: 70000 @ $.service.chat.http"),
        ({"max_body": 0}, "'max_body' must be >= 1: 0 @ $.service.chat.http"),
        ({"hots": "0.0.0.0"}, "extra fields found (hots) @ $.service.chat.http"),
    ],
)
async def test_a_wrong_http_table_is_refused_at_start_naming_the_key(
    tmp_path: Path, table: dict[str, Any], problem: str
) -> None:
    with pytest.raises(TurnkitError) as raised:
        async with serving_http(tmp_path, http=table):
            pass
    assert problem in str(raised.value)


# ---------------------------------------------------------------- turnkit serve


def test_turnkit_serve_listens_on_loopback_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "turnkit.toml").write_text('[store]\nurl = "t.db"\n\n[service.chat.http]\nport = 0\n')
    process = subprocess.Popen(
        [*turnkit_command(), "serve"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
    reader.start()
    try:
        url = _announced_url(lines)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), "loopback unless told otherwise"

        response = httpx.post(f"{url}/api/chats/cli/messages", json={"text": "over the wire"}, timeout=30)
        assert (response.status_code, response.json()["reply"]) == (200, "over the wire")
        session_id = response.json()["session_id"]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=10)
    stderr = "".join(iter(lines.get_nowait, None))
    assert "Traceback" not in stderr, stderr

    shown = run_turnkit("sessions", "show", session_id, cwd=tmp_path, timeout=60)
    assert shown.returncode == 0, str(shown)
    assert "over the wire" in shown.stdout


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        lines.put(line)
    lines.put(None)


def _announced_url(lines: queue.Queue[str | None], timeout: float = 30) -> str:
    """The address ``turnkit serve`` prints on stderr once the HTTP channel listens."""
    seen: list[str] = []
    while (line := lines.get(timeout=timeout)) is not None:
        seen.append(line)
        match = re.fullmatch(r"turnkit: HTTP API on (http://\S+)\n", line)
        if match:
            return match.group(1)
    raise AssertionError("turnkit serve ended without announcing the HTTP API:\n" + "".join(seen))
