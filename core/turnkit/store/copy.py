"""Copying a store into another database, and the counts and checksums that prove the copy.

Moving off the embedded SQLite file (or from one PostgreSQL server to
another) is a row-for-row copy: every table of the schema is copied with
its ids and values unchanged, so that message ids, fork points, turn ids
and idempotency keys mean the same thing afterwards. Two tables are not
copied: ``schema_version`` (the target gets its own when it is opened,
which migrates it) and ``owners`` (leases belong to the processes running
on the source; none of them runs on the target).

The source is read in one read transaction, so the copy is one snapshot,
while the target is written in one write transaction, so a copy that fails
half-way leaves the target as empty as it was. The two run at once and pass
rows in batches through a bounded queue, so a big store is never held in
memory; that is why both stores must run their jobs off the event loop
(PostgreSQL always does, SQLite with ``threaded=True``).

A checksum (:func:`tally`) hashes every copied row, ordered by primary key,
in a canonical form both engines produce alike (SQLite's ``0``/``1``
booleans as ``false``/``true``, floats as ``repr`` writes them), so the
same number computed on each side after the copy proves it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from ..errors import StoreError
from .service_records import fold
from .sql import SQLStore
from .sqlite import MEMORY, SQLiteStore
from .tx import Tx

#: How a column's values are compared across engines.
Kind = Literal["text", "int", "float", "bool"]

#: Declared column types (SQLite's as written in the migrations, PostgreSQL's as it reports them).
_KINDS: dict[str, Kind] = {
    "integer": "int",
    "bigint": "int",
    "real": "float",
    "double precision": "float",
    "boolean": "bool",
    "text": "text",
}


@attrs.frozen
class Table:
    """A copied table: its primary key, and the column naming a row of the same table, if any."""

    name: str
    key: tuple[str, ...] = ("id",)
    parent: str | None = None


#: Every copied table, parents before the rows that refer to them.
TABLES: tuple[Table, ...] = (
    Table("agents"),
    Table("sessions", parent="parent_id"),
    Table("messages"),
    Table("turns", parent="rerun_of"),
    Table("context"),
    Table("audit"),
    Table("inbox"),
    Table("turn_traces"),
    Table("records"),
    Table("idempotency", key=("agent_id", "key")),
)

#: The schema's tables that are not copied, and why.
NOT_COPIED: dict[str, str] = {
    "schema_version": "the target's own, written when it was opened (migrated)",
    "owners": "leases belong to the processes of the source, none of which runs on the target",
    "messages_fts_indexed": "how far SQLite's message search index got; a target indexes its own",
}

#: Columns one engine adds for its own needs, written by the copy as the store would write them.
_ENGINE_ONLY: dict[str, frozenset[str]] = {"records": frozenset({"folded"})}

#: Tables SQLite keeps for the full-text indexes of ``records`` and ``messages`` (rebuilt by
#: triggers as rows go in).
_SQLITE_INTERNAL = ("sqlite_", "records_fts", "messages_fts")

#: Columns of each table present, in table order, with the kind of their values.
Layout = dict[str, dict[str, Kind]]


@attrs.frozen
class Tally:
    """Row counts and sha256 digests per copied table; :attr:`checksum` sums them up."""

    counts: dict[str, int]
    digests: dict[str, str]

    @property
    def checksum(self) -> str:
        """One sha256 over every table's count and digest."""
        lines = "".join(f"{name} {self.counts[name]} {self.digests[name]}\n" for name in self.digests)
        return hashlib.sha256(lines.encode()).hexdigest()


# ---------------------------------------------------------------------- inspection


