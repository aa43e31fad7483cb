"""Malformed requests to both HTTP APIs: each a 4xx JSON error naming the problem, none storing anything.

Each test serves a real agent on loopback (:mod:`tests.chat.http_server`)
and sends what a careless or hostile client sends: lone surrogates and NUL
characters, JSON nested thousands deep, numbers JSON cannot carry, a body
that is not UTF-8 or not declared JSON, a body shorter than its
``Content-Length`` (written byte for byte, :mod:`tests.chat.raw_http`). The
store is then read back: a refused request creates no session, stores no
message, binds no chat.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from turnkit.errors import TurnkitError

from tests.chat.http_server import Served, serving_http
from tests.chat.raw_http import http_request, raw_request

JSON = {"Content-Type": "application/json"}
MESSAGES = "/api/chats/alice/messages"
COMPLETIONS = "/v1/chat/completions"


def completion(content: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": content}], **fields}


async def refused(client: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str] = JSON) -> str:
    """POST ``body``; assert a JSON 400 in the API's error shape and return its message."""
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    message: str = error["message"]
    return message


async def nothing_stored(served: Served) -> None:
    assert await served.agent.sessions.list_sessions() == [], "a refused request created a session"
    assert await served.chat.bindings() == [], "a refused request bound a chat"


def nested(depth: int, inner: str = "1") -> str:
    """A JSON array ``depth`` levels deep."""
    return "[" * depth + inner + "]" * depth


# ---------------------------------------------------------------- strings the store cannot hold


@pytest.mark.parametrize("character", ["\ud800", "\udfff", "\x00"])
async def test_a_lone_surrogate_or_nul_in_any_field_is_a_400_naming_it(
    tmp_path: Path, character: str
) -> None:
    problem = "a lone surrogate" if character != "\x00" else "a NUL character"
    cases = [
        (MESSAGES, {"text": f"hi {character}"}, "$.text"),
        (MESSAGES, {"text": "hi", "name": character}, "$.name"),
        (MESSAGES, {"text": "hi", "user": f"al{character}ce"}, "$.user"),
        (MESSAGES, {"text": "hi", character: 1}, "$"),
        (COMPLETIONS, completion(f"hi {character}"), "$.messages[0].content"),
        (COMPLETIONS, completion([{"type": "text", "text": character}]), "$.messages[0].content[0].text"),
        (COMPLETIONS, completion("hi", user=character), "$.user"),
        (COMPLETIONS, completion("hi", metadata={"a b": [character]}), "$.metadata['a b'][0]"),
    ]
    async with serving_http(tmp_path) as served, served.client() as client:
        for path, body, where in cases:
            raw = json.dumps(body).encode()  # ASCII: the character travels as a \u escape
            message = await refused(client, path, raw)
            assert problem in message and message.endswith(f"@ {where}"), message
        await nothing_stored(served)


