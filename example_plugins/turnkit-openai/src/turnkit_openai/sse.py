"""Server-sent events: the ``data`` of each event of a ``text/event-stream``.

Only what a Chat Completions stream uses is read: ``data:`` fields (several
in one event are joined by newlines, as the SSE specification says), blank
lines ending an event, and ``:`` comment lines (keep-alives), which are
skipped like every other field.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def event_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """Yield the data of each event in ``lines`` (lines without their line breaks)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value.removeprefix(" "))
    if data:  # a server that ends without the last blank line still delivers its last event
        yield "\n".join(data)
