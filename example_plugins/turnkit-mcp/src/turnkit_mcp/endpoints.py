"""From a server's settings to what connects to it, once per connection: a process or an HTTP endpoint.

Everything a connection needs from the agent (the environment's values, the
folder relative paths start from) is read here, once, when the plugin
starts: a header whose variable is missing, or a ``cwd`` that is no folder,
is a wrong configuration and stops the start, naming the key. A server
that merely fails to start (its program is missing, it crashes) is the
supervisor's to report and retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from mcp.client import Transport

from .settings import ServerSettings
from .stdio import Launch, ServerProcess, minimal_env
from .streamable import HttpEndpoint


class Endpoint(Protocol):
    """One connection's worth of a server."""

    def transport(self) -> Transport:
        """The SDK transport: entering it starts the server or connects, leaving it ends that."""

    def describe_exit(self) -> str:
        """How the server went away, in words (``exited with status 3: …``)."""


#: Makes a fresh endpoint; its argument is called when the server goes away by itself.
EndpointMaker = Callable[[Callable[[], None]], Endpoint]


def endpoint_maker(
    name: str, settings: ServerSettings, env: Mapping[str, str], base_dir: str, logger: logging.Logger
) -> EndpointMaker:
    """How to reach server ``name``; raises ``ValueError`` naming the key for a wrong configuration."""
    if settings.command is not None:
        folder = (Path(base_dir) / Path(settings.cwd or ".").expanduser()).resolve()
        if not folder.is_dir():
            raise ValueError(f"servers.{name}.cwd: {folder} is not a folder")
        launch = Launch((settings.command, *settings.args), minimal_env(env, settings.env), str(folder))
        server_log = logger.getChild(name)
        return lambda ended: ServerProcess(launch, server_log, ended)
    assert settings.url is not None  # the settings hold a command or a URL
    headers: dict[str, str] = {}
    for header, variable in settings.headers_env.items():
        value = env.get(variable)
        if not value:
            raise ValueError(
                f"servers.{name}.headers_env: {header} is read from the environment variable {variable},"
                " which is not set (or empty)"
            )
        headers[header] = value
    url = settings.url
    return lambda ended: HttpEndpoint(url, headers, ended)
