"""Store jobs on forked sessions: forking, merging and abandoning, each one transaction.

A fork writes the child, the instructions and context it inherits, its
initial message and the audit event together; a merge the summary in the
parent, the child's new status and the audit event. A crash between any two
of them can then leave no child without its message, and no merged child
without a summary.
"""

from __future__ import annotations

from typing import Any

import attrs
from turnkit_hookspecs import Message, SessionInfo

from ..errors import StoreError
from .audit import audit
from .history import append_message, last_message_id
from .records import SessionRecord, StoredMessage, TurnRecord
from .sessions import (
    create_session,
    json_text,
    session_instructions,
    set_session_instructions,
    set_session_status,
)
from .turns import FINAL, accept
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
    after_turn: str | None = None,
) -> tuple[SessionRecord, TurnRecord | None]:
    """Create ``child`` (its fork point: the parent's newest message now, or the end of
    its turn ``after_turn``), with its first turn.

    ``initial`` is ``(turn id, message JSON)`` of the child's first message, queued
    with initiator ``extension``.
    """
    parent = child.parent_session_id
    if parent is None:
        raise StoreError(f"session {child.session_id!r} names no parent to fork from")
    point = last_message_id(tx, parent) if after_turn is None else turn_end(tx, parent, after_turn)
    child = attrs.evolve(child, fork_point=point)
    record = create_session(tx, child, agent_id, json_text(child.metadata, "metadata of the fork"))
    # The child goes on with the parent's conversation, so with its instructions too.
    set_session_instructions(tx, child.session_id, session_instructions(tx, parent))
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


def turn_end(tx: Tx, session_id: str, turn_id: str) -> int:
    """The id of the last message of ``session_id``'s finished turn ``turn_id``: its reply, else its message.

    Not the newest message carrying the turn's id: a summary a plugin wrote
    for the turn after it ended (a merge, a compression) may come after
    later turns' messages.
    """
    row = tx.one(
        "SELECT status, COALESCE(reply_id, message_id) FROM turns WHERE id = ? AND session_id = ?",
        (turn_id, session_id),
    )
    if row is None:
        raise StoreError(f"no turn {turn_id!r} in session {session_id!r} to fork after")
    status, end = row
    if status not in FINAL or end is None:
        raise StoreError(f"cannot fork after turn {turn_id!r} of session {session_id!r}: it is {status}")
    return int(end)


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
