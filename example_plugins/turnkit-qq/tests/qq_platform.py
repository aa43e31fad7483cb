"""A loopback emulator of the QQ Bot platform: what the channel's tests talk to instead of Tencent's servers.

It is a real HTTP server (on 127.0.0.1, in a thread) with the platform's
side of the protocol, written from its public documentation:

- ``POST /app/getAppAccessToken``: ``{"appId", "clientSecret"}`` in,
  ``{"access_token", "expires_in"}`` out (``expires_in`` a string, as the
  platform sends it). Like the platform, it hands out the current token
  again until the last 60 seconds of its life; ``token_lifetime`` can be
  made short to see renewals, and :meth:`QQPlatform.revoke_tokens` makes
  the tokens given out invalid (the next call gets 401).
- ``POST /v2/users/{openid}/messages`` and ``POST /v2/groups/{group_openid}/messages``:
  passive replies. They record what they are sent (:attr:`QQPlatform.sent`),
  check the token, and refuse as the platform does: a repeated ``msg_id``
  and ``msg_seq`` (40054005), an unknown message (304026), one past its
  reply window (304027), a sixth reply (22009). :meth:`QQPlatform.fail`
  makes the next calls answer 429 or 5xx, :meth:`QQPlatform.hold` makes
  them take the reply and not answer until released (as when the bot
  dies, or times out, after the platform took a message).
- The pusher: :meth:`QQPlatform.push` POSTs a callback to the bot signed as
  the platform signs it (Ed25519 over ``X-Signature-Timestamp`` + body,
  with the key derived from the bot secret), and sends it again when it is
  not acknowledged with op 12; :meth:`QQPlatform.check_callback_url` runs
  the op 13 exchange and verifies the bot's answer with the public key.
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: Seconds a message can be answered, by chat kind (an hour for a user, five minutes for a group).
WINDOWS = {"users": 3600.0, "groups": 300.0}
REPLIES_PER_MESSAGE = 5
DUPLICATE = 40054005
ACK = {"op": 12, "d": 0}


def platform_key(secret: str) -> Ed25519PrivateKey:
    """The signing key the platform derives from a bot secret: the secret repeated, its first 32 bytes."""
    seed = secret.encode()
    while len(seed) < 32:
        seed += seed
    return Ed25519PrivateKey.from_private_bytes(seed[:32])


@dataclass(frozen=True)
class Sent:
    """One passive reply the platform took."""

    kind: str  # "users" or "groups"
    openid: str
    content: str
    msg_id: str
    msg_seq: int
    authorization: str


@dataclass(frozen=True)
class Refusal:
    """One reply the platform refused with an error code."""

    code: int
    msg_id: str
    msg_seq: int


@dataclass(frozen=True)
class Answer:
    """The bot's answer to a callback."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Message:
    kind: str
    openid: str
    sent_at: float


