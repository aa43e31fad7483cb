"""Rows of the store's tables to records and back, for any DB-API driver.

Both the SQLite and a PostgreSQL store select the same columns in the same
order (the ``*_COLUMNS`` strings), so turning a row tuple into a record, and
working out which part of which ancestor a forked session sees, is written
once here rather than per backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
from turnkit_hookspecs import Message, Origin, PayloadError, SessionInfo, from_json

from ..errors import StoreError
from ..tracing import Trace, TraceRecord, call_records
from .records import AuditEvent, ContextItem, InboxItem, OwnerRecord, SessionRecord, TurnRecord

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
#: The condition on ``turns`` rows of turns that have not finished (queued or running).
UNFINISHED = "status IN ('queued', 'running')"
CONTEXT_COLUMNS = "id, session_id, key, value, extension_id, turn_id, created_at, consumed_by"
AUDIT_COLUMNS = "id, at, session_id, turn_id, extension_id, action, detail"
INBOX_COLUMNS = "id, agent_id, from_agent, body, delivered_at, session_id, turn_id"
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


def message_body(body: str, message_id: int, session_id: str) -> Message:
    """A history message's body, carrying its store id as ``Message.id``.

    The store gives ids (the contract says so), so the row id wins over any
    id the body was written with.
    """
    message = parse_message(body, f"message {message_id} of session {session_id!r}")
    return attrs.evolve(message, id=str(message_id))


def turn(row: Row) -> TurnRecord:
    """A ``turns`` row."""
    record = TurnRecord(*row[:-1])  # origin is the last column, NULL for most turns
    return record if row[-1] is None else attrs.evolve(record, origin=origin(row[-1]))


def turn_params(record: TurnRecord, origin: str | None) -> tuple[Any, ...]:
    """A ``turns`` row's values in :data:`TURN_COLUMNS` order; ``origin`` is ``record.origin``'s JSON."""
    return (
        record.turn_id,
        record.session_id,
        record.number,
        record.initiator,
        record.initiator_id,
        record.status,
        record.message_id,
        record.queued_at,
        record.error,
        record.started_at,
        record.finished_at,
        record.rerun_of,
        record.owner,
        record.instructions,
        origin,
    )


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


def trace_rows(trace: Trace) -> list[tuple[str | None, str]]:
    """``trace`` as ``turn_traces`` rows: one per scope (in the order of ``trace``), its calls a
    JSON array of :data:`~turnkit.tracing.Call` arrays (the kind, a str enum, encodes as its value)."""
    return [(scope, _COMPACT.encode(calls)) for scope, calls in trace.items() if calls]


_COMPACT = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def trace_records(scope: str, calls: str) -> list[TraceRecord]:
    """The records of one ``turn_traces`` row of ``scope``."""
    return call_records(scope, json.loads(calls))


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
