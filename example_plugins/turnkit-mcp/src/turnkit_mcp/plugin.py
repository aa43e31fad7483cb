"""The plugin: the tools of the MCP servers in ``[plugin.mcp.servers]``, offered to the model.

Each server's tools are offered as ``NAME.tool`` in ``turn_tools`` while it
is connected, and a call of one is routed to that server in ``tool_call``
(after ``tool_authorize`` allowed it: the runtime asks only the plugin that
offered the tool). With no server configured the plugin offers nothing.
A server that cannot be reached when the agent starts does not stop it:
it is reported and tried again (:mod:`.servers`); a wrong configuration
does stop it, naming the key.
"""

from __future__ import annotations

import asyncio

from turnkit_hookspecs import ExecutionContext, Plugin, ToolCallBlock, ToolOutputBlock, ToolSpec, hookimpl

from .endpoints import endpoint_maker
from .servers import McpServer
from .settings import McpSettings


class McpPlugin(Plugin):
    """Offers the tools of the configured MCP servers and runs their calls; see the module docstring."""

    settings_class = McpSettings
    settings: McpSettings

    def __init__(self) -> None:
        self._servers: dict[str, McpServer] = {}

    async def configure(self, context: ExecutionContext) -> None:
        """Check every server's settings against the environment, then connect to all of them at once.

        Returns when each server is connected or its first attempt failed
        (within its ``start_timeout``).
        """
        super().configure(context)
        logger = context.logger.getChild("mcp")
        base_dir = context.config.base_dir
        makers = {
            name: endpoint_maker(name, settings, context.env, base_dir, logger)
            for name, settings in self.settings.servers.items()
        }
        self._servers = {
            name: McpServer(name, self.settings.servers[name], maker, logger)
            for name, maker in makers.items()
        }
        await asyncio.gather(*(server.start() for server in self._servers.values()))

    async def close(self) -> None:
        """Disconnect from every server and end the stdio servers' process groups."""
        servers, self._servers = self._servers, {}
        await asyncio.gather(*(server.close() for server in servers.values()))

    def tools(self) -> tuple[ToolSpec, ...]:
        """The tools on offer now: the connected servers', as their ``allow`` and ``deny`` filter them."""
        return tuple(tool for server in self._servers.values() for tool in server.tools)

    @hookimpl
    def turn_tools(self, tools: tuple[ToolSpec, ...]) -> list[ToolSpec] | None:
        """Add the servers' tools to those on offer."""
        mine = self.tools()
        return [*tools, *mine] if mine else None

    @hookimpl
    async def tool_call(self, call: ToolCallBlock) -> ToolOutputBlock | None:
        """Run a call of ``NAME.tool`` on server NAME."""
        server = self._servers.get(call.name.partition(".")[0])
        return None if server is None else await server.call(call)
