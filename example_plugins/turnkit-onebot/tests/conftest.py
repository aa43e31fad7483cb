"""Fixtures: an agent serving the onebot channel, and OneBot implementations connecting to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest
from onebot_emulator import SELF_ID, OneBotEmulator
from turnkit.testing_served import ServedAgent
from turnkit_onebot import DEFAULT_PATH

TOKEN = "a-token-for-the-tests"

if "onebot" not in {ep.name for ep in entry_points(group="turnkit.channels")}:
    pytest.exit('the onebot channel is not installed: pip install -e ".[test]" first', returncode=4)


def socket_url(served: ServedAgent, host: str = "127.0.0.1", path: str = DEFAULT_PATH) -> str:
    """The agent's OneBot socket, as an implementation's reverse WebSocket URL names it."""
    return f"ws://{host}:{served.port}{path}"


@pytest.fixture
def served(turnkit_served: ServedAgent) -> ServedAgent:
    """An agent serving ``http`` and ``onebot`` (token from the environment, short timeouts and lease)."""
    turnkit_served.env["ONEBOT_ACCESS_TOKEN"] = TOKEN
    turnkit_served.configure(
        service={
            "chat": {
                "channels": ["http", "onebot"],
                "channel": {"onebot": {"call_timeout": 2.0, "lease_ttl": 1.0}},
            }
        }
    )
    return turnkit_served


@pytest.fixture
def bots(served: ServedAgent) -> Iterator[Callable[..., OneBotEmulator]]:
    """Make OneBot implementations connecting to ``served`` (started; stopped when the test ends)."""
    made: list[OneBotEmulator] = []

    def make(self_id: int = SELF_ID, token: str | None = TOKEN, **options: Any) -> OneBotEmulator:
        bot = OneBotEmulator(socket_url(served), token, self_id, **options).start()
        made.append(bot)
        return bot

    yield make
    for bot in made:
        bot.stop()
