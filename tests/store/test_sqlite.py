"""What only the SQLite store promises: its file, its migrations, its indexes, its URLs."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from turnkit.config import StoreConfig
from turnkit.errors import StoreError
from turnkit.store import SQLiteStore, open_store
from turnkit.store.migrations import SCHEMA_VERSION
from turnkit.tracing import TraceRecord, compact
from turnkit_hookspecs import Kind, Message, to_json

from .helpers import Clock, new_session, texts, user


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "agent.db")


@pytest.fixture
async def closing() -> AsyncIterator[list[SQLiteStore]]:
    """Stores a test opens, closed at its end even when it fails."""
    stores: list[SQLiteStore] = []
    yield stores
    for store in stores:
        await store.close()


async def opened(closing: list[SQLiteStore], path: str, upto: int | None = None) -> SQLiteStore:
    store = SQLiteStore(path, clock=Clock())
    await store.open(upto=upto)
    closing.append(store)
    return store


def pragma(path: str, name: str) -> Any:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_there_is_more_than_one_schema_version() -> None:
    assert SCHEMA_VERSION >= 2


async def test_a_file_store_runs_in_wal_mode(closing: list[SQLiteStore], tmp_path: Path) -> None:
    path = str(tmp_path / "nested" / "folder" / "agent.db")
    store = await opened(closing, path)
    assert await store.schema_version() == SCHEMA_VERSION
    assert pragma(path, "journal_mode") == "wal"


async def test_a_version_1_database_with_data_opens_and_keeps_it(closing: list[SQLiteStore], db: str) -> None:
    old = await opened(closing, db, upto=1)
    assert await old.schema_version() == 1
    await old.close()
    # Rows as version 1 wrote them (today's code writes columns version 1 lacks).
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO sessions VALUES ('s1', 'me', 'chat', 'active', NULL, NULL, NULL, '{}', 1, 1)"
        )
        for number, (role, text) in enumerate([("user", "written by version 1"), ("assistant", "reply")], 1):
            body = to_json(Message.of(role, text))  # type: ignore[arg-type]
            conn.execute(
                "INSERT INTO messages (id, session_id, turn_id, role, body, created_at)"
                " VALUES (?, 's1', 't1', ?, ?, 1)",
                (number, role, body),
            )
        conn.execute(
            "INSERT INTO turns (id, session_id, number, initiator, status, message_id, queued_at)"
            " VALUES ('t1', 's1', 1, 'user', 'completed', 1, 1)"
        )

    store = await opened(closing, db)
    assert await store.schema_version() == SCHEMA_VERSION
    assert texts(await store.messages("s1")) == ["written by version 1", "reply"]
    assert (await store.get_turn("t1")).status == "completed"  # type: ignore[union-attr]
    await store.accept("s1", "t2", user("written now"), "user")
    assert (await store.claim_turn("s1")) is not None
    record = TraceRecord("t1", "turn_completed", Kind.EFFECT, "log", 0.1, "ok")
    await store.append_trace(compact([record]))
    assert await store.trace("t1") == [record]


async def test_a_database_from_a_newer_turnkit_is_refused(closing: list[SQLiteStore], db: str) -> None:
    await (await opened(closing, db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    store = SQLiteStore(db)
    expected = (
        f"{db} has schema version {SCHEMA_VERSION + 1}, newer than this turnkit knows \\({SCHEMA_VERSION}\\)"
    )
    with pytest.raises(StoreError, match=expected):
        await store.open()
    with pytest.raises(StoreError, match="is not open"):
        await store.get_session("s1")


async def test_a_file_that_is_not_a_database_is_refused_by_name(db: str) -> None:
    Path(db).write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(StoreError, match=f"{db} is not a turnkit database, or it is corrupt"):
        await SQLiteStore(db).open()


async def test_an_empty_file_becomes_a_database(closing: list[SQLiteStore], db: str) -> None:
    Path(db).touch()
    assert await (await opened(closing, db)).schema_version() == SCHEMA_VERSION


async def test_a_memory_store_works_and_opens_once(closing: list[SQLiteStore]) -> None:
    store = await opened(closing, ":memory:")
    await new_session(store)
    assert await store.get_session("s1") is not None
    with pytest.raises(StoreError, match="already open"):
        await store.open()


def test_synchronous_is_checked() -> None:
    with pytest.raises(ValueError, match="'off'"):
        SQLiteStore(":memory:", synchronous="off")


async def _window_statements(store: SQLiteStore, session_id: str, limit: int) -> tuple[list[str], int]:
    """The statements ``window`` runs on the store's connection, and the VM steps they took."""
    statements: list[str] = []
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    def install(on: bool) -> None:
        conn = store._conn
        assert conn is not None
        conn.set_trace_callback(statements.append if on else None)
        conn.set_progress_handler(step if on else None, 1)

    await store._transaction(lambda tx: install(True), False)
    await store.window(session_id, limit)
    await store._transaction(lambda tx: install(False), False)
    return [s for s in statements if s.startswith(("SELECT", "WITH"))], steps


async def _history(store: SQLiteStore, session_id: str, size: int) -> None:
    """An early compression, then ``size`` more messages: the summary is far from the newest end."""
    await new_session(store, session_id)
    for n, count in enumerate((10, size)):
        await store.accept(session_id, f"{session_id}-t{n}", user("question"), "user")
        claimed = await store.claim_turn(session_id)
        assert claimed is not None and claimed[0].message_id is not None
        turn = claimed[0]
        await store.finish_turn(turn.turn_id, "completed", messages=[user(f"m{i}") for i in range(count)])
        if n == 0:
            await store.compress(session_id, claimed[0].message_id + 5, Message.of("system", "summary"), None)