async def test_paired_surrogate_escapes_are_one_character_and_accepted(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        response = await client.post(MESSAGES, content=b'{"text": "smile \\ud83d\\ude00"}', headers=JSON)
        assert (response.status_code, response.json()["reply"]) == (200, "smile \U0001f600")


async def test_a_control_character_in_a_chat_key_session_id_or_kind_is_a_400(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        for path in ("/api/chats/al%00ice/messages", "/api/chats/al%1Bice/sessions"):
            response = await client.post(path, json={"text": "hi"})
            assert response.status_code == 400
            assert "chat key: control character" in response.json()["error"]["message"]
        response = await client.get("/api/sessions/ab%00cd")
        assert response.status_code == 400
        assert "session id: control character U+0000 at character 2" in response.json()["error"]["message"]
        response = await client.get("/api/sessions", params={"kind": "chat\x00"})
        assert response.status_code == 400
        assert "kind: control character" in response.json()["error"]["message"]
        for value in (b"tab\tchat", b"next\x85line"):  # a tab, a C1 control (sent as latin-1)
            headers = {b"X-Turnkit-Chat": value}
            response = await client.post(COMPLETIONS, json=completion("hi"), headers=headers)
            assert response.status_code == 400
            assert "X-Turnkit-Chat: control character" in response.json()["error"]["message"]
        await nothing_stored(served)


# ---------------------------------------------------------------- JSON Python takes, requests must not carry


async def test_json_nested_thousands_deep_is_a_400_not_a_recursion_error(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        for depth in (65, 5000, 100_000):
            for path, body in (
                (MESSAGES, f'{{"text": {nested(depth)}}}'),
                (COMPLETIONS, f'{{"messages": {nested(depth)}}}'),
                (COMPLETIONS, nested(depth, "{}")),
            ):
                message = await refused(client, path, body.encode())
                assert "nested deeper than 64 levels" in message, message
        await nothing_stored(served)

        # the object, then 63 lists: 64 levels, the most accepted; one more is refused
        at_limit = completion("deep enough", metadata=json.loads(nested(63)))
        response = await client.post(COMPLETIONS, json=at_limit)
        assert response.status_code == 200, response.text
        over = completion("too deep", metadata=json.loads(nested(64)))
        assert "nested deeper than 64 levels" in await refused(client, COMPLETIONS, json.dumps(over).encode())


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("NaN", "NaN is not JSON"),
        ("-Infinity", "-Infinity is not JSON"),
        ("1e999", "the number 1e999 is out of range"),
        ("9" * 5000, "an integer of 5000 digits (at most 100)"),
    ],
)
async def test_numbers_json_cannot_carry_are_a_400_naming_the_field(
    tmp_path: Path, value: str, problem: str
) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        message = await refused(client, MESSAGES, f'{{"text": "hi", "stream": {value}}}'.encode())
        assert message == f"invalid request body: {problem} @ $.stream"
        body = f'{{"model": "m", "temperature": {value}, "messages": [{{"role": "user", "content": "hi"}}]}}'
        message = await refused(client, COMPLETIONS, body.encode())
        assert message == f"invalid request body: {problem} @ $.temperature"
        await nothing_stored(served)


async def test_a_duplicate_key_is_a_400_naming_it(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        message = await refused(client, MESSAGES, b'{"text": "hi", "text": "bye"}')
        assert message == "invalid request body: the key 'text' appears twice @ $"
        body = b'{"model": "m", "messages": [{"role": "user", "role": "system", "content": "hi"}]}'
        message = await refused(client, COMPLETIONS, body)
        assert message == "invalid request body: the key 'role' appears twice @ $.messages[0]"
        await nothing_stored(served)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"text": "caf\xe9"}', "request body is not UTF-8 text: invalid byte 0xe9 at byte 13"),
        (b'{"text": "\xed\xa0\x80"}', "request body is not UTF-8 text: invalid byte 0xed at byte 10"),
        ('{"text": "hi"}'.encode("utf-16"), "request body is not UTF-8 text: invalid byte 0xff at byte 0"),
        (b'\xef\xbb\xbf{"text": "hi"}', "request body is not valid JSON: Unexpected UTF-8 BOM"),
        (b"   ", "empty request body: a JSON object is expected"),
    ],
)
async def test_a_body_that_is_not_utf8_json_is_a_400(tmp_path: Path, body: bytes, problem: str) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        for path in (MESSAGES, COMPLETIONS):
            assert (await refused(client, path, body)).startswith(problem)
        await nothing_stored(served)


