"""``[plugin.mcp]``: the MCP servers whose tools the model is offered, and how each is reached.

A server is a table ``[plugin.mcp.servers.NAME]``; NAME prefixes its tools
(``NAME.tool``), so it is a short identifier without dots. A server is
reached either by a command (stdio: ``command``, ``args``, ``env``, ``cwd``)
or by a URL (streamable HTTP: ``url``, ``headers_env``); a table mixing the
two, or giving neither, is refused, naming the key, so that a typo stops
the agent instead of silently offering nothing.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
from attrs.validators import gt, le

#: A server's name: it becomes the prefix of its tools' names, so no dots, spaces or symbols.
SERVER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
#: An environment variable's name, as a shell would accept it.
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: An HTTP header's name (RFC 9110 token characters).
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: The longest time setting, in seconds: a larger one is a typo that would never come round.
DAY = 86_400.0


def _variable_names(_: object, attribute: attrs.Attribute[list[str]], value: list[str]) -> None:
    for name in value:
        if not VARIABLE_NAME.fullmatch(name):
            raise ValueError(f"{attribute.name}: {name!r} is not an environment variable's name")


def _headers(_: object, attribute: attrs.Attribute[dict[str, str]], value: dict[str, str]) -> None:
    for header, variable in value.items():
        if not HEADER_NAME.fullmatch(header):
            raise ValueError(f"{attribute.name}: {header!r} is not an HTTP header's name")
        if not VARIABLE_NAME.fullmatch(variable):
            raise ValueError(
                f"{attribute.name}: {header} = {variable!r} is not an environment variable's name"
            )


def _http_url(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is None:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{attribute.name}: {value!r} is not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{attribute.name}: give credentials with headers_env, not in the URL")


def _not_blank(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError(f"{attribute.name}: must not be blank")


@attrs.frozen
class ServerSettings:
    """``[plugin.mcp.servers.NAME]``: one MCP server.

    stdio: ``command`` is run with ``args`` (no shell), in ``cwd`` (relative
    to the configuration file's folder; unset, that folder), with a minimal
    environment: ``PATH``, ``HOME`` and ``LANG`` from the agent's, plus the
    variables named in ``env`` (names only: values come from the agent's
    environment, so secrets stay out of the file). HTTP (streamable): ``url``,
    with the headers of ``headers_env`` (header name → the environment
    variable holding its value, read at start).

    ``allow`` lists the server's tools offered (unset: all of them), ``deny``
    those never offered. ``timeout`` bounds each call in seconds;
    ``start_timeout`` bounds starting, connecting and listing the tools.
    """

    command: str | None = attrs.field(default=None, validator=_not_blank)
    args: list[str] = attrs.field(factory=list)
    env: list[str] = attrs.field(factory=list, validator=_variable_names)
    cwd: str | None = attrs.field(default=None, validator=_not_blank)
    url: str | None = attrs.field(default=None, validator=_http_url)
    headers_env: dict[str, str] = attrs.field(factory=dict, validator=_headers)
    allow: list[str] | None = None
    deny: list[str] = attrs.field(factory=list)
    timeout: float = attrs.field(default=30.0, validator=[gt(0), le(DAY)])
    start_timeout: float = attrs.field(default=30.0, validator=[gt(0), le(DAY)])

    def __attrs_post_init__(self) -> None:
        if self.command is not None and self.url is not None:
            raise ValueError("give command (a stdio server) or url (an HTTP server), not both")
        if self.command is None and self.url is None:
            raise ValueError("give command (a stdio server) or url (an HTTP server)")
        if self.command is not None and self.headers_env:
            raise ValueError("headers_env: only an HTTP server (url) takes it")
        stdio_only = {"args": self.args, "env": self.env, "cwd": self.cwd}
        for key, value in stdio_only.items():
            if self.url is not None and value:
                raise ValueError(f"{key}: only a stdio server (command) takes it")

    @property
    def transport(self) -> Literal["stdio", "http"]:
        """How the server is reached."""
        return "stdio" if self.command is not None else "http"

    def offers(self, tool: str) -> bool:
        """Whether the server's tool ``tool`` may be offered to the model (``allow`` and ``deny``)."""
        return (self.allow is None or tool in self.allow) and tool not in self.deny


def _server_names(_: object, attribute: attrs.Attribute[dict[str, Any]], value: dict[str, Any]) -> None:
    for name in value:
        if not SERVER_NAME.fullmatch(name):
            raise ValueError(
                f"{attribute.name}: {name!r} is not a server name (a letter, then up to 31 letters, digits,"
                " '_' or '-'; it prefixes the server's tools, NAME.tool)"
            )


@attrs.frozen
class McpSettings:
    """The plugin's table of the agent's configuration: ``[plugin.mcp.servers.NAME]`` per server.

    With no server, the plugin offers nothing.
    """

    servers: dict[str, ServerSettings] = attrs.field(factory=dict, validator=_server_names)
