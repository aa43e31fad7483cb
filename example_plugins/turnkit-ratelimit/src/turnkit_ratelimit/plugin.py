"""The guard: each turn takes a token from its sender's bucket and from its session's.

The buckets live in the agent's store (``context.storage("ratelimit")``),
not in memory, for two reasons. A restart must not hand an abuser a fresh
burst: the state is read back exactly as it was left. And several agents or
processes sharing one store must share one limit, not get one each. Every
change is a compare-and-set on the bucket's record: two turns racing for
the last token cannot both get it; the loser reads the bucket again and
tries once more.

An empty bucket is only read, never written: a sender flooding the agent
costs the store a read per turn, not a write. (A turn the session's bucket
refuses gives back the token its sender's bucket gave: one write to undo one.)
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable

import attrs
from turnkit_hookspecs import (
    Deny,
    ExecutionContext,
    Plugin,
    Storage,
    StorageConflict,
    TurnInfo,
    hookimpl,
)

from .bucket import Bucket, retry_after, seconds_text
from .settings import Limit, RateLimitSettings

#: The storage namespace and collection of the buckets (one record per principal or session).
NAMESPACE = "ratelimit"
COLLECTION = "buckets"
#: The one bucket of every turn without an ``initiator_id``.
ANONYMOUS_KEY = "anonymous"


class RateLimitBusy(RuntimeError):
    """A bucket kept changing under every attempt: the turn is denied rather than let through unmetered."""


@attrs.frozen
class Charge:
    """A bucket a turn takes a token from: its record's ``key``, its ``limit``, and who it meters."""

    key: str
    limit: Limit
    who: str


class RateLimitPlugin(Plugin):
    """Token buckets per principal and per session, configured by ``[plugin.ratelimit]``.

    ``clock`` (UNIX seconds, default :func:`time.time`) is what the buckets
    refill by; tests pass their own. It is wall-clock time, not a monotonic
    clock, because the stamps outlive the process and are compared across
    processes.

    Without a store (an instance the runtime never configured) every
    guarded turn is denied: a rate limit that cannot meter does not let
    turns through.
    """

    settings_class = RateLimitSettings
    settings: RateLimitSettings = RateLimitSettings()
    #: How many compare-and-set writes a bucket change tries before the turn is denied.
    attempts = 8

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._storage: Storage | None = None

    def configure(self, context: ExecutionContext) -> None:
        """Keep the context and open the buckets' storage."""
        super().configure(context)
        self.storage = context.storage(NAMESPACE)

    @property
    def storage(self) -> Storage:
        """Where the buckets are kept: the agent's store, unless another storage is set here."""
        if self._storage is None:
            raise RuntimeError("the ratelimit plugin has no store: its agent has not configured it")
        return self._storage

    @storage.setter
    def storage(self, storage: Storage) -> None:
        self._storage = storage

    @hookimpl
    async def turn_authorize(self, turn: TurnInfo) -> Deny | None:
        """Take a token from each of the turn's buckets, or deny saying when to retry.

        When a later bucket is empty, the tokens already taken for this turn
        are given back: a denied turn costs nothing. A storage error raises,
        which the runtime counts as a deny (fail closed).
        """
        now = self.clock()
        taken: list[Charge] = []
        for charge in self.charges(turn):
            wait = await self._change(charge, now, -1)
            if wait is not None:
                for done in reversed(taken):
                    await self._change(done, now, +1)
                return Deny(f"rate limit: too many turns {charge.who}; retry in {seconds_text(wait)} s")
            taken.append(charge)
        return None

    def charges(self, turn: TurnInfo) -> list[Charge]:
        """The buckets ``turn`` takes a token from, sender first; none for an exempt turn."""
        settings = self.settings
        sender = turn.initiator_id
        if turn.initiator in settings.exempt_initiators or (
            sender is not None and any(fnmatch.fnmatchcase(sender, p) for p in settings.exempt_principals)
        ):
            return []
        charges = []
        if settings.per_principal.enabled:
            if sender is None:
                charges.append(Charge(ANONYMOUS_KEY, settings.per_principal, "from senders without an id"))
            else:
                charges.append(Charge(f"principal:{sender}", settings.per_principal, f"from {sender!r}"))
        if settings.per_session.enabled:
            session = turn.session_id
            charges.append(Charge(f"session:{session}", settings.per_session, f"in session {session!r}"))
        return charges

    async def _change(self, charge: Charge, now: float, delta: int) -> float | None:
        """Add ``delta`` tokens to a bucket; ``None`` when done, else the seconds until it can be.

        Only taking can be refused: a bucket never goes below zero.
        """
        storage = self.storage
        for _ in range(self.attempts):
            record = await storage.get(COLLECTION, charge.key)
            if record is None:
                bucket = Bucket.full(charge.limit, now)
            else:
                bucket = Bucket.from_value(charge.key, record.value)
            level = bucket.level(charge.limit, now)
            if level + delta < 0:
                return retry_after(level, charge.limit)
            changed = bucket.changed(charge.limit, now, delta)
            expect = 0 if record is None else record.version
            try:
                await storage.put(COLLECTION, charge.key, changed.to_value(), expect=expect)
            except StorageConflict:
                continue
            return None
        raise RateLimitBusy(f"bucket {charge.key!r} changed under each of {self.attempts} attempts")
