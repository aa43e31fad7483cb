"""At most five messages a second into one chat, as Feishu allows a bot.

Feishu limits what a bot sends into one chat to 5 per second (in a group,
shared by the group's bots) and refuses more with a rate-limit error. The
channel keeps under it instead of provoking the error: every send into a
chat takes a slot of :class:`ChatRateLimiter` first. The limit is a
sliding window: a send waits until fewer than ``rate`` sends into its chat
*finished* within the last ``per`` seconds; counting from when a send
finished, not from when it started, keeps the window at least as wide on
Feishu's side, whatever the network's delays. Sends into one chat go one at
a time (the replies of a chat's threads may be answered side by side). The
state is in memory, per process: several workers sharing one bot each keep
their own count, and the platform's rate-limit answer, retried with
backoff, covers what they add up to.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

#: Chats remembered before the idle ones are forgotten.
KEEP_CHATS = 1024


class ChatRateLimiter:
    """Slots for sends into a chat: at most ``rate`` finished in any ``per`` seconds."""

    def __init__(self, rate: int = 5, per: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.per = per
        self.clock = clock
        self._finished: dict[str, deque[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def slot(self, chat_id: str) -> AsyncIterator[None]:
        """Wait for the chat's turn and its window, send (the ``async with`` body), record when it ended."""
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            finished = self._finished.setdefault(chat_id, deque(maxlen=self.rate))
            if len(finished) == self.rate:
                wait = finished[0] + self.per - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                yield
            finally:
                finished.append(self.clock())
        if len(self._finished) > KEEP_CHATS:
            self._forget_idle()

    def _forget_idle(self) -> None:
        horizon = self.clock() - self.per
        for chat_id in [c for c, times in self._finished.items() if times and times[-1] < horizon]:
            if not self._locks[chat_id].locked():
                del self._finished[chat_id], self._locks[chat_id]
