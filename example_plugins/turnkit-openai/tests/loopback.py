"""A Chat Completions server on 127.0.0.1 for the tests: scripted answers, recorded requests.

It speaks plain HTTP/1.1 through the standard library's ``http.server`` in
a thread: whole answers with a ``Content-Length``, streamed ones as
``text/event-stream`` in chunked transfer encoding, one SSE event per
chunk, keeping each connection open for the next request. Each request
takes the next scripted :class:`Answer`; a request with none left gets a
500 saying so, which fails the test visibly. It records which connection
each request came on, and which connections the client closed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.frozen
class Answer:
    """What the server does with one request.

    ``events`` makes a streamed answer (each a chunk object, or a raw string
    sent as the event's data); ``cut`` closes the connection after them,
    without ``[DONE]`` or the end of the chunked body. ``delay`` is waited
    before anything is sent.
    """

    status: int = 200
    body: Any = None
    events: tuple[Any, ...] = ()
    headers: dict[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    cut: bool = False


@attrs.frozen
class Request:
    """A request the server received; ``peer`` is the client's end of its connection."""

    path: str
    headers: dict[str, str]
    body: Any
    peer: tuple[str, int]


def completion(text: str | None = None, *calls: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """A ``chat.completion`` answering ``text`` and/or calling ``(id, function, args)`` tools."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for id_, name, args in calls
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "test-model-2024",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    """A ``chat.completion.chunk`` carrying ``delta``."""
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "test-model-2024",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def text_chunks(*pieces: str) -> tuple[dict[str, Any], ...]:
    """A streamed text answer: the role, each piece, then the finish."""
    return (
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": piece}) for piece in pieces),
        chunk({}, "stop"),
    )


def error_body(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    """An error as OpenAI's API words it."""
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class ChatServer:
    """The server; :attr:`url` is its ``base_url``, :attr:`requests` what it received."""

    def __init__(self) -> None:
        self._answers: list[Answer] = []
        self.requests: list[Request] = []
        #: The connections that ended, by their client's end (set when the server saw the end).
        self.closed: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        # a short poll interval: ``shutdown`` waits for the serving loop to notice it
        self._thread = threading.Thread(
            target=self._http.serve_forever, args=(0.02,), name="chat-server", daemon=True
        )

    @property
    def url(self) -> str:
        """The ``base_url`` to configure: ``http://127.0.0.1:PORT/v1``."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with ``answers``, in order."""
        with self._lock:
            self._answers.extend(answers)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # ends the delays of requests still waiting
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _next(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            if self._answers:
                return self._answers.pop(0)
        return Answer(status=500, body=error_body("the test scripted no answer for this request", "test"))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go in separate writes: without this, a kept-alive connection's
            # second answer waits for the client's delayed ACK of the first write (40 ms)
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(self.path, headers, body, self.client_address[:2])
                answer = server._next(request)
                if answer.delay and server._stopping.wait(answer.delay):
                    return
                try:
                    if answer.events:
                        self._stream(answer)
                    else:
                        self._whole(answer)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up first (its timeout)

            def _whole(self, answer: Answer) -> None:
                data = json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, answer: Answer) -> None:
                self.send_response(answer.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for event in answer.events:
                    self._chunk(event if isinstance(event, str) else json.dumps(event))
                if answer.cut:
                    self.close_connection = True
                    return
                self._chunk("[DONE]")
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, data: str) -> None:
                payload = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
                self.wfile.flush()

            def finish(self) -> None:
                super().finish()
                with server._lock:
                    server.closed.add(self.client_address[:2])

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read :attr:`ChatServer.requests` instead."""

        return Handler


def running_server() -> Iterator[ChatServer]:
    """A started server, stopped when the iterator is closed (the body of a fixture)."""
    server = ChatServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
