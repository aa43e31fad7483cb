"""Instructions in the store: a session's own, the text each turn used, forks, and schema v5.

Every test taking ``store`` or ``connect`` runs on each backend (SQLite on
the loop and on its thread, PostgreSQL). The migration tests open a
database as schema version 4 wrote it, with rows in it, and open it again
with today's code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from turnkit.errors import StoreError
from turnkit.secrets import Secrets
from turnkit.store import Acting, SQLiteStore, Store
from turnkit.store.migrations import SCHEMA_VERSION
from turnkit.store.postgres import PostgresStore
from turnkit_hookspecs import Message, SessionInfo, to_json

from .helpers import Connect, new_session, user

SECRET = "sk-live-0123456789abcdef"


async def test_a_session_has_no_instructions_of_its_own_until_given(store: Store) -> None:
    await new_session(store)
    assert await store.session_instructions("s1") is None
    await store.set_session_instructions("s1", "Answer in French.")
    assert await store.session_instructions("s1") == "Answer in French."
    await store.set_session_instructions("s1", "")
    assert await store.session_instructions("s1") == "", "empty is an override too: no instructions"
    await store.set_session_instructions("s1", None)
    assert await store.session_instructions("s1") is None


async def test_instructions_of_an_unknown_session_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown session 'ghost'"):
        await store.session_instructions("ghost")
    with pytest.raises(StoreError, match="unknown session 'ghost'"):
        await store.set_session_instructions("ghost", "x")


async def test_setting_instructions_does_not_count_as_activity(store: Store) -> None:
    before = await new_session(store)
    await store.set_session_instructions("s1", "Be brief.")
    after = await store.get_session("s1")
    assert after is not None and after.updated_at == before.updated_at


async def test_a_claim_carries_the_instructions_as_another_process_left_them(connect: Connect) -> None:
    runner, other = await connect(), await connect()
    await new_session(runner)
    await runner.accept("s1", "t1", user("one"), "user")
    first = await runner.claim_next("s1", 10)
    assert first is not None and first.instructions is None
    await runner.finish_turn("t1", "completed", messages=[Message.of("assistant", "a1")])

    await other.set_session_instructions("s1", "Set elsewhere.")
    _, claim = await runner.accept_and_claim("s1", "t2", user("two"), "user", None, 10)
    assert claim is not None and claim.instructions == "Set elsewhere."


async def test_a_finished_turn_keeps_the_instructions_it_used(store: Store) -> None:
    await new_session(store)
    await store.accept("s1", "t1", user("one"), "user")
    await store.claim_turn("s1")
    done = await store.finish_turn(
        "t1", "completed", messages=[Message.of("assistant", "a1")], instructions="Be brief.\nAlways."
    )
    assert done.instructions == "Be brief.\nAlways."
    assert (await store.get_turn("t1")).instructions == "Be brief.\nAlways."  # type: ignore[union-attr]
    [outcome] = await store.outcomes(["t1"])
    assert outcome.turn.instructions == "Be brief.\nAlways."

    await store.accept("s1", "t2", user("two"), "user")
    await store.claim_turn("s1")
    await store.finish_turn("t2", "failed", error="boom")
    assert [t.instructions for t in await store.turns("s1")] == ["Be brief.\nAlways.", None]


async def test_a_fork_starts_with_its_parents_instructions(store: Store) -> None:
    await new_session(store)
    await store.append_message("s1", user("history"))
    await store.set_session_instructions("s1", "Parent's rules.")
    child = SessionInfo("c1", "chat", parent_session_id="s1", root_session_id="s1")
    await store.fork(
        child, "agent", inherit_context=False, initial_message=None, acting=Acting("x", None), reason="r"
    )
    assert await store.session_instructions("c1") == "Parent's rules."
    await store.set_session_instructions("s1", None)
    assert await store.session_instructions("c1") == "Parent's rules.", "a copy, not a reference"

    plain = SessionInfo("c2", "chat", parent_session_id="s1", root_session_id="s1")
    await store.fork(
        plain, "agent", inherit_context=False, initial_message=None, acting=Acting("x", None), reason="r"
    )
    assert await store.session_instructions("c2") is None


async def test_secrets_are_scrubbed_from_stored_instructions(store: Store) -> None:
    store.secrets = Secrets([SECRET])  # type: ignore[attr-defined]
    await new_session(store)
    await store.set_session_instructions("s1", f"Use the key {SECRET}.")
    assert await store.session_instructions("s1") == "Use the key [secret]."
    await store.accept("s1", "t1", user("one"), "user")
    await store.claim_turn("s1")
    done = await store.finish_turn("t1", "completed", instructions=f"Key: {SECRET}")
    assert done.instructions == "Key: [secret]"
    assert (await store.get_turn("t1")).instructions == "Key: [secret]"  # type: ignore[union-attr]


# ---------------------------------------------------------------------- schema v5


def _v4_rows(execute: Callable[..., object], mark: str) -> None:
    """A session with a finished turn, written as schema version 4 wrote them (``mark``: a placeholder)."""
    execute("INSERT INTO sessions VALUES ('s1', 'me', 'chat', 'active', NULL, NULL, NULL, '{}', 1, 1)")
    execute(
        "INSERT INTO messages (session_id, turn_id, role, body, created_at)"
        f" VALUES ('s1', 't1', 'user', {mark}, 1)",
        (to_json(Message.of("user", "written by version 4")),),
    )
    execute(
        "INSERT INTO turns (id, session_id, number, initiator, status, message_id, queued_at, owner)"
        " SELECT 't1', 's1', 1, 'user', 'completed', MAX(id), 1, NULL FROM messages"
    )


async def _check_migrated(store: Store) -> None:
    assert await store.schema_version() == SCHEMA_VERSION
    assert await store.session_instructions("s1") is None
    assert (await store.get_turn("t1")).instructions is None  # type: ignore[union-attr]
    await store.set_session_instructions("s1", "Now with instructions.")
    await store.accept("s1", "t2", user("written now"), "user")
    claim = await store.claim_next("s1", 10)
    assert claim is not None and claim.instructions == "Now with instructions."
    done = await store.finish_turn("t2", "completed", instructions="Now with instructions.")
    assert done.instructions == "Now with instructions."


async def test_a_version_4_sqlite_database_gains_instructions_and_origins(tmp_path: Path) -> None:
    path = str(tmp_path / "v4.db")
    old = SQLiteStore(path)
    await old.open(upto=4)
    assert await old.schema_version() == 4
    await old.close()
    with sqlite3.connect(path) as conn:
        _v4_rows(conn.execute, "?")
    store = SQLiteStore(path)
    await store.open()
    try:
        await _check_migrated(store)
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT origin FROM turns ORDER BY number").fetchall() == [(None,), (None,)]


async def test_a_version_4_postgresql_database_gains_instructions_and_origins(postgres_url: str) -> None:
    old = PostgresStore(postgres_url)
    await old.open(upto=4)
    assert await old.schema_version() == 4
    await old.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        _v4_rows(conn.execute, "%s")
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await _check_migrated(store)
    finally:
        await store.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT origin FROM turns ORDER BY number").fetchall() == [(None,), (None,)]