def tables(tx: Tx) -> set[str]:
    """The names of the store's tables (SQLite's own and its full-text index's left out)."""
    if tx.dialect.name == "postgresql":
        found = tx.all(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    else:
        found = tx.all("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in found if not str(row[0]).startswith(_SQLITE_INTERNAL)}


def row_counts(tx: Tx, names: Sequence[str]) -> dict[str, int]:
    """``COUNT(*)`` of each table in ``names`` (all of them must exist)."""
    return {name: int(tx.one(f"SELECT COUNT(*) FROM {name}")[0]) for name in names}


def layout(tx: Tx) -> Layout:
    """The columns of every table the database has, as the database declares them."""
    present = tables(tx)
    found: Layout = {}
    if tx.dialect.name == "postgresql":
        rows = tx.all(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        )
    else:
        rows = [
            (name, column, kind)
            for name in sorted(present)
            for column, kind in tx.all("SELECT name, type FROM pragma_table_info(?)", (name,))
        ]
    for name, column, declared in rows:
        if name in present:
            found.setdefault(name, {})[column] = _KINDS.get(str(declared).lower(), "text")
    return found


async def database_size(store: SQLStore) -> dict[str, int]:
    """How much disk the store takes: SQLite's file and its WAL (bytes), or ``pg_database_size``."""
    if isinstance(store, SQLiteStore):
        if store.path == MEMORY:
            return {"total": 0}
        sizes = {part: _size(Path(store.path + suffix)) for part, suffix in (("file", ""), ("wal", "-wal"))}
        return {"total": sum(sizes.values()), **sizes}
    total = await store._read(lambda tx: int(tx.one("SELECT pg_database_size(current_database())")[0]))
    return {"total": total}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# ---------------------------------------------------------------------- copying


async def copy_rows(source: SQLStore, target: SQLStore, *, batch: int = 1000) -> dict[str, int]:
    """Copy every row of every table of :data:`TABLES` from ``source`` into ``target``.

    Both stores must be open, at the same schema version, and run their
    jobs off the event loop (see the module's docstring). ``target`` must
    hold no rows at all (StoreError otherwise, before anything is written).
    Returns the number of rows copied per table.
    """
    for store in (source, target):
        if isinstance(store, SQLiteStore) and not store._threaded:
            raise ValueError(f"{store!r} must be threaded: the copy runs two transactions at once")
    shape = _shared(await source._read(layout), await target._read(layout), source.url, target.url)
    channel = _Channel()
    reading = asyncio.ensure_future(source._read(_produce, shape, channel, batch))
    writing = asyncio.ensure_future(target._write(_consume, shape, channel, target.url))
    try:
        read, written = await asyncio.gather(reading, writing, return_exceptions=True)
    finally:
        channel.stop.set()  # cancelled (Ctrl-C): both threads give up within a tick
    for outcome in (written, read):  # the target's own error first: it is the one that explains
        if isinstance(outcome, BaseException) and not isinstance(outcome, _Stopped):
            raise outcome
    if isinstance(written, BaseException):
        raise written
    return written


def _shared(source: Layout, target: Layout, source_url: str, target_url: str) -> Layout:
    """The columns copied per table: the source's, which the target must have too."""
    unknown = sorted(set(source) - {t.name for t in TABLES} - set(NOT_COPIED))
    if unknown:
        raise StoreError(
            f"{source_url} has tables this turnkit does not know how to copy ({', '.join(unknown)});"
            " copy it with the turnkit that made them"
        )
    shape: Layout = {}
    for table in TABLES:
        drop = _ENGINE_ONLY.get(table.name, frozenset())
        mine = {c: k for c, k in source.get(table.name, {}).items() if c not in drop}
        theirs = {c: k for c, k in target.get(table.name, {}).items() if c not in drop}
        if not mine or mine != theirs:
            raise StoreError(
                f"table {table.name} differs between {source_url} and {target_url}"
                f" ({sorted(mine.items())} and {sorted(theirs.items())}); open both with this turnkit first"
            )
        shape[table.name] = mine
    return shape


class _Stopped(Exception):
    """The other side of the copy failed (or the copy was cancelled): give up too."""


class _Channel:
    """The bounded queue between the reading and the writing transaction, and a way to stop both."""

    def __init__(self, depth: int = 4) -> None:
        self.queue: queue.Queue[tuple[str, list[Any]] | None] = queue.Queue(depth)
        self.stop = threading.Event()
        self.entered: set[str] = set()

    def enter(self, side: str) -> None:
        """Refuse a second run of one side: an engine retrying the job cannot replay the queue."""
        if side in self.entered:
            raise StoreError(f"the copy's {side} transaction was rolled back by the database; run it again")
        self.entered.add(side)

    def put(self, item: tuple[str, list[Any]] | None) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self) -> tuple[str, list[Any]] | None:
        while not self.stop.is_set():
            try:
                return self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
        raise _Stopped


def _produce(tx: Tx, shape: Layout, channel: _Channel, batch: int) -> None:
    """The source's side: every table in dependency order, ``batch`` rows at a time, then ``None``."""
    channel.enter("reading")
    try:
        for table in TABLES:
            for rows in _batches(tx, _select_in_order(table, list(shape[table.name])), batch):
                channel.put((table.name, rows))
        channel.put(None)
    except BaseException:
        channel.stop.set()
        raise


def _consume(tx: Tx, shape: Layout, channel: _Channel, url: str) -> dict[str, int]:
    """The target's side: refuse data already there, insert every batch, then continue the sequences."""
    channel.enter("writing")
    try:
        _refuse_data(tx, url)
        postgres = tx.dialect.name == "postgresql"
        writers = {t.name: _Writer(t.name, shape[t.name], postgres) for t in TABLES}
        counts = dict.fromkeys(writers, 0)
        while (item := channel.get()) is not None:
            name, rows = item
            writers[name].write(tx, rows)
            counts[name] += len(rows)
        if postgres:
            _continue_sequences(tx, shape)
        return counts
    except BaseException:
        channel.stop.set()
        raise


def _refuse_data(tx: Tx, url: str) -> None:
    held = [name for name in (*(t.name for t in TABLES), "owners") if tx.one(f"SELECT 1 FROM {name} LIMIT 1")]
    if held:
        raise StoreError(
            f"{url} is not empty (rows in {', '.join(held)}); copy into an empty database"
            " (a new SQLite file, or a PostgreSQL database just made with CREATE DATABASE)"
        )


def _select_in_order(table: Table, columns: list[str]) -> str:
    """Rows of ``table`` in an order that inserts a row's parent (same table) before it."""
    listed = ", ".join(f"r.{c}" for c in columns)
    if table.parent is None:
        return f"SELECT {listed} FROM {table.name} r ORDER BY {', '.join(f'r.{k}' for k in table.key)}"
    # Depth in the parent chain first: ids are random, and clocks may step back, so neither orders it.
    return (
        f"WITH RECURSIVE chain (id, depth) AS ("
        f" SELECT id, 0 FROM {table.name} WHERE {table.parent} IS NULL"
        f" UNION ALL SELECT c.id, chain.depth + 1"
        f" FROM {table.name} c JOIN chain ON c.{table.parent} = chain.id"
        f") SELECT {listed} FROM {table.name} r JOIN chain ON chain.id = r.id ORDER BY chain.depth, r.id"
    )


class _Writer:
    """How the rows of one table go into the target.

    PostgreSQL takes them through ``COPY`` (several times faster than one
    INSERT per row), with real booleans where SQLite gives ``0``/``1`` and
    the ``folded`` text of a record (what its full-text index reads, see
    :mod:`turnkit.store.service_records`). SQLite takes plain INSERTs; its
    full-text index is kept by triggers as the records go in.
    """

    def __init__(self, name: str, columns: Mapping[str, Kind], postgres: bool) -> None:
        names = list(columns)
        self.postgres = postgres
        self.flags = [i for i, c in enumerate(names) if columns[c] == "bool"]
        self.text = names.index("text") if postgres and name == "records" else None
        listed = ", ".join([*names, *(["folded"] if self.text is not None else [])])
        if postgres:
            self.sql = f"COPY {name} ({listed}) FROM STDIN"
        else:
            self.sql = f"INSERT INTO {name} ({listed}) VALUES ({', '.join('?' for _ in names)})"

    def write(self, tx: Tx, rows: Sequence[Sequence[Any]]) -> None:
        values = [self.convert(row) for row in rows]
        if not self.postgres:
            tx.many(self.sql, values)
            return
        conn: Any = tx.conn
        with conn.cursor() as cursor, cursor.copy(self.sql) as copying:
            for row in values:
                copying.write_row(row)

    def convert(self, row: Sequence[Any]) -> Sequence[Any]:
        if not self.flags and self.text is None:
            return row
        values = list(row)
        for i in self.flags:
            if values[i] is not None:
                values[i] = bool(values[i])
        if self.text is not None:
            values.append(fold(values[self.text]) if values[self.text] else None)
        return values


def _continue_sequences(tx: Tx, shape: Layout) -> None:
    """Set each identity sequence past the copied ids, so new rows get the next ones (PostgreSQL)."""
    for table in TABLES:
        if table.key == ("id",) and shape[table.name].get("id") == "int":
            tx.one(
                f"SELECT setval(pg_get_serial_sequence(?, 'id'), COALESCE(MAX(id), 0) + 1, false)"
                f" FROM {table.name}",
                (table.name,),
            )


def _batches(tx: Tx, sql: str, size: int) -> Iterator[list[Any]]:
    """The rows of ``sql``, ``size`` at a time: never all at once (a server-side cursor on PostgreSQL)."""
    conn: Any = tx.conn
    if tx.dialect.name == "postgresql":
        with conn.cursor(name="turnkit_copy") as cursor:
            cursor.execute(tx.dialect.sql(sql))
            while rows := cursor.fetchmany(size):
                yield rows
        return
    cursor = conn.execute(sql)
    while rows := cursor.fetchmany(size):
        yield rows


# ---------------------------------------------------------------------- checksums


async def tally(store: SQLStore) -> Tally:
    """Counts and digests of every copied table of ``store`` (which must be at the code's schema)."""
    return await store._read(_tally)


def _tally(tx: Tx) -> Tally:
    shape = layout(tx)
    counts: dict[str, int] = {}
    digests: dict[str, str] = {}
    postgres = tx.dialect.name == "postgresql"
    for table in TABLES:
        drop = _ENGINE_ONLY.get(table.name, frozenset())
        columns = {c: k for c, k in shape.get(table.name, {}).items() if c not in drop}
        if not columns:
            raise StoreError(f"the store has no table {table.name}; migrate it first")
        # Byte order on both sides: PostgreSQL's default collation may sort text otherwise.
        order = ", ".join(f'{k} COLLATE "C"' if postgres and columns[k] == "text" else k for k in table.key)
        digest, count = hashlib.sha256(), 0
        names = list(columns)
        for rows in _batches(tx, f"SELECT {', '.join(names)} FROM {table.name} ORDER BY {order}", 1000):
            for row in rows:
                digest.update(_canonical(names, columns, row))
                count += 1
        counts[table.name], digests[table.name] = count, digest.hexdigest()
    return Tally(counts, digests)


def _canonical(names: Sequence[str], kinds: Mapping[str, Kind], row: Sequence[Any]) -> bytes:
    """One row as sorted-key JSON, its values as the column's kind says (``0`` → ``false`` …)."""
    values = {name: _value(kinds[name], value) for name, value in zip(names, row, strict=True)}
    return (json.dumps(values, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _value(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "bool":
        return bool(value)
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    return str(value)
