"""One leader among several workers: a lease kept in a service's storage.

Several ``turnkit serve`` processes (workers) may run the same agent on one
shared store. Some work must be done by one of them at a time — a Telegram
bot may have a single ``getUpdates`` poller — and must pass to another
within seconds when that one dies. :class:`LeaderLease` is that arbiter.

Services depend only on the contract (``turnkit_hookspecs``), not on the
runtime's store, so the lease is built on what the contract offers every
service: :class:`~turnkit_hookspecs.Storage` records with compare-and-set
writes (``put(..., expect=version)``). A lease is one record::

    <collection>/<key> → {"owner": "<this lease's id>", "expires": <UNIX time>}

* :meth:`LeaderLease.acquire` takes it when it is absent, expired or
  already ours, writing with ``expect=`` the version it read: of two
  workers racing for an expired lease, one write lands and the other gets
  :class:`~turnkit_hookspecs.StorageConflict`, so they never both win.
* :meth:`LeaderLease.renew` pushes ``expires`` forward, again by
  compare-and-set, only while the record still names us; ``False`` means
  the lease was lost (it expired and another worker took it).
* :meth:`LeaderLease.release` expires it at once on a clean stop, so that a
  standby worker takes over at its next try instead of waiting for the
  expiry. It overwrites the record rather than deleting it: a delete would
  start the version count again at 1, and a racer still holding version 1
  of the old record could then compare-and-set over the new holder's lease.

``expires`` is wall-clock time, because workers on different machines
compare it with their own clocks: **the ttl must exceed the clock skew
between the machines** (by a wide margin; NTP keeps it far below a
second). A worker that cannot renew — its store is unreachable, or the
process was frozen — must stop leading before ``expires``; the lease
cannot stop a process that does not look at it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

from turnkit_hookspecs import Storage, StorageConflict, StoredRecord

#: The storage collection leases live in, unless told otherwise.
LEASES = "leases"
#: How long a lease lasts without renewal, in seconds, unless told otherwise.
DEFAULT_TTL = 10.0


def worker_id() -> str:
    """A fresh id naming this process and lease in logs: ``<host>:<pid>:<random>``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaderLease:
    """Leadership of ``key``, held by at most one :class:`LeaderLease` at a time; see the module docstring.

    ``ttl`` is how long the lease lasts after each acquire or renew;
    ``renew_every`` (default ``ttl / 3``) is how often the holder should
    renew and how often a standby should try to acquire. ``owner`` is this
    lease's unique id (a fresh one by default: two leases in one process are
    two contenders). ``clock`` returns the UNIX time (``time.time``);
    tests pass their own.
    """

    def __init__(
        self,
        storage: Storage,
        key: str,
        *,
        ttl: float = DEFAULT_TTL,
        renew_every: float | None = None,
        collection: str = LEASES,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"a lease's ttl must be positive, got {ttl}")
        if renew_every is None:
            renew_every = ttl / 3
        if not 0 < renew_every < ttl:
            raise ValueError(f"renew_every must be positive and below the ttl ({ttl}), got {renew_every}")
        self.storage = storage
        self.key = key
        self.collection = collection
        self.ttl = ttl
        self.renew_every = renew_every
        self.owner = owner or worker_id()
        self.clock = clock
        #: When the lease we last wrote expires (``clock`` time), or ``None`` when we do not hold it.
        self.expires: float | None = None

    def __repr__(self) -> str:
        return f"LeaderLease({self.collection}/{self.key}, owner={self.owner!r})"

    @property
    def held(self) -> bool:
        """Whether we hold the lease and, by our clock, it has not expired yet."""
        return self.remaining > 0

    @property
    def remaining(self) -> float:
        """Seconds until the lease we hold expires by our clock (0 when we do not hold it)."""
        if self.expires is None:
            return 0.0
        return max(0.0, self.expires - self.clock())

    async def holder(self) -> str | None:
        """The owner of the lease now (``None`` when nobody holds an unexpired one)."""
        record = await self.storage.get(self.collection, self.key)
        if record is None or not self._live(record):
            return None
        owner = record.value.get("owner")
        return str(owner) if owner is not None else None

    async def acquire(self) -> bool:
        """Take the lease if it is absent, expired or ours; ``True`` when we hold it now."""
        record = await self.storage.get(self.collection, self.key)
        if record is not None and not self._ours(record) and self._live(record):
            self.expires = None
            return False
        return await self._write(record)

    async def renew(self) -> bool:
        """Extend the lease if it is still ours; ``False`` (and not held) if another worker has it.

        A lease that expired without anybody taking it is still ours: the
        compare-and-set guarantees nobody else wrote it in between.
        """
        record = await self.storage.get(self.collection, self.key)
        if record is None or not self._ours(record):
            self.expires = None
            return False
        return await self._write(record)

    async def release(self) -> bool:
        """Expire the lease now if it is ours (on a clean stop); ``True`` when it was."""
        self.expires = None
        record = await self.storage.get(self.collection, self.key)
        if record is None or not self._ours(record):
            return False
        try:
            await self.storage.put(
                self.collection, self.key, {"owner": None, "expires": 0.0}, expect=record.version
            )
        except StorageConflict:  # taken over in between: it was not ours any more
            return False
        return True

    async def _write(self, record: StoredRecord | None) -> bool:
        expires = self.clock() + self.ttl
        value = {"owner": self.owner, "expires": expires}
        try:
            await self.storage.put(
                self.collection, self.key, value, expect=record.version if record is not None else 0
            )
        except StorageConflict:  # another worker wrote it since we read it: it won
            self.expires = None
            return False
        self.expires = expires
        return True

    def _ours(self, record: StoredRecord) -> bool:
        return record.value.get("owner") == self.owner

    def _live(self, record: StoredRecord) -> bool:
        return (
            record.value.get("owner") is not None and float(record.value.get("expires") or 0) > self.clock()
        )
