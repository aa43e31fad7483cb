"""A real agent serving the chat service's HTTP channel on a free loopback port, for the HTTP tests.

``serving_http`` starts the agent exactly as ``turnkit serve`` does (a
started agent, then ``agent.serve()``), with ``[service.chat.http] port = 0``;
it yields once the channel listens, with the address the channel announced::

    async with serving_http(tmp_path, http={"token": "s3cret"}) as served, served.client() as client:
        response = await client.post("/api/chats/alice/messages", json={"text": "hi"})

Leaving the block asks the agent to stop serving, as SIGTERM does, and
waits for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from turnkit.agent import Agent
from turnkit_services.chat import ChatService
from turnkit_services.chat.http import HttpChannel

from tests.support.agents import running_agent

#: How long the channel may take to listen before a test gives up.
START_TIMEOUT = 10.0


@dataclass
class Served:
    """A serving agent and where its HTTP channel listens."""

    agent: Agent
    chat: ChatService
    channel: HttpChannel
    url: str

    def client(self, **options: Any) -> httpx.AsyncClient:
        """An HTTP client for the channel (close it, or use it in ``async with``)."""
        return httpx.AsyncClient(base_url=self.url, timeout=30, **options)


@asynccontextmanager
async def serving_http(
    tmp_path: Path,
    *,
    http: Mapping[str, Any] | None = None,
    chat: Mapping[str, Any] | None = None,
    services: Sequence[object] = (),
    **options: Any,
) -> AsyncIterator[Served]:
    """Serve an agent with the chat service (and ``services``); ``http`` and ``chat`` add to its tables.

    Other keywords go to :func:`~tests.support.agents.running_agent`
    (``plugins=``, ``model=`` …).
    """
    service = ChatService()
    table = {**(chat or {}), "http": {"port": 0, **(http or {})}}
    everything = [service, *services]
    async with running_agent(tmp_path, services=everything, service={"chat": table}, **options) as agent:
        serving = asyncio.create_task(agent.serve())
        try:
            channel = await _listening(service, serving)
            assert channel.address is not None
            yield Served(agent, service, channel, channel.address)
        finally:
            agent.request_stop()
            await serving


async def _listening(service: ChatService, serving: asyncio.Task[None]) -> HttpChannel:
    """The HTTP channel once it listens; the serve task's error if serving ended first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline:
        if serving.done():
            serving.result()
            raise AssertionError("the agent stopped serving before the HTTP channel listened")
        channel = service.channels.get("http")
        if isinstance(channel, HttpChannel) and channel.ready.is_set():
            return channel
        await asyncio.sleep(0.01)
    raise AssertionError(f"the HTTP channel did not listen within {START_TIMEOUT}s")


@dataclass(frozen=True)
class Event:
    """One server-sent event: its ``event:`` name (``None`` if unnamed) and its ``data:`` text."""

    name: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


async def read_events(response: httpx.Response) -> AsyncIterator[Event]:
    """The server-sent events of a streamed response, as they arrive (comments skipped)."""
    name: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield Event(name, "\n".join(data))
            name, data = None, []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
