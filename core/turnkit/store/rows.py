"""Rows of the store's tables to records and back, for any DB-API driver.

Both the SQLite and a PostgreSQL store select the same columns in the same
order (the ``*_COLUMNS`` strings), so turning a row tuple into a record, and
working out which part of which ancestor a forked session sees, is written
once here rather than per backend.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import attrs
from turnkit_hookspecs import Kind, Message, Origin, PayloadError, SessionInfo, from_json

from ..errors import StoreError
from ..tracing import TraceRecord
from .records import AuditEvent, ContextItem, InboxItem, OwnerRecord, SessionRecord, StoredMessage, TurnRecord

#: A row as the driver returns it: the columns in the order of the ``*_COLUMNS`` string.
Row = Sequence[Any]

SESSION_COLUMNS = (
    "id, agent_id, kind, status, parent_id, root_id, fork_point, metadata, created_at, updated_at"
)
MESSAGE_COLUMNS = "id, session_id, turn_id, body, created_at, compressed, summary"
TURN_COLUMNS = (
    "id, session_id, number, initiator, initiator_id, status, message_id, queued_at,"
    " error, started_at, finished_at, rerun_of, owner, instructions, origin"
)
CONTEXT_COLUMNS = "id, session_id, key, value, extension_id, turn_id, created_at, consumed_by"
AUDIT_COLUMNS = "id, at, session_id, turn_id, extension_id, action, detail"
INBOX_COLUMNS = "id, agent_id, from_agent, body, delivered_at, session_id, turn_id"
TRACE_COLUMNS = "scope, point, kind, plugin, duration, outcome, error, started"
OWNER_COLUMNS = "id, agent_id, host, pid, started, registered_at, expires_at"


def session(row: Row) -> SessionRecord:
    """A ``sessions`` row (``root_id`` NULL: the session is its own root)."""
    session_id, agent_id, kind, status, parent_id, root_id, fork_point, metadata, created, updated = row
    info = SessionInfo(session_id, kind, status, parent_id, root_id, fork_point, json.loads(metadata))
    return SessionRecord(info, agent_id, created, updated)


def parse_message(body: str, where: str) -> Message:
    """A message stored as JSON; one the contract no longer accepts is the store's error, naming ``where``."""
    try:
        return from_json(body, Message)
    except PayloadError as exc:
        raise StoreError(f"{where} is unreadable: {exc}") from exc


class MessageCache:
    """Decoded history messages by id, the newest ``size`` kept.

    A stored message's body never changes (compression only flips a column),
    so each is decoded once: a turn's window then costs a dict lookup and a
    string comparison per message it already saw, not a JSON parse and a
    structuring. Entries are checked against the row's body, so an id that
    a rolled-back transaction had used and the database gave out again can
    never return the wrong message. One per store.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._messages: OrderedDict[int, tuple[str, Message]] = OrderedDict()

    def get(self, message_id: int, body: str, session_id: str) -> Message:
        """The message of row ``message_id`` (decoding ``body`` on a miss)."""
        known = self._messages.get(message_id)
        if known is not None and known[0] == body:
            return known[1]
        return self.put(message_id, body, message_body(body, message_id, session_id))

    def put(self, message_id: int, body: str, message: Message) -> Message:
        """Remember a message just written (or decoded) with its JSON ``body``."""
        self._messages[message_id] = (body, message)
        if len(self._messages) > self._size:
            self._messages.popitem(last=False)
        return message


def message_body(body: str, message_id: int, session_id: str) -> Message:
    """A history message's body, carrying its store id as ``Message.id``.

    The store gives ids (the contract says so), so the row id wins over any
    id the body was written with.
    """
    message = parse_message(body, f"message {message_id} of session {session_id!r}")
    return attrs.evolve(message, id=str(message_id))


def stored_message(row: Row, cache: MessageCache) -> StoredMessage:
    """A ``messages`` row."""
    message_id, session_id, turn_id, body, created, compressed, summary = row
    message = cache.get(message_id, body, session_id)
    return StoredMessage(message_id, session_id, turn_id, message, created, bool(compressed), bool(summary))


def turn(row: Row) -> TurnRecord:
    """A ``turns`` row."""
    record = TurnRecord(*row[:-1])  # origin is the last column, NULL for most turns
    return record if row[-1] is None else attrs.evolve(record, origin=origin(row[-1]))


def origin(text: str | None) -> Origin | None:
    """A turn's stored origin (JSON), or ``None`` for a turn no channel received."""
    if text is None:
        return None
    try:
        return from_json(text, Origin)
    except (PayloadError, ValueError) as exc:
        raise StoreError(f"a stored turn origin is corrupt: {exc}") from exc


def owner(row: Row, now: float) -> OwnerRecord:
    """An ``owners`` row; ``live`` as of ``now``."""
    owner_id, agent_id, host, pid, started, registered_at, expires_at = row
    return OwnerRecord(owner_id, agent_id, host, pid, started, registered_at, expires_at, expires_at >= now)


def context_item(row: Row) -> ContextItem:
    """A ``context`` row."""
    return ContextItem(*row)


def audit_event(row: Row) -> AuditEvent:
    """An ``audit`` row (``detail`` is JSON text)."""
    event_id, at, session_id, turn_id, extension_id, action, detail = row
    return AuditEvent(event_id, at, session_id, turn_id, extension_id, action, json.loads(detail))


def inbox_item(row: Row) -> InboxItem:
    """An ``inbox`` row; the message keeps the id it was delivered with."""
    item_id, agent_id, from_agent, body, delivered_at, session_id, turn_id = row
    message = parse_message(body, f"inbox item {item_id} of agent {agent_id!r}")
    return InboxItem(item_id, agent_id, from_agent, message, delivered_at, session_id, turn_id)


def trace_record(row: Row) -> TraceRecord:
    """A ``trace`` row."""
    scope, point, kind, plugin, duration, outcome, error, started = row
    return TraceRecord(scope, point, Kind(kind), plugin, duration, outcome, error, started)


def trace_params(record: TraceRecord) -> tuple[Any, ...]:
    """The values of a trace row, in :data:`TRACE_COLUMNS` order."""
    return (
        record.scope,
        record.point,
        str(record.kind),
        record.plugin,
        record.duration,
        record.outcome,
        record.error,
        record.started,
    )


def lineage_bounds(chain: Sequence[Row]) -> list[tuple[str, int | None]]:
    """Which messages of each session in a lineage a session sees.

    ``chain`` holds ``(session id, parent id, fork point)`` rows from the
    session itself up to its root. The result pairs each session with the
    highest message id seen there (``None``: all of them, for the session
    itself). A fork point bounds the parent, and every bound above it is the
    smallest met on the way up (a grandparent is seen only as far as the
    parent saw it). A fork without a fork point forked an empty history, so
    the lineage stops there.
    """
    seen: list[tuple[str, int | None]] = []
    bound: int | None = None
    for session_id, parent_id, fork_point in chain:
        seen.append((session_id, bound))
        if parent_id is None or fork_point is None:
            break
        bound = fork_point if bound is None else min(bound, fork_point)
    return seen
