"""``turnkit mcp``: the agent served to one MCP client over stdin and stdout.

This is the command an MCP host (a desktop assistant, an editor, another
agent framework) is configured to start, as its subprocess::

    turnkit --config /path/to/turnkit.toml mcp

It runs the agent as ``turnkit serve`` does, with the chat service's
channels set to the ``mcp`` channel alone and its transport to ``stdio``;
the tools served are still those of ``[service.chat.channel.mcp] tools``
(nothing by default: the agent refuses to start serving nothing). Whatever
the agent logs or prints goes to stderr, so stdout carries the protocol
alone, and the agent stops when the client closes stdin (or on SIGTERM).
"""

from __future__ import annotations

import click


@click.command()
@click.pass_context
def mcp(ctx: click.Context) -> None:
    """Serve the agent to an MCP client over stdin and stdout, until the client closes stdin.

    The tools served are those [service.chat.channel.mcp] tools lists (service
    actions offered as tools, and send, which runs a turn); none are by default.
    The agent's other channels do not run; its log goes to stderr.
    """
    from turnkit.cli_serve import serve_agent

    stdio = {"channels": ["mcp"], "channel": {"mcp": {"transport": "stdio"}}}
    serve_agent(ctx.obj, {"chat": stdio})
