"""Requests written byte for byte on a loopback socket, for what httpx will not send.

A body shorter than its ``Content-Length``, a chunked body that stops
halfway, a malformed header: :func:`raw_request` writes ``data`` as given
and reads the answer with h11 (the HTTP library uvicorn itself uses), so a
test sees the status, headers and body, and whether the server closed the
connection after answering, and anything it sent after the answer::

    answer = await raw_request(served.url, http_request("POST", "/api/chats/a/messages", length=100))
    assert (answer.status, answer.closed) == (408, True)
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11

#: How long after the answer the connection is watched, by default (for ``closed`` and ``after``).
WATCH = 1.0


@dataclass(frozen=True)
class RawResponse:
    """What the server answered; then whether it closed the connection, and what else it sent."""

    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool
    after: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    length: int | None = None,
) -> bytes:
    """An HTTP/1.1 request as bytes; ``length`` declares a ``Content-Length`` other than the body's."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if length is not None or body:
        lines.append(f"Content-Length: {len(body) if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def raw_request(url: str, data: bytes, *, timeout: float = 10.0, watch: float = WATCH) -> RawResponse:
    """Send ``data`` to ``url`` (``http://HOST:PORT``) and read the answer, the connection left open."""
    address = urlsplit(url)
    assert address.hostname is not None and address.port is not None
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await _read_response(reader, data.partition(b" ")[0], watch)
    finally:
        writer.close()
        await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader, method: bytes, watch: float) -> RawResponse:
    connection = h11.Connection(our_role=h11.CLIENT)
    # h11 parses a response only once it has "sent" a request (whose method says whether a body
    # follows); the real one went out as raw bytes.
    connection.send(h11.Request(method=method, target="/", headers=[("Host", "127.0.0.1")]))
    connection.send(h11.EndOfMessage())
    status, headers, body = 0, {}, bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {name.decode().lower(): value.decode("latin-1") for name, value in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    after, closed = bytearray(connection.trailing_data[0]), False
    try:
        async with asyncio.timeout(watch):
            while chunk := await reader.read(65536):
                after += chunk
            closed = True
    except TimeoutError:
        pass
    return RawResponse(status, headers, bytes(body), closed, bytes(after))
