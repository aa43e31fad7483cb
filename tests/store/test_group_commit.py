"""Group commit (SQLite): writes made together share one transaction; each still stands alone.

See docs/architecture.md, "The store". What a kill in the middle of a shared
commit leaves is tested with a real process in
tests/integration/test_group_commit_crash.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from turnkit.errors import StoreError
from turnkit.store import SQLiteStore

from .helpers import Clock, new_session, texts, user

SESSIONS = [f"s{n}" for n in range(5)]


@pytest.fixture(params=[False, True], ids=["on the loop", "threaded"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(str(tmp_path / "agent.db"), threaded=request.param, clock=Clock())
    await opened.open()
    for session_id in SESSIONS:
        await new_session(opened, session_id)
    yield opened
    await opened.close()


def traced(store: SQLiteStore) -> list[str]:
    """The statements the store's connection runs from now on."""
    statements: list[str] = []
    conn = store._conn
    assert conn is not None
    conn.set_trace_callback(statements.append)
    return statements


async def test_writes_made_together_share_one_commit(store: SQLiteStore) -> None:
    statements = traced(store)
    turns = await asyncio.gather(*(store.accept(s, f"t-{s}", user(f"to {s}"), "user") for s in SESSIONS))
    assert [(t.session_id, t.number, t.status) for t in turns] == [(s, 1, "queued") for s in SESSIONS]
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements.count("COMMIT") == 1
    assert statements.count("SAVEPOINT job") == len(SESSIONS), "each write in its own savepoint"


async def test_a_lone_write_commits_alone_without_savepoints(store: SQLiteStore) -> None:
    statements = traced(store)
    await store.accept("s0", "t1", user("alone"), "user")
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert not any(s.startswith("SAVEPOINT") for s in statements)


async def test_a_failing_write_is_undone_alone_and_the_others_commit(store: SQLiteStore) -> None:
    await store.accept("s0", "taken", user("first"), "user")
    statements = traced(store)
    results = await asyncio.gather(
        store.accept("s1", "t1", user("fine"), "user"),
        store.accept("s2", "taken", user("a turn id already used"), "user"),
        store.accept("ghost", "t3", user("no such session"), "user"),
        store.append_message("s3", user("also fine")),
        return_exceptions=True,
    )
    assert statements.count("COMMIT") == 1, "one shared transaction"
    assert isinstance(results[1], StoreError) and "'taken' already exists" in str(results[1])
    assert isinstance(results[2], StoreError) and "unknown session 'ghost'" in str(results[2])
    assert [t.turn_id for t in await store.turns("s1")] == ["t1"]
    assert await store.turns("s2") == [], "the failed write left nothing"
    assert texts(await store.messages("s3")) == ["also fine"]
    assert (await store.get_session("s2")) is not None


async def test_a_turn_accepted_and_finished_in_one_batch_keeps_order(store: SQLiteStore) -> None:
    await store.accept("s0", "t1", user("one"), "user")
    assert await store.claim_turn("s0") is not None
    finished, queued = await asyncio.gather(
        store.finish_turn("t1", "completed", messages=[user("reply")]),
        store.accept("s0", "t2", user("two"), "user"),
    )
    assert (finished.status, queued.number) == ("completed", 2)
    claimed = await store.claim_turn("s0")
    assert claimed is not None and claimed[1].text == "two"
    assert texts(await store.messages("s0")) == ["one", "reply", "two"]


async def test_a_cancelled_caller_does_not_take_its_write_back(store: SQLiteStore, tmp_path: Path) -> None:
    write = asyncio.ensure_future(store.append_message("s0", user("kept")))
    await asyncio.sleep(0)  # the write is queued for the next batch
    write.cancel()
    await store.close()  # waits for the writes already made
    with sqlite3.connect(tmp_path / "agent.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM messages WHERE session_id = 's0'").fetchone()[0] == 1
    await store.open()
