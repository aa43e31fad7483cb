"""The SQLite session store: the embedded default (DESIGN §5).

One connection, owned by one dedicated thread: every store method is one job
on that thread, and each job is one transaction (``BEGIN IMMEDIATE`` when it
writes, so that processes sharing the file queue up on SQLite's lock instead
of failing half-way; a plain ``BEGIN`` when it only reads, so that its
statements see one snapshot). The event loop never blocks on the disk, and a
turn costs one thread hop per store call.

Files run in WAL mode, so readers in other processes are not blocked by a
writer; ``synchronous`` and ``busy_timeout`` come from
:class:`~turnkit.config.StoreConfig`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

import attrs
from turnkit_hookspecs import Initiator, Message, SessionInfo, StoredRecord, TurnStatus, to_json

from ..errors import StoreError
from ..ids import new_id
from ..tracing import TraceRecord
from . import rows, sqlite_records
from .base import SESSION_STATUSES, Store, inbox_session_id
from .migrations import MIGRATIONS, SCHEMA_VERSION, SQLITE_EXTRAS
from .records import AuditEvent, Claim, ContextItem, InboxItem, SessionRecord, StoredMessage, TurnRecord

P = ParamSpec("P")
T = TypeVar("T")

MEMORY = ":memory:"
_SYNCHRONOUS = ("normal", "full")
_FINAL = ("completed", "denied", "failed", "interrupted")
INTERRUPTED = "interrupted: the agent stopped during the turn"


class _Tx(NamedTuple):
    """One transaction on the store's thread, and the time it started at."""

    conn: sqlite3.Connection
    now: float
    cache: rows.MessageCache

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of ``sql``, or ``None``."""
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of ``sql``."""
        return self.conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Execute ``sql`` (a write) and return its cursor (for ``rowcount``)."""
        return self.conn.execute(sql, params)


class SQLiteStore(Store):
    """The store in one SQLite file (or in memory, for tests).

    By default each call runs its transaction right away on the calling
    (event loop) thread: a turn's two transactions take tens of
    microseconds plus the commit's fsync, less than handing each to a thread
    and back, which measured about 180 µs per call here. With
    ``threaded=True`` (``[store] thread = true``) calls run on the store's
    own thread instead, so that waiting for another process's lock on a
    shared file (up to ``busy_timeout``) never stalls the event loop.

    Either way calls are serialised in the order they are made, and a call
    that is cancelled while its job runs still commits (or rolls back) as a
    whole. Two instances, in one process or several, may open the same file.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "normal",
        busy_timeout: float = 5.0,
        threaded: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` replaces ``time.time`` for timestamps (tests use it to make ties impossible)."""
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}")
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._threaded = threaded
        self._executor: ThreadPoolExecutor | None = None
        # Touched by one thread at a time: the executor's, or the event loop's when not threaded.
        self._conn: sqlite3.Connection | None = None
        self._cache = rows.MessageCache()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # ------------------------------------------------------------------ plumbing

    async def _read(self, job: Callable[Concatenate[_Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._hop(lambda tx: job(tx, *args, **kwargs), write=False)

    async def _write(self, job: Callable[Concatenate[_Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._hop(lambda tx: job(tx, *args, **kwargs), write=True)

    async def _hop(self, job: Callable[[_Tx], T], *, write: bool) -> T:
        executor = self._executor
        if executor is None:
            raise StoreError(f"store {self.path} is not open")
        if not self._threaded:
            return self._transaction(job, write)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self._transaction, job, write)

    def _transaction(self, job: Callable[[_Tx], T], write: bool) -> T:
        """Run ``job`` in one transaction (on the store's thread)."""
        conn = self._conn
        if conn is None:
            raise StoreError(f"store {self.path} is closed")
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = job(_Tx(conn, self._clock(), self._cache))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc
        return result

    def _failure(self, exc: sqlite3.Error) -> StoreError:
        """Word a driver error so that it names the file and what to do."""
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):
            return StoreError(f"{self.path} is not a turnkit database, or it is corrupt ({exc})")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreError(
                f"{self.path} stayed locked by another connection for longer than"
                f" busy_timeout ({self._busy_timeout}s)"
            )
        return StoreError(f"{self.path}: {exc}")

    # ------------------------------------------------------------------ lifecycle

    async def open(self, *, upto: int | None = None) -> None:
        """Connect and migrate; ``upto`` stops at that schema version.

        ``upto`` is for tests and tooling that need a database as an older
        turnkit made it; the runtime never passes it.
        """
        if self._executor is not None:
            raise StoreError(f"store {self.path} is already open")
        target = SCHEMA_VERSION if upto is None else upto
        if not 0 <= target <= SCHEMA_VERSION:
            raise ValueError(f"upto must be between 0 and {SCHEMA_VERSION}, got {upto}")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turnkit-sqlite")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._connect, target)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    def _connect(self, target: int) -> None:
        if self.path != MEMORY:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of {self.path}: {exc}") from exc
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if self.path != MEMORY:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            self._migrate(conn, target)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._failure(exc) from exc
            raise
        self._conn = conn

    def _migrate(self, conn: sqlite3.Connection, target: int) -> None:
        """Apply the missing migrations up to ``target``, each in its own transaction."""
        current = _version(conn)
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {current}, newer than this turnkit knows"
                f" ({SCHEMA_VERSION}); upgrade turnkit to open it"
            )
        for version in range(current + 1, target + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                if _version(conn) < version:
                    for statement in (*MIGRATIONS[version - 1], *SQLITE_EXTRAS.get(version, ())):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                        (version, self._clock()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        finally:
            executor.shutdown(wait=False)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def schema_version(self) -> int:
        return await self._read(lambda tx: _version(tx.conn))

    # ------------------------------------------------------------------ agents

    async def register_agent(self, agent_id: str) -> None:
        await self._write(_register_agent, agent_id)

    async def agents(self) -> list[str]:
        return await self._read(lambda tx: [r[0] for r in tx.all("SELECT id FROM agents ORDER BY id")])

    # ------------------------------------------------------------------ sessions

    async def create_session(self, info: SessionInfo, agent_id: str) -> SessionRecord:
        metadata = _json(info.metadata, f"metadata of session {info.session_id!r}")
        return await self._write(_create_session, info, agent_id, metadata)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return await self._read(_get_session, session_id)

    async def list_sessions(
        self, agent_id: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[SessionRecord]:
        return await self._read(_list_sessions, agent_id, kind, limit)

    async def child_sessions(self, session_id: str) -> list[SessionRecord]:
        return await self._read(_child_sessions, session_id)

    async def set_session_status(self, session_id: str, status: str) -> None:
        if status not in SESSION_STATUSES:
            raise StoreError(f"session status must be one of {', '.join(SESSION_STATUSES)}, got {status!r}")
        await self._write(_set_session_status, session_id, status)

    # ------------------------------------------------------------------ messages

    async def append_message(
        self, session_id: str, message: Message, turn_id: str | None = None, *, summary: bool = False
    ) -> StoredMessage:
        return await self._write(_append_message, session_id, message, to_json(message), turn_id, summary)

    async def messages(self, session_id: str, *, lineage: bool = False) -> list[StoredMessage]:
        return await self._read(_messages, session_id, lineage)

    async def last_message_id(self, session_id: str) -> int | None:
        return await self._read(_last_message_id, session_id)

    async def window(self, session_id: str, limit: int) -> list[StoredMessage]:
        """See :meth:`Store.window`; the summary is the newest one the session sees.

        That is the session's own newest uncompressed summary if it has one,
        else its parent's up to the fork point, and so on up the lineage. The
        cost is a few index seeks per ancestor plus ``limit`` rows.
        """
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        return await self._read(_window, session_id, limit)

    async def compress(
        self, session_id: str, upto_id: int, summary: Message, turn_id: str | None
    ) -> StoredMessage:
        return await self._write(_compress, session_id, upto_id, summary, to_json(summary), turn_id)

    # ------------------------------------------------------------------ turns

    async def accept(
        self,
        session_id: str,
        turn_id: str,
        message: Message,
        initiator: Initiator,
        initiator_id: str | None = None,
    ) -> TurnRecord:
        body = to_json(message)
        return await self._write(_accept, session_id, turn_id, body, initiator, initiator_id)

    async def requeue(self, turn_id: str, new_turn_id: str) -> TurnRecord:
        return await self._write(_requeue, turn_id, new_turn_id)

    async def claim_turn(self, session_id: str) -> tuple[TurnRecord, Message] | None:
        return await self._write(_claim_turn, session_id)

    async def claim_next(self, session_id: str, history: int) -> Claim | None:
        if history < 0:
            raise ValueError(f"history must not be negative, got {history}")
        return await self._write(_claim_next, session_id, history)

    async def accept_and_claim(
        self,
        session_id: str,
        turn_id: str,
        message: Message,
        initiator: Initiator,
        initiator_id: str | None,
        history: int,
    ) -> tuple[TurnRecord, Claim | None]:
        if history < 0:
            raise ValueError(f"history must not be negative, got {history}")
        body = to_json(message)
        return await self._write(
            _accept_and_claim, session_id, turn_id, body, initiator, initiator_id, history
        )

    async def finish_turn(
        self,
        turn_id: str,
        status: TurnStatus,
        *,
        error: str | None = None,
        messages: Sequence[Message] = (),
        consumed: Sequence[int] = (),
        trace: Sequence[TraceRecord] = (),
    ) -> TurnRecord:
        """See :meth:`Store.finish_turn`.

        Refuses a turn that already finished (say, marked interrupted by a
        restart while a stale process still ran it): its message may be
        re-run, so this late result must not be recorded too. ``consumed``
        ids that are not pending context of the turn's session are skipped.
        """
        if status not in _FINAL:
            raise StoreError(f"turn {turn_id!r} cannot finish as {status!r} (one of {', '.join(_FINAL)})")
        bodies = [(m, to_json(m)) for m in messages]
        return await self._write(_finish_turn, turn_id, status, error, bodies, consumed, trace)

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        return await self._read(_get_turn, turn_id)

    async def turns(self, session_id: str) -> list[TurnRecord]:
        return await self._read(_turns, session_id)

    async def interrupt_running(self, agent_id: str) -> list[TurnRecord]:
        return await self._write(_interrupt_running, agent_id)

    async def sessions_with_queued_turns(self, agent_id: str) -> list[str]:
        """See :meth:`Store.sessions_with_queued_turns`; the longest-waiting session first."""
        return await self._read(_sessions_with_queued_turns, agent_id)

    # ------------------------------------------------------------------ contributed context

    async def add_context(
        self, session_id: str, key: str, value: str, extension_id: str, turn_id: str | None
    ) -> ContextItem:
        return await self._write(_add_context, session_id, key, value, extension_id, turn_id)

    async def pending_context(self, session_id: str, exclude_turn: str | None = None) -> list[ContextItem]:
        return await self._read(_pending_context, session_id, exclude_turn)

    # ------------------------------------------------------------------ audit

    async def audit(
        self,
        session_id: str,
        extension_id: str,
        action: str,
        detail: Mapping[str, Any] | None = None,
        turn_id: str | None = None,
    ) -> AuditEvent:
        detail = dict(detail or {})
        text = _json(detail, f"detail of audit action {action!r}")
        return await self._write(_audit, session_id, extension_id, action, detail, text, turn_id)

    async def audit_events(self, session_id: str) -> list[AuditEvent]:
        return await self._read(_audit_events, session_id)

    # ------------------------------------------------------------------ inboxes

    async def deliver(self, agent_id: str, from_agent: str, message: Message) -> InboxItem:
        return await self._write(_deliver, agent_id, from_agent, message, to_json(message))

    async def take_inbox(self, agent_id: str) -> list[TurnRecord]:
        """See :meth:`Store.take_inbox`; the new turns get ids from :func:`turnkit.ids.new_id`."""
        return await self._write(_take_inbox, agent_id)

    async def inbox(self, agent_id: str) -> list[InboxItem]:
        return await self._read(_inbox, agent_id)

    # ------------------------------------------------------------------ traces

    async def append_trace(self, records: Sequence[TraceRecord]) -> None:
        if records:  # nothing to store is not worth a hop
            await self._write(_insert_trace, records)

    async def trace(self, turn_id: str) -> list[TraceRecord]:
        return await self._read(_trace, turn_id)

    # ------------------------------------------------------------------ service records

    async def put_record(
        self,
        namespace: str,
        collection: str,
        key: str,
        value: Mapping[str, Any],
        text: str | None,
        expect: int | None,
    ) -> StoredRecord:
        return await self._write(sqlite_records.put, namespace, collection, key, value, text, expect)

    async def get_record(self, namespace: str, collection: str, key: str) -> StoredRecord | None:
        return await self._read(sqlite_records.get, namespace, collection, key)

    async def delete_record(self, namespace: str, collection: str, key: str, expect: int | None) -> bool:
        return await self._write(sqlite_records.delete, namespace, collection, key, expect)

    async def list_records(
        self,
        namespace: str,
        collection: str,
        prefix: str | None,
        where: Mapping[str, Any],
        limit: int | None,
    ) -> list[StoredRecord]:
        return await self._read(sqlite_records.listing, namespace, collection, prefix, where, limit)

    async def search_records(
        self, namespace: str, collection: str, query: str, where: Mapping[str, Any], limit: int
    ) -> list[StoredRecord]:
        return await self._read(sqlite_records.search, namespace, collection, query, where, limit)


# ---------------------------------------------------------------------- helpers


def _json(value: Any, what: str) -> str:
    """JSON text of ``value``, or a StoreError naming ``what`` was not serialisable."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serialisable: {exc}") from exc


def _version(conn: sqlite3.Connection) -> int:
    """The database's schema version; 0 for a database turnkit never touched."""
    table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    if conn.execute(table).fetchone() is None:
        return 0
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    return int(version or 0)


def _unknown_session(session_id: str) -> StoreError:
    return StoreError(f"unknown session {session_id!r}")


def _require_session(tx: _Tx, session_id: str) -> None:
    if tx.one("SELECT 1 FROM sessions WHERE id = ?", (session_id,)) is None:
        raise _unknown_session(session_id)


def _touch(tx: _Tx, session_id: str) -> None:
    """Set the session's ``updated_at`` (also how writers check that it exists)."""
    if tx.run("UPDATE sessions SET updated_at = ? WHERE id = ?", (tx.now, session_id)).rowcount == 0:
        raise _unknown_session(session_id)


def _require_turn(tx: _Tx, turn_id: str) -> TurnRecord:
    row = tx.one(f"SELECT {rows.TURN_COLUMNS} FROM turns WHERE id = ?", (turn_id,))
    if row is None:
        raise StoreError(f"unknown turn {turn_id!r}")
    return rows.turn(row)


def _require_new_turn(tx: _Tx, turn_id: str) -> None:
    if tx.one("SELECT 1 FROM turns WHERE id = ?", (turn_id,)) is not None:
        raise StoreError(f"turn {turn_id!r} already exists")


def _lineage(tx: _Tx, session_id: str) -> list[tuple[str, int | None]]:
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
        raise _unknown_session(session_id)
    return rows.lineage_bounds(chain)


def _bounded(sql: str, session_id: str, bound: int | None, tail: str) -> tuple[str, tuple[Any, ...]]:
    """``sql`` restricted to ``id <= bound`` when the session is an ancestor."""
    if bound is None:
        return f"{sql} {tail}", (session_id,)
    return f"{sql} AND id <= ? {tail}", (session_id, bound)


def _insert_message(
    tx: _Tx, session_id: str, message: Message, body: str, turn_id: str | None, summary: bool
) -> StoredMessage:
    """Append ``message`` (``body`` is its JSON) to the session's history."""
    message_id: int = tx.one(
        "INSERT INTO messages (session_id, turn_id, role, body, compressed, summary, created_at)"
        " VALUES (?, ?, ?, ?, FALSE, ?, ?) RETURNING id",
        (session_id, turn_id, message.role, body, summary, tx.now),
    )[0]
    stored = tx.cache.put(message_id, body, attrs.evolve(message, id=str(message_id)))
    return StoredMessage(message_id, session_id, turn_id, stored, tx.now, False, summary)


def _insert_turn(
    tx: _Tx,
    turn_id: str,
    session_id: str,
    initiator: Initiator,
    initiator_id: str | None,
    inbound: tuple[int | None, str | None],
    rerun_of: str | None,
) -> TurnRecord:
    """Queue a turn numbered after the session's last; ``inbound`` is ``(message_id, JSON)``, one set."""
    message_id, body = inbound
    number = tx.one("SELECT COALESCE(MAX(number), 0) + 1 FROM turns WHERE session_id = ?", (session_id,))[0]
    tx.run(
        "INSERT INTO turns (id, session_id, number, initiator, initiator_id, status, message_id, inbound,"
        " rerun_of, queued_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
        (turn_id, session_id, number, initiator, initiator_id, message_id, body, rerun_of, tx.now),
    )
    return TurnRecord(
        turn_id, session_id, number, initiator, initiator_id, "queued", message_id, tx.now, rerun_of=rerun_of
    )


def _insert_trace(tx: _Tx, records: Sequence[TraceRecord]) -> None:
    if not records:
        return
    tx.conn.executemany(
        f"INSERT INTO trace ({rows.TRACE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [rows.trace_params(record) for record in records],
    )


# ---------------------------------------------------------------------- jobs: agents and sessions


def _register_agent(tx: _Tx, agent_id: str) -> None:
    tx.run(
        "INSERT INTO agents (id, registered_at, last_seen) VALUES (?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen",
        (agent_id, tx.now, tx.now),
    )


def _create_session(tx: _Tx, info: SessionInfo, agent_id: str, metadata: str) -> SessionRecord:
    if tx.one("SELECT 1 FROM sessions WHERE id = ?", (info.session_id,)) is not None:
        raise StoreError(f"session {info.session_id!r} already exists")
    parent = info.parent_session_id
    if parent is not None and tx.one("SELECT 1 FROM sessions WHERE id = ?", (parent,)) is None:
        raise StoreError(f"session {info.session_id!r} names an unknown parent session {parent!r}")
    row = (
        info.session_id,
        agent_id,
        info.kind,
        info.status,
        parent,
        info.root_session_id,
        info.fork_point,
        metadata,
        tx.now,
        tx.now,
    )
    tx.run(f"INSERT INTO sessions ({rows.SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    return rows.session(row)


def _get_session(tx: _Tx, session_id: str) -> SessionRecord | None:
    row = tx.one(f"SELECT {rows.SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
    return None if row is None else rows.session(row)


def _list_sessions(tx: _Tx, agent_id: str | None, kind: str | None, limit: int | None) -> list[SessionRecord]:
    filters = (("agent_id", agent_id), ("kind", kind))
    where = [(column, value) for column, value in filters if value is not None]
    sql = f"SELECT {rows.SESSION_COLUMNS} FROM sessions"
    if where:
        sql += " WHERE " + " AND ".join(f"{column} = ?" for column, _ in where)
    sql += " ORDER BY updated_at DESC, id"
    params: list[Any] = [value for _, value in where]
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [rows.session(row) for row in tx.all(sql, params)]


def _child_sessions(tx: _Tx, session_id: str) -> list[SessionRecord]:
    _require_session(tx, session_id)
    found = tx.all(
        f"SELECT {rows.SESSION_COLUMNS} FROM sessions WHERE parent_id = ? ORDER BY created_at, id",
        (session_id,),
    )
    return [rows.session(row) for row in found]


def _set_session_status(tx: _Tx, session_id: str, status: str) -> None:
    _touch(tx, session_id)
    tx.run("UPDATE sessions SET status = ? WHERE id = ?", (status, session_id))


# ---------------------------------------------------------------------- jobs: messages


def _append_message(
    tx: _Tx, session_id: str, message: Message, body: str, turn_id: str | None, summary: bool
) -> StoredMessage:
    _touch(tx, session_id)
    return _insert_message(tx, session_id, message, body, turn_id, summary)


def _messages(tx: _Tx, session_id: str, lineage: bool) -> list[StoredMessage]:
    if lineage:
        seen = _lineage(tx, session_id)
    else:
        _require_session(tx, session_id)
        seen = [(session_id, None)]
    found: list[StoredMessage] = []
    # Ancestors first: their visible messages are older than any of the fork's.
    for sid, bound in reversed(seen):
        sql, params = _bounded(
            f"SELECT {rows.MESSAGE_COLUMNS} FROM messages WHERE session_id = ?", sid, bound, "ORDER BY id"
        )
        found.extend(rows.stored_message(row, tx.cache) for row in tx.all(sql, params))
    return found


def _last_message_id(tx: _Tx, session_id: str) -> int | None:
    for sid, bound in _lineage(tx, session_id):
        sql, params = _bounded("SELECT MAX(id) FROM messages WHERE session_id = ?", sid, bound, "")
        newest: int | None = tx.one(sql, params)[0]
        if newest is not None:
            return newest
    return None


def _window(tx: _Tx, session_id: str, limit: int) -> list[StoredMessage]:
    seen = _lineage(tx, session_id)
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


def _compress(
    tx: _Tx, session_id: str, upto_id: int, summary: Message, body: str, turn_id: str | None
) -> StoredMessage:
    _touch(tx, session_id)
    tx.run(
        "UPDATE messages SET compressed = TRUE WHERE session_id = ? AND compressed = FALSE AND id <= ?",
        (session_id, upto_id),
    )
    return _insert_message(tx, session_id, summary, body, turn_id, True)


# ---------------------------------------------------------------------- jobs: turns


def _accept(
    tx: _Tx, session_id: str, turn_id: str, body: str, initiator: Initiator, initiator_id: str | None
) -> TurnRecord:
    _touch(tx, session_id)
    _require_new_turn(tx, turn_id)
    return _insert_turn(tx, turn_id, session_id, initiator, initiator_id, (None, body), None)


def _requeue(tx: _Tx, turn_id: str, new_turn_id: str) -> TurnRecord:
    old = _require_turn(tx, turn_id)
    if old.status != "interrupted":
        raise StoreError(f"turn {turn_id!r} is {old.status}: only an interrupted turn can be re-run")
    again = tx.one("SELECT id FROM turns WHERE rerun_of = ?", (turn_id,))
    if again is not None:
        raise StoreError(f"turn {turn_id!r} was already re-run as turn {again[0]!r}")
    _require_new_turn(tx, new_turn_id)
    _touch(tx, old.session_id)
    # A turn that ran has its message in the history: point at it, never copy it.
    inbound = tx.one("SELECT message_id, inbound FROM turns WHERE id = ?", (turn_id,))
    return _insert_turn(
        tx, new_turn_id, old.session_id, old.initiator, old.initiator_id, tuple(inbound), turn_id
    )


def _claim_turn(tx: _Tx, session_id: str) -> tuple[TurnRecord, Message] | None:
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
        _require_session(tx, session_id)
        return None
    turn, inbound = rows.turn(row[:-1]), row[-1]
    if turn.message_id is None:
        message = rows.parse_message(inbound, f"inbound message of turn {turn.turn_id!r}")
        stored = _insert_message(tx, session_id, message, inbound, turn.turn_id, False)
        message_id, message = stored.id, stored.message
    else:
        message_id = turn.message_id
        body = tx.one("SELECT body FROM messages WHERE id = ?", (message_id,))[0]
        message = tx.cache.get(message_id, body, session_id)
    tx.run(
        "UPDATE turns SET status = 'running', started_at = ?, message_id = ?, inbound = NULL WHERE id = ?",
        (tx.now, message_id, turn.turn_id),
    )
    return attrs.evolve(turn, status="running", started_at=tx.now, message_id=message_id), message


def _claim_next(tx: _Tx, session_id: str, history: int) -> Claim | None:
    claimed = _claim_turn(tx, session_id)
    if claimed is None:
        return None
    turn, message = claimed
    window = _window(tx, session_id, history)
    return Claim(turn, message, window, _pending_context(tx, session_id, turn.turn_id))


def _accept_and_claim(
    tx: _Tx,
    session_id: str,
    turn_id: str,
    body: str,
    initiator: Initiator,
    initiator_id: str | None,
    history: int,
) -> tuple[TurnRecord, Claim | None]:
    turn = _accept(tx, session_id, turn_id, body, initiator, initiator_id)
    others = (
        "SELECT 1 FROM turns WHERE session_id = ? AND status IN ('queued', 'running') AND id <> ? LIMIT 1"
    )
    if tx.one(others, (session_id, turn_id)) is not None:
        return turn, None
    return turn, _claim_next(tx, session_id, history)


def _finish_turn(
    tx: _Tx,
    turn_id: str,
    status: TurnStatus,
    error: str | None,
    bodies: Sequence[tuple[Message, str]],
    consumed: Sequence[int],
    trace: Sequence[TraceRecord],
) -> TurnRecord:
    turn = _require_turn(tx, turn_id)
    if turn.status in _FINAL:
        raise StoreError(f"turn {turn_id!r} already finished ({turn.status})")
    for message, body in bodies:
        _insert_message(tx, turn.session_id, message, body, turn_id, False)
    tx.run(
        "UPDATE turns SET status = ?, error = ?, finished_at = ? WHERE id = ?",
        (status, error, tx.now, turn_id),
    )
    if consumed:
        tx.conn.executemany(
            "UPDATE context SET consumed_by = ? WHERE id = ? AND session_id = ? AND consumed_by IS NULL",
            [(turn_id, item, turn.session_id) for item in consumed],
        )
    _insert_trace(tx, trace)
    _touch(tx, turn.session_id)
    return attrs.evolve(turn, status=status, error=error, finished_at=tx.now)


def _get_turn(tx: _Tx, turn_id: str) -> TurnRecord | None:
    row = tx.one(f"SELECT {rows.TURN_COLUMNS} FROM turns WHERE id = ?", (turn_id,))
    return None if row is None else rows.turn(row)


def _turns(tx: _Tx, session_id: str) -> list[TurnRecord]:
    sql = f"SELECT {rows.TURN_COLUMNS} FROM turns WHERE session_id = ? ORDER BY number"
    found = tx.all(sql, (session_id,))
    if not found:
        _require_session(tx, session_id)
    return [rows.turn(row) for row in found]


def _interrupt_running(tx: _Tx, agent_id: str) -> list[TurnRecord]:
    updated = tx.all(
        "UPDATE turns SET status = 'interrupted', error = ?, finished_at = ?"
        " WHERE status = 'running' AND session_id IN (SELECT id FROM sessions WHERE agent_id = ?)"
        f" RETURNING {rows.TURN_COLUMNS}",
        (INTERRUPTED, tx.now, agent_id),
    )
    return sorted((rows.turn(row) for row in updated), key=lambda t: (t.session_id, t.number))


def _sessions_with_queued_turns(tx: _Tx, agent_id: str) -> list[str]:
    found = tx.all(
        "SELECT t.session_id FROM turns t JOIN sessions s ON s.id = t.session_id"
        " WHERE t.status = 'queued' AND s.agent_id = ?"
        " GROUP BY t.session_id ORDER BY MIN(t.queued_at), t.session_id",
        (agent_id,),
    )
    return [row[0] for row in found]


# ---------------------------------------------------------------------- jobs: context, audit


def _add_context(
    tx: _Tx, session_id: str, key: str, value: str, extension_id: str, turn_id: str | None
) -> ContextItem:
    _require_session(tx, session_id)
    item_id = tx.one(
        "INSERT INTO context (session_id, key, value, extension_id, turn_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (session_id, key, value, extension_id, turn_id, tx.now),
    )[0]
    return ContextItem(item_id, session_id, key, value, extension_id, turn_id, tx.now)


def _pending_context(tx: _Tx, session_id: str, exclude_turn: str | None) -> list[ContextItem]:
    sql = f"SELECT {rows.CONTEXT_COLUMNS} FROM context WHERE session_id = ? AND consumed_by IS NULL"
    params: tuple[Any, ...] = (session_id,)
    if exclude_turn is not None:
        sql += " AND (turn_id IS NULL OR turn_id <> ?)"
        params = (session_id, exclude_turn)
    found = tx.all(f"{sql} ORDER BY id", params)
    if not found:
        _require_session(tx, session_id)
    return [rows.context_item(row) for row in found]


def _audit(
    tx: _Tx,
    session_id: str,
    extension_id: str,
    action: str,
    detail: dict[str, Any],
    text: str,
    turn_id: str | None,
) -> AuditEvent:
    _require_session(tx, session_id)
    event_id = tx.one(
        "INSERT INTO audit (at, session_id, turn_id, extension_id, action, detail)"
        " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        (tx.now, session_id, turn_id, extension_id, action, text),
    )[0]
    return AuditEvent(event_id, tx.now, session_id, turn_id, extension_id, action, detail)


def _audit_events(tx: _Tx, session_id: str) -> list[AuditEvent]:
    _require_session(tx, session_id)
    found = tx.all(f"SELECT {rows.AUDIT_COLUMNS} FROM audit WHERE session_id = ? ORDER BY id", (session_id,))
    return [rows.audit_event(row) for row in found]


# ---------------------------------------------------------------------- jobs: inboxes, traces


def _deliver(tx: _Tx, agent_id: str, from_agent: str, message: Message, body: str) -> InboxItem:
    item_id = tx.one(
        "INSERT INTO inbox (agent_id, from_agent, body, delivered_at) VALUES (?, ?, ?, ?) RETURNING id",
        (agent_id, from_agent, body, tx.now),
    )[0]
    return InboxItem(item_id, agent_id, from_agent, message, tx.now)


def _take_inbox(tx: _Tx, agent_id: str) -> list[TurnRecord]:
    waiting = tx.all(
        "SELECT id, from_agent, body FROM inbox WHERE agent_id = ? AND turn_id IS NULL ORDER BY id",
        (agent_id,),
    )
    taken: list[TurnRecord] = []
    for item_id, from_agent, body in waiting:
        session_id = inbox_session_id(agent_id, from_agent)
        if tx.one("SELECT 1 FROM sessions WHERE id = ?", (session_id,)) is None:
            _create_session(tx, SessionInfo(session_id, "agent"), agent_id, "{}")
        turn = _accept(tx, session_id, new_id(), body, "agent", from_agent)
        tx.run(
            "UPDATE inbox SET session_id = ?, turn_id = ? WHERE id = ?", (session_id, turn.turn_id, item_id)
        )
        taken.append(turn)
    return taken


def _inbox(tx: _Tx, agent_id: str) -> list[InboxItem]:
    found = tx.all(f"SELECT {rows.INBOX_COLUMNS} FROM inbox WHERE agent_id = ? ORDER BY id", (agent_id,))
    return [rows.inbox_item(row) for row in found]


def _trace(tx: _Tx, turn_id: str) -> list[TraceRecord]:
    found = tx.all(f"SELECT {rows.TRACE_COLUMNS} FROM trace WHERE scope = ? ORDER BY id", (turn_id,))
    return [rows.trace_record(row) for row in found]
