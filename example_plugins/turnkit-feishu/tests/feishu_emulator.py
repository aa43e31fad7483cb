"""Feishu's open platform on loopback, for the tests: the two endpoints the channel calls, and the pusher.

:class:`FeishuEmulator` is a real HTTP server (the standard library's, in a
thread) with

- ``POST /open-apis/auth/v3/tenant_access_token/internal``: checks the app
  id and secret, issues ``t-1``, ``t-2`` … (each one recorded, with the
  lifetime it was given: ``expires`` lets a test hand out short-lived
  ones), and remembers when each expires;
- ``POST /open-apis/im/v1/messages/{message_id}/reply``: checks the bearer
  token (unknown, revoked or expired: HTTP 400 with code 99991663, as the
  platform answers), records every attempt with the time it arrived and
  the chat of the message it replies to, and shows (``shown``) each
  ``uuid`` once, as Feishu does within an hour. :meth:`FeishuEmulator.fail`
  makes the next replies fail with a given status, code and headers; with
  ``land=True`` the reply is shown and only its answer fails (the answer
  was lost on the way back).

:class:`Pusher` plays the event subscription: it builds v2 events, encrypts
them with the Encrypt Key and signs them as the platform does, posts them
to the agent and sends them again while they are not acknowledged (HTTP
200) within 3 seconds.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import itertools
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

APP_ID = "cli_test_app"
APP_SECRET = "app-secret-of-the-test-app"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
REPLY = re.compile(r"^/open-apis/im/v1/messages/([^/]+)/reply$")
INVALID_TOKEN = 99991663
#: How long the platform waits for an acknowledgement before sending an event again.
ACK_TIMEOUT = 3.0


@attrs.frozen
class ReplyAttempt:
    """One request to the reply endpoint, as it arrived (``at``: ``time.monotonic()``)."""

    message_id: str
    chat_id: str | None
    text: str
    uuid: str
    token: str
    in_thread: bool
    status: int
    at: float


@attrs.define
class Failure:
    """How the next ``times`` replies fail (``None``: all, until :meth:`FeishuEmulator.recover`)."""

    status: int
    code: int
    msg: str
    headers: dict[str, str]
    times: int | None
    land: bool


class FeishuEmulator:
    """The open platform's token and reply endpoints on 127.0.0.1; see the module docstring."""

    def __init__(self, app_id: str = APP_ID, app_secret: str = APP_SECRET) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        #: Lifetimes (seconds) of the next tokens issued; 7200 once these are used up.
        self.expires: list[int] = []
        #: Every token issued, in order, with its lifetime.
        self.issued: list[tuple[str, int]] = []
        self.attempts: list[ReplyAttempt] = []
        #: The messages users see, by uuid: the first attempt with each uuid that landed.
        self.shown: dict[str, ReplyAttempt] = {}
        self.chats: dict[str, str] = {}  # message id -> chat id, as the pusher made them
        self._valid: dict[str, float] = {}  # token -> when it expires
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path == TOKEN_PATH:
                    status, headers, answer = emulator._token(body)
                elif match := REPLY.match(self.path):
                    auth = self.headers.get("Authorization", "")
                    status, headers, answer = emulator._reply(match.group(1), auth, body)
                else:
                    status, headers, answer = 404, {}, {"code": 404, "msg": f"no route {self.path}"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # ------------------------------------------------------------------ what tests tell it

    def fail(
        self,
        status: int,
        code: int,
        msg: str = "injected failure",
        *,
        times: int | None = 1,
        headers: Mapping[str, str] | None = None,
        land: bool = False,
    ) -> None:
        """Make the next ``times`` replies (``None``: all) answer ``status`` with ``code``."""
        with self._lock:
            self._failures.append(Failure(status, code, msg, dict(headers or {}), times, land))

    def recover(self) -> None:
        """Answer replies normally again."""
        with self._lock:
            self._failures.clear()

    def revoke(self) -> None:
        """Make every token issued so far invalid (as if the app secret had been reset)."""
        with self._lock:
            self._valid.clear()

    # ------------------------------------------------------------------ what tests read

    def texts(self, chat_id: str | None = None) -> list[str]:
        """The texts users see (in ``chat_id``), in the order they were shown."""
        with self._lock:
            return [a.text for a in self.shown.values() if chat_id is None or a.chat_id == chat_id]

    def shown_replies(self) -> list[ReplyAttempt]:
        with self._lock:
            return list(self.shown.values())

    def all_attempts(self) -> list[ReplyAttempt]:
        with self._lock:
            return list(self.attempts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------ the endpoints

    def _token(self, body: Mapping[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if body.get("app_id") != self.app_id or body.get("app_secret") != self.app_secret:
            return 400, {}, {"code": 10014, "msg": "app secret invalid"}
        with self._lock:
            expire = self.expires.pop(0) if self.expires else 7200
            token = f"t-{len(self.issued) + 1}"
            self.issued.append((token, expire))
            self._valid[token] = time.monotonic() + expire
        return 200, {}, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire}

    def _reply(
        self, message_id: str, auth: str, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        now = time.monotonic()
        token = auth.removeprefix("Bearer ")
        with self._lock:
            attempt = ReplyAttempt(
                message_id=message_id,
                chat_id=self.chats.get(message_id),
                text=json.loads(body.get("content") or "{}").get("text", ""),
                uuid=str(body.get("uuid", "")),
                token=token,
                in_thread=bool(body.get("reply_in_thread")),
                status=0,
                at=now,
            )
            if self._valid.get(token, 0.0) <= now:
                return self._record(attempt, 400, INVALID_TOKEN, "Invalid access token for authorization.")
            failure = next(iter(self._failures), None)
            if failure is not None:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times == 0:
                        self._failures.pop(0)
                if failure.land:
                    self.shown.setdefault(attempt.uuid, attempt)
                return self._record(attempt, failure.status, failure.code, failure.msg, failure.headers)
            self.shown.setdefault(attempt.uuid, attempt)  # a uuid seen before: the same message, once
            return self._record(attempt, 200, 0, "success")

    def _record(
        self,
        attempt: ReplyAttempt,
        status: int,
        code: int,
        msg: str,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        self.attempts.append(attrs.evolve(attempt, status=status))
        data = {"message_id": f"om_reply_{len(self.attempts)}"} if code == 0 else {}
        return status, dict(headers or {}), {"code": code, "msg": msg, "data": data}


class Pusher:
    """The event subscription: v2 events built, encrypted and signed as Feishu does, posted to the agent."""

    def __init__(
        self,
        emulator: FeishuEmulator,
        port: int,
        path: str,
        *,
        encrypt_key: str | None = None,
        verification_token: str = "",
    ) -> None:
        self.emulator = emulator
        self.port = port
        self.path = path
        self.encrypt_key = encrypt_key
        self.verification_token = verification_token
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ building events

    def message_event(
        self,
        chat_id: str,
        text: str | None = None,
        *,
        message_type: str = "text",
        content: Mapping[str, Any] | None = None,
        mentions: list[dict[str, Any]] | None = None,
        thread_id: str | None = None,
        chat_type: str = "p2p",
        sender: str = "ou_alice",
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """An ``im.message.receive_v1`` event (``text``'s content unless ``content`` is given)."""
        number = next(self._ids)
        message_id = f"om_{uuid.uuid4().hex}"
        self.emulator.chats[message_id] = chat_id
        message: dict[str, Any] = {
            "message_id": message_id,
            "root_id": "",
            "parent_id": "",
            "create_time": str(int(time.time() * 1000)),
            "chat_id": chat_id,
            "chat_type": chat_type,
            "message_type": message_type,
            "content": json.dumps(content if content is not None else {"text": text}, ensure_ascii=False),
            "mentions": mentions or [],
        }
        if thread_id is not None:
            message["thread_id"] = thread_id
        return {
            "schema": "2.0",
            "header": {
                "event_id": event_id or f"ev{number:04d}{uuid.uuid4().hex[:24]}",
                "event_type": "im.message.receive_v1",
                "create_time": str(int(time.time() * 1000)),
                "token": self.verification_token,
                "app_id": self.emulator.app_id,
                "tenant_key": "tenant-1",
            },
            "event": {
                "sender": {
                    "sender_id": {"open_id": sender, "union_id": f"on_{sender}", "user_id": f"u_{sender}"},
                    "sender_type": "user",
                    "tenant_key": "tenant-1",
                },
                "message": message,
            },
        }

    def url_verification(self, challenge: str) -> dict[str, Any]:
        return {"challenge": challenge, "token": self.verification_token, "type": "url_verification"}

    # ------------------------------------------------------------------ sending them

    def body(self, payload: Mapping[str, Any]) -> bytes:
        """The request body of ``payload``: encrypted when the app has an Encrypt Key."""
        plain = json.dumps(payload, ensure_ascii=False).encode()
        if self.encrypt_key is None:
            return plain
        return json.dumps({"encrypt": encrypt(self.encrypt_key, plain)}).encode()

    def headers(
        self, body: bytes, *, timestamp: float | None = None, key: str | None = None
    ) -> dict[str, str]:
        """The headers Feishu sends with ``body``: signed with the Encrypt Key (or ``key``)."""
        headers = {"Content-Type": "application/json; charset=utf-8"}
        key = key or self.encrypt_key
        if key is not None:
            stamp = str(int(timestamp if timestamp is not None else time.time()))
            nonce = uuid.uuid4().hex[:16]
            digest = hashlib.sha256((stamp + nonce + key).encode() + body).hexdigest()
            headers |= {
                "X-Lark-Request-Timestamp": stamp,
                "X-Lark-Request-Nonce": nonce,
                "X-Lark-Signature": digest,
            }
        return headers

    def push(self, payload: Mapping[str, Any], *, resends: int = 3) -> tuple[int, Any]:
        """Post ``payload`` as the platform does, again while not acknowledged; the last (status, JSON)."""
        body = self.body(payload)
        for attempt in range(resends + 1):
            try:
                status, answer = self.post(body, self.headers(body))
            except OSError:  # refused, reset, or no answer within ACK_TIMEOUT
                status, answer = 0, None
            if status == 200 or attempt == resends:
                return status, answer
            time.sleep(0.2)
        raise AssertionError("unreachable")

    def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
        """One POST of ``body`` to the agent (no re-send): its status and JSON answer."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ACK_TIMEOUT)
        try:
            connection.request("POST", self.path, body=body, headers=dict(headers))
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        return response.status, json.loads(data) if data else None


def encrypt(encrypt_key: str, plain: bytes) -> str:
    """What the platform puts in ``encrypt``: base64 of a random IV and the AES-256-CBC ciphertext."""
    key = hashlib.sha256(encrypt_key.encode()).digest()
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()


def running_emulator() -> Iterator[FeishuEmulator]:
    """An emulator for one test, closed after it."""
    emulator = FeishuEmulator()
    try:
        yield emulator
    finally:
        emulator.close()
