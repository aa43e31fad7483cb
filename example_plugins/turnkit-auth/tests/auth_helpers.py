"""What the tests share: the plugin loaded as the runtime loads it, and an in-process chat channel.

The ``turnkit_agent`` fixture comes from the runtime (``turnkit.testing``,
a ``pytest11`` plugin); nothing here stands in for the runtime or the chat
service.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

from turnkit.testing import AgentHarness, entry_point_plugin
from turnkit_hookspecs import ChannelMessage, Message, Principal
from turnkit_services.chat import Channel, ChatService
from turnkit_services.chat.channel import ChatOutcome

PROJECT_DIR = Path(__file__).resolve().parents[1]
GROUP = "turnkit.plugins"
NAME = "auth"


def declared_entry_point() -> EntryPoint:
    """The entry point ``pyproject.toml`` declares, as an installed wheel would expose it."""
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return EntryPoint(NAME, project["entry-points"][GROUP][NAME], GROUP)


def load_plugin() -> Any:
    """A fresh plugin object made the way the runtime's discovery makes it: load, then instantiate a class."""
    return entry_point_plugin(PROJECT_DIR, NAME)


class Inbox(Channel):
    """A chat channel whose transport is a list: ``deliver`` appends what the user would read."""

    name = "inbox"

    def __init__(self, chat: Any) -> None:
        super().__init__(chat, None)
        self.delivered: list[str] = []

    async def deliver(self, inbound: ChannelMessage, parts: Sequence[str]) -> None:
        self.delivered.extend(parts)


def said(text: str, user: str, *, name: str | None = None, channel: str = "inbox") -> ChannelMessage:
    """A message from ``user`` on ``channel``, in a chat of its own."""
    return ChannelMessage(
        channel, f"chat-{user}", Principal(channel, user, name=name), Message.of("user", text)
    )


def chat_agent(harness: AgentHarness, settings: Mapping[str, Any]) -> tuple[ChatService, Inbox]:
    """Shape ``harness`` with the chat service and the plugin; start it; return the service and a channel."""
    harness.add_service("chat")
    harness.register(load_plugin(), NAME, settings=settings)
    chat = harness.agent.services["chat"]
    return chat, Inbox(chat)


def handle(harness: AgentHarness, chat: ChatService, channel: Inbox, inbound: ChannelMessage) -> ChatOutcome:
    """Hand one channel message to the real chat service, on the agent's loop."""
    return harness.run(chat.handle(inbound, channel))
