"""Store jobs on contributed context: what extensions add for a later turn's prompt."""

from __future__ import annotations

from typing import Any

from . import rows
from .records import ContextItem
from .sessions import require_session
from .tx import Tx


def add_context(
    tx: Tx, session_id: str, key: str, value: str, extension_id: str, turn_id: str | None
) -> ContextItem:
    require_session(tx, session_id)
    item_id = tx.one(
        "INSERT INTO context (session_id, key, value, extension_id, turn_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (session_id, key, value, extension_id, turn_id, tx.now),
    )[0]
    return ContextItem(item_id, session_id, key, value, extension_id, turn_id, tx.now)


def pending_context(tx: Tx, session_id: str, exclude_turn: str | None) -> list[ContextItem]:
    sql = f"SELECT {rows.CONTEXT_COLUMNS} FROM context WHERE session_id = ? AND consumed_by IS NULL"
    params: tuple[Any, ...] = (session_id,)
    if exclude_turn is not None:
        sql += " AND (turn_id IS NULL OR turn_id <> ?)"
        params = (session_id, exclude_turn)
    found = tx.all(f"{sql} ORDER BY id", params)
    if not found:
        require_session(tx, session_id)
    return [rows.context_item(row) for row in found]
