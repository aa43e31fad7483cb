"""Store jobs on sessions' histories: appending, reading whole or through a fork's lineage,
the prompt window, and compression."""

from __future__ import annotations

from typing import Any

import attrs
from turnkit_hookspecs import Message

from . import rows
from .records import StoredMessage
from .sessions import require_session, touch, unknown_session
from .tx import Tx


def lineage(tx: Tx, session_id: str) -> list[tuple[str, int | None]]:
    """The sessions whose messages ``session_id`` sees, itself first, with their bounds."""
    chain = tx.all(
        """WITH RECURSIVE lineage (id, parent_id, fork_point, depth) AS (
               SELECT id, parent_id, fork_point, 0 FROM sessions WHERE id = ?
               UNION ALL
               SELECT s.id, s.parent_id, s.fork_point, l.depth + 1
               FROM sessions s JOIN lineage l ON s.id = l.parent_id
           )
           SELECT id, parent_id, fork_point FROM lineage ORDER BY depth""",
        (session_id,),
    )
    if not chain:
        raise unknown_session(session_id)
    return rows.lineage_bounds(chain)


def _bounded(sql: str, session_id: str, bound: int | None, tail: str) -> tuple[str, tuple[Any, ...]]:
    """``sql`` restricted to ``id <= bound`` when the session is an ancestor."""
    if bound is None:
        return f"{sql} {tail}", (session_id,)
    return f"{sql} AND id <= ? {tail}", (session_id, bound)


def insert_message(
    tx: Tx, session_id: str, message: Message, body: str, turn_id: str | None, summary: bool
) -> StoredMessage:
    """Append ``message`` (``body`` is its JSON) to the session's history."""
    message_id: int = tx.one(
        "INSERT INTO messages (session_id, turn_id, role, body, compressed, summary, created_at)"
        " VALUES (?, ?, ?, ?, FALSE, ?, ?) RETURNING id",
        (session_id, turn_id, message.role, body, summary, tx.now),
    )[0]
    stored = tx.cache.put(message_id, body, attrs.evolve(message, id=str(message_id)))
    return StoredMessage(message_id, session_id, turn_id, stored, tx.now, False, summary)


def append_message(
    tx: Tx, session_id: str, message: Message, body: str, turn_id: str | None, summary: bool
) -> StoredMessage:
    touch(tx, session_id)
    return insert_message(tx, session_id, message, body, turn_id, summary)


def messages(tx: Tx, session_id: str, with_lineage: bool) -> list[StoredMessage]:
    if with_lineage:
        seen = lineage(tx, session_id)
    else:
        require_session(tx, session_id)
        seen = [(session_id, None)]
    found: list[StoredMessage] = []
    # Ancestors first: their visible messages are older than any of the fork's.
    for sid, bound in reversed(seen):
        sql, params = _bounded(
            f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE session_id = ?", sid, bound, "ORDER BY id"
        )
        found.extend(rows.stored_message(row, tx.cache) for row in tx.all(sql, params))
    return found


def last_message_id(tx: Tx, session_id: str) -> int | None:
    for sid, bound in lineage(tx, session_id):
        sql, params = _bounded("SELECT MAX(id) FROM messages WHERE session_id = ?", sid, bound, "")
        newest: int | None = tx.one(sql, params)[0]
        if newest is not None:
            return newest
    return None


def window(tx: Tx, session_id: str, limit: int) -> list[StoredMessage]:
    seen = lineage(tx, session_id)
    uncompressed = f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE session_id = ? AND compressed = FALSE"
    summary = None
    for sid, bound in seen:
        sql, params = _bounded(f"{uncompressed} AND summary = TRUE", sid, bound, "ORDER BY id DESC LIMIT 1")
        summary = tx.one(sql, params)
        if summary is not None:
            break
    newest: list[Any] = []
    for sid, bound in seen:
        if len(newest) >= limit:
            break
        sql, params = _bounded(f"{uncompressed} AND summary = FALSE", sid, bound, "ORDER BY id DESC LIMIT ?")
        newest.extend(tx.all(sql, (*params, limit - len(newest))))
    picked = ([summary] if summary is not None else []) + newest[::-1]
    return [rows.stored_message(row, tx.cache) for row in picked]


def compress(
    tx: Tx, session_id: str, upto_id: int, summary: Message, body: str, turn_id: str | None
) -> StoredMessage:
    touch(tx, session_id)
    tx.run(
        "UPDATE messages SET compressed = TRUE WHERE session_id = ? AND compressed = FALSE AND id <= ?",
        (session_id, upto_id),
    )
    return insert_message(tx, session_id, summary, body, turn_id, True)
