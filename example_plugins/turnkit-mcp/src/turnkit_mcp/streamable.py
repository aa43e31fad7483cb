"""A streamable-HTTP MCP server: the SDK's transport, sending the headers ``headers_env`` names.

The header values are read from the agent's environment when the plugin
starts and live only in the HTTP client made for each connection: they are
never logged, stored, or put in an error message.

A server that restarts forgets its sessions and answers HTTP 404 to a
request naming one; the protocol says the client must then start a new
session. The SDK turns that answer into an error of the one request, so the
endpoint watches the responses itself and reports the session as ended,
and the owner connects again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import httpx2
from mcp.client import Transport
from mcp.client._transport import TransportStreams  # the SDK names it in a private module only
from mcp.client.streamable_http import streamable_http_client

#: Seconds to connect, and to wait for a read (a server may keep its event stream quiet that long).
CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 300.0
#: The header carrying the session the server gave at ``initialize``.
SESSION_HEADER = "mcp-session-id"


class HttpEndpoint:
    """One connection to an HTTP server; :meth:`transport` opens it and closes it."""

    def __init__(self, url: str, headers: Mapping[str, str], ended: Callable[[], None]) -> None:
        """``ended`` is called when the server has forgotten the session (it restarted)."""
        self.url = url
        self._headers = dict(headers)
        self._ended = ended
        self._forgotten = False

    def describe_exit(self) -> str:
        """How the connection ended, in words (a server that went away shows as a failed request)."""
        if self._forgotten:
            return "ended the session (HTTP 404; it may have restarted)"
        return "closed the connection"

    def transport(self) -> Transport:
        """The SDK transport (connect by entering it)."""
        return self._run()

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[TransportStreams]:
        timeout = httpx2.Timeout(CONNECT_TIMEOUT, read=READ_TIMEOUT)
        hooks = {"response": [self._watch]}
        async with (
            httpx2.AsyncClient(headers=self._headers, timeout=timeout, event_hooks=hooks) as http,
            streamable_http_client(self.url, http_client=http) as streams,
        ):
            yield streams

    async def _watch(self, response: httpx2.Response) -> None:
        if response.status_code == 404 and SESSION_HEADER in response.request.headers and not self._forgotten:
            self._forgotten = True
            self._ended()
