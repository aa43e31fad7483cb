"""What the tests share about the agent: the key they use, loading the plugin, listening to a turn."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path

from turnkit.testing import AgentHarness
from turnkit_hookspecs import TurnResult

PROJECT = Path(__file__).resolve().parents[1]
#: The variable the tests' agents read the key from, and the key.
KEY_ENV = "TURNKIT_OPENAI_TEST_KEY"
KEY = "sk-test-0123456789"

#: The ``use_openai`` fixture: registers the plugin; keyword arguments override its settings.
UseOpenAI = Callable[..., object]


def entry_point() -> EntryPoint:
    """The plugin's entry point as ``pyproject.toml`` declares it (installed or not)."""
    declared = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["entry-points"]
    [(name, value)] = declared["turnkit.plugins"].items()
    return EntryPoint(name, value, "turnkit.plugins")


def listen(turnkit_agent: AgentHarness, text: str) -> tuple[list[str], TurnResult]:
    """Send ``text`` with a listener; the chunks it got, in order, and the turn's result."""
    chunks: list[str] = []

    async def listener(piece: str) -> None:
        chunks.append(piece)

    result = turnkit_agent.run(turnkit_agent.agent.send(text, stream=listener))
    return chunks, result