async def test_a_wrong_value_deep_in_a_big_body_gets_a_short_message(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        big = [1] * 50_000
        for path, body, where in (
            (MESSAGES, {"text": big}, "$.text"),
            (COMPLETIONS, completion("hi", model=big), "$.model"),
            (COMPLETIONS, completion("hi", n=big), "$.n"),
            (COMPLETIONS, {"model": "m", "messages": [{"role": big}]}, "$.messages[0].role"),
        ):
            message = await refused(client, path, json.dumps(body).encode())
            assert len(message) < 300 and message.endswith(f"@ {where}"), message
        await nothing_stored(served)


# ---------------------------------------------------------------- Content-Type


@pytest.mark.parametrize(
    ("content_type", "problem"),
    [
        (None, "missing Content-Type: send 'Content-Type: application/json'"),
        ("text/plain", "Content-Type 'text/plain' is not JSON: send 'Content-Type: application/json'"),
        ("application/x-www-form-urlencoded", "Content-Type 'application/x-www-form-urlencoded' is not JSON"),
        ("application/json; charset=latin-1", "Content-Type charset 'latin-1' is not UTF-8"),
    ],
)
async def test_a_body_not_declared_json_is_a_415(
    tmp_path: Path, content_type: str | None, problem: str
) -> None:
    """Browsers send such bodies cross-origin without asking first; refusing them keeps web pages out."""
    headers = {"Content-Type": content_type} if content_type else {}
    async with serving_http(tmp_path) as served, served.client() as client:
        for path, body in ((MESSAGES, {"text": "hi"}), (COMPLETIONS, completion("hi"))):
            response = await client.post(path, content=json.dumps(body), headers=headers)
            assert response.status_code == 415
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["message"].startswith(problem), error["message"]
        await nothing_stored(served)


@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", "application/merge-patch+json"])
async def test_json_media_types_with_parameters_are_accepted(tmp_path: Path, content_type: str) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        response = await client.post(
            MESSAGES, content=b'{"text": "hi"}', headers={"Content-Type": content_type}
        )
        assert (response.status_code, response.json()["reply"]) == (200, "hi")


# ---------------------------------------------------------------- bodies that never arrive whole


async def test_a_body_shorter_than_its_content_length_is_a_408_and_the_connection_closes(
    tmp_path: Path,
) -> None:
    async with serving_http(tmp_path, http={"read_timeout": 0.3}) as served:
        for path in (MESSAGES, COMPLETIONS):
            started = time.monotonic()
            request = http_request("POST", path, JSON, b'{"text": "hi', length=100)
            answer = await raw_request(served.url, request)
            assert 0.3 <= time.monotonic() - started < 5
            assert (answer.status, answer.headers["connection"], answer.closed) == (408, "close", True)
            assert answer.json()["error"] == {
                "type": "invalid_request_error",
                "message": "request body not received within 0.3 s ([service.chat.http] read_timeout):"
                " 12 of 100 bytes arrived",
            }
        chunked = http_request("POST", MESSAGES, {**JSON, "Transfer-Encoding": "chunked"}) + b'5\r\n{"tex\r\n'
        answer = await raw_request(served.url, chunked)
        assert (answer.status, answer.closed) == (408, True)
        assert answer.json()["error"]["message"].endswith(": 5 bytes arrived")
        await nothing_stored(served)


async def test_the_unread_body_of_a_refused_request_is_never_read_as_a_next_request(tmp_path: Path) -> None:
    smuggled = http_request("POST", MESSAGES, JSON, b'{"text": "smuggled"}')
    async with serving_http(tmp_path, http={"max_body": len(smuggled) + 10}) as served:
        for headers, body, status in (
            ({"Content-Type": "text/plain"}, smuggled, 415),  # refused before the body is read
            (JSON, smuggled + b" " * 20, 413),  # refused for its Content-Length
        ):
            answer = await raw_request(served.url, http_request("POST", MESSAGES, headers, body), watch=0.3)
            assert answer.status == status
            assert answer.after == b"", "the body was answered as a request of its own"
        await nothing_stored(served)


async def test_read_timeout_is_validated_at_start(tmp_path: Path) -> None:
    with pytest.raises(TurnkitError, match=r"'read_timeout' must be > 0: 0.0 @ \$\.service\.chat\.http"):
        async with serving_http(tmp_path, http={"read_timeout": 0}):
            pass


# ---------------------------------------------------------------- order: refuse before anything is written


async def test_a_refused_post_to_a_session_binds_nothing_and_stores_nothing(tmp_path: Path) -> None:
    async with serving_http(tmp_path) as served, served.client() as client:
        session_id = await served.chat.new_session("http", "alice")
        path = f"/api/sessions/{session_id}/messages"
        for body, headers in (
            (b'{"text": "\\ud800"}', JSON),
            (b'{"text": 1}', JSON),
            (b'{"text": "hi"}', {"Content-Type": "text/plain"}),
        ):
            response = await client.post(path, content=body, headers=headers)
            assert response.status_code in (400, 415)
        assert [b["chat"] for b in await served.chat.bindings()] == ["http:alice"]
        assert await served.agent.sessions.history(session_id) == []
        assert await served.agent.store.turns(session_id) == []


# ---------------------------------------------------------------- the catch-all


async def test_an_unexpected_error_is_a_json_500_without_its_details_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("secret-ish internals: /srv/db password=hunter2")

    async with serving_http(tmp_path) as served:
        app = served.channel.app()
        app.router.routes.append(Route("/api/broken", broken))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
            with caplog.at_level(logging.ERROR):
                response = await client.get("/api/broken")
        assert response.status_code == 500
        assert response.json() == {
            "error": {
                "type": "server_error",
                "message": "internal error (RuntimeError); the agent's log has the details",
            }
        }
        assert "hunter2" not in response.text and "Traceback" not in response.text
        logged = [r for r in caplog.records if "GET /api/broken" in r.getMessage()]
        assert logged and logged[0].exc_info is not None
        assert "hunter2" in str(logged[0].exc_info[1])


async def test_a_client_leaving_mid_body_is_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving_http(tmp_path) as served:
        _, writer = await asyncio.open_connection(*served.url.removeprefix("http://").split(":"))
        writer.write(http_request("POST", MESSAGES, JSON, b'{"te', length=100))
        await writer.drain()
        await asyncio.sleep(0.1)
        with caplog.at_level(logging.INFO):
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.2)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        await nothing_stored(served)
