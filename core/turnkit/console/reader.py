"""What the console shows, read from the store: pages of sessions and audit, a session, a turn.

Every read is a handful of indexed queries whatever the store's size (see
:mod:`turnkit.store.browse`), and returns the JSON documents of
:mod:`~turnkit.console.documents`; an id the store does not know is a
:class:`NotFound` naming it, which the API answers with 404.
"""

from __future__ import annotations

from typing import Any

import attrs
from turnkit_hookspecs import unstructure

from ..store import SessionQuery, SessionRecord, Store
from .documents import (
    audit_json,
    context_json,
    message_json,
    session_json,
    trace_json,
    turn_json,
)
from .waterfall import layout

#: How far up a fork's lineage the tree around a session reaches.
MAX_ANCESTORS = 50


class NotFound(LookupError):
    """The store holds no such session or turn; the message names it."""


class BadRequest(ValueError):
    """A parameter the console cannot read (a page cursor, a number); the message says which."""


def encode_cursor(record: SessionRecord) -> str:
    """Where the next page of sessions starts: after this one (``updated_at~id``)."""
    return f"{record.updated_at!r}~{record.session_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    stamp, sep, session_id = cursor.partition("~")
    try:
        if not sep or not session_id:
            raise ValueError(cursor)
        return float(stamp), session_id
    except ValueError:
        raise BadRequest(
            f"after: not a page cursor: {cursor!r} (give the 'next' of the previous page)"
        ) from None


class ConsoleReader:
    """The console's reads of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def sessions(self, query: SessionQuery) -> dict[str, Any]:
        """A page of sessions; ``next`` resumes after it (``None`` on the last page)."""
        # one more than asked tells whether a next page exists without counting the rest
        found = await self.store.find_sessions(attrs.evolve(query, limit=query.limit + 1))
        page = found[: query.limit]
        more = len(found) > query.limit
        return {
            "sessions": [session_json(r) for r in page],
            "next": encode_cursor(page[-1]) if more and page else None,
        }

    async def session(self, session_id: str) -> dict[str, Any]:
        """A session: messages, turns, the fork tree around it, context, instructions, audit."""
        store = self.store
        record = await store.get_session(session_id)
        if record is None:
            raise NotFound(f"no session {session_id!r}")
        ancestors: list[dict[str, Any]] = []
        parent = record.info.parent_session_id
        while parent is not None and len(ancestors) < MAX_ANCESTORS:
            above = await store.get_session(parent)
            if above is None:
                break
            ancestors.insert(0, session_json(above))
            parent = above.info.parent_session_id
        siblings = []
        if record.info.parent_session_id is not None:
            siblings = [
                session_json(r)
                for r in await store.child_sessions(record.info.parent_session_id)
                if r.session_id != session_id
            ]
        return {
            "session": session_json(record),
            "instructions": await store.session_instructions(session_id),
            "messages": [message_json(m) for m in await store.messages(session_id)],
            "turns": [turn_json(t) for t in await store.turns(session_id)],
            "tree": {
                "ancestors": ancestors,
                "siblings": siblings,
                "children": [session_json(r) for r in await store.child_sessions(session_id)],
            },
            "context": [context_json(c) for c in await store.context_items(session_id)],
            "audit": [audit_json(e) for e in await store.audit_events(session_id)],
        }

    async def turn(self, turn_id: str) -> dict[str, Any]:
        """A turn: its session, its messages (inbound, tool steps, reply) and its hook calls in order."""
        store = self.store
        turn = await store.get_turn(turn_id)
        if turn is None:
            raise NotFound(f"no turn {turn_id!r}")
        record = await store.get_session(turn.session_id)
        assert record is not None  # a turn's session is never deleted
        trace = [trace_json(c) for c in await store.trace(turn_id)]
        queued = [
            message
            for queued, message in await store.queued_turns(turn.session_id)
            if queued.turn_id == turn_id
        ]
        return {
            "turn": turn_json(turn),
            "session": session_json(record),
            "messages": [message_json(m) for m in await store.turn_messages(turn.session_id, turn_id)],
            "queued_message": None if not queued else unstructure(queued[0]),
            "trace": trace,
            "waterfall": layout(trace),
            "audit": [
                audit_json(e) for e in await store.audit_events(turn.session_id) if e.turn_id == turn_id
            ],
        }

    async def audit(self, before: int | None, limit: int, extension_id: str | None) -> dict[str, Any]:
        """A page of every session's audit trail, newest first; ``next`` is the id to go on before."""
        found = await self.store.audit_page(before, limit + 1, extension_id)
        page = found[:limit]
        return {
            "events": [audit_json(e) for e in page],
            "next": page[-1].id if len(found) > limit and page else None,
        }

    async def changed(self, since: float, limit: int) -> list[dict[str, Any]]:
        """Turns queued or finished since ``since``: what the live view sends."""
        return [turn_json(t) for t in await self.store.turns_changed(since, limit)]
