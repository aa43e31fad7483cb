"""The console's live view: turns queued or finished anywhere, as server-sent events.

The stream polls the store (:meth:`~turnkit.store.Store.turns_changed`)
rather than listening to this process's orchestrator, so it shows the turns
of every process and worker sharing the store, and works the same for the
read-only ``turnkit console``. Each poll is two indexed reads bounded by
:data:`BATCH`, every :data:`POLL` seconds, whoever else is writing.

A transaction's timestamp is taken when it begins, so a turn may commit
with a time a little before the newest one already sent; each poll
therefore looks :data:`LOOKBACK` seconds behind its cursor, and what was
sent in that window (a turn in a given status) is remembered and not sent
twice. Memory stays bounded by the turns of the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from .reader import ConsoleReader

#: Seconds between two polls of the store.
POLL = 0.5
#: How far behind its cursor a poll looks (slower commits with earlier timestamps).
LOOKBACK = 2.0
#: At most this many turns per poll.
BATCH = 200
#: Seconds without an event after which a comment line keeps proxies from closing the stream.
KEEPALIVE = 15.0


async def turn_events(
    reader: ConsoleReader, since: float | None, stopping: asyncio.Event | None = None
) -> AsyncIterator[str]:
    """``event: turn`` messages (each a turn's JSON) for changes at or after ``since`` (default: now),
    until ``stopping`` is set or the client goes away (the response cancels this)."""
    cursor = time.time() if since is None else since
    sent: dict[tuple[str, str], float] = {}
    quiet = 0.0
    yield ": turnkit console live\n\n"  # the headers go out at once
    while stopping is None or not stopping.is_set():
        start = cursor - LOOKBACK
        while True:  # a full batch may hold only turns already sent: read on past it
            batch = await reader.changed(start, BATCH)
            for turn in batch:
                stamp = max(turn["queued_at"], turn["finished_at"] or 0.0)
                key = (turn["turn_id"], turn["status"])
                if key in sent:
                    continue
                sent[key] = stamp
                cursor = max(cursor, stamp)
                quiet = 0.0
                yield f"event: turn\ndata: {json.dumps(turn, ensure_ascii=False)}\n\n"
            last = max((max(t["queued_at"], t["finished_at"] or 0.0) for t in batch), default=start)
            if len(batch) < BATCH or last <= start:
                break
            start = last
        for key in [k for k, stamp in sent.items() if stamp < cursor - LOOKBACK]:
            del sent[key]
        if quiet >= KEEPALIVE:
            quiet = 0.0
            yield ": keepalive\n\n"
        quiet += await _pause(stopping)


async def _pause(stopping: asyncio.Event | None) -> float:
    """Wait :data:`POLL` seconds, or less if ``stopping`` is set meanwhile; how long it waited."""
    began = time.monotonic()
    if stopping is None:
        await asyncio.sleep(POLL)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), POLL)
    return time.monotonic() - began
