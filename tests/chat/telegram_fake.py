"""A loopback Telegram Bot API server for tests: the Bot API's JSON over real HTTP.

It serves ``{base}/bot{token}/{method}`` (GET or POST, parameters in the
query string, a JSON body or a URL-encoded form) for the methods a polling bot uses, with
the Bot API's answer shapes — ``{"ok": true, "result": …}`` and
``{"ok": false, "error_code": 401, "description": "Unauthorized"}`` with the
same HTTP status:

* ``getUpdates`` implements Telegram's offset semantics: a call with
  ``offset`` confirms, and drops for good, every update below it; it returns
  the updates from ``offset`` on, waiting up to ``timeout`` seconds for one
  to arrive (long polling);
* ``sendMessage`` refuses an empty text or one longer than 4096 characters
  as Telegram does, and records what was sent;
* ``getMe`` and ``sendChatAction`` answer as for a bot.

Tests queue updates with :meth:`FakeTelegram.message` / :meth:`add` and wait
for replies with :meth:`wait_sent`::

    fake = FakeTelegram()
    await fake.start()
    fake.message("hello", chat_id=42)
    ... run a bot with base_url=fake.base_url, token=fake.token ...
    await fake.wait_sent(1)
    assert fake.sent[0]["text"] == "hello"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

#: The longest text ``sendMessage`` takes, as on Telegram.
MAX_TEXT = 4096

Params = dict[str, Any]


class FakeTelegram:
    """One bot's side of the Bot API, in memory; see the module docstring."""

    def __init__(self, token: str = "123456:TEST-token", username: str = "turnkit_test_bot") -> None:
        self.token = token
        self.bot = {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "Test",
            "username": username,
        }
        #: Updates not confirmed yet, in order.
        self.updates: list[dict[str, Any]] = []
        #: The parameters of every accepted ``sendMessage``, in order.
        self.sent: list[Params] = []
        #: The parameters of every ``sendChatAction``.
        self.actions: list[Params] = []
        #: The ``offset`` of every ``getUpdates`` call, in order.
        self.polls: list[int] = []
        self._next_update = 1
        self._next_message = 1000
        self._changed: asyncio.Future[None] | None = None
        self._closing = False
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._port = 0
        self._methods: dict[str, Callable[[Params], Awaitable[JSONResponse]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendChatAction": self._send_chat_action,
        }

    # ------------------------------------------------------------------ serving

    @property
    def base_url(self) -> str:
        """What a bot configures as its Bot API server."""
        return f"http://127.0.0.1:{self._port}"

    async def start(self, port: int = 0) -> None:
        """Listen on loopback (``port``, or a free one) in the running event loop."""
        # proto=IPPROTO_TCP so that asyncio turns Nagle off on accepted connections (else 40 ms a reply)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self._port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Answer the waiting long polls and stop listening."""
        if self._server is None or self._task is None:
            return
        self._closing = True
        self._notify()
        self._server.should_exit = True
        await self._task

    # ------------------------------------------------------------------ what tests do

    def add(self, fields: Mapping[str, Any]) -> int:
        """Queue an update made of ``fields`` (``{"edited_message": {...}}`` …); return its id."""
        update_id = self._next_update
        self._next_update += 1
        self.updates.append({"update_id": update_id, **fields})
        self._notify()
        return update_id

    def message(
        self,
        text: str | None,
        *,
        chat_id: int = 42,
        user_id: int | None = None,
        first_name: str = "Ada",
        chat_type: str = "private",
        topic: int | None = None,
        **extra: Any,
    ) -> int:
        """Queue a new message (``text=None`` for one without text, e.g. with ``sticker=...``)."""
        sender = {
            "id": user_id if user_id is not None else chat_id,
            "is_bot": False,
            "first_name": first_name,
        }
        message: dict[str, Any] = {
            "message_id": self._message_id(),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type},
            "from": sender,
            **extra,
        }
        if text is not None:
            message["text"] = text
        if topic is not None:
            message.update(message_thread_id=topic, is_topic_message=True)
        return self.add({"message": message})

    async def wait_sent(self, count: int, timeout: float = 10.0) -> list[Params]:
        """Wait until ``count`` messages were sent; return them all."""
        await self._wait_for(lambda: len(self.sent) >= count, timeout)
        return self.sent

    def texts(self, chat_id: int | str | None = None) -> list[str]:
        """The texts sent (to ``chat_id``, or to anybody), in order."""
        return [p["text"] for p in self.sent if chat_id is None or str(p["chat_id"]) == str(chat_id)]

    # ------------------------------------------------------------------ the Bot API

    async def _endpoint(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        method = self._methods.get(request.path_params["method"])
        if method is None:
            return _error(404, "Not Found")
        params: Params = dict(request.query_params)
        body = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            params.update(json.loads(body))
        elif body:  # application/x-www-form-urlencoded
            params.update(parse_qsl(body.decode()))
        return await method(params)

    async def _get_me(self, params: Params) -> JSONResponse:
        return _ok(self.bot)

    async def _get_updates(self, params: Params) -> JSONResponse:
        offset, timeout = int(params.get("offset", 0)), float(params.get("timeout", 0))
        limit = int(params.get("limit", 100))
        self.polls.append(offset)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed: gone
        with contextlib.suppress(TimeoutError):  # long polling: an empty answer after ``timeout``
            await self._wait_for(lambda: bool(self.updates) or self._closing, timeout)
        return _ok([u for u in self.updates if u["update_id"] >= offset][:limit])

    async def _send_message(self, params: Params) -> JSONResponse:
        text = params.get("text")
        if "chat_id" not in params:
            return _error(400, "Bad Request: chat_id is empty")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        self.sent.append(params)
        self._notify()
        message = {
            "message_id": self._message_id(),
            "date": int(time.time()),
            "chat": {"id": params["chat_id"], "type": "private"},
            "from": self.bot,
            "text": text,
        }
        return _ok(message)

    async def _send_chat_action(self, params: Params) -> JSONResponse:
        self.actions.append(params)
        return _ok(True)

    def _message_id(self) -> int:
        self._next_message += 1
        return self._next_message

    def _notify(self) -> None:
        """Wake everybody waiting in :meth:`_wait_for`."""
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    async def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait until ``predicate()`` holds (checked at every change); ``TimeoutError`` after ``timeout``."""
        async with asyncio.timeout(timeout):
            while not predicate():
                if self._changed is None:
                    self._changed = asyncio.get_running_loop().create_future()
                await asyncio.shield(self._changed)


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _error(code: int, description: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error_code": code, "description": description}, status_code=code)


def free_port() -> int:
    """A loopback port nobody listens on (for a server started later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
