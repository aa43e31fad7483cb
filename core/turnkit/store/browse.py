"""Store jobs the console reads by: a page of sessions, the turns changed lately, a page of the audit trail.

Each is one indexed read whose cost follows the page, not the store's size,
so a store of 100,000 sessions answers as fast as a small one:

- a page of sessions is keyset-paginated (``ORDER BY updated_at DESC, id``
  resumed after the last row of the previous page, never ``OFFSET``, which
  reads and drops every row before the page), on the indexes by agent,
  kind, status and update time (migrations 1 and 6);
- a text search reads each engine's full-text index of the messages' text
  (:meth:`~turnkit.store.tx.Dialect.message_search`); SQLite's is brought up
  to date by :func:`index_messages`, off the turn's commits;
- the live view asks for turns queued or finished after a moment, on the
  indexes by those times.
"""

from __future__ import annotations

import re
from typing import Any

from . import rows
from .migrations import SQLITE_MESSAGE_TEXT
from .records import AuditEvent, ContextItem, SessionQuery, SessionRecord, StoredMessage, TurnRecord
from .sessions import require_session
from .tx import Tx

#: A word of a search: what both engines' full-text indexes split text into.
_WORD = re.compile(r"\w+")


def index_messages(tx: Tx, limit: int | None) -> int:
    """Add the messages committed since the last call to SQLite's full-text index, the oldest
    ``limit`` of them (``None``: all); how many were added.

    Message ids grow with each commit (SQLite lets one writer in at a time,
    and a message is never deleted, so no id is given out twice), so
    ``messages_fts_indexed.upto``, moved in the same transaction, is exactly
    where the index stops.
    """
    upto: int = tx.one("SELECT upto FROM messages_fts_indexed")[0]
    newest = tx.one(
        "SELECT MAX(id), COUNT(*) FROM (SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?)",
        (upto, -1 if limit is None else limit),
    )
    if not newest[1]:
        return 0
    tx.run(
        "INSERT INTO messages_fts (rowid, text)"
        f" SELECT m.id, {SQLITE_MESSAGE_TEXT.format(body='m.body')} FROM messages m"
        " WHERE m.id > ? AND m.id <= ?",
        (upto, newest[0]),
    )
    tx.run("UPDATE messages_fts_indexed SET upto = ?", (newest[0],))
    return int(newest[1])


def find_sessions(tx: Tx, query: SessionQuery) -> list[SessionRecord]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("agent_id", query.agent_id), ("kind", query.kind), ("status", query.status)):
        if value is not None:
            where.append(f"s.{column} = ?")
            params.append(value)
    if query.channel is not None:
        where.append(tx.dialect.json_equals("s.metadata"))
        params += [tx.dialect.json_field("channel"), tx.dialect.json_value(query.channel)]
    if query.text:
        text = query.text.strip()
        words = _WORD.findall(text)
        search = ["substr(s.id, 1, ?) = ?"]
        params += [len(text), text]
        if words:
            search.append(f"s.id IN ({tx.dialect.message_search()})")
            params.append(tx.dialect.search_words(words))
        where.append("(" + " OR ".join(search) + ")")
    if query.after is not None:
        updated, session_id = query.after
        where.append("(s.updated_at < ? OR (s.updated_at = ? AND s.id > ?))")
        params += [updated, updated, session_id]
    sql = f"SELECT {', '.join('s.' + c for c in rows.SESSION_COLUMNS.split(', '))} FROM sessions s"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY s.updated_at DESC, s.id LIMIT ?"
    params.append(query.limit)
    return [rows.session(row) for row in tx.all(sql, params)]


def turns_changed(tx: Tx, since: float, limit: int) -> list[TurnRecord]:
    """Turns queued or finished at or after ``since``, oldest change first (each turn once)."""
    found: dict[str, tuple[float, TurnRecord]] = {}
    for column in ("queued_at", "finished_at"):
        for row in tx.all(
            f"SELECT {rows.TURN_COLUMNS} FROM turns WHERE {column} >= ? ORDER BY {column} LIMIT ?",
            (since, limit),
        ):
            turn = rows.turn(row)
            changed = max(turn.queued_at, turn.finished_at or 0.0)
            found[turn.turn_id] = (changed, turn)
    return [turn for _, turn in sorted(found.values(), key=lambda pair: pair[0])][:limit]


def audit_page(tx: Tx, before: int | None, limit: int, extension_id: str | None) -> list[AuditEvent]:
    """Audit events of every session, newest first, with ids below ``before``."""
    sql = f"SELECT {rows.AUDIT_COLUMNS} FROM audit"
    where: list[str] = []
    params: list[Any] = []
    if before is not None:
        where.append("id < ?")
        params.append(before)
    if extension_id is not None:
        where.append("extension_id = ?")
        params.append(extension_id)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [rows.audit_event(row) for row in tx.all(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])]


def turn_messages(tx: Tx, session_id: str, turn_id: str) -> list[StoredMessage]:
    """The messages a turn added to its session's history (inbound, tool steps, reply), in order."""
    found = tx.all(
        f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE session_id = ? AND turn_id = ? ORDER BY id",
        (session_id, turn_id),
    )
    return [tx.cache.stored(row) for row in found]


def context_items(tx: Tx, session_id: str) -> list[ContextItem]:
    """Every contribution to the session's context, consumed or pending, in order."""
    require_session(tx, session_id)
    found = tx.all(
        f"SELECT {rows.CONTEXT_COLUMNS} FROM context WHERE session_id = ? ORDER BY id", (session_id,)
    )
    return [rows.context_item(row) for row in found]
