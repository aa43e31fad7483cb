"""The ``mcp`` channel: the agent served to MCP clients, over HTTP or over stdin and stdout.

What is served is :class:`~turnkit_mcp.server.AgentServer`: the tools
``[service.chat.channel.mcp] tools`` lists. How clients reach it is the
``transport``:

- ``http``: the MCP streamable-HTTP endpoint at ``path``, mounted on the
  ``http`` channel's server, behind its bearer token like the HTTP API
  (the clients are the agent's own, which can send it). The SDK's session
  manager holds the clients' sessions; it runs for as long as the channel
  runs, and a request that arrives before it does waits for it. On a
  loopback address the ``Host`` and ``Origin`` headers must be loopback
  ones too, so that a web page cannot reach the endpoint through DNS
  rebinding.
- ``stdio``: MCP over the process's stdin and stdout, for a client that
  starts the agent as its subprocess. While it serves, whatever else the
  process writes to stdout goes to stderr, so the protocol stays clean.
  :meth:`McpChannel.run` returns when the client closes stdin, and the
  agent stops with it.

A ``send`` turn runs in a task of the channel's, not of the client's
request: a client that gives up on a call (a timeout, a cancel) does not
cut the turn short, and the agent stopping gives running turns the HTTP
API's ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send
from turnkit_hookspecs import ChannelMessage
from turnkit_services.chat import Channel, ChatOutcome, ChatPath, LineReader

from .server import AgentServer
from .server_settings import McpServerSettings

if TYPE_CHECKING:
    import anyio

#: ``Host`` and ``Origin`` values accepted on a loopback address (any port).
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


class McpChannel(Channel):
    """Serves the agent's chosen tools to MCP clients; see the module docstring."""

    name = "mcp"
    settings_class = McpServerSettings
    #: A reply travels whole in one tool result: never split.
    max_length = sys.maxsize
    #: MCP clients ask; the agent answers. Nothing is sent to them unasked.
    can_push = False
    #: The clients are the agent's own: they carry its bearer token, like the HTTP API's.
    routes_need_token = True
    settings: McpServerSettings

    def __init__(self, chat: ChatPath, settings: McpServerSettings) -> None:
        super().__init__(chat, settings)
        self.server = AgentServer(chat, self, settings.tools)
        self._sessions: StreamableHTTPSessionManager | None = None
        self._running = asyncio.Event()
        self._turns: set[asyncio.Task[ChatOutcome]] = set()
        if settings.transport == "http":
            self._sessions = StreamableHTTPSessionManager(
                self.server.server, security_settings=_security(chat.settings.http.host)
            )

    def routes(self) -> Sequence[BaseRoute]:
        """The streamable-HTTP endpoint at ``path`` (none over stdio)."""
        if self._sessions is None:
            return ()
        return [Route(self.settings.path, _Endpoint(self._sessions, self._running))]

    async def run(self) -> None:
        """Serve until cancelled (HTTP), or until the client closes stdin (stdio); then finish the turns."""
        try:
            if self._sessions is None:
                await self._serve_stdio()
                return
            async with self._sessions.run():
                self._running.set()
                try:
                    await asyncio.Event().wait()
                finally:
                    self._running.clear()
        finally:
            await self._finish_turns()

    async def turn(self, inbound: ChannelMessage) -> ChatOutcome:
        """Run ``inbound`` through the chat path, in a task of the channel's, and wait for the outcome.

        A client that cancels its call, or goes away, does not cut the turn
        short: it completes and is stored all the same (a failure is logged
        here, whoever is still waiting).
        """
        task = asyncio.create_task(self.chat.handle(inbound, self), name=f"mcp turn of {inbound.chat_id}")
        self._turns.add(task)
        task.add_done_callback(self._turn_done)
        return await asyncio.shield(task)

    def _turn_done(self, task: asyncio.Task[ChatOutcome]) -> None:
        self._turns.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.chat.context.logger.error(
                "mcp channel: handling a message failed", exc_info=task.exception()
            )

    async def _finish_turns(self) -> None:
        """Give running turns ``[service.chat.http] shutdown_timeout`` to finish, like the HTTP API's."""
        if not self._turns:
            return
        _, pending = await asyncio.wait(self._turns, timeout=self.chat.settings.http.shutdown_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _serve_stdio(self) -> None:
        # The SDK's own stdin reader cannot be cancelled: a stop (SIGTERM) would wait for the client's
        # next line. Daemon threads read it here instead, so a stop never waits.
        lines = _Lines(LineReader(sys.stdin.fileno(), tty=False))
        server = self.server.server
        async with stdio_server(stdin=cast("anyio.AsyncFile[str]", lines)) as (read, write):
            await server.run(read, write, server.create_initialization_options())


class _Endpoint:
    """The session manager as an ASGI app that waits, for a request arriving early, until it runs.

    The ``http`` channel may accept a connection before this channel's
    :meth:`McpChannel.run` has started the session manager.
    """

    def __init__(self, sessions: StreamableHTTPSessionManager, running: asyncio.Event) -> None:
        self.sessions = sessions
        self.running = running

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.running.wait()
        await self.sessions.handle_request(scope, receive, send)


class _Lines:
    """stdin's lines as the SDK's stdio transport reads them: an async iterator, line ends kept."""

    def __init__(self, reader: LineReader) -> None:
        self.reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        line = await self.reader.read("")
        if line is None:
            raise StopAsyncIteration
        return line + "\n"


def _security(host: str) -> TransportSecuritySettings:
    """DNS-rebinding protection on a loopback address; elsewhere the bearer token guards the endpoint."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(allowed_hosts=LOOPBACK_HOSTS, allowed_origins=LOOPBACK_ORIGINS)
