"""Store jobs on the audit trail: every action taken on a session, by whom."""

from __future__ import annotations

from typing import Any

from . import rows
from .records import AuditEvent
from .sessions import require_session
from .tx import Tx


def audit(
    tx: Tx,
    session_id: str,
    extension_id: str,
    action: str,
    detail: dict[str, Any],
    text: str,
    turn_id: str | None,
) -> AuditEvent:
    require_session(tx, session_id)
    event_id = tx.one(
        "INSERT INTO audit (at, session_id, turn_id, extension_id, action, detail)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (tx.now, session_id, turn_id, extension_id, action, text),
    )[0]
    return AuditEvent(event_id, tx.now, session_id, turn_id, extension_id, action, detail)


def audit_events(tx: Tx, session_id: str) -> list[AuditEvent]:
    require_session(tx, session_id)
    found = tx.all(f"SELECT {rows.AUDIT_COLUMNS} FROM audit WHERE session_id = ? ORDER BY id", (session_id,))
    return [rows.audit_event(row) for row in found]
