"""Streaming a turn's reply to whoever asked for it (``session.turn(..., stream=listener)``).

The orchestrator hands every ``turn_reply`` call a :class:`TurnStream`. With
no listener, writing returns at once, so a streaming model costs nothing
extra on an unwatched turn. With one, each chunk goes through the
``turn_chunk`` pipeline and then to the listener. A listener that fails (a
client that went away) is dropped with a log line: the turn still completes
and is stored, since the stored reply is what matters.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from turnkit_hookspecs import ChunkListener, TurnInfo

if TYPE_CHECKING:
    from .extension import SessionContexts
    from .points import Points

log = logging.getLogger("turnkit.streaming")


class TurnStream:
    """The ``stream`` argument of ``turn_reply`` (implements ``ReplyStream``)."""

    __slots__ = ("_contexts", "_listener", "_points", "_turn", "written")

    def __init__(
        self,
        points: Points,
        contexts: SessionContexts,
        turn: TurnInfo,
        listener: ChunkListener | None,
    ) -> None:
        self._points = points
        self._contexts = contexts
        self._turn = turn
        self._listener = listener
        #: How many chunks reached the listener.
        self.written = 0

    @property
    def active(self) -> bool:
        """Whether a listener is waiting for chunks."""
        return self._listener is not None

    async def write(self, text: str) -> None:
        """Pass ``text`` through ``turn_chunk`` to the listener, if there is one."""
        listener = self._listener
        if listener is None or not text:
            return
        text = await self._points.turn_chunk(self._contexts, self._turn, text)
        if not text:
            return
        try:
            await listener(text)
        except Exception:
            log.warning("the listener of turn %s failed; streaming stops", self._turn.turn_id, exc_info=True)
            self._listener = None
            return
        self.written += 1
