"""A OneBot v11 implementation on loopback for the tests: a universal reverse-WebSocket client.

It does what NapCat or Lagrange does towards the agent: connects to the
agent's socket with the access token and the ``X-Self-ID`` /
``X-Client-Role: Universal`` headers, pushes message events, and answers
the agent's API calls with ``{"status": "ok", "retcode": 0, "data":
{"message_id": N}, "echo": ...}``. It records every call it gets, and can
be told to refuse the next calls (``retcode`` 100) or to answer none
(``silent``). When the agent goes away it connects again, every
``reconnect_delay`` seconds, as implementations do (unless made with
``reconnect=False``).

It runs its own event loop in a thread, so that the tests, which are plain
functions driving a ``turnkit serve`` subprocess, call it synchronously.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.sync.client import connect as connect_once

#: The bot's QQ account in the tests.
SELF_ID = 10001
#: The retcode of a refused call.
REFUSED = 100


@dataclass
class Call:
    """An API call the emulator received, and what it answered (``ok``, ``failed`` or ``silent``)."""

    action: str
    params: dict[str, Any]
    echo: Any
    answer: str

    @property
    def text(self) -> str:
        """The text of the call's message (its text segments joined)."""
        return "".join(s["data"]["text"] for s in self.params["message"] if s["type"] == "text")


class OneBotEmulator:
    """One bot's implementation connected to ``url``; see the module docstring."""

    def __init__(
        self,
        url: str,
        token: str | None,
        self_id: int = SELF_ID,
        *,
        reconnect: bool = True,
        reconnect_delay: float = 0.2,
    ) -> None:
        self.url = url
        self.token = token
        self.self_id = self_id
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        #: Every API call received, in order.
        self.calls: list[Call] = []
        #: How many times the socket opened; and (code, reason) of each time the agent closed it.
        self.opened = 0
        self.closed: list[tuple[int | None, str | None]] = []
        #: Answer no call while true (the agent times out waiting).
        self.silent = False
        self._refuse = 0
        self._refuse_after = 0
        self._message_ids = 0
        self._lock = threading.Lock()
        self._socket: ClientConnection | None = None
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._task: concurrent.futures.Future[None] | None = None

    # ------------------------------------------------------------------ driving it

    def start(self) -> OneBotEmulator:
        """Start connecting (and reconnecting) in the background."""
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        return self

    def stop(self) -> None:
        """Close the socket and end the thread."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()  # cancels the task in the emulator's loop
            concurrent.futures.wait([self._task], timeout=2)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def refuse(self, calls: int, after: int = 0) -> None:
        """Answer ``calls`` API calls with ``status: failed``, once ``after`` more were answered ``ok``."""
        with self._lock:
            self._refuse, self._refuse_after = calls, after

    @property
    def connected(self) -> bool:
        """Whether the socket is open now."""
        return self._socket is not None

    def wait_connected(self, timeout: float = 15.0) -> None:
        """Wait until the socket is open."""
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() > deadline:
                raise AssertionError(f"the emulator of bot {self.self_id} did not connect within {timeout}s")
            time.sleep(0.02)

    def push(self, frame: dict[str, Any] | str) -> None:
        """Send an event (or any frame; a string is sent as it is) over the socket, once connected."""
        self.wait_connected()
        data = frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False)
        socket = self._socket
        assert socket is not None
        asyncio.run_coroutine_threadsafe(socket.send(data), self._loop).result(5)

    def sent(self, answer: str | None = "ok") -> list[Call]:
        """The calls answered ``answer`` (all of them with ``None``)."""
        with self._lock:
            return [call for call in self.calls if answer is None or call.answer == answer]

    def texts(self, answer: str | None = "ok") -> list[str]:
        """The message texts of those calls."""
        return [call.text for call in self.sent(answer)]

    # ------------------------------------------------------------------ the connection

    def headers(self) -> dict[str, str]:
        """The handshake's headers, as an implementation sends them."""
        headers = {"X-Self-ID": str(self.self_id), "X-Client-Role": "Universal"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def _run(self) -> None:
        while not self._stopping:
            try:
                async with connect(self.url, additional_headers=self.headers(), proxy=None) as socket:
                    self._socket = socket
                    self.opened += 1
                    try:
                        async for data in socket:
                            await self._answer(socket, json.loads(data))
                    finally:
                        self._socket = None
                        self.closed.append((socket.close_code, socket.close_reason))
            except (OSError, WebSocketException, TimeoutError):
                pass  # the agent is down, or refused us: try again
            if not self.reconnect:
                return
            await asyncio.sleep(self.reconnect_delay)

    async def _answer(self, socket: ClientConnection, frame: dict[str, Any]) -> None:
        echo = frame.get("echo")
        with self._lock:
            if self.silent:
                answer = "silent"
            elif self._refuse > 0 and self._refuse_after == 0:
                self._refuse -= 1
                answer = "failed"
            else:
                answer = "ok"
                self._message_ids += 1
                self._refuse_after = max(self._refuse_after - 1, 0)
            self.calls.append(Call(frame["action"], frame.get("params", {}), echo, answer))
            message_id = self._message_ids
        if answer == "ok":
            await socket.send(
                json.dumps({"status": "ok", "retcode": 0, "data": {"message_id": message_id}, "echo": echo})
            )
        elif answer == "failed":
            refusal = {
                "status": "failed",
                "retcode": REFUSED,
                "data": None,
                "message": "injected",
                "echo": echo,
            }
            await socket.send(json.dumps(refusal))


def handshake(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """One connection attempt: ``(101, "")`` if the socket opened, else the refusal's status and body."""
    try:
        with connect_once(url, additional_headers=headers, proxy=None, open_timeout=10):
            return 101, ""
    except InvalidStatus as refused:
        return refused.response.status_code, refused.response.body.decode("utf-8", "replace")


# ---------------------------------------------------------------------- events


def text(content: str) -> dict[str, Any]:
    """A text segment."""
    return {"type": "text", "data": {"text": content}}


def at(qq: int | str) -> dict[str, Any]:
    """A mention segment."""
    return {"type": "at", "data": {"qq": str(qq)}}


def private(message_id: int | str, user_id: int | str, message: Any, **extra: Any) -> dict[str, Any]:
    """A private message event, as the implementation reports it."""
    return {
        "time": int(time.time()),
        "self_id": SELF_ID,
        "post_type": "message",
        "message_type": "private",
        "sub_type": "friend",
        "message_id": message_id,
        "user_id": user_id,
        "message": message,
        "raw_message": message if isinstance(message, str) else "",
        "font": 0,
        "sender": {"user_id": user_id, "nickname": f"user{user_id}"},
        **extra,
    }


def group(message_id: int | str, group_id: int, user_id: int, message: Any, **extra: Any) -> dict[str, Any]:
    """A group message event, as the implementation reports it."""
    return {
        "time": int(time.time()),
        "self_id": SELF_ID,
        "post_type": "message",
        "message_type": "group",
        "sub_type": "normal",
        "message_id": message_id,
        "group_id": group_id,
        "user_id": user_id,
        "anonymous": None,
        "message": message,
        "raw_message": message if isinstance(message, str) else "",
        "font": 0,
        "sender": {"user_id": user_id, "nickname": f"user{user_id}", "card": "", "role": "member"},
        **extra,
    }


def heartbeat() -> dict[str, Any]:
    """A heartbeat meta event, which the agent ignores."""
    return {
        "time": int(time.time()),
        "self_id": SELF_ID,
        "post_type": "meta_event",
        "meta_event_type": "heartbeat",
        "status": {"online": True, "good": True},
        "interval": 5000,
    }
