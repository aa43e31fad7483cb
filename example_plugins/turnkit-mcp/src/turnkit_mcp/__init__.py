"""Model Context Protocol for turnkit: MCP servers' tools on offer to the model.

Only the plugin is imported here; the channel (the agent served as an MCP server) is loaded
by its own entry point, so an agent that only uses MCP servers never imports the server side.
"""

from turnkit_mcp.plugin import McpPlugin

__all__ = ["McpPlugin"]