class QQPlatform:
    """The emulator; see the module docstring. ``callback_url`` is the bot's webhook (set by the test)."""

    def __init__(self, app_id: str, secret: str) -> None:
        self.app_id = app_id
        self.secret = secret
        self.key = platform_key(secret)
        self.callback_url = ""
        #: Seconds an issued token lives.
        self.token_lifetime = 7200
        #: Tokens handed out, in order (a token handed out again is not counted twice).
        self.issued: list[str] = []
        self.sent: list[Sent] = []
        self.refusals: list[Refusal] = []
        #: Reply calls answered, whatever the answer (an injected failure, a refusal, 401 …).
        self.calls = 0
        self.unauthorized = 0
        self._expiry: dict[str, float] = {}
        self._messages: dict[str, _Message] = {}
        self._failures: deque[int] = deque()
        self._released = threading.Event()
        self._released.set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: both the token URL's and the OpenAPI's base."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ the console of the test

    def fail(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` reply calls with ``status`` (429, 500 …)."""
        with self._lock:
            self._failures.extend([status] * times)

    def recover(self) -> None:
        """Forget the failures :meth:`fail` asked for that have not happened yet."""
        with self._lock:
            self._failures.clear()

    def hold(self) -> None:
        """Take the next replies but do not answer them until :meth:`release`."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def revoke_tokens(self) -> None:
        """Invalidate every token handed out (as a secret reset does)."""
        with self._lock:
            self._expiry.clear()

    def texts(self, msg_id: str | None = None) -> list[str]:
        """The content of the replies taken (to ``msg_id``), in order."""
        with self._lock:
            return [s.content for s in self.sent if msg_id is None or s.msg_id == msg_id]

    # ------------------------------------------------------------------ the pusher

    def c2c_message(self, user_openid: str, text: str, *, sent_at: float | None = None) -> dict[str, Any]:
        """A user's direct message to the bot, as an op 0 payload (the platform now knows the message)."""
        msg_id = self._new_message("users", user_openid, sent_at)
        d = {
            "id": msg_id,
            "content": text,
            "timestamp": _rfc3339(sent_at),
            "author": {"user_openid": user_openid},
        }
        return {
            "id": f"C2C_MESSAGE_CREATE:{secrets.token_hex(8)}",
            "op": 0,
            "d": d,
            "t": "C2C_MESSAGE_CREATE",
        }

    def group_at_message(
        self, group_openid: str, member_openid: str, text: str, *, sent_at: float | None = None
    ) -> dict[str, Any]:
        """A group member's message mentioning the bot: ``content`` starts where the mention was."""
        msg_id = self._new_message("groups", group_openid, sent_at)
        d = {
            "id": msg_id,
            "content": f" {text}",
            "timestamp": _rfc3339(sent_at),
            "group_openid": group_openid,
            "author": {"member_openid": member_openid},
        }
        return {
            "id": f"GROUP_AT_MESSAGE_CREATE:{secrets.token_hex(8)}",
            "op": 0,
            "d": d,
            "t": "GROUP_AT_MESSAGE_CREATE",
        }

    def signed(
        self, body: bytes, *, timestamp: str | None = None, key: Ed25519PrivateKey | None = None
    ) -> dict[str, str]:
        """The headers the platform sends with ``body``: its signature over ``timestamp + body``."""
        stamp = timestamp if timestamp is not None else str(int(time.time()))
        signature = (key or self.key).sign(stamp.encode() + body).hex()
        return {
            "Content-Type": "application/json",
            "User-Agent": "QQBot-Callback",
            "X-Bot-Appid": self.app_id,
            "X-Signature-Method": "Ed25519",
            "X-Signature-Timestamp": stamp,
            "X-Signature-Ed25519": signature,
        }

    def push(self, payload: dict[str, Any], *, attempts: int = 5) -> Answer:
        """POST ``payload`` signed, again (after a pause) until the bot acknowledges it with op 12."""
        body = json.dumps(payload, ensure_ascii=False).encode()
        answer = Answer(0, b"")
        for attempt in range(attempts):
            if attempt:
                time.sleep(0.3)
            try:
                answer = self.post(body, self.signed(body))
            except OSError:  # not listening (yet): the platform tries again later
                continue
            if answer.status == 200 and answer.json() == ACK:
                return answer
        return answer

    def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        """One POST of ``body`` to the bot's callback URL, as is."""
        where = urlsplit(self.callback_url)
        connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
        try:
            connection.request("POST", where.path, body=body, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, response.read())
        finally:
            connection.close()

    def check_callback_url(
        self, *, signed: bool = False, plain_token: str | None = None
    ) -> tuple[Answer, bool]:
        """The op 13 exchange: the bot's answer, and whether its signature verifies with the public key.

        The platform's documentation shows the check sent without a
        signature, so that is the default; ``signed`` adds one.
        """
        token = (
            plain_token
            if plain_token is not None
            else secrets.token_urlsafe(15).replace("-", "a").replace("_", "b")
        )
        event_ts = str(int(time.time()))
        body = json.dumps({"d": {"plain_token": token, "event_ts": event_ts}, "op": 13}).encode()
        headers = (
            self.signed(body) if signed else {"User-Agent": "QQBot-Callback", "X-Bot-Appid": self.app_id}
        )
        answer = self.post(body, headers)
        if answer.status != 200:
            return answer, False
        reply = answer.json()
        try:
            self.key.public_key().verify(bytes.fromhex(reply["signature"]), (event_ts + token).encode())
        except Exception:
            return answer, False
        return answer, reply["plain_token"] == token

    def _new_message(self, kind: str, openid: str, sent_at: float | None) -> str:
        msg_id = f"ROBOT1.0_{secrets.token_urlsafe(24)}"
        with self._lock:
            self._messages[msg_id] = _Message(kind, openid, time.time() if sent_at is None else sent_at)
        return msg_id

    # ------------------------------------------------------------------ the server

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                parts = self.path.strip("/").split("/")
                if self.path == "/app/getAppAccessToken":
                    status, answer = platform._token(body)
                elif len(parts) == 4 and parts[0] == "v2" and parts[1] in WINDOWS and parts[3] == "messages":
                    status, answer = platform._reply(
                        parts[1], parts[2], body, self.headers.get("Authorization", "")
                    )
                else:
                    status, answer = 404, {"code": 404, "message": "no such API"}
                data = json.dumps(answer, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the bot is gone (killed while it waited)
                    pass

        return Handler

    def _token(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("appId") != self.app_id or body.get("clientSecret") != self.secret:
            return 200, {"code": 100016, "message": "invalid appid or secret"}
        now = time.time()
        with self._lock:
            current = self.issued[-1] if self.issued else None
            left = self._expiry.get(current, 0.0) - now if current else 0.0
            if current is None or left <= 60:
                current = secrets.token_urlsafe(16)
                self.issued.append(current)
                self._expiry[current] = now + self.token_lifetime
                left = self.token_lifetime
        return 200, {"access_token": current, "expires_in": str(int(left))}

    def _reply(
        self, kind: str, openid: str, body: dict[str, Any], authorization: str
    ) -> tuple[int, dict[str, Any]]:
        now = time.time()
        with self._lock:
            self.calls += 1
            token = authorization.removeprefix("QQBot ")
            if not authorization.startswith("QQBot ") or self._expiry.get(token, 0.0) < now:
                self.unauthorized += 1
                return 401, {"code": 11244, "message": "token not exist or expire"}
            if self._failures:
                status = self._failures.popleft()
                return status, {"code": status, "message": "injected failure"}
            msg_id, msg_seq, content = body.get("msg_id"), body.get("msg_seq", 1), body.get("content")
            if body.get("msg_type") != 0 or not isinstance(content, str) or not content:
                return 400, {"code": 50006, "message": "CannotSendEmptyMessage"}
            message = self._messages.get(str(msg_id))
            if message is None or (message.kind, message.openid) != (kind, openid):
                return self._refuse(304026, str(msg_id), msg_seq, "MSG_ID error")
            if now - message.sent_at > WINDOWS[kind]:
                return self._refuse(304027, str(msg_id), msg_seq, "MSG_EXPIRE")
            taken = [s for s in self.sent if s.msg_id == msg_id]
            if any(s.msg_seq == msg_seq for s in taken):
                return self._refuse(DUPLICATE, str(msg_id), msg_seq, "消息被去重\uff0c请检查请求msgseq")
            if len(taken) >= REPLIES_PER_MESSAGE:
                return self._refuse(22009, str(msg_id), msg_seq, "msg limit exceed")
            self.sent.append(Sent(kind, openid, content, str(msg_id), int(msg_seq), authorization))
        self._released.wait(30)
        return 200, {"id": secrets.token_hex(8), "timestamp": int(now)}

    def _refuse(self, code: int, msg_id: str, msg_seq: int, message: str) -> tuple[int, dict[str, Any]]:
        self.refusals.append(Refusal(code, msg_id, msg_seq))
        return 400, {"message": message, "code": code, "err_code": code, "trace_id": secrets.token_hex(8)}


def _rfc3339(at: float | None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at).astimezone()
    return moment.isoformat(timespec="seconds")
