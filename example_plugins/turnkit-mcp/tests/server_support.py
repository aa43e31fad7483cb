"""MCP clients for the server tests: the official SDK's, connected to a real ``turnkit serve``.

Over HTTP the agent is a :class:`~turnkit.testing_served.ServedAgent`
serving the ``http`` and ``mcp`` channels; over stdio the client starts
``turnkit mcp`` itself, as an MCP host starts a server it is configured
with, on a configuration written here like the served agent's (a SQLite
store in the test's folder, the echo model), so that
:meth:`ServedAgent.turns` reads what it stored.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import tomli_w
from mcp import Client, ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from turnkit.testing_served import ServedAgent

#: The agent's bearer token in the HTTP tests (``[service.chat.http] token_env``).
TOKEN = "a-token-for-the-mcp-tests"
TOKEN_ENV = "TURNKIT_MCP_TEST_TOKEN"
#: How long a test client waits for any answer: a server that never answers fails the test, not the suite.
READ_TIMEOUT = 30.0
#: The name the test clients give when they connect.
CLIENT = "server-tests"


def serve_mcp(served: ServedAgent, tools: list[str], **channel: Any) -> None:
    """Configure ``served`` to serve ``tools`` over MCP on its HTTP server, behind :data:`TOKEN`."""
    served.env[TOKEN_ENV] = TOKEN
    served.configure(
        service={
            "chat": {
                "channels": ["http", "mcp"],
                "http": {"token_env": TOKEN_ENV},
                "channel": {"mcp": {"tools": tools, **channel}},
            }
        }
    )


@contextlib.asynccontextmanager
async def http_session(served: ServedAgent, token: str | None = TOKEN) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with the served agent's ``/mcp`` endpoint."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http,
        streamable_http_client(f"{served.url}/mcp", http_client=http) as (read, write),
        ClientSession(
            read, write, READ_TIMEOUT, client_info=types.Implementation(name=CLIENT, version="1")
        ) as session,
    ):
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def modern_client(served: ServedAgent, name: str) -> AsyncIterator[Client]:
    """The SDK's high-level client, which speaks the 2026 protocol (one envelope per request) if it can."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http,
        Client(
            streamable_http_client(f"{served.url}/mcp", http_client=http),
            read_timeout_seconds=READ_TIMEOUT,
            client_info=types.Implementation(name=name, version="1"),
        ) as client,
    ):
        yield client


def write_stdio_config(
    directory: Path, tools: list[str], chat: dict[str, Any] | None = None, **tables: Any
) -> Path:
    """A ``turnkit.toml`` whose ``[service.chat.channel.mcp]`` lists ``tools``, for ``turnkit mcp``.

    The agent it configures serves the HTTP channel, as an agent in use would: ``turnkit mcp``
    serves the ``mcp`` channel over stdio instead. ``chat`` adds settings to ``[service.chat]``;
    ``tables`` are other top-level tables (``model``, and ``service`` for other services' tables).
    """
    mcp = {"tools": tools}
    config: dict[str, Any] = {"store": {"url": "turnkit.db"}, **tables}
    config["service"] = {
        **config.get("service", {}),
        "chat": {"channels": ["http"], "http": {"port": 0}, "channel": {"mcp": mcp}, **(chat or {})},
    }
    path = directory / "turnkit.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


@contextlib.asynccontextmanager
async def stdio_session(config: Path, errlog: Any) -> AsyncIterator[ClientSession]:
    """``turnkit mcp`` on ``config`` as the client's subprocess, its stderr to ``errlog``."""
    server = StdioServerParameters(
        command=str(Path(sys.executable).parent / "turnkit"),
        args=["--config", str(config), "mcp"],
        cwd=config.parent,
    )
    async with (
        stdio_client(server, errlog=errlog) as (read, write),
        ClientSession(
            read, write, READ_TIMEOUT, client_info=types.Implementation(name=CLIENT, version="1")
        ) as session,
    ):
        await session.initialize()
        yield session


def text_of(result: types.CallToolResult) -> str:
    """The text blocks of a tool result, joined."""
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))
