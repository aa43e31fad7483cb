"""Accept pushed events at once, answer them afterwards, and never lose or repeat one.

A platform that pushes events to the agent (Feishu's and QQ's webhooks, a
OneBot implementation's socket) wants them acknowledged within seconds and
sends them again otherwise, while a turn may take a minute. So a channel
acknowledges an event as soon as it is stored, and answers it later; this
module is the part every such channel shares.

How an event travels, and why in this order:

1. :meth:`Inbox.accept` looks for the event id among the answered ones
   (collection ``inbox-seen:<channel>``), then writes the message to
   ``inbox:<channel>`` with a compare-and-set that fails if the id is there
   already. Either hit makes it a duplicate (a re-send), which the channel
   acknowledges and drops. The write is committed before ``accept``
   returns, and only then does the channel acknowledge the platform.
2. Messages are answered in the background, one at a time per chat, in the
   order they were accepted: :meth:`ChatPath.handle` with the idempotency
   key ``<channel>:<event id>``, so that however often an event is answered
   (after a crash, by another worker) it has exactly one turn. The reply is
   delivered by the channel; while delivering raises, the answer is retried
   with backoff (the retry gets the same turn's reply).
3. Once delivered, the id is written to ``inbox-seen:<channel>`` and the
   message deleted from ``inbox:<channel>``. Seen ids are kept ``keep``
   seconds (a day: longer than any platform re-sends), then pruned.

Every worker (``turnkit serve`` process) holds a lease of its own
(:class:`~turnkit_services.leader.LeaderLease`, renewed every ``ttl / 3``
seconds) and stamps what it accepts with its id. It takes up the messages
of workers whose lease has expired or was released: those a crash, a stop
or a lost store connection left unanswered, its own predecessor's included
after a restart. A reply is delivered twice only if a worker dies between
delivering it and step 3, or if the platform re-sends an event in the
instant between those two writes; the turn still runs once. Platforms with
an idempotency key for sends (Feishu's ``uuid``, QQ's ``msg_seq``) make
even that re-delivery harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from turnkit_hookspecs import ChannelMessage, IdempotencyKeyReused, StorageConflict, structure, unstructure

from ..leader import LeaderLease, worker_id
from .channel import Channel, ChatPath
from .service import chat_key

#: Seconds of the first retry of a message whose answer failed; it doubles up to ``MAX_BACKOFF``.
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0
#: The collection of the workers' leases.
OWNERS = "inbox-owners"


class Inbox:
    """Durable accept-then-answer for the events pushed to ``channel``; see the module docstring.

    ``ttl`` is how long a worker's lease lasts unrenewed: the longest an
    event waits to be taken up after its worker died. ``keep`` is how long
    answered event ids are remembered (duplicates are dropped that long).
    ``retries`` bounds the answers of one message whose reply cannot be
    delivered: it is then logged as undelivered and dropped, so that a
    platform refusing it for good does not hold up its chat for ever.
    """

    def __init__(
        self,
        chat: ChatPath,
        channel: Channel,
        *,
        ttl: float = 10.0,
        keep: float = 86400.0,
        retries: int = 8,
    ) -> None:
        self.chat = chat
        self.channel = channel
        self.keep = keep
        self.retries = retries
        self.owner = worker_id()
        self.pending = f"inbox:{channel.name}"
        self.seen = f"inbox-seen:{channel.name}"
        self.lease = LeaderLease(
            chat.storage, self._lease_key(self.owner), ttl=ttl, collection=OWNERS, owner=self.owner
        )
        #: Accepted event ids not answered yet, by chat, in order; each chat with some has a worker.
        self._queues: dict[str, deque[str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._running = False

    # ------------------------------------------------------------------ accepting

    async def accept(self, event_id: str, inbound: ChannelMessage) -> bool:
        """Store ``inbound`` under ``event_id`` and queue its answer; ``False`` for a duplicate.

        Returns once the message is committed: acknowledge the platform
        after, never before.
        """
        storage = self.chat.storage
        if await storage.get(self.seen, event_id) is not None:
            return False
        value = {"inbound": unstructure(inbound), "owner": self.owner, "at": time.time()}
        try:
            await storage.put(self.pending, event_id, value, expect=0)
        except StorageConflict:
            return False
        self._queue(event_id, inbound)
        return True

    # ------------------------------------------------------------------ answering

    async def run(self) -> None:
        """Hold this worker's lease, answer what is accepted; take up dead workers' leftovers."""
        await self.lease.acquire()
        self._running = True
        for chat in list(self._queues):
            self._start(chat)
        pruned = 0.0
        try:
            while True:
                if not await self.lease.renew():
                    await self.lease.acquire()  # ours alone: lost only to an expiry nobody else can take
                await self._take_up()
                if time.monotonic() - pruned > min(self.keep / 24, 3600.0):
                    await self._prune()
                    pruned = time.monotonic()
                await asyncio.sleep(self.lease.renew_every)
        finally:
            self._running = False
            workers = list(self._workers.values())
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            with contextlib.suppress(Exception):  # a store that is gone: the lease expires instead
                await asyncio.shield(self.lease.release())

    async def _take_up(self) -> None:
        """Claim the messages of workers whose lease is gone, and queue them in the order accepted."""
        storage = self.chat.storage
        records = sorted(await storage.list(self.pending), key=lambda r: (r.value.get("at", 0), r.key))
        live: dict[str, bool] = {self.owner: True}
        for record in records:
            owner = str(record.value.get("owner"))
            if owner not in live:
                live[owner] = (
                    await LeaderLease(storage, self._lease_key(owner), collection=OWNERS).holder() is not None
                )
            if live[owner]:
                if owner == self.owner and not self._queued(record.key):
                    self._queue(record.key, _inbound(record.value))  # ours, from before run started
                continue
            try:
                await storage.put(
                    self.pending, record.key, {**record.value, "owner": self.owner}, expect=record.version
                )
            except StorageConflict:  # another worker took it up first
                continue
            self.chat.context.logger.warning(
                "%s channel: taking up event %s that worker %s left unanswered",
                self.channel.name,
                record.key,
                owner,
            )
            self._queue(record.key, _inbound(record.value))

    def _queue(self, event_id: str, inbound: ChannelMessage) -> None:
        chat = chat_key(inbound.channel, inbound.chat_id, inbound.thread_id)
        self._queues.setdefault(chat, deque()).append(event_id)
        if self._running:
            self._start(chat)

    def _queued(self, event_id: str) -> bool:
        return any(event_id in queue for queue in self._queues.values())

    def _start(self, chat: str) -> None:
        if chat not in self._workers:
            self._workers[chat] = asyncio.create_task(self._drain(chat), name=f"inbox {chat}")

    async def _drain(self, chat: str) -> None:
        """Answer the chat's queued events one after another; the worker ends when none is left."""
        queue = self._queues[chat]
        try:
            while queue:
                await self._answer(queue[0])
                queue.popleft()
        finally:
            self._workers.pop(chat, None)
            if not queue:
                self._queues.pop(chat, None)

    async def _answer(self, event_id: str) -> None:
        storage, logger = self.chat.storage, self.chat.context.logger
        record = await storage.get(self.pending, event_id)
        if record is None or record.value.get("owner") != self.owner:
            return  # answered meanwhile, or taken up by another worker after our lease lapsed
        inbound = _inbound(record.value)
        key = f"{self.channel.name}:{event_id}"
        for attempt in range(self.retries + 1):
            try:
                await self.chat.handle(inbound, self.channel, idempotency_key=key)
                break
            except IdempotencyKeyReused as exc:  # the key names another session: nothing to retry
                logger.error("%s channel: event %s not answered: %s", self.channel.name, event_id, exc)
                break
            except Exception as exc:
                if attempt == self.retries:
                    logger.error(
                        "%s channel: the reply to event %s was not delivered after %d tries: %s",
                        self.channel.name,
                        event_id,
                        attempt + 1,
                        exc,
                    )
                    break
                delay = min(FIRST_BACKOFF * 2**attempt, MAX_BACKOFF)
                logger.warning(
                    "%s channel: answering event %s failed (%s); again in %gs",
                    self.channel.name,
                    event_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        await storage.put(self.seen, event_id, {"at": time.time()})
        await storage.delete(self.pending, event_id)

    async def _prune(self) -> None:
        """Forget answered event ids, and the leases of workers gone, older than ``keep``."""
        storage, horizon = self.chat.storage, time.time() - self.keep
        for record in await storage.list(self.seen):
            if record.value.get("at", 0) < horizon:
                await storage.delete(self.seen, record.key, expect=record.version)
        for record in await storage.list(OWNERS, prefix=self._lease_key("")):
            if record.value.get("expires", 0) < horizon:
                await storage.delete(OWNERS, record.key, expect=record.version)

    def _lease_key(self, owner: str) -> str:
        return f"{self.channel.name}:{owner}"


def _inbound(value: Mapping[str, Any]) -> ChannelMessage:
    return structure(dict(value["inbound"]), ChannelMessage)
