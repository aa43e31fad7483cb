"""Fixtures: the loopback server, and the plugin loaded from its entry point into the kit's agent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agents import KEY, KEY_ENV, PROJECT, UseOpenAI, entry_point
from loopback import ChatServer, running_server
from turnkit.testing import AgentHarness, entry_point_plugin


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A Chat Completions server on 127.0.0.1 with nothing scripted yet."""
    yield from running_server()


@pytest.fixture
def use_openai(
    turnkit_agent: AgentHarness, chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> UseOpenAI:
    """Register the plugin as the runtime loads it, pointed at ``chat_server`` with the test key.

    Keyword arguments override its ``[plugin.openai]`` settings; ``None`` leaves one out.
    """
    monkeypatch.setenv(KEY_ENV, KEY)

    def use(**overrides: Any) -> object:
        settings: dict[str, Any] = {
            "base_url": chat_server.url,
            "model": "test-model",
            "api_key_env": KEY_ENV,
            "backoff": 0.001,
            **overrides,
        }
        point = entry_point()
        plugin = entry_point_plugin(PROJECT, point.name)
        turnkit_agent.register(
            plugin, point.name, settings={k: v for k, v in settings.items() if v is not None}
        )
        return plugin

    return use
