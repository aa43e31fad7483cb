"""Store jobs on turns: accepting a message, claiming the next turn under a lease,
finishing it, re-running an interrupted one, and reading outcomes.

Every job that queues or starts a session's turns first takes the session's
lock (its row, by updating it or through :meth:`Dialect.lock_session`), so
that numbering, "is one running?" and FIFO order hold with any number of
processes on one database; finishing a turn locks only that turn's row.
A turn in an idle session is one statement per step: lock the session and
read its state, store the message, start the turn, read the window; and to
finish: store the reply, end the turn, store its trace.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from turnkit_hookspecs import Deny, Initiator, Message, TurnStatus, from_json

from ..errors import IdempotencyKeyReused, StoreError
from ..tracing import Trace
from . import rows
from .contributions import pending_context
from .history import insert_message, insert_turn_message, window
from .records import Claim, TurnOutcome, TurnRecord
from .sessions import SessionState, lock_state, session_instructions
from .traces import insert_trace
from .tx import Tx

#: The statuses a turn ends in.
FINAL = ("completed", "denied", "failed", "interrupted")


_INSERT_TURN = (
    f"INSERT INTO turns ({rows.TURN_COLUMNS}, inbound) VALUES ({', '.join('?' * 16)})"
    " ON CONFLICT (id) DO NOTHING"
)


def insert_turn(tx: Tx, turn: TurnRecord, inbound: str | None, origin: str | None) -> TurnRecord:
    """Store ``turn`` as it stands: queued holding its ``inbound`` message's JSON, or with its
    message in the history already (``turn.message_id``); ``origin`` is the JSON of ``turn.origin``.

    A turn id that exists already is refused.
    """
    stored = tx.run(_INSERT_TURN, (*rows.turn_params(turn, origin), inbound))
    if stored.rowcount == 0:
        raise StoreError(f"turn {turn.turn_id!r} already exists")
    tx.dialect.notify(tx, f"queued:{turn.session_id}")
    return turn


def next_number(tx: Tx, session_id: str) -> int:
    """The number the session's next turn gets (under the session's lock)."""
    number: int = tx.one(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM turns WHERE session_id = ?", (session_id,)
    )[0]
    return number


def _keyed_turn(tx: Tx, session_id: str, key: str | None) -> TurnRecord | None:
    """The turn an earlier request with idempotency ``key`` created, if any (same agent)."""
    if key is None:
        return None
    row = tx.one(
        f"SELECT {rows.TURN_COLUMNS} FROM turns WHERE id = (SELECT turn_id FROM idempotency"
        " WHERE agent_id = (SELECT agent_id FROM sessions WHERE id = ?) AND key = ?)",
        (session_id, key),
    )
    if row is None:
        return None
    turn = rows.turn(row)
    if turn.session_id != session_id:
        raise IdempotencyKeyReused(key, turn.session_id, session_id)
    return turn


def _keep_key(tx: Tx, session_id: str, turn_id: str, key: str | None) -> None:
    """Store the idempotency ``key`` of a new turn (nothing without one)."""
    if key is None:
        return
    # Another session's transaction may be storing the same key right now (the session
    # lock does not cover it): DO NOTHING waits for it, then tells us it won.
    stored = tx.run(
        "INSERT INTO idempotency (agent_id, key, turn_id, created_at)"
        " SELECT agent_id, ?, ?, ? FROM sessions WHERE id = ? ON CONFLICT DO NOTHING",
        (key, turn_id, tx.now, session_id),
    )
    if stored.rowcount == 0:
        winner = _keyed_turn(tx, session_id, key)  # raises for another session
        named = winner.turn_id if winner is not None else "?"
        raise StoreError(f"idempotency key {key!r} was stored meanwhile, for turn {named!r}")


def _queue(
    tx: Tx,
    state: SessionState,
    session_id: str,
    turn_id: str,
    body: str,
    initiator: Initiator,
    initiator_id: str | None,
    origin: str | None,
) -> TurnRecord:
    queued = TurnRecord(
        turn_id,
        session_id,
        state.last_number + 1,
        initiator,
        initiator_id,
        "queued",
        None,
        tx.now,
        origin=rows.origin(origin),
    )
    return insert_turn(tx, queued, body, origin)


def accept(
    tx: Tx,
    session_id: str,
    turn_id: str,
    body: str,
    initiator: Initiator,
    initiator_id: str | None,
    key: str | None = None,
    origin: str | None = None,
) -> TurnRecord:
    state = lock_state(tx, session_id)
    earlier = _keyed_turn(tx, session_id, key)
    if earlier is not None:
        return earlier
    turn = _queue(tx, state, session_id, turn_id, body, initiator, initiator_id, origin)
    _keep_key(tx, session_id, turn_id, key)
    return turn


def claim_turn(tx: Tx, session_id: str, owner: str) -> tuple[TurnRecord, Message] | None:
    tx.dialect.lock_session(tx, session_id)
    running = "SELECT 1 FROM turns WHERE session_id = ? AND status = 'running' LIMIT 1"
    if tx.one(running, (session_id,)) is not None:
        return None
    # Re-runs first: their message is already in the history, before the queued ones.
    row = tx.one(
        f"SELECT {rows.TURN_COLUMNS}, inbound FROM turns WHERE session_id = ? AND status = 'queued'"
        " ORDER BY rerun_of IS NULL, number LIMIT 1",
        (session_id,),
    )
    if row is None:
        if tx.one("SELECT 1 FROM sessions WHERE id = ?", (session_id,)) is None:
            raise StoreError(f"unknown session {session_id!r}")
        return None
    turn, inbound = rows.turn(row[:-1]), row[-1]
    if turn.message_id is None:
        message = rows.parse_message(inbound, f"inbound message of turn {turn.turn_id!r}")
        stored = insert_message(tx, session_id, message, inbound, turn.turn_id, False)
        message_id, message = stored.id, stored.message
    else:
        message_id = turn.message_id
        body = tx.one("SELECT body FROM messages WHERE id = ?", (message_id,))[0]
        message = tx.cache.get(message_id, body, session_id)
    tx.run(
        "UPDATE turns SET status = 'running', started_at = ?, message_id = ?, inbound = NULL, owner = ?"
        " WHERE id = ?",
        (tx.now, message_id, owner, turn.turn_id),
    )
    running_turn = attrs.evolve(turn, status="running", started_at=tx.now, message_id=message_id, owner=owner)
    return running_turn, message


def claim_next(tx: Tx, session_id: str, history: int, owner: str) -> Claim | None:
    claimed = claim_turn(tx, session_id, owner)
    if claimed is None:
        return None
    turn, message = claimed
    return Claim(
        turn,
        message,
        window(tx, session_id, history),
        pending_context(tx, session_id, turn.turn_id),
        session_instructions(tx, session_id),
    )


def accept_and_claim(
    tx: Tx,
    session_id: str,
    turn_id: str,
    inbound: tuple[Message, str],
    initiator: Initiator,
    initiator_id: str | None,
    history: int,
    owner: str,
    key: str | None,
    origin: str | None = None,
) -> tuple[TurnRecord, Claim | None]:
    """:func:`accept`, and when the session is idle the turn starts at once: its message goes
    straight to the history (``inbound`` is the message and its JSON), never queued."""
    state = lock_state(tx, session_id)
    earlier = _keyed_turn(tx, session_id, key)
    if earlier is not None:
        return earlier, None
    message, body = inbound
    if state.busy:
        turn = _queue(tx, state, session_id, turn_id, body, initiator, initiator_id, origin)
        _keep_key(tx, session_id, turn_id, key)
        return turn, None
    stored = insert_message(tx, session_id, message, body, turn_id, False)
    started = TurnRecord(
        turn_id,
        session_id,
        state.last_number + 1,
        initiator,
        initiator_id,
        "running",
        stored.id,
        tx.now,
        started_at=tx.now,
        owner=owner,
        origin=rows.origin(origin),
    )
    turn = insert_turn(tx, started, None, origin)
    _keep_key(tx, session_id, turn_id, key)
    context = pending_context(tx, session_id, turn_id) if state.pending else []
    return turn, Claim(
        turn, stored.message, window(tx, session_id, history, state.forked), context, state.instructions
    )


def finish_turn(
    tx: Tx,
    turn_id: str,
    status: TurnStatus,
    error: str | None,
    deny: str | None,
    bodies: Sequence[tuple[Message, str]],
    consumed: Sequence[int],
    trace: Trace,
    instructions: str | None = None,
) -> TurnRecord:
    """The messages go first, their session read from the turn's row, so that the update of
    the turn can name the reply. That update locks the row: from then on a takeover (which
    skips locked turns) leaves the turn alone; one that took it just before wins, and this
    finish, finding the turn final, is refused and rolled back."""
    reply_id = None
    for message, body in bodies:
        stored = insert_turn_message(tx, turn_id, message, body)
        if stored is None:  # the turn is unknown or final
            raise _unfinishable(tx, turn_id)
        reply_id = stored.id
    row = tx.one(
        "UPDATE turns SET status = ?, error = ?, finished_at = ?, deny = ?, reply_id = ?, instructions = ?"
        f" WHERE id = ? AND {rows.UNFINISHED} RETURNING {rows.TURN_COLUMNS}",
        (status, error, tx.now, deny, reply_id if status == "completed" else None, instructions, turn_id),
    )
    if row is None:
        raise _unfinishable(tx, turn_id)
    turn = rows.turn(row)
    if consumed:
        tx.run(
            "UPDATE context SET consumed_by = ? WHERE session_id = ? AND consumed_by IS NULL"
            f" AND id IN ({', '.join('?' * len(consumed))})",
            (turn_id, turn.session_id, *consumed),
        )
    insert_trace(tx, trace)
    tx.dialect.notify(tx, f"finished:{turn_id}")
    return turn


def _unfinishable(tx: Tx, turn_id: str) -> StoreError:
    """Why turn ``turn_id`` cannot finish: it is unknown, or it finished already."""
    turn = get_turn(tx, turn_id)
    if turn is None:
        return StoreError(f"unknown turn {turn_id!r}")
    return StoreError(f"turn {turn_id!r} already finished ({turn.status})")


def get_turn(tx: Tx, turn_id: str) -> TurnRecord | None:
    row = tx.one(f"SELECT {rows.TURN_COLUMNS} FROM turns WHERE id = ?", (turn_id,))
    return None if row is None else rows.turn(row)


def turns(tx: Tx, session_id: str) -> list[TurnRecord]:
    found = tx.all(
        f"SELECT {rows.TURN_COLUMNS} FROM turns WHERE session_id = ? ORDER BY number", (session_id,)
    )
    if not found and tx.one("SELECT 1 FROM sessions WHERE id = ?", (session_id,)) is None:
        raise StoreError(f"unknown session {session_id!r}")
    return [rows.turn(row) for row in found]


def queued(tx: Tx, session_id: str) -> list[tuple[TurnRecord, Message]]:
    """The session's queued turns in the order they will run, with their inbound messages."""
    found = tx.all(
        f"SELECT {rows.TURN_COLUMNS}, inbound, message_id FROM turns"
        " WHERE session_id = ? AND status = 'queued' ORDER BY rerun_of IS NULL, number",
        (session_id,),
    )
    result = []
    for row in found:
        turn, inbound, message_id = rows.turn(row[:-2]), row[-2], row[-1]
        if inbound is None:  # a re-run: its message is in the history already
            body = tx.one("SELECT body FROM messages WHERE id = ?", (message_id,))[0]
            message = tx.cache.get(message_id, body, session_id)
        else:
            message = rows.parse_message(inbound, f"inbound message of turn {turn.turn_id!r}")
        result.append((turn, message))
    return result


