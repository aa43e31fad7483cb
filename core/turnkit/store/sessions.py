"""Store jobs on agents and sessions: registering, creating, reading, moving status, instructions."""

from __future__ import annotations

import json
from typing import Any

import attrs
from turnkit_hookspecs import SessionInfo

from ..errors import StoreError
from . import rows
from .records import SessionRecord
from .tx import Tx

#: Session statuses a session can be moved to.
SESSION_STATUSES = ("active", "closed", "merged", "abandoned")


def json_text(value: Any, what: str) -> str:
    """JSON text of ``value``, or a StoreError naming ``what`` was not serialisable."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serialisable: {exc}") from exc


def unknown_session(session_id: str) -> StoreError:
    return StoreError(f"unknown session {session_id!r}")


def require_session(tx: Tx, session_id: str) -> None:
    if tx.one("SELECT 1 FROM sessions WHERE id = ?", (session_id,)) is None:
        raise unknown_session(session_id)


def touch(tx: Tx, session_id: str) -> None:
    """Set the session's ``updated_at`` (also how writers check that it exists)."""
    if tx.run("UPDATE sessions SET updated_at = ? WHERE id = ?", (tx.now, session_id)).rowcount == 0:
        raise unknown_session(session_id)


@attrs.frozen
class SessionState:
    """What a job queueing or starting a turn needs to know of its session, read under its lock.

    ``forked``: it has a parent, so its window reads a lineage; ``last_number``
    the number of its newest turn (0: none yet); ``busy``: a turn of it is
    queued or running; ``pending``: contributed context waits for a turn.
    """

    forked: bool
    instructions: str | None
    last_number: int
    busy: bool
    pending: bool


#: Seconds: a session's ``updated_at`` follows its turns to this resolution. A turn queued sooner
#: after the last change leaves the session's row alone: every index of the row holds
#: ``updated_at``, so writing it would add five pages to the commit of each turn.
ACTIVITY_RESOLUTION = 1.0


def lock_state(tx: Tx, session_id: str) -> SessionState:
    """Take the session's lock (a row lock where the engine has them), bring its ``updated_at``
    up to date (see :data:`ACTIVITY_RESOLUTION`), then read its :class:`SessionState`.

    The lock and the state are read by two statements, not one: under READ
    COMMITTED (PostgreSQL) a statement that waited for the lock still reads
    the snapshot it started with, so what the previous holder committed is
    only seen by the next statement.
    """
    row = tx.one(
        "SELECT parent_id, instructions, updated_at FROM sessions WHERE id = ?" + tx.dialect.for_update,
        (session_id,),
    )
    if row is None:
        raise unknown_session(session_id)
    if tx.now - row[2] >= ACTIVITY_RESOLUTION:
        tx.run("UPDATE sessions SET updated_at = ? WHERE id = ?", (tx.now, session_id))
    last_number, busy, pending = tx.one(
        "SELECT (SELECT COALESCE(MAX(number), 0) FROM turns WHERE session_id = ?),"
        " EXISTS (SELECT 1 FROM turns WHERE session_id = ? AND status IN ('queued', 'running')),"
        " EXISTS (SELECT 1 FROM context WHERE session_id = ? AND consumed_by IS NULL)",
        (session_id, session_id, session_id),
    )
    return SessionState(row[0] is not None, row[1], last_number, bool(busy), bool(pending))


def register_agent(tx: Tx, agent_id: str) -> None:
    tx.run(
        "INSERT INTO agents (id, registered_at, last_seen) VALUES (?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
        (agent_id, tx.now, tx.now),
    )


def agents(tx: Tx) -> list[str]:
    return [row[0] for row in tx.all("SELECT id FROM agents ORDER BY id")]


def create_session(tx: Tx, info: SessionInfo, agent_id: str, metadata: str) -> SessionRecord:
    if tx.one("SELECT 1 FROM sessions WHERE id = ?", (info.session_id,)) is not None:
        raise StoreError(f"session {info.session_id!r} already exists")
    parent = info.parent_session_id
    if parent is not None and tx.one("SELECT 1 FROM sessions WHERE id = ?", (parent,)) is None:
        raise StoreError(f"session {info.session_id!r} names an unknown parent session {parent!r}")
    row = (
        info.session_id,
        agent_id,
        info.kind,
        info.status,
        parent,
        info.root_session_id,
        info.fork_point,
        metadata,
        tx.now,
        tx.now,
    )
    tx.run(f"INSERT INTO sessions ({rows.SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    return rows.session(row)


def get_session(tx: Tx, session_id: str) -> SessionRecord | None:
    row = tx.one(f"SELECT {rows.SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
    return None if row is None else rows.session(row)


def list_sessions(tx: Tx, agent_id: str | None, kind: str | None, limit: int | None) -> list[SessionRecord]:
    filters = (("agent_id", agent_id), ("kind", kind))
    where = [(column, value) for column, value in filters if value is not None]
    sql = f"SELECT {rows.SESSION_COLUMNS} FROM sessions"
    if where:
        sql += " WHERE " + " AND ".join(f"{column} = ?" for column, _ in where)
    sql += " ORDER BY updated_at DESC, id"
    params: list[Any] = [value for _, value in where]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [rows.session(row) for row in tx.all(sql, params)]


def session_ids_starting(tx: Tx, prefix: str, limit: int) -> list[str]:
    # substr, not LIKE: an id may hold % or _, and SQLite's LIKE ignores case
    found = tx.all(
        "SELECT id FROM sessions WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT ?", (len(prefix), prefix, limit)
    )
    return [row[0] for row in found]


def child_sessions(tx: Tx, session_id: str) -> list[SessionRecord]:
    require_session(tx, session_id)
    found = tx.all(
        f"SELECT {rows.SESSION_COLUMNS} FROM sessions WHERE parent_id = ? ORDER BY created_at, id",
        (session_id,),
    )
    return [rows.session(row) for row in found]


def session_instructions(tx: Tx, session_id: str) -> str | None:
    row = tx.one("SELECT instructions FROM sessions WHERE id = ?", (session_id,))
    if row is None:
        raise unknown_session(session_id)
    instructions: str | None = row[0]
    return instructions


def set_session_instructions(tx: Tx, session_id: str, instructions: str | None) -> None:
    found = tx.run("UPDATE sessions SET instructions = ? WHERE id = ?", (instructions, session_id))
    if found.rowcount == 0:
        raise unknown_session(session_id)


def set_session_status(tx: Tx, session_id: str, status: str) -> None:
    touch(tx, session_id)
    tx.run("UPDATE sessions SET status = ? WHERE id = ?", (status, session_id))


def check_status(status: str) -> None:
    """A StoreError unless ``status`` is one of :data:`SESSION_STATUSES`."""
    if status not in SESSION_STATUSES:
        raise StoreError(f"session status must be one of {', '.join(SESSION_STATUSES)}, got {status!r}")
