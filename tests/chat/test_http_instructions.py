"""A session's own instructions over the native HTTP API, on a real loopback server.

``PUT /api/sessions/{id}/instructions`` sets them, ``DELETE`` sends the
session back to the agent's ``[agent] instructions``, ``GET
/api/sessions/{id}`` shows them; the model (the echo model, watched by
:class:`ModelSpy`) gets them first in the next turn's prompt. Bad requests
are 4xx JSON errors that change nothing.
"""

from __future__ import annotations

from pathlib import Path

from tests.chat.http_server import serving_http
from tests.support.agents import ModelSpy

AGENT = "You are the support desk."


def instructions_of(spy: ModelSpy) -> str | None:
    """The instructions the model got first in its latest prompt, or ``None``."""
    message = spy.prompts[-1].messages[0]
    return message.text if message.metadata.get("instructions") is True else None


async def test_instructions_are_set_shown_used_and_cleared(tmp_path: Path) -> None:
    spy = ModelSpy()
    served_agent = serving_http(tmp_path, plugins={"spy": spy}, agent={"instructions": AGENT})
    async with served_agent as served, served.client() as client:
        opened = await client.post("/api/chats/alice/messages", json={"text": "hello"})
        session = opened.json()["session_id"]
        assert instructions_of(spy) == AGENT
        path = f"/api/sessions/{session}/instructions"
        assert (await client.get(f"/api/sessions/{session}")).json()["instructions"] is None

        put = await client.put(path, json={"instructions": "Answer in French."})
        assert (put.status_code, put.json()) == (
            200,
            {"session_id": session, "instructions": "Answer in French."},
        )
        assert (await client.get(f"/api/sessions/{session}")).json()["instructions"] == "Answer in French."
        await client.post("/api/chats/alice/messages", json={"text": "bonjour"})
        assert instructions_of(spy) == "Answer in French."

        put = await client.put(path, json={"instructions": ""})
        assert put.json()["instructions"] == ""
        await client.post("/api/chats/alice/messages", json={"text": "none"})
        assert instructions_of(spy) is None, "empty instructions: none at all"

        deleted = await client.delete(path)
        assert (deleted.status_code, deleted.json()) == (200, {"session_id": session, "instructions": None})
        await client.post("/api/chats/alice/messages", json={"text": "back"})
        assert instructions_of(spy) == AGENT
        turns = await served.agent.store.turns(session)
        assert [t.instructions for t in turns] == [AGENT, "Answer in French.", None, AGENT]


async def test_bad_instructions_requests_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async with serving_http(tmp_path, http={"max_body": 3_000_000}) as served, served.client() as client:
        session = (await client.post("/api/chats/bob/messages", json={"text": "hi"})).json()["session_id"]
        path = f"/api/sessions/{session}/instructions"

        missing = await client.put("/api/sessions/nope/instructions", json={"instructions": "x"})
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "no session 'nope'"
        assert (await client.delete("/api/sessions/nope/instructions")).status_code == 404

        refused = {
            "no key": ({}, "required field missing @ $.instructions"),
            "a number": ({"instructions": 3}, "$.instructions"),
            "null": ({"instructions": None}, "$.instructions"),
            "an extra key": ({"instructions": "x", "mode": "y"}, "mode"),
            "too long": ({"instructions": "x" * 1_000_001}, "is longer than 1000000 characters"),
        }
        for what, (body, problem) in refused.items():
            response = await client.put(path, json=body)
            assert response.status_code == 400, what
            assert problem in response.json()["error"]["message"], (what, response.json())
        form = await client.put(path, content=b"instructions=x", headers={"content-type": "text/plain"})
        assert form.status_code == 415
        json_type = {"content-type": "application/json"}
        nul = await client.put(path, content=b'{"instructions": "a\\u0000b"}', headers=json_type)
        assert nul.status_code == 400
        assert await served.agent.sessions.instructions(session) is None, "nothing was stored"
        assert (await client.post(path, json={"instructions": "x"})).status_code == 405
