"""The ``[service.chat.channel.mcp]`` table: what the agent serves to MCP clients, and over what.

The chat service structures the table into :class:`McpServerSettings` when
the agent starts serving; a key not declared here, a wrong type or a value
the validators refuse stops the start with the key's path. Whether the
listed tools exist is checked later, by the channel, because only the
running agent knows its services' actions.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs

#: The table's name, as error messages quote it.
TABLE = "[service.chat.channel.mcp]"
#: Where MCP clients reach the agent over HTTP, on the ``http`` channel's server.
DEFAULT_PATH = "/mcp"
#: How MCP clients reach the agent: the HTTP channel's server, or the process's stdin and stdout.
Transport: TypeAlias = Literal["http", "stdio"]


def _route_path(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise ValueError(f"{attribute.name} must be a URL path starting with '/', got {value!r}")


def _names(_: object, attribute: attrs.Attribute[list[str]], value: list[str]) -> None:
    blank = [name for name in value if not name.strip()]
    if blank:
        raise ValueError(f"{attribute.name} must name tools, got {blank[0]!r}")


@attrs.frozen
class McpServerSettings:
    """Which of the agent's tools MCP clients may call, and how they connect.

    ``tools`` lists what is exposed, each a service action offered to the
    model as a tool (``memory.search``) or ``send``, which runs a chat turn
    and answers with the agent's reply. Nothing is exposed by default, and
    an agent serving the channel without tools does not start: a server
    that serves nothing is worse than none.

    ``transport`` is ``http`` (the endpoint at ``path`` on the ``http``
    channel's server, behind its bearer token) or ``stdio`` (MCP over the
    process's stdin and stdout, for a client that starts the agent itself;
    the agent stops when the client closes stdin).
    """

    tools: list[str] = attrs.field(factory=list, validator=_names)
    transport: Transport = "http"
    path: str = attrs.field(default=DEFAULT_PATH, validator=_route_path)
