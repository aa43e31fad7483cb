"""Store jobs on sessions' histories: appending, reading whole or through a fork's lineage,
the prompt window, and compression."""

from __future__ import annotations

import functools
from operator import itemgetter
from typing import Any

import attrs
from turnkit_hookspecs import Message

from . import rows
from .cache import WINDOW_COLUMNS, WINDOW_SUMMARY
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


_INSERT = "INSERT INTO messages (session_id, turn_id, role, body, compressed, summary, created_at)"


def insert_message(
    tx: Tx, session_id: str, message: Message, body: str, turn_id: str | None, summary: bool
) -> StoredMessage:
    """Append ``message`` (``body`` is its JSON) to the session's history."""
    message_id: int = tx.one(
        f"{_INSERT} VALUES (?, ?, ?, ?, FALSE, ?, ?) RETURNING id",
        (session_id, turn_id, message.role, body, summary, tx.now),
    )[0]
    return _stored(tx, message_id, session_id, turn_id, message, body, summary)


def insert_turn_message(tx: Tx, turn_id: str, message: Message, body: str) -> StoredMessage | None:
    """Append ``message`` to the history of turn ``turn_id``'s session, reading the session from
    the turn's row in the same statement; ``None`` (nothing stored) if the turn is unknown or final."""
    row = tx.one(
        f"{_INSERT} SELECT session_id, id, ?, ?, FALSE, FALSE, ? FROM turns"
        f" WHERE id = ? AND {rows.UNFINISHED} RETURNING id, session_id",
        (message.role, body, tx.now, turn_id),
    )
    return None if row is None else _stored(tx, row[0], row[1], turn_id, message, body, False)


def _stored(
    tx: Tx, message_id: int, session_id: str, turn_id: str | None, message: Message, body: str, summary: bool
) -> StoredMessage:
    row = (message_id, session_id, turn_id, body, tx.now, False, summary)
    return tx.cache.put(row, attrs.evolve(message, id=str(message_id)))


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
        found.extend(tx.cache.stored(row) for row in tx.all(sql, params))
    return found


def last_message_id(tx: Tx, session_id: str) -> int | None:
    for sid, bound in lineage(tx, session_id):
        sql, params = _bounded("SELECT MAX(id) FROM messages WHERE session_id = ?", sid, bound, "")
        newest: int | None = tx.one(sql, params)[0]
        if newest is not None:
            return newest
    return None


def window(tx: Tx, session_id: str, limit: int, forked: bool = True) -> list[StoredMessage]:
    """The prompt's window; ``forked=False`` (known to have no parent) spares the lineage query.

    One statement per session of the lineage, and only until the summary and
    ``limit`` messages are found: for a session that is not a fork, one. The
    bodies come from the store's cache; one more statement reads those it
    lacks (another process's messages, or a store just opened).
    """
    seen = lineage(tx, session_id) if forked else [(session_id, None)]
    summary = None
    newest: list[Any] = []
    for sid, bound in seen:
        wanted = limit - len(newest)
        if summary is not None and wanted <= 0:
            break
        found = _newest(tx, sid, bound, summary is None, wanted)
        summary = summary or next((row for row in found if row[WINDOW_SUMMARY]), None)
        others = [row for row in found if not row[WINDOW_SUMMARY]]
        newest += sorted(others, key=itemgetter(0), reverse=True)
    picked = ([summary] if summary is not None else []) + newest[::-1]
    known = tx.cache.window(picked)
    unknown = [message_id for message_id, stored in known.items() if stored is None]
    if unknown:  # not so in a turn's window: earlier turns' messages and its own, just written
        known.update((row[0], tx.cache.stored(row)) for row in _bodies(tx, unknown))
    return [stored for stored in known.values() if stored is not None]


def _bodies(tx: Tx, ids: list[int]) -> list[Any]:
    """The whole rows of messages ``ids``, in no particular order."""
    return tx.all(
        f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE id IN ({', '.join('?' * len(ids))})", ids
    )


def _newest(tx: Tx, session_id: str, bound: int | None, summary: bool, limit: int) -> list[Any]:
    """The session's newest uncompressed summary (if ``summary``) and ``limit`` newest other
    uncompressed messages, up to ``bound``, in one statement (in no particular order)."""
    newest = limit > 0
    if not (summary or newest):
        return []
    params: list[Any] = []
    for wanted, count in ((summary, 1), (newest, limit)):
        if wanted:
            params += [session_id, *([] if bound is None else [bound]), count]
    return tx.all(_newest_sql(bound is not None, summary, newest), params)


@functools.lru_cache(maxsize=8)
def _newest_sql(bounded: bool, summary: bool, newest: bool) -> str:
    """The statement of :func:`_newest` (built once per shape)."""
    parts: list[str] = []
    for wanted, flag in ((summary, "TRUE"), (newest, "FALSE")):
        if wanted:
            sql = (
                f"SELECT {WINDOW_COLUMNS} FROM messages WHERE session_id = ? AND compressed = FALSE"
                f" AND summary = {flag}{' AND id <= ?' if bounded else ''} ORDER BY id DESC LIMIT ?"
            )
            parts.append(f"SELECT * FROM ({sql}) AS part{len(parts)}")
    return " UNION ALL ".join(parts)


def compress(
    tx: Tx, session_id: str, upto_id: int, summary: Message, body: str, turn_id: str | None
) -> StoredMessage:
    touch(tx, session_id)
    tx.run(
        "UPDATE messages SET compressed = TRUE WHERE session_id = ? AND compressed = FALSE AND id <= ?",
        (session_id, upto_id),
    )
    return insert_message(tx, session_id, summary, body, turn_id, True)
