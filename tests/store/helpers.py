"""Small builders shared by the store tests."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from turnkit.store import SessionRecord, Store
from turnkit_hookspecs import Message, SessionInfo

#: Opens one more store on the fixture's database (another process, or a restart).
Connect = Callable[[], Awaitable[Store]]


class Clock:
    """A fake ``time.time``: 1000.0, 1001.0, … one tick per reading."""

    def __init__(self) -> None:
        self._ticks = itertools.count(1000)

    def __call__(self) -> float:
        return float(next(self._ticks))


async def new_session(
    store: Store, session_id: str = "s1", agent_id: str = "agent", kind: str = "chat", **info: Any
) -> SessionRecord:
    """Create a session with an ``info`` built from keyword arguments."""
    return await store.create_session(SessionInfo(session_id, kind, **info), agent_id)


def user(text: str) -> Message:
    """A user message of one text block."""
    return Message.of("user", text)


def texts(stored: list[Any]) -> list[str]:
    """The text of each stored message, for comparing histories at a glance."""
    return [item.message.text for item in stored]
