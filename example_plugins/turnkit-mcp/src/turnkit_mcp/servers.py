"""One configured MCP server, kept connected: its tools on offer, and the calls routed to it.

A task of its own (started at the plugin's ``configure``, cancelled at its
``close``) holds the connection, because the SDK's client must be entered
and left by one task. It connects (``initialize``, then every page of
``tools/list``) within ``start_timeout``, offers the tools, lists them again
on ``notifications/tools/list_changed``, and when the server goes away (it
exits, the connection breaks, it fails to start at all) withdraws the tools,
logs one warning naming the server, and connects again after a delay that
starts at :data:`FIRST_RETRY` and doubles up to :data:`LAST_RETRY`; a
connection that lasted :data:`STABLE` seconds starts the delays over, so
that a server crashing right after each start is not restarted every second.

Calls run in the turn's task, each within the server's ``timeout``; leaving
the call (on time-out or cancellation) makes the SDK tell the server it is
cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio
import mcp_types
from mcp.client import Client, IncomingMessage
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from turnkit_hookspecs import ToolCallBlock, ToolOutputBlock, ToolSpec, unstructure

from .endpoints import EndpointMaker
from .results import tool_output
from .settings import ServerSettings

#: Seconds before the first attempt to connect again, and the longest wait between attempts.
FIRST_RETRY = 1.0
LAST_RETRY = 60.0
#: Seconds a connection must last for the next loss to be retried after :data:`FIRST_RETRY` again.
STABLE = 60.0
#: The most pages of ``tools/list`` read: a server paging for ever must not hang the start.
MAX_PAGES = 100


def _client_info() -> mcp_types.Implementation:
    try:
        return mcp_types.Implementation(name="turnkit-mcp", version=version("turnkit-mcp"))
    except PackageNotFoundError:  # run from a source tree
        return mcp_types.Implementation(name="turnkit-mcp", version="0")


class McpServer:
    """Server ``name`` as the plugin sees it: its :attr:`tools`, :meth:`call`, :meth:`start`, :meth:`close`.

    ``make_endpoint`` makes what one connection goes through (a process, an
    HTTP endpoint); ``logger`` gets a warning per connection lost or failed.
    """

    def __init__(
        self, name: str, settings: ServerSettings, make_endpoint: EndpointMaker, logger: logging.Logger
    ) -> None:
        self.name = name
        self.settings = settings
        self._make_endpoint = make_endpoint
        self._logger = logger
        self._client: Client | None = None
        #: The tools on offer, by the server's own names; empty while not connected.
        self._tools: dict[str, ToolSpec] = {}
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._wake = asyncio.Event()
        self._relist = False
        #: Why the connection is to be dropped ("" : the endpoint will say), or ``None``.
        self._lost: str | None = None

    @property
    def tools(self) -> tuple[ToolSpec, ...]:
        """The server's tools offered to the model now (none while it is not connected)."""
        return tuple(self._tools.values())

    async def start(self) -> None:
        """Start keeping the server connected; return once the first attempt has succeeded or failed."""
        task = asyncio.create_task(self._keep_connected(), name=f"mcp server {self.name}")
        task.add_done_callback(self._stopped)
        self._task = task
        attempted = asyncio.create_task(self._attempted.wait())
        await asyncio.wait((task, attempted), return_when=asyncio.FIRST_COMPLETED)
        attempted.cancel()

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """Report the connection's task ending otherwise than by :meth:`close` (a bug: never silently)."""
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            self._logger.error("mcp server %s is no longer kept connected: %s", self.name, _describe(failure))

    async def close(self) -> None:
        """Disconnect and end the server (a stdio server's process group with it)."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def call(self, call: ToolCallBlock) -> ToolOutputBlock:
        """Run ``call`` (a call of ``NAME.tool``) on the server, within its ``timeout``."""
        tool = call.name.removeprefix(f"{self.name}.")
        client = self._client
        if client is None:
            return _error(call, f"server {self.name} is not connected; it is being started again")
        if tool not in self._tools:
            return _error(call, f"server {self.name} offers no tool {tool!r}")
        timeout = self.settings.timeout
        try:
            with anyio.fail_after(timeout):
                result = await client.call_tool(tool, _arguments(call.args))
        except TimeoutError:
            return _error(call, f"{call.name} timed out after {timeout:g}s")
        except MCPError as exc:
            return _error(call, self._refusal(client, call.name, exc))
        except ValidationError as exc:
            return _error(call, f"server {self.name} answered {call.name} with an invalid result: {exc}")
        return tool_output(call.tool_call_id, result)

    def _refusal(self, client: Client, name: str, exc: MCPError) -> str:
        """What the model reads of a call the server did not answer; a lost connection is dropped.

        Only ``client``'s connection is: when the call returns, another may have replaced it.
        """
        if exc.code == mcp_types.CONNECTION_CLOSED:
            if client is self._client:
                self._lose("")
            if self.settings.transport == "stdio":
                gone, back = "exited", "started"
            else:
                gone, back = "closed the connection", "connected"
            return f"server {self.name} {gone} during the call to {name}; it is {back} again for later turns"
        return f"server {self.name} refused the call to {name}: {exc.message}"

    # ------------------------------------------------------------------ the connection's task

    def _lose(self, why: str) -> None:
        """Have the connection dropped and made again; ``why`` is logged ("": the endpoint's words)."""
        if self._lost is None:
            self._lost = why
        self._wake.set()

    async def _on_message(self, message: IncomingMessage) -> None:
        """The SDK hands over notifications here: a changed tool list is listed again."""
        if isinstance(message, mcp_types.ToolListChangedNotification):
            self._relist = True
            self._wake.set()
        elif isinstance(message, Exception):
            self._logger.warning("mcp server %s sent something that is not a message: %s", self.name, message)

    async def _keep_connected(self) -> None:
        delay = FIRST_RETRY
        while True:
            began = time.monotonic()
            was_up, why = await self._connect()
            self._attempted.set()
            if was_up:
                if time.monotonic() - began >= STABLE:
                    delay = FIRST_RETRY
                self._logger.warning(
                    "mcp server %s %s; its tools are withdrawn until it is connected again (in %gs)",
                    self.name,
                    why,
                    delay,
                )
            else:
                self._logger.warning("mcp server %s %s; trying again in %gs", self.name, why, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY)

    async def _connect(self) -> tuple[bool, str]:
        """One connection, from start to loss: whether it was up, and why it ended (never by itself)."""
        self._lost, self._relist = None, False
        self._wake.clear()
        endpoint = self._make_endpoint(lambda: self._lose(""))
        up, why = False, ""
        try:
            with anyio.CancelScope() as starting:
                starting.deadline = anyio.current_time() + self.settings.start_timeout
                async with Client(
                    endpoint.transport(),
                    mode="legacy",
                    cache=None,
                    message_handler=self._on_message,
                    client_info=_client_info(),
                ) as client:
                    await self._list(client)
                    starting.deadline = math.inf
                    up = True
                    self._client = client
                    self._attempted.set()
                    self._logger.info(
                        "mcp server %s: connected, %d tool(s) offered", self.name, len(self._tools)
                    )
                    why = await self._serve(client)
            if starting.cancelled_caught:
                return False, f"did not start within {self.settings.start_timeout:g}s"
        except Exception as exc:
            return up, f"{'failed' if up else 'could not start'}: {_describe(exc)}"
        finally:
            self._client = None
            self._tools = {}
        return up, why or endpoint.describe_exit()

    async def _serve(self, client: Client) -> str:
        """Wait for the connection's end, listing the tools again whenever the server says they changed."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._lost is not None:
                return self._lost
            if self._relist:
                self._relist = False
                try:
                    with anyio.fail_after(self.settings.start_timeout):
                        await self._list(client)
                except TimeoutError:
                    return f"did not list its tools within {self.settings.start_timeout:g}s"
                self._logger.info("mcp server %s: tools changed, %d offered", self.name, len(self._tools))

    async def _list(self, client: Client) -> None:
        """Read every page of the server's tools; offer those ``allow`` and ``deny`` let through."""
        listed: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            listed += page.tools
            cursor = page.next_cursor
            if cursor is None:
                break
        else:
            raise RuntimeError(f"listed more than {MAX_PAGES} pages of tools")
        self._tools = {
            tool.name: ToolSpec(
                f"{self.name}.{tool.name}", tool.description or tool.title or "", tool.input_schema
            )
            for tool in listed
            if self.settings.offers(tool.name)
        }


def _arguments(args: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments as plain JSON data (the contract hands them over deep-frozen)."""
    plain: dict[str, Any] = unstructure(args)
    return plain


def _error(call: ToolCallBlock, text: str) -> ToolOutputBlock:
    return ToolOutputBlock(call.tool_call_id, text, is_error=True)


def _describe(exc: BaseException) -> str:
    """An exception in one line; of a group (the SDK's task groups), its first leaf."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
