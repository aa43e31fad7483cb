"""Store jobs on forked sessions: forking, merging and abandoning, each one transaction.

A fork writes the child, the context it inherits, its initial message and
the audit event together; a merge the summary in the parent, the child's
new status and the audit event. A crash between any two of them can then
leave no child without its message, and no merged child without a summary.
"""

from __future__ import annotations

from typing import Any

import attrs
from turnkit_hookspecs import Message, SessionInfo

from ..errors import StoreError
from .audit import audit
from .history import append_message, last_message_id
from .records import SessionRecord, StoredMessage, TurnRecord
from .sessions import create_session, json_text, set_session_status
from .turns import accept
from .tx import Tx


@attrs.frozen
class Acting:
    """Who acts on the parent session, for its audit trail."""

    extension_id: str
    turn_id: str | None


def fork(
    tx: Tx,
    child: SessionInfo,
    agent_id: str,
    inherit_context: bool,
    initial: tuple[str, str] | None,
    acting: Acting,
    reason: str,
) -> tuple[SessionRecord, TurnRecord | None]:
    """Create ``child`` (its fork point: the parent's newest message now), with its first turn.

    ``initial`` is ``(turn id, message JSON)`` of the child's first message, queued
    with initiator ``extension``.
    """
    parent = child.parent_session_id
    if parent is None:
        raise StoreError(f"session {child.session_id!r} names no parent to fork from")
    child = attrs.evolve(child, fork_point=last_message_id(tx, parent))
    record = create_session(tx, child, agent_id, json_text(child.metadata, "metadata of the fork"))
    if inherit_context:
        tx.run(
            "INSERT INTO context (session_id, key, value, extension_id, turn_id, created_at)"
            " SELECT ?, key, value, extension_id, NULL, ? FROM context"
            " WHERE session_id = ? AND consumed_by IS NULL ORDER BY id",
            (child.session_id, tx.now, parent),
        )
    turn = None
    if initial is not None:
        turn_id, body = initial
        turn = accept(tx, child.session_id, turn_id, body, "extension", acting.extension_id)
    detail = {"child": child.session_id, "reason": reason, "fork_point": child.fork_point}
    _audit(tx, parent, acting, "fork", detail)
    return record, turn


def merge(tx: Tx, parent: str, child: str, summary: Message, body: str, acting: Acting) -> StoredMessage:
    """Append the child's ``summary`` to ``parent``, mark the child merged, audit it."""
    stored = append_message(tx, parent, summary, body, acting.turn_id, False)
    set_session_status(tx, child, "merged")
    _audit(tx, parent, acting, "merge", {"child": child, "message_id": stored.id})
    return stored


def abandon(tx: Tx, parent: str, child: str, acting: Acting) -> None:
    """Mark the child abandoned and audit it."""
    set_session_status(tx, child, "abandoned")
    _audit(tx, parent, acting, "abandon", {"child": child})


def _audit(tx: Tx, session_id: str, acting: Acting, action: str, detail: dict[str, Any]) -> None:
    text = json_text(detail, f"detail of audit action {action!r}")
    audit(tx, session_id, acting.extension_id, action, detail, text, acting.turn_id)
