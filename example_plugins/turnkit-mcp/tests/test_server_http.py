"""The agent as an MCP server on its HTTP server: the SDK's streamable-HTTP client against ``turnkit serve``.

One agent serves the whole module (starting one takes a second or two);
each test uses conversations and memories of its own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from server_support import CLIENT, TOKEN, http_session, modern_client, serve_mcp, text_of
from turnkit.config import StoreConfig
from turnkit.store import open_store
from turnkit.testing_served import ServedAgent

EXPOSED = ["send", "memory.store", "memory.search"]
#: What an MCP request looks like on the wire, for the requests sent without the SDK.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedAgent]:
    """An agent serving ``http`` and ``mcp`` (send and two memory tools) behind a bearer token."""
    agent = ServedAgent(Path(tmp_path_factory.mktemp("served")))
    serve_mcp(agent, EXPOSED)
    agent.start()
    try:
        yield agent
    finally:
        agent.close()


async def test_lists_exactly_the_configured_tools(served: ServedAgent) -> None:
    async with http_session(served) as session:
        listed = await session.list_tools()
        info = session.server_info
    tools = {tool.name: tool for tool in listed.tools}
    # shell.exec and the other service tools, and memory's non-tool actions, are not exposed
    assert sorted(tools) == sorted(EXPOSED)
    search = tools["memory.search"]
    assert search.description and "memor" in search.description
    assert search.input_schema["type"] == "object"
    assert search.input_schema["required"] == ["query"]
    assert {"query", "scope", "limit", "mode"} <= set(search.input_schema["properties"])
    send = tools["send"]
    assert send.input_schema["required"] == ["text"]
    assert send.output_schema is not None
    assert send.output_schema["required"] == ["reply", "session_id", "status"]
    assert info is not None and info.name == "default"


async def test_send_runs_a_turn_of_the_conversation(served: ServedAgent) -> None:
    async with http_session(served) as session:
        first = await session.call_tool("send", {"text": "hello over mcp", "conversation": "greetings"})
        second = await session.call_tool("send", {"text": "and again", "conversation": "greetings"})
        other = await session.call_tool("send", {"text": "elsewhere", "conversation": "other"})
    assert not first.is_error
    assert "hello over mcp" in text_of(first)  # the echo model answers with the message
    answer = first.structured_content
    assert answer is not None and answer["status"] == "completed" and "hello over mcp" in answer["reply"]
    assert second.structured_content is not None and other.structured_content is not None
    assert second.structured_content["session_id"] == answer["session_id"]  # one conversation, one session
    assert other.structured_content["session_id"] != answer["session_id"]
    turns = await asyncio.to_thread(served.turns)
    mine = [t for t in turns if t["session_id"] == answer["session_id"]]
    assert [(t["channel"], t["chat_id"], t["status"], t["inbound"]) for t in mine] == [
        ("mcp", "greetings", "completed", "hello over mcp"),
        ("mcp", "greetings", "completed", "and again"),
    ]
    assert "hello over mcp" in (mine[0]["reply"] or "")


async def test_send_without_a_conversation_uses_the_default_one(served: ServedAgent) -> None:
    async with http_session(served) as session:
        result = await session.call_tool("send", {"text": "no conversation named"})
    assert result.structured_content is not None
    turns = await asyncio.to_thread(served.turns)
    (turn,) = [t for t in turns if t["inbound"] == "no conversation named"]
    assert (turn["chat_id"], turn["session_id"]) == ("default", result.structured_content["session_id"])


async def test_memory_search_finds_what_memory_store_kept(served: ServedAgent) -> None:
    async with http_session(served) as session:
        stored = await session.call_tool("memory.store", {"text": "the lighthouse keeper feeds a heron"})
        found = await session.call_tool("memory.search", {"query": "heron", "limit": 3})
    assert not stored.is_error and not found.is_error
    memory = json.loads(text_of(stored))  # a non-string value comes as JSON
    hits = json.loads(text_of(found))
    assert [hit["id"] for hit in hits] == [memory["id"]]
    assert hits[0]["text"] == "the lighthouse keeper feeds a heron"


async def test_bad_arguments_are_tool_errors_naming_the_argument(served: ServedAgent) -> None:
    async with http_session(served) as session:
        no_text = await session.call_tool("send", {"conversation": "c"})
        wrong_type = await session.call_tool("send", {"text": 42})
        extra = await session.call_tool("send", {"text": "hi", "colour": "red"})
        no_query = await session.call_tool("memory.search", {"limit": 2})
        bad_limit = await session.call_tool("memory.search", {"query": "x", "limit": 0})
        still_serving = await session.call_tool("send", {"text": "still here"})
    assert all(r.is_error for r in (no_text, wrong_type, extra, no_query, bad_limit))
    assert "'text'" in text_of(no_text)
    assert "'text'" in text_of(wrong_type) and "string" in text_of(wrong_type)
    assert "'colour'" in text_of(extra)
    assert "'query'" in text_of(no_query)
    assert "limit" in text_of(bad_limit)
    assert not still_serving.is_error and "still here" in text_of(still_serving)


async def test_a_tool_not_exposed_is_a_protocol_error(served: ServedAgent) -> None:
    async with http_session(served) as session:
        with pytest.raises(MCPError) as refused:
            await session.call_tool("shell.exec", {"command": "id"})
        assert "shell.exec" in refused.value.message and "memory.search" in refused.value.message
        assert not (await session.call_tool("send", {"text": "after the refusal"})).is_error


def test_the_endpoint_takes_the_agents_bearer_token(served: ServedAgent) -> None:
    body = json.dumps(INITIALIZE).encode()
    missing = served.post("/mcp", body, MCP_HEADERS)
    wrong = served.post("/mcp", body, {**MCP_HEADERS, "Authorization": "Bearer not-the-token"})
    right = served.post("/mcp", body, {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"})
    assert missing.status == 401 and wrong.status == 401
    assert missing.json()["error"]["message"].startswith("missing bearer token")
    assert right.status == 200 and right.headers.get("mcp-session-id")


async def test_a_client_without_the_token_cannot_connect(served: ServedAgent) -> None:
    turns_before = len(await asyncio.to_thread(served.turns))
    refused = False
    try:
        async with http_session(served, token=None) as session:
            await session.call_tool("send", {"text": "let me in"})
    except* MCPError:  # the SDK's client fails its first request, the handshake, with the HTTP error
        refused = True
    assert refused
    assert len(await asyncio.to_thread(served.turns)) == turns_before


def test_a_foreign_origin_is_refused_on_loopback(served: ServedAgent) -> None:
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}", "Origin": "http://attacker.example"}
    refused = served.post("/mcp", json.dumps(INITIALIZE).encode(), headers)
    local = served.post("/mcp", json.dumps(INITIALIZE).encode(), {**headers, "Origin": served.url})
    assert refused.status == 403
    assert local.status == 200


async def test_the_client_name_is_the_turns_principal(served: ServedAgent) -> None:
    async with http_session(served) as session:
        result = await session.call_tool("send", {"text": "who am I", "conversation": "principal"})
    assert result.structured_content is not None
    initiators = await asyncio.to_thread(_initiators, served, result.structured_content["session_id"])
    assert initiators == [f"mcp:{CLIENT}"]


async def test_a_client_of_the_2026_protocol_is_served_too(served: ServedAgent) -> None:
    async with modern_client(served, "modern-client") as client:
        version = client.session.protocol_version
        listed = await client.list_tools()
        result = await client.call_tool(
            "send", {"text": "one envelope per request", "conversation": "modern"}
        )
    assert version in MODERN_PROTOCOL_VERSIONS
    assert sorted(tool.name for tool in listed.tools) == sorted(EXPOSED)
    assert not result.is_error and "one envelope per request" in text_of(result)
    assert result.structured_content is not None
    initiators = await asyncio.to_thread(_initiators, served, result.structured_content["session_id"])
    assert initiators == ["mcp:modern-client"]


async def test_the_agent_stops_promptly_with_a_client_connected(turnkit_served: ServedAgent) -> None:
    serve_mcp(turnkit_served, ["send"])
    turnkit_served.start()
    async with http_session(turnkit_served) as session:
        await session.call_tool("send", {"text": "hold the line"})  # the session's event stream is open
        stopping = time.monotonic()
        code = await asyncio.to_thread(turnkit_served.stop)
        stopped_in = time.monotonic() - stopping
    assert code == 0
    # The open stream does not hold the server for its shutdown_timeout (10 s by default).
    assert stopped_in < 5, turnkit_served.output


def _initiators(served: ServedAgent, session_id: str) -> list[str | None]:
    """The ``initiator_id`` of each turn of the session, read from the store like ``turns()``."""

    async def read() -> list[str | None]:
        store = await open_store(StoreConfig(url="turnkit.db"), str(served.directory))
        try:
            return [turn.initiator_id for turn in await store.turns(session_id)]
        finally:
            await store.close()

    return asyncio.run(read())
