"""A platform's send endpoint on loopback, for channel tests: it records what the channel sends.

A channel's replies leave the agent as HTTP requests to its platform. The
test needs a real server there (the channel's own HTTP client, timeouts and
retries run for real) that keeps what it got and can be told to fail, as a
platform does when it is down or limits the rate. :class:`RecordingEndpoint`
(the ``turnkit_endpoint`` fixture of :mod:`turnkit.testing`) is that server;
a platform with a richer protocol (tokens, signed answers) gets an emulator
of its own in the channel's tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request the endpoint answered with success."""

    path: str
    headers: Mapping[str, str]
    body: bytes
    #: ``time.monotonic()`` when it arrived (to check a rate).
    at: float

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class RecordingEndpoint:
    """A loopback HTTP server answering every POST 200 ``{}`` and keeping it, or failing while told to.

    ``fail(count, status)`` makes the next ``count`` requests fail with
    ``status`` (``count=None``: every request until ``fail(0)``); failed
    requests are counted in :attr:`refused`, not kept in :attr:`received`.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refused = 0
        self._failing: int | None = 0
        self._status = 500
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="recording endpoint").start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: give it (plus a path) to the channel as its platform's URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, count: int | None, status: int = 500) -> None:
        """Answer the next ``count`` requests (all, for ``None``) with ``status`` instead of 200."""
        with self._lock:
            self._failing, self._status = count, status

    def bodies(self) -> list[Any]:
        """The JSON bodies of the requests answered with success, in the order they came."""
        with self._lock:
            return [request.json() for request in self.received]

    def close(self) -> None:
        """Stop serving (the fixture does this when the test ends)."""
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, path: str, headers: Mapping[str, str], body: bytes) -> int:
        with self._lock:
            if self._failing is None or self._failing > 0:
                self.refused += 1
                if self._failing:
                    self._failing -= 1
                return self._status
            self.received.append(Received(path, headers, body, time.monotonic()))
            return 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = endpoint._answer(self.path, dict(self.headers.items()), body)
                answer = b"{}" if status == 200 else b'{"error": "refused by the test"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test reads :attr:`RecordingEndpoint.received`, not a log."""

        return Handler
