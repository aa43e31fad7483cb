"""``context.storage(namespace)``: a service's own records in the agent's store.

A thin view that fixes the namespace and checks arguments, so that every
backend of :class:`~turnkit.store.Store` serves the contract's
:class:`~turnkit_hookspecs.Storage` the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from turnkit_hookspecs import StoredRecord

if TYPE_CHECKING:
    from .store import Store


class ServiceStorage:
    """The records of one namespace; see :class:`turnkit_hookspecs.Storage`."""

    def __init__(self, store: Store, namespace: str) -> None:
        if not namespace:
            raise ValueError("a storage namespace must not be empty")
        self._store = store
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"ServiceStorage({self.namespace!r})"

    async def put(
        self,
        collection: str,
        key: str,
        value: Mapping[str, Any],
        *,
        text: str | None = None,
        expect: int | None = None,
    ) -> StoredRecord:
        """Create or replace a record (compare-and-set with ``expect``)."""
        return await self._store.put_record(self.namespace, collection, key, value, text, expect)

    async def get(self, collection: str, key: str) -> StoredRecord | None:
        """The record, or ``None``."""
        return await self._store.get_record(self.namespace, collection, key)

    async def delete(self, collection: str, key: str, *, expect: int | None = None) -> bool:
        """Remove a record; ``False`` when there was none."""
        return await self._store.delete_record(self.namespace, collection, key, expect)

    async def list(
        self,
        collection: str,
        *,
        prefix: str | None = None,
        where: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> Sequence[StoredRecord]:
        """Records ordered by key."""
        return await self._store.list_records(self.namespace, collection, prefix, dict(where or {}), limit)

    async def search(
        self,
        collection: str,
        query: str,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int = 10,
    ) -> Sequence[StoredRecord]:
        """Full-text search over the records' text, best first."""
        return await self._store.search_records(self.namespace, collection, query, dict(where or {}), limit)
