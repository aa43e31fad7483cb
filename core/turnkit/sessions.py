"""Sessions: open, find (cached), move status, fork, merge, abandon, compress.

This is where a session's life is kept, for the orchestrator (which runs
turns in sessions) and for :mod:`turnkit.extension` (the audited view
plugins act through, which adds the points around each action). Every
change is one store transaction: a fork writes its child, inherited
context, initial message and audit event together, a merge its summary,
the child's status and its audit event.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import attrs
from turnkit_hookspecs import ForkOptions, Message, SessionInfo

from .errors import SessionError
from .ids import new_id
from .instructions import problem
from .prompting import COVERS, visible
from .store import Acting, SessionRecord, Store, StoredMessage, TurnRecord

#: Session records kept in memory so that a turn does not re-read its session.
SESSION_CACHE = 10_000


@attrs.frozen
class Compression:
    """What a compression would summarise: ``messages`` (an earlier summary still in
    effect first, as it stands for everything before them) up to message id
    ``upto``; ``seen`` ordinary messages the session sees. ``upto`` is ``None``
    when there is nothing to compress."""

    messages: list[Message]
    upto: int | None
    seen: int


class Sessions:
    """One agent's sessions in a store, with a cache of their records."""

    def __init__(self, store: Store, agent_id: str, cache_size: int = SESSION_CACHE) -> None:
        self.store = store
        self.agent_id = agent_id
        self._cache_size = cache_size
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._creating = asyncio.Lock()

    async def open(
        self, session_id: str | None = None, kind: str = "chat", metadata: dict[str, Any] | None = None
    ) -> SessionRecord:
        """Return session ``session_id``, creating it if absent (a new id when none is given).

        Creations of a named session take turns here, so that callers racing
        to open the same new id create it once: a write is answered only once
        committed, and the others must see it before they look.
        """
        if session_id is None:
            info = SessionInfo(new_id(), kind, metadata=metadata or {})
            return self._remember(await self.store.create_session(info, self.agent_id))
        existing = await self.find(session_id)
        if existing is not None:
            return existing
        async with self._creating:
            existing = await self.find(session_id)
            if existing is not None:
                return existing
            info = SessionInfo(session_id, kind, metadata=metadata or {})
            return self._remember(await self.store.create_session(info, self.agent_id))

    async def get(self, session_id: str) -> SessionRecord:
        """The stored session (cached), or :class:`SessionError` naming the id."""
        record = await self.find(session_id)
        if record is None:
            raise SessionError(f"no session {session_id!r}")
        return record

    async def find(self, session_id: str) -> SessionRecord | None:
        """The stored session (cached), or ``None``."""
        record = self._records.get(session_id)
        if record is None:
            record = await self.store.get_session(session_id)
            if record is not None:
                self._remember(record)
        return record

    async def instructions(self, session_id: str) -> str | None:
        """The session's own instructions (read from the store: another process may have set them)."""
        await self.get(session_id)  # a SessionError naming an unknown id
        return await self.store.session_instructions(session_id)

    async def set_instructions(self, session_id: str, instructions: str | None) -> None:
        """Give the session its own instructions (``None``: back to the agent's); the next turn uses them."""
        if instructions is not None:
            if not isinstance(instructions, str):
                raise TypeError(f"instructions must be a str or None, got {type(instructions).__name__}")
            wrong = problem(instructions)
            if wrong is not None:
                raise ValueError(f"instructions for session {session_id!r} refused: the text {wrong}")
        await self.get(session_id)
        await self.store.set_session_instructions(session_id, instructions)

    async def set_status(self, session_id: str, status: str) -> None:
        """Move a session to ``status`` and forget its cached record."""
        await self.store.set_session_status(session_id, status)
        self.forget(session_id)

    def forget(self, session_id: str) -> None:
        """Drop the cached record (its status changed)."""
        self._records.pop(session_id, None)

    async def child(self, parent_id: str, child_id: str) -> SessionRecord:
        """An active child of ``parent_id``, or :class:`SessionError` saying why not."""
        record = await self.find(child_id)
        if record is None or record.info.parent_session_id != parent_id:
            raise SessionError(f"session {child_id!r} is not a child of session {parent_id!r}")
        if record.info.status != "active":
            raise SessionError(f"child session {child_id!r} is already {record.info.status}")
        return record

    async def fork(
        self, parent_id: str, options: ForkOptions, acting: Acting
    ) -> tuple[SessionInfo, TurnRecord | None]:
        """Create a child seeing ``parent_id``'s history up to now, or up to the end of
        ``options.after_turn`` (one transaction).

        Returns the child and its first turn (queued, when ``options`` holds
        an initial message): the caller schedules it.
        """
        parent = await self.get(parent_id)
        child = SessionInfo(
            session_id=new_id(),
            kind=parent.info.kind,
            parent_session_id=parent_id,
            root_session_id=parent.info.root_session_id or parent_id,
            metadata={**options.metadata, "fork_reason": options.reason, "forked_by": acting.extension_id},
        )
        record, turn = await self.store.fork(
            child,
            self.agent_id,
            inherit_context=options.inherit_context,
            initial_message=options.initial_message,
            acting=acting,
            reason=options.reason,
            after_turn=options.after_turn,
        )
        return self._remember(record).info, turn

    async def merge(self, parent_id: str, child_id: str, summary: Message, acting: Acting) -> StoredMessage:
        """Append ``summary`` to the parent and mark the child merged (one transaction)."""
        stored = await self.store.merge(parent_id, child_id, summary, acting)
        self.forget(child_id)
        return stored

    async def abandon(self, parent_id: str, child_id: str, acting: Acting) -> None:
        """Mark the child abandoned (one transaction)."""
        await self.store.abandon(parent_id, child_id, acting)
        self.forget(child_id)

    async def compressible(self, session_id: str, keep: int) -> Compression:
        """What compressing all but the newest ``keep`` messages would summarise."""
        lineage = [m for m in await self.store.messages(session_id, lineage=True) if not m.compressed]
        seen = visible(lineage)
        ordinary = [m for m in seen if not m.summary]
        if len(ordinary) <= keep:
            return Compression([], None, len(ordinary))
        upto = ordinary[-keep - 1].id
        earlier = [m.with_flags() for m in seen if m.summary][-1:]
        return Compression([*earlier, *(m.message for m in ordinary if m.id <= upto)], upto, len(ordinary))

    async def compress(
        self, session_id: str, upto: int, text: str, reason: str, turn_id: str | None
    ) -> Message:
        """Store ``text`` as the summary of the session's messages up to ``upto`` (one transaction)."""
        summary = Message.of("system", text, metadata={COVERS: upto, "reason": reason})
        await self.store.compress(session_id, upto, summary, turn_id)
        return summary

    def _remember(self, record: SessionRecord) -> SessionRecord:
        self._records[record.session_id] = record
        if len(self._records) > self._cache_size:
            self._records.popitem(last=False)
        return record
