"""The chat platforms of the example channels, as small as one real turn needs, for the publish cycle.

The channels' own test suites run against full emulators of Feishu, QQ and
OneBot; the publish cycle only shows that each published wheel, installed
from the index, takes a platform request and answers it. So this module has
one loopback :class:`Platform` answering Feishu's and QQ's token and send
endpoints and recording the sends, the requests those platforms push,
signed as they sign them, a OneBot implementation's side of the reverse
WebSocket, and :class:`Serving`, a ``turnkit serve`` of a venv.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.threaded import serving

#: What ``turnkit serve`` prints once its HTTP server listens.
LISTENING = "turnkit: HTTP API on "


class Platform(ThreadingHTTPServer):
    """Feishu's and QQ's open APIs on loopback: tokens for anyone, and every message sent, recorded."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PlatformHandler)
        #: ``(path, JSON body)`` of every message sent (Feishu replies, QQ messages), in order.
        self.sent: list[tuple[str, dict[str, Any]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _PlatformHandler(BaseHTTPRequestHandler):
    server: Platform

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/open-apis/auth/v3/tenant_access_token/internal":
            answer: dict[str, Any] = {
                "code": 0,
                "msg": "ok",
                "tenant_access_token": "t-loopback",
                "expire": 7200,
            }
        elif self.path == "/app/getAppAccessToken":
            answer = {"access_token": "qq-loopback", "expires_in": "7200"}
        elif re.fullmatch(r"/open-apis/im/v1/messages/[^/]+/reply", self.path):
            self.server.sent.append((self.path, body))
            answer = {"code": 0, "msg": "success", "data": {"message_id": f"om_r{len(self.server.sent)}"}}
        elif re.fullmatch(r"/v2/(users|groups)/[^/]+/messages", self.path):
            self.server.sent.append((self.path, body))
            answer = {"id": f"qq-r{len(self.server.sent)}", "timestamp": int(time.time())}
        else:
            self.send_error(404)
            return
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sends are kept in ``Platform.sent``."""


def platform() -> AbstractContextManager[Platform]:
    """The platforms' APIs on loopback for the length of a ``with`` block."""
    return serving(Platform())


def feishu_event(event_id: str, token: str, message_id: str, chat_id: str, text: str) -> bytes:
    """A plain (not encrypted) ``im.message.receive_v1`` event of Feishu's v2.0 schema."""
    event = {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": "im.message.receive_v1",
            "create_time": str(int(time.time() * 1000)),
            "token": token,
            "app_id": "cli_loopback",
            "tenant_key": "tenant",
        },
        "event": {
            "sender": {"sender_id": {"open_id": "ou_alice"}, "sender_type": "user"},
            "message": {
                "message_id": message_id,
                "chat_id": chat_id,
                "chat_type": "p2p",
                "message_type": "text",
                "content": json.dumps({"text": text}),
            },
        },
    }
    return json.dumps(event).encode()


def qq_callback(secret: str, event_id: str, openid: str, text: str) -> tuple[bytes, dict[str, str]]:
    """A ``C2C_MESSAGE_CREATE`` callback and its headers, signed as QQ signs it (Ed25519 from the secret)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = secret.encode() * (32 // len(secret.encode()) + 1)
    key = Ed25519PrivateKey.from_private_bytes(seed[:32])
    body = json.dumps(
        {
            "id": event_id,
            "op": 0,
            "t": "C2C_MESSAGE_CREATE",
            "d": {
                "id": f"msg-{event_id}",
                "content": text,
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),  # QQ's reply window
                "author": {"user_openid": openid},
            },
        }
    ).encode()
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body).hex()
    return body, {
        "Content-Type": "application/json",
        "X-Signature-Ed25519": signature,
        "X-Signature-Timestamp": timestamp,
    }


async def onebot_exchange(url: str, token: str, self_id: int, user_id: int, text: str) -> dict[str, Any]:
    """Be a OneBot implementation for one private message: push it, answer the reply's call; the call."""
    import websockets

    headers = {"Authorization": f"Bearer {token}", "X-Self-ID": str(self_id), "X-Client-Role": "Universal"}
    async with websockets.connect(url, additional_headers=headers) as socket_:
        event = {
            "time": int(time.time()),
            "self_id": self_id,
            "post_type": "message",
            "message_type": "private",
            "sub_type": "friend",
            "message_id": 1,
            "user_id": user_id,
            "message": [{"type": "text", "data": {"text": text}}],
            "raw_message": text,
            "font": 0,
            "sender": {"user_id": user_id, "nickname": "alice"},
        }
        await socket_.send(json.dumps(event))
        while True:
            frame = json.loads(await socket_.recv())
            if "action" in frame:
                answer = {"status": "ok", "retcode": 0, "data": {"message_id": 2}, "echo": frame.get("echo")}
                await socket_.send(json.dumps(answer))
                return dict(frame)


class Serving:
    """``turnkit serve`` of a venv's console script in ``folder``, until :meth:`stop`."""

    def __init__(self, turnkit: Path, folder: Path, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(turnkit), "--config", str(folder / "turnkit.toml"), "serve"],
            cwd=folder,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not any(LISTENING in line for line in self.output):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"turnkit serve did not listen:\n{''.join(self.output)}")
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.output.append(line)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(check: Any, timeout: float = 30.0) -> bool:
    """Poll ``check()`` until true or ``timeout``; whether it became true."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
