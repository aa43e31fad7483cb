"""One transaction, as every store job sees it, whatever the engine.

The store's operations are written once, as plain functions ("jobs") taking
a :class:`Tx`: the SQLite and the PostgreSQL engines only differ in how they
open a transaction and in the few fragments of SQL that :class:`Dialect`
spells per engine. Jobs write SQL with ``?`` placeholders; a dialect turns
them into its driver's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any, Protocol

from .cache import TxCache
from .migrations import POSTGRES_MESSAGE_TEXT


class Cursor(Protocol):
    """What a DB-API cursor gives back (sqlite3's and psycopg's alike)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the jobs use (sqlite3's and psycopg's alike)."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...


class Dialect:
    """The SQL fragments that differ between engines; this base class speaks SQLite."""

    name = "sqlite"
    #: Appended to a SELECT whose rows the transaction will update (row locks).
    for_update = ""
    #: Appended to a SELECT of work items that concurrent workers must not both take.
    skip_locked = ""
    #: Whether the full-text index of the messages is brought up to date after their commit
    #: (:func:`~turnkit.store.browse.index_messages`) rather than by the commit itself.
    search_lags = True

    def sql(self, text: str) -> str:
        """``text`` with the driver's placeholders (SQLite takes ``?`` as written)."""
        return text

    def lock_session(self, tx: Tx, session_id: str) -> None:
        """Serialise this transaction with every other one changing the session's turns.

        SQLite needs nothing: ``BEGIN IMMEDIATE`` already lets one writer in
        at a time.
        """

    def notify(self, tx: Tx, event: str) -> None:
        """Tell other processes, at commit, that ``event`` happened (``queued:SESSION`` …).

        SQLite has no such channel: other processes notice a commit through
        ``PRAGMA data_version``.
        """

    def json_equals(self, column: str) -> str:
        """A condition: top-level field ``?`` (``$.name``) of JSON ``column`` equals ``?``."""
        return f"json_extract({column}, ?) = ?"

    def json_is_null(self, column: str) -> str:
        """A condition: top-level field ``?`` of JSON ``column`` is missing or null."""
        return f"json_extract({column}, ?) IS NULL"

    def json_field(self, name: str) -> str:
        """The parameter naming field ``name`` in :meth:`json_equals` and :meth:`json_is_null`."""
        return f"$.{name}"

    def json_value(self, value: str | int | float | bool) -> Any:
        """The parameter :meth:`json_equals` compares the field with."""
        return value

    def message_search(self) -> str:
        """A subquery: the ids of the sessions holding a message whose text has every word of ``?``.

        The parameter is :meth:`search_words`; the subquery reads the
        engine's full-text index of the messages' text (migration 6; on
        SQLite, up to date once :func:`~turnkit.store.browse.index_messages` ran).
        """
        return (
            "SELECT m.session_id FROM messages_fts f JOIN messages m ON m.id = f.rowid"
            " WHERE messages_fts MATCH ?"
        )

    def search_words(self, words: Sequence[str]) -> str:
        """The parameter of :meth:`message_search` for these words (``\\w+`` runs: no query syntax)."""
        return " ".join(f'"{word}"' for word in words)


class PostgresDialect(Dialect):
    """PostgreSQL: ``%s`` placeholders, row locks, ``NOTIFY``, ``jsonb`` comparisons."""

    name = "postgresql"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    search_lags = False  # an expression index: PostgreSQL keeps it with each insert
    #: The channel every process of every agent on the database listens on.
    CHANNEL = "turnkit"

    @functools.lru_cache(maxsize=1024)  # noqa: B019 - one instance, a bounded number of statements
    def sql(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def lock_session(self, tx: Tx, session_id: str) -> None:
        tx.one("SELECT 1 FROM sessions WHERE id = ? FOR UPDATE", (session_id,))

    def notify(self, tx: Tx, event: str) -> None:
        tx.one("SELECT pg_notify(?, ?)", (self.CHANNEL, event))

    def json_equals(self, column: str) -> str:
        return f"({column})::jsonb -> ? = (?)::jsonb"

    def json_is_null(self, column: str) -> str:
        return f"COALESCE(({column})::jsonb -> ?, 'null'::jsonb) = 'null'::jsonb"

    def json_field(self, name: str) -> str:
        return name

    def json_value(self, value: str | int | float | bool) -> Any:
        return json.dumps(value)

    def message_search(self) -> str:
        return (
            f"SELECT session_id FROM messages WHERE {POSTGRES_MESSAGE_TEXT} @@ plainto_tsquery('simple', ?)"
        )

    def search_words(self, words: Sequence[str]) -> str:
        return " ".join(words)


SQLITE = Dialect()
POSTGRES = PostgresDialect()


class Tx:
    """One job's view of an open transaction: run statements, and what every job needs beside them.

    ``now`` is the job's timestamp (one per job, so that the rows it writes
    carry the same time, even when a group commit shares the transaction
    among several jobs); ``cache`` the store's decoded messages as this
    transaction sees them (the engine calls its ``committed`` after commit);
    ``dialect`` the engine's SQL fragments.
    """

    __slots__ = ("cache", "conn", "dialect", "now")

    def __init__(self, conn: Connection, now: float, cache: TxCache, dialect: Dialect) -> None:
        self.conn = conn
        self.now = now
        self.cache = cache
        self.dialect = dialect

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of ``sql``, or ``None``."""
        return self.conn.execute(self.dialect.sql(sql), params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of ``sql``."""
        return list(self.conn.execute(self.dialect.sql(sql), params).fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """Execute ``sql`` (a write) and return its cursor (for ``rowcount``)."""
        cursor: Cursor = self.conn.execute(self.dialect.sql(sql), params)
        return cursor

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute ``sql`` once per row of parameters (in one driver call where it has one)."""
        text = self.dialect.sql(sql)
        executemany = getattr(self.conn, "executemany", None)
        if executemany is not None:
            executemany(text, rows)
            return
        for params in rows:
            self.conn.execute(text, params)
