"""Store jobs on leases: which process runs which turn, and taking over from dead ones.

A process that runs turns registers an *owner* row (its id, host and pid)
with an expiry it renews by a heartbeat; every turn it claims names that
owner. A running turn whose owner's row expired, or is gone, belongs to a
process that died or lost touch with the database: a takeover marks it
``interrupted``, re-queues its message once (per ``[turns] interrupted``)
and audits it, all in one transaction. A live owner's turns are never
touched, however long they run.

One lease per process rather than per turn: the heartbeat is one row
update per process whatever the number of turns it runs, and claiming a
turn costs no extra write.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..ids import new_id
from . import rows
from .audit import audit
from .records import OwnerRecord, Takeover, TurnRecord
from .sessions import json_text, touch
from .turns import insert_turn, next_number
from .tx import Tx

#: The error of a turn taken over from a process whose lease expired.
INTERRUPTED = "interrupted: the process running the turn stopped holding its lease"
#: The audit action (extension ``turnkit``) of a takeover.
TAKEN_OVER = "lease_taken_over"
#: Seconds an ended lease is kept after it ended (one holding no turn goes at a clean stop).
KEPT = 86_400.0


def register_owner(
    tx: Tx, owner: str, agent_id: str, host: str, pid: int, started: float, lease: float
) -> None:
    tx.run(
        "INSERT INTO owners (id, agent_id, host, pid, started, registered_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at",
        (owner, agent_id, host, pid, started, tx.now, tx.now + lease),
    )


def renew_owner(tx: Tx, owner: str, lease: float) -> bool:
    """Extend the lease; ``False`` when it is gone (expired and taken over)."""
    cursor = tx.run(
        "UPDATE owners SET expires_at = ? WHERE id = ? AND expires_at >= ?", (tx.now + lease, owner, tx.now)
    )
    return cursor.rowcount > 0


_IDLE = "NOT EXISTS (SELECT 1 FROM turns t WHERE t.status = 'running' AND t.owner = owners.id)"


def release_owner(tx: Tx, owner: str) -> None:
    """End the lease at once (a clean stop): turns it left running can be taken over now.

    A lease that holds no running turn is deleted, so that one-off commands
    (each ``turnkit send`` takes a lease) leave no row behind.
    """
    if tx.run(f"DELETE FROM owners WHERE id = ? AND {_IDLE}", (owner,)).rowcount == 0:
        tx.run("UPDATE owners SET expires_at = ? WHERE id = ?", (tx.now - 1, owner))


def expire_owner(tx: Tx, owner: str) -> None:
    """End a lease whose process is known to be dead (same host, no such process)."""
    tx.run("UPDATE owners SET expires_at = ? WHERE id = ? AND expires_at >= ?", (tx.now - 1, owner, tx.now))


def disown(tx: Tx, owner: str, turn_ids: Sequence[str]) -> None:
    """Give up ``owner``'s lease on these running turns: the next takeover takes them."""
    tx.many(
        "UPDATE turns SET owner = NULL WHERE id = ? AND status = 'running' AND owner = ?",
        [(turn_id, owner) for turn_id in turn_ids],
    )


def owners(tx: Tx, agent_id: str | None) -> list[OwnerRecord]:
    sql, params = f"SELECT {rows.OWNER_COLUMNS} FROM owners", tuple[str, ...]()
    if agent_id is not None:
        sql, params = f"{sql} WHERE agent_id = ?", (agent_id,)
    found = tx.all(f"{sql} ORDER BY registered_at, id", params)
    return [rows.owner(row, tx.now) for row in found]


def take_over(tx: Tx, agent_id: str, owner: str, policy: str) -> list[Takeover]:
    """Interrupt every running turn of ``agent_id`` whose owner's lease is over; re-queue per ``policy``."""
    stale = tx.all(
        f"SELECT {rows.TURN_COLUMNS} FROM turns WHERE status = 'running'"
        " AND session_id IN (SELECT id FROM sessions WHERE agent_id = ?)"
        " AND NOT EXISTS (SELECT 1 FROM owners o WHERE o.id = turns.owner AND o.expires_at >= ?)"
        " ORDER BY session_id, number" + tx.dialect.skip_locked,
        (agent_id, tx.now),
    )
    done: list[Takeover] = []
    for row in stale:
        turn = rows.turn(row)
        tx.run(
            "UPDATE turns SET status = 'interrupted', error = ?, finished_at = ? WHERE id = ?",
            (INTERRUPTED, tx.now, turn.turn_id),
        )
        interrupted = attrs.evolve(turn, status="interrupted", error=INTERRUPTED, finished_at=tx.now)
        rerun = None
        chosen = policy
        if turn.rerun_of is not None:  # the re-run was interrupted too: once is the limit
            chosen = "report"
        elif policy == "rerun":
            touch(tx, turn.session_id)  # the session's lock: its turns are numbered one at a time
            message_id, body, origin = tx.one(
                "SELECT message_id, inbound, origin FROM turns WHERE id = ?", (turn.turn_id,)
            )
            rerun = insert_turn(
                tx,
                TurnRecord(
                    new_id(),
                    turn.session_id,
                    next_number(tx, turn.session_id),
                    turn.initiator,
                    turn.initiator_id,
                    "queued",
                    message_id,
                    tx.now,
                    rerun_of=turn.turn_id,
                    origin=turn.origin,
                ),
                body,
                origin,
            )
        detail = {
            "turn": turn.turn_id,
            "number": turn.number,
            "owner": turn.owner,
            "by": owner,
            "policy": chosen,
            **({"rerun": rerun.turn_id} if rerun else {}),
        }
        audit(tx, turn.session_id, "turnkit", TAKEN_OVER, detail, json_text(detail, "audit"), turn.turn_id)
        tx.dialect.notify(tx, f"finished:{turn.turn_id}")
        done.append(Takeover(interrupted, rerun, turn.owner, chosen))
    # Ended leases stay a day, for whoever looks into a takeover (store info), then go.
    tx.run(f"DELETE FROM owners WHERE agent_id = ? AND expires_at < ? AND {_IDLE}", (agent_id, tx.now - KEPT))
    return done
