"""The console's two hosts: a running agent (``turnkit serve``) and a store alone (``turnkit console``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from turnkit_hookspecs import WebApp, unstructure

from .api import ConsoleApi
from .app import PUBLIC, console_app, plugin_listing
from .reader import ConsoleReader

if TYPE_CHECKING:
    from ..agent import Agent
    from ..manager import PluginManager
    from ..store import Store

#: Where the HTTP channel serves the console of a running agent.
PATH = "/console"
#: Who the turns the console's message box sends come from (``initiator_id``).
SENDER = "console"


def served_console(agent: Agent) -> WebApp:
    """The console of a running agent: its store, its plugins, a message box running its turns.

    The live stream ends when the agent is asked to stop, so that it never
    holds the HTTP server's shutdown.
    """

    async def send(session_id: str, text: str) -> Mapping[str, Any]:
        """Run the turn as any caller's (``Agent.send``); the answer is the turn result's JSON."""
        result = await agent.send(text, session_id, initiator_id=SENDER)
        document: dict[str, Any] = unstructure(result)
        return document

    api = ConsoleApi(
        ConsoleReader(agent.store),
        plugin_listing(agent.manager),
        sender=send,
        stopping=agent.stopping,
        agent_id=agent.id,
    )
    return WebApp(console_app(api), public=PUBLIC)


def read_only_console(
    store: Store, manager: PluginManager, token: str | None, stopping: asyncio.Event | None = None
) -> Starlette:
    """The console of a store alone: it reads, and refuses to send (409); live streams end when
    ``stopping`` is set."""
    api = ConsoleApi(ConsoleReader(store), plugin_listing(manager), stopping=stopping)
    return console_app(api, token)
