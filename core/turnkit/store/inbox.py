"""Store jobs on agents' inboxes: durable delivery, and taking items as queued turns."""

from __future__ import annotations

from turnkit_hookspecs import Message, SessionInfo

from ..ids import new_id
from . import rows
from .records import InboxItem, TurnRecord
from .sessions import create_session
from .turns import accept
from .tx import Tx


def inbox_session_id(agent_id: str, from_agent: str) -> str:
    """The session where ``agent_id`` holds its conversation with ``from_agent``."""
    return f"{agent_id}~inbox~{from_agent}"


def deliver(tx: Tx, agent_id: str, from_agent: str, message: Message, body: str) -> InboxItem:
    item_id = tx.one(
        "INSERT INTO inbox (agent_id, from_agent, body, delivered_at) VALUES (?, ?, ?, ?) RETURNING id",
        (agent_id, from_agent, body, tx.now),
    )[0]
    tx.dialect.notify(tx, f"inbox:{agent_id}")
    return InboxItem(item_id, agent_id, from_agent, message, tx.now)


def take_inbox(tx: Tx, agent_id: str) -> list[TurnRecord]:
    # Items another process is taking right now are skipped, not taken twice.
    waiting = tx.all(
        "SELECT id, from_agent, body FROM inbox WHERE agent_id = ? AND turn_id IS NULL ORDER BY id"
        + tx.dialect.skip_locked,
        (agent_id,),
    )
    taken: list[TurnRecord] = []
    for item_id, from_agent, body in waiting:
        session_id = inbox_session_id(agent_id, from_agent)
        if tx.one("SELECT 1 FROM sessions WHERE id = ?", (session_id,)) is None:
            create_session(tx, SessionInfo(session_id, "agent"), agent_id, "{}")
        turn = accept(tx, session_id, new_id(), body, "agent", from_agent)
        tx.run(
            "UPDATE inbox SET session_id = ?, turn_id = ? WHERE id = ?", (session_id, turn.turn_id, item_id)
        )
        taken.append(turn)
    return taken


def inbox(tx: Tx, agent_id: str) -> list[InboxItem]:
    found = tx.all(f"SELECT {rows.INBOX_COLUMNS} FROM inbox WHERE agent_id = ? ORDER BY id", (agent_id,))
    return [rows.inbox_item(row) for row in found]