async def test_the_window_reads_limit_rows_whatever_the_history(closing: list[SQLiteStore], db: str) -> None:
    store = await opened(closing, db)
    await _history(store, "short", 60)
    await _history(store, "long", 5000)
    await new_session(store, "fork", parent_session_id="long", fork_point=await store.last_message_id("long"))

    _, short_steps = await _window_statements(store, "short", 20)
    statements, long_steps = await _window_statements(store, "long", 20)
    # B-tree depth may add a few steps; reading the history would add thousands.
    assert long_steps < short_steps * 1.5, (short_steps, long_steps)

    _, fork_steps = await _window_statements(store, "fork", 20)
    assert fork_steps < short_steps * 3, (short_steps, fork_steps)

    reads = [s for s in statements if "FROM messages" in s]
    assert len(reads) == 1, "one statement: a seek for the summary, one for the newest messages"
    with sqlite3.connect(db) as conn:
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {reads[0]}"))
    assert (
        plan.count("USING COVERING INDEX messages_window (session_id=? AND compressed=? AND summary=?") == 2
    ), (
        "the window reads no table page: the bodies are the cache's",
        plan,
    )
    assert "SCAN messages" not in plan and "TEMP B-TREE" not in plan, plan


async def test_the_lease_query_and_restart_queries_use_indexes(closing: list[SQLiteStore], db: str) -> None:
    await opened(closing, db)
    queries = [
        "SELECT 1 FROM turns WHERE session_id = 's' AND status = 'running' LIMIT 1",
        "SELECT id FROM turns WHERE session_id = 's' AND status = 'queued' ORDER BY number LIMIT 1",
        "SELECT id FROM turns WHERE status = 'running' AND session_id IN (SELECT id FROM sessions"
        " WHERE agent_id = 'a')",
        "SELECT id FROM context WHERE session_id = 's' AND consumed_by IS NULL ORDER BY id",
        "SELECT id FROM inbox WHERE agent_id = 'a' AND turn_id IS NULL ORDER BY id",
        "SELECT calls FROM turn_traces WHERE scope = 't' ORDER BY id",
    ]
    with sqlite3.connect(db) as conn:
        for query in queries:
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
            assert "SCAN" not in plan and "TEMP B-TREE" not in plan, (query, plan)


@pytest.mark.parametrize(
    ("url", "relative"),
    [
        ("agent.db", "agent.db"),
        ("data/agent.db", "data/agent.db"),
        ("sqlite:///data/agent.db", "data/agent.db"),
    ],
)
async def test_open_store_takes_relative_paths_from_the_config_folder(
    tmp_path: Path, url: str, relative: str
) -> None:
    store = await open_store(StoreConfig(url=url, synchronous="full", busy_timeout=1.0), str(tmp_path))
    try:
        await new_session(store)
    finally:
        await store.close()
    assert (tmp_path / relative).is_file()
    assert pragma(str(tmp_path / relative), "journal_mode") == "wal"


async def test_open_store_takes_absolute_and_memory_urls(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "agent.db"
    for url in (f"sqlite:///{target}", ":memory:"):
        store = await open_store(StoreConfig(url=url), "/nonexistent")
        await store.close()
    assert target.is_file()


@pytest.mark.parametrize("url", ["mysql://x", "sqlite://relative.db", "sqlite:///"])
async def test_open_store_refuses_other_urls_saying_what_works(url: str) -> None:
    with pytest.raises(StoreError, match=r"sqlite:///relative/path"):
        await open_store(StoreConfig(url=url), "/tmp")


def test_processes_opening_a_new_file_together_all_open_it(tmp_path: Path) -> None:
    """Workers started at once on a new file race to switch it to WAL; none may fail."""
    script = (
        "import asyncio, sys\n"
        "from turnkit.store import SQLiteStore\n"
        "async def main():\n"
        "    for path in sys.argv[1:]:\n"
        "        store = SQLiteStore(path, synchronous='full')\n"
        "        await store.open()\n"
        "        await store.close()\n"
        "asyncio.run(main())\n"
    )
    files = [str(tmp_path / f"new-{n}.db") for n in range(60)]
    workers = [subprocess.Popen([sys.executable, "-c", script, *files]) for _ in range(4)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0, 0, 0]


async def test_per_call_trace_rows_of_version_6_survive_the_compact_trace(
    closing: list[SQLiteStore], db: str
) -> None:
    old = await opened(closing, db, upto=6)
    await old.close()
    calls = [
        ("t1", "turn_authorize", "guard", "auth", 0.001, "ok", None, 1_800_000_000.25),
        ("t2", "turn_reply", "resolve", "model", 0.25, "value", None, None),
        ("t1", "turn_completed", "effect", "log", 0.5, "timeout", "took too long", 1_800_000_001.5),
    ]
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO trace (scope, point, kind, plugin, duration, outcome, error, started)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            calls,
        )
    store = await opened(closing, db)
    late = TraceRecord("t1", "turn_completed", Kind.EFFECT, "late", 0.2, "ok", None, 1_800_000_002.125)
    await store.append_trace(compact([late]))
    assert await store.trace("t1") == [
        TraceRecord("t1", "turn_authorize", Kind.GUARD, "auth", 0.001, "ok", None, 1_800_000_000.25),
        TraceRecord(
            "t1", "turn_completed", Kind.EFFECT, "log", 0.5, "timeout", "took too long", 1_800_000_001.5
        ),
        late,
    ]
    assert await store.trace("t2") == [TraceRecord("t2", "turn_reply", Kind.RESOLVE, "model", 0.25, "value")]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA table_info(trace)").fetchall() == [], "the per-call table is gone"
