"""The bots' sockets in this worker: API calls over them, answers matched by ``echo``.

On a universal connection the implementation's answers to API calls
arrive among its events; each call carries a fresh ``echo`` and waits for
the frame that brings it back. A call fails (:class:`CallFailed`) when the
answer says so, when none comes within the timeout, or when the socket
closes first; the channel's caller (the inbox) then tries again later.

One bot, one socket: a new connection for the same account replaces the
old one, which is closed and whose waiting calls fail at once, since their
answers can no longer arrive. The sockets are this process's: another
worker of the same agent cannot send over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.websockets import WebSocket


class CallFailed(Exception):
    """An API call that did not succeed (refused, unanswered, or its socket gone)."""


class BotConnection:
    """The socket of the bot ``self_id``: sends API calls and matches their answers."""

    def __init__(self, self_id: str, websocket: WebSocket) -> None:
        self.self_id = self_id
        self.websocket = websocket
        self._pending: dict[str, asyncio.Future[Mapping[str, Any]]] = {}
        self._sending = asyncio.Lock()
        #: Why the connection ended, once it has.
        self._ended: str | None = None

    async def call(self, action: str, params: Mapping[str, Any], timeout: float) -> Mapping[str, Any]:
        """Call ``action`` and return the implementation's answer; :class:`CallFailed` if it fails."""
        if self._ended is not None:
            raise CallFailed(f"{action}: the connection of bot {self.self_id} is closed ({self._ended})")
        echo = f"turnkit-{uuid.uuid4().hex}"
        answer: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[echo] = answer
        try:
            frame = json.dumps({"action": action, "params": params, "echo": echo}, ensure_ascii=False)
            try:
                async with self._sending:  # one frame at a time, whichever chat sends
                    await self.websocket.send_text(frame)
            except Exception as exc:  # the socket closed under us
                raise CallFailed(f"{action}: the connection of bot {self.self_id} is gone: {exc!r}") from exc
            try:
                async with asyncio.timeout(timeout):
                    response = await answer
            except TimeoutError:
                raise CallFailed(f"{action}: bot {self.self_id} did not answer within {timeout:g}s") from None
        finally:
            self._pending.pop(echo, None)
        if not succeeded(response):
            why = response.get("wording") or response.get("message") or ""
            raise CallFailed(
                f"{action} refused by bot {self.self_id}: status {response.get('status')!r},"
                f" retcode {response.get('retcode')!r}" + (f": {why}" if why else "")
            )
        return response

    def answered(self, frame: Mapping[str, Any]) -> bool:
        """Hand ``frame`` to the call whose ``echo`` it carries; ``False`` if no call waits for it."""
        echo = frame.get("echo")
        waiting = self._pending.get(echo) if isinstance(echo, str) else None
        if waiting is None or waiting.done():
            return False
        waiting.set_result(frame)
        return True

    def end(self, reason: str) -> None:
        """Mark the connection ended: the calls waiting on it fail now, later ones at once."""
        self._ended = self._ended or reason
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_exception(CallFailed(f"the connection of bot {self.self_id} closed ({reason})"))

    async def close(self, code: int, reason: str) -> None:
        """End the connection and close its socket (one already closed is left alone)."""
        self.end(reason)
        with contextlib.suppress(Exception):
            await self.websocket.close(code, reason)


def succeeded(response: Mapping[str, Any]) -> bool:
    """Whether an API answer reports success: ``ok`` with retcode 0, or ``async`` (queued)."""
    status = response.get("status")
    return (status == "ok" and response.get("retcode") == 0) or status == "async"


class Connections:
    """The connected bots of this worker, by account; waits for one to connect."""

    def __init__(self) -> None:
        self._bots: dict[str, BotConnection] = {}
        self._changed = asyncio.Condition()

    async def add(self, connection: BotConnection) -> BotConnection | None:
        """Make ``connection`` its bot's; return the one it replaces (for the caller to close)."""
        async with self._changed:
            previous = self._bots.get(connection.self_id)
            self._bots[connection.self_id] = connection
            self._changed.notify_all()
        return previous

    async def remove(self, connection: BotConnection) -> None:
        """Forget ``connection`` if it is still its bot's (a replaced one no longer is)."""
        async with self._changed:
            if self._bots.get(connection.self_id) is connection:
                del self._bots[connection.self_id]
                self._changed.notify_all()

    async def get(self, self_id: str, timeout: float) -> BotConnection | None:
        """The bot's connection, waiting up to ``timeout`` seconds for it; ``None`` if it did not connect."""
        async with self._changed:
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(lambda: self_id in self._bots)
            except TimeoutError:
                return None
            return self._bots[self_id]

    async def close_all(self, code: int, reason: str) -> None:
        """Close every socket (the agent stops: the implementations reconnect to whoever serves next)."""
        async with self._changed:
            bots, self._bots = list(self._bots.values()), {}
        for connection in bots:
            await connection.close(code, reason)
