"""Streaming a chat turn over HTTP as server-sent events (the ``/api`` SSE and OpenAI's ``stream=true``).

The turn runs in a task of its own, owned by the channel, and the response
only reads what it produces: a client that goes away mid-reply stops the
response, never the turn, whose reply is stored as usual.

Chunks stream only when this process runs the turn. A retry with an
idempotency key whose turn runs (or ran) elsewhere, or a turn another
worker picked up, streams nothing: the reply arrives whole with the
outcome, and the routes send it as one chunk.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.responses import StreamingResponse
from turnkit_hookspecs import ChannelMessage

from .channel import ChatOutcome
from .http_errors import chat_failure, key_reused

if TYPE_CHECKING:
    from .http import HttpChannel

#: Seconds without a chunk after which an SSE comment is sent, so that proxies keep the connection.
KEEPALIVE_SECONDS = 15.0
#: An SSE comment: clients ignore it, connections see traffic.
KEEPALIVE = ": keep-alive\n\n"


#: What :func:`turn_events` yields: a chunk, ``None`` for a quiet while, and last the outcome.
TurnEvent = str | ChatOutcome | None


async def turn_events(
    channel: HttpChannel, inbound: ChannelMessage, idempotency_key: str | None = None
) -> AsyncIterator[TurnEvent]:
    """Run ``inbound`` (with ``idempotency_key``) and yield each chunk of the reply, then the outcome.

    ``None`` is yielded after :data:`KEEPALIVE_SECONDS` without a chunk (a
    slow model), for the caller to send :data:`KEEPALIVE`. The chunks are
    the model's text after ``turn_chunk``; the outcome's ``reply`` is the
    delivered reply, which ``chat_outbound`` may have changed, or the polite
    text of a denied or failed turn (which streams no chunk). An error of
    the chat path is raised after the chunks that came before it.
    """
    chunks: asyncio.Queue[str | None] = asyncio.Queue()

    async def listener(text: str) -> None:
        chunks.put_nowait(text)

    task = channel.start_turn(inbound, listener, idempotency_key)
    task.add_done_callback(lambda _: chunks.put_nowait(None))
    while True:
        try:
            async with asyncio.timeout(KEEPALIVE_SECONDS):
                chunk = await chunks.get()
        except TimeoutError:
            yield None
            continue
        if chunk is None:
            break
        yield chunk
    yield await task


async def first_in(events: AsyncIterator[TurnEvent]) -> AsyncIterator[TurnEvent]:
    """``events``, once the first of them has come: a reused idempotency key is then still a 409.

    A streamed response's status goes out with its headers, before any
    event. With an idempotency key the chat path can fail in a way the
    client must tell from an ordinary failure (the key names a message to
    another session), so the headers wait for the first event: a chunk,
    the outcome, the first keep-alive (:data:`KEEPALIVE_SECONDS` at most),
    or that refusal, raised here as the 409 :class:`ApiError`. Any other
    failure is replayed into the stream, where the routes report it as
    they always do.
    """
    try:
        first: TurnEvent | Exception = await anext(events)
    except StopAsyncIteration:
        return events
    except Exception as exc:
        if key_reused(exc):
            raise chat_failure(exc) from exc
        first = exc
    return _replay(first, events)


async def _replay(first: TurnEvent | Exception, rest: AsyncIterator[TurnEvent]) -> AsyncIterator[TurnEvent]:
    if isinstance(first, Exception):
        raise first
    yield first
    async for event in rest:
        yield event


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event whose data is ``data`` as one line of JSON."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    """A ``text/event-stream`` response sending ``events`` as they come (no proxy buffering)."""
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