def claimable_sessions(tx: Tx, agent_id: str) -> list[str]:
    """Sessions of ``agent_id`` holding queued turns and running none, the longest-waiting first."""
    found = tx.all(
        "SELECT t.session_id FROM turns t JOIN sessions s ON s.id = t.session_id"
        " WHERE t.status = 'queued' AND s.agent_id = ?"
        " AND NOT EXISTS (SELECT 1 FROM turns r WHERE r.session_id = t.session_id AND r.status = 'running')"
        " GROUP BY t.session_id ORDER BY MIN(t.queued_at), t.session_id",
        (agent_id,),
    )
    return [row[0] for row in found]


def queued_count(tx: Tx, agent_id: str) -> int:
    """How many turns of ``agent_id``'s sessions wait to be run."""
    row = tx.one(
        "SELECT COUNT(*) FROM turns t JOIN sessions s ON s.id = t.session_id"
        " WHERE t.status = 'queued' AND s.agent_id = ?",
        (agent_id,),
    )
    return int(row[0]) if row is not None else 0


def outcomes(tx: Tx, turn_ids: Sequence[str]) -> list[TurnOutcome]:
    """Where each of ``turn_ids`` stands: its record, and how it ended once it has.

    ``busy`` says whether a turn of the session is running (a queued turn
    whose session is idle can be claimed now).
    """
    found: list[TurnOutcome] = []
    for turn_id in turn_ids:
        row = tx.one(
            f"SELECT {rows.TURN_COLUMNS}, deny, reply_id,"
            " EXISTS (SELECT 1 FROM turns r WHERE r.session_id = turns.session_id AND r.status = 'running'),"
            " (SELECT r.id FROM turns r WHERE r.rerun_of = turns.id)"
            " FROM turns WHERE id = ?",
            (turn_id,),
        )
        if row is None:
            continue
        turn, deny, reply_id, busy, rerun = rows.turn(row[:-4]), row[-4], row[-3], bool(row[-2]), row[-1]
        reply = None
        if reply_id is not None:
            body = tx.one("SELECT body FROM messages WHERE id = ?", (reply_id,))[0]
            reply = tx.cache.get(reply_id, body, turn.session_id)
        found.append(TurnOutcome(turn, reply, _deny(deny), busy, rerun))
    return found


def _deny(text: str | None) -> Deny | None:
    return None if text is None else from_json(text, Deny)


def forget_keys(tx: Tx, before: float) -> int:
    """Drop idempotency keys stored before ``before``; how many went."""
    return tx.run("DELETE FROM idempotency WHERE created_at < ?", (before,)).rowcount
