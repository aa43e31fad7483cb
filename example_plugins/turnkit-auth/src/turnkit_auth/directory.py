"""The directory of principals: who has written to the agent, when first and last, and how often.

One record per principal in the agent's store, under the storage namespace
``auth`` and the collection ``principals/<agent id>`` (agents sharing a
store keep separate directories), keyed by principal id. Every sighting is
a compare-and-set update: when two messages of the same principal are
recorded at once, the loser of the race reads the winner's record and tries
again, so no sighting is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from turnkit_hookspecs import ExecutionContext, Principal, Storage, StorageConflict, StoredRecord

#: The storage namespace of this plugin (``context.storage(NAMESPACE)``).
NAMESPACE = "auth"


def collection_for(agent_id: str) -> str:
    """The collection holding ``agent_id``'s directory."""
    return f"principals/{agent_id}"


@attrs.frozen
class SeenPrincipal:
    """One principal of the directory.

    ``principal_id`` is ``<channel>:<user>``; ``name`` is the display name
    the channel gave most recently (``None`` if it never gave one);
    ``first_seen`` and ``last_seen`` are UTC; ``count`` is the number of
    messages seen.
    """

    principal_id: str
    channel: str
    user: str
    name: str | None
    first_seen: datetime
    last_seen: datetime
    count: int

    @classmethod
    def from_record(cls, record: StoredRecord) -> SeenPrincipal:
        """Read a directory record back."""
        value = record.value
        return cls(
            principal_id=record.key,
            channel=value["channel"],
            user=value["user"],
            name=value["name"],
            first_seen=datetime.fromisoformat(value["first_seen"]),
            last_seen=datetime.fromisoformat(value["last_seen"]),
            count=value["count"],
        )


def _sighting(previous: Mapping[str, Any] | None, principal: Principal, moment: datetime) -> dict[str, Any]:
    """The record after one more sighting of ``principal`` at ``moment``.

    Sightings may be recorded out of order (effects run in the background),
    so the first and last times are the earliest and latest ever given.
    """
    stamp = moment.astimezone(UTC).isoformat()
    if previous is None:
        return {
            "channel": principal.channel,
            "user": principal.id,
            "name": principal.name,
            "first_seen": stamp,
            "last_seen": stamp,
            "count": 1,
        }
    return {
        **previous,
        "name": principal.name if principal.name is not None else previous["name"],
        "first_seen": min(previous["first_seen"], stamp, key=datetime.fromisoformat),
        "last_seen": max(previous["last_seen"], stamp, key=datetime.fromisoformat),
        "count": previous["count"] + 1,
    }


async def record_seen(
    storage: Storage, collection: str, principal: Principal, moment: datetime | None = None
) -> SeenPrincipal:
    """Count one message of ``principal`` (at ``moment``, default now) and return its updated record.

    A :class:`~turnkit_hookspecs.StorageConflict` means another sighting was
    written in between: it is read and this one is applied on top of it.
    """
    moment = datetime.now(UTC) if moment is None else moment
    key = f"{principal.channel}:{principal.id}"
    while True:
        record = await storage.get(collection, key)
        value = _sighting(record.value if record is not None else None, principal, moment)
        try:
            stored = await storage.put(collection, key, value, expect=record.version if record else 0)
        except StorageConflict:
            continue
        return SeenPrincipal.from_record(stored)


async def principals(context: ExecutionContext, *, channel: str | None = None) -> list[SeenPrincipal]:
    """Everyone who has written to the agent of ``context`` (on ``channel`` only, if given), by principal id.

    ``context`` is the agent's execution context: ``agent.context`` of a
    running :class:`turnkit.agent.Agent`, or the one a plugin or service was
    handed.
    """
    prefix = f"{channel}:" if channel is not None else None
    records = await context.storage(NAMESPACE).list(collection_for(context.agent_id), prefix=prefix)
    return [SeenPrincipal.from_record(record) for record in records]
