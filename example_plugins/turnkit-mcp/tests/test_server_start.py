"""What the ``mcp`` channel cannot serve stops ``turnkit serve`` at start, in one line saying why."""

from __future__ import annotations

from typing import Any

import pytest
from turnkit.testing_served import ServedAgent


@pytest.mark.parametrize(
    ("chat", "said"),
    [
        pytest.param(
            {"channels": ["http", "mcp"]},
            ["[service.chat.channel.mcp] tools: no tool to serve", "send", "memory.search"],
            id="no tools",
        ),
        pytest.param(
            {"channels": ["http", "mcp"], "channel": {"mcp": {"tools": ["send", "memory.serch"]}}},
            [
                "[service.chat.channel.mcp] tools: unknown tool 'memory.serch'",
                "did you mean 'memory.search'?",
            ],
            id="unknown tool",
        ),
        pytest.param(
            {"channels": ["mcp"], "channel": {"mcp": {"tools": ["send"]}}},
            ["'mcp' receives over HTTP", "add 'http' to channels"],
            id="http without the http channel",
        ),
    ],
)
def test_refused_at_start(turnkit_served: ServedAgent, chat: dict[str, Any], said: list[str]) -> None:
    turnkit_served.configure(service={"chat": chat})
    with pytest.raises(RuntimeError) as stopped:
        turnkit_served.start()
    message = str(stopped.value)
    assert message.startswith("turnkit serve exited with 1:"), message
    errors = [line for line in message.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in message, message  # one line
    for part in said:
        assert part in errors[0], message
