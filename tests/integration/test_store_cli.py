"""``turnkit store info | migrate | copy`` end to end, through the real console script.

The store copied is made by real agents: turns, a turn interrupted by a
dead process and re-run, a fork of a fork (one abandoned, one merged back),
a compression, contributed context, traces, an idempotency key, service
records with search text and a delivery to another agent's inbox. It is
copied SQLite → PostgreSQL → a new SQLite file; every session's export must
be byte-for-byte the same on all three, the checksums equal, search must
work on the copies, and the PostgreSQL copy must run new turns with ids
continuing past the copied ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from turnkit.config import load_config
from turnkit.lease import this_process
from turnkit.store import SQLiteStore, inbox_session_id, open_store
from turnkit.store.copy import NOT_COPIED, TABLES
from turnkit.store.migrations import MIGRATIONS, SCHEMA_VERSION, statements
from turnkit_hookspecs import ForkOptions, Message, SessionInfo

from tests.support.agents import build_agent, eventually, running_agent
from tests.support.dists import CliResult
from tests.support.dists import turnkit_exits as turnkit

#: Sorts after any generated (hex) id, so a forked child's id sorts before its parent's.
MAIN = "zzzz-main"
CRASHED = "crashed"
#: The interrupted turn's id, after the id of the turn that re-runs it (which is random hex).
DEAD_TURN = "f" * 32
TURNS = {"keep_recent": 2, "inbox_poll": 0.05, "interrupted": "rerun"}


def one_line_error(result: CliResult, *fragments: str) -> None:
    """A clean CLI error: exit 1, one line on stderr, no traceback, naming ``fragments``."""
    assert result.returncode == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), str(result)
    for fragment in fragments:
        assert fragment in lines[0], str(result)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder with a turnkit.toml whose store is t.db beside it."""
    (tmp_path / "turnkit.toml").write_text('[store]\nurl = "t.db"\n')
    return tmp_path


async def seed_interrupted_turn(path: Path) -> None:
    """A turn left running by a process whose lease is over: the next agent re-runs it."""
    store = SQLiteStore(str(path))
    await store.open()
    try:
        await store.create_session(SessionInfo(CRASHED, "chat"), "default")
        me = this_process()
        await store.register_owner("default", me.host, me.pid, me.started, 30.0)
        message = Message.of("user", "interrupted mid-turn")
        _, claim = await store.accept_and_claim(CRASHED, DEAD_TURN, message, "user", None, 10)
        assert claim is not None
        await store.release_owner()
    finally:
        await store.close()


async def build_content(home: Path) -> dict[str, str]:
    """Fill home/t.db through real agents ("default" and "beta"); the sessions made, by name."""
    await seed_interrupted_turn(home / "t.db")
    agent = build_agent(home, turns=TURNS)
    beta = build_agent(home, agent={"id": "beta"}, turns=TURNS)
    async with agent, beta:

        async def rerun_done() -> bool:
            return [t.status for t in await agent.store.turns(CRASHED)] == ["interrupted", "completed"]

        await eventually(rerun_done)

        await agent.sessions.open(MAIN, metadata={"topic": "tides", "depth": 1.5, "ok": True})
        for text in ("Crème brûlée, first question.", "Second question!", "Third one?"):
            assert (await agent.send(text, MAIN)).turn.status == "completed"
        main = await agent.sessions.extension(MAIN, "tester")
        await main.contribute_context("note", "remember the tide")
        child = await main.fork(ForkOptions(reason="side quest"))
        await agent.send("work in the child", child)
        grandchild = await (await agent.sessions.extension(child, "tester")).fork(
            ForkOptions(reason="deeper")
        )
        await agent.send("deeper still", grandchild)
        await (await agent.sessions.extension(child, "tester")).abandon(grandchild)
        await main.merge(child, summary="the tide turns at six")
        await main.request_compression("too long")
        await agent.send("after the compression", MAIN)
        await agent.send("once only", MAIN, idempotency_key="key-1")

        notes = agent.context.storage("notes")
        await notes.put("notes", "tide", {"at": 6, "ok": True}, text="Crème brûlée and the tide table")
        await notes.put("notes", "moon", {"at": 7, "ok": False}, text="the moon pulls the sea")
        await notes.put("notes", "moon", {"at": 8, "ok": False}, text="the moon pulls the sea, again")
        await notes.put("notes", "plain", {"at": None})

        await main.send_to_agent("beta", Message.of("user", "ping from default"))
        inbox = inbox_session_id("beta", "default")

        async def answered() -> bool:
            found = await beta.store.get_session(inbox)
            return found is not None and [t.status for t in await beta.store.turns(inbox)] == ["completed"]

        await eventually(answered)
        await agent.dispatcher.drain()
    return {"main": MAIN, "child": child, "grandchild": grandchild, "crashed": CRASHED, "inbox": inbox}


def exports(home: Path, config: str, sessions: dict[str, str]) -> dict[str, str]:
    """``turnkit sessions export`` of every session, as printed, and the session list."""
    found = {
        name: turnkit("--config", config, "sessions", "export", sid, cwd=home).stdout
        for name, sid in sessions.items()
    }
    found["list"] = turnkit("--config", config, "sessions", "list", "--json", cwd=home).stdout
    return found


async def searched(home: Path, config: str) -> list[list[str]]:
    """Keys found by a few searches (diacritics folded, several words) in the store of ``config``.

    Sorted: the engines rank matches differently (bm25, ts_rank), and both are right.
    """
    settings = load_config(home / config)
    store = await open_store(settings.store, settings.base_dir)
    try:
        found = [
            sorted(r.key for r in await store.search_records("notes", "notes", query, {}, 10))
            for query in ("creme brulee", "MOON", "tide sea", "absent")
        ]
        return [
            *found,
            [r.key for r in await store.list_records("notes", "notes", None, {"ok": False}, None)],
        ]
    finally:
        await store.close()


# ---------------------------------------------------------------------- the copy


async def test_copy_sqlite_to_postgresql_to_sqlite_keeps_everything(home: Path, postgres_url: str) -> None:
    sessions = await build_content(home)
    (home / "pg.toml").write_text(f'[store]\nurl = "{postgres_url}"\n')
    (home / "copy.toml").write_text('[store]\nurl = "copy.db"\n')

    source = await asyncio.to_thread(turnkit, "store", "info", "--json", cwd=home)
    before = source.json()
    assert (before["engine"], before["schema_version"], sorted(before["agents"])) == (
        "sqlite",
        SCHEMA_VERSION,
        ["beta", "default"],
    )
    counts = before["tables"]
    assert all(counts[t.name] > 0 for t in TABLES), counts
    assert not any(lease["live"] for lease in before["leases"]), "the agents stopped: leases released"

    first = turnkit("store", "copy", "--to", postgres_url, "--json", cwd=home).json()
    assert first["equal"] and first["to"]["engine"] == "postgresql"
    assert first["copied"] == first["source"]["counts"] == first["target"]["counts"]
    assert first["copied"] == {name: counts[name] for name in first["copied"]}
    assert first["source"]["checksum"] == first["target"]["checksum"]
    assert "owners" not in first["copied"] and "owners" in first["not_copied"]

    text = turnkit("--config", "pg.toml", "store", "copy", "--to", "copy.db", cwd=home).stdout
    assert f"checksum target {first['source']['checksum']}  (equal)" in text, text
    assert re.search(r"^owners +- +not copied: leases belong", text, re.MULTILINE), text
    assert (home / "copy.db").is_file(), "--to is a path from the working directory"
    second = turnkit("store", "info", "--url", "copy.db", "--json", cwd=home).json()
    assert second["tables"] == {**counts, "owners": 0}

    original = exports(home, "turnkit.toml", sessions)
    assert original == exports(home, "pg.toml", sessions) == exports(home, "copy.toml", sessions)
    assert '"Crème brûlée, first question."' in original["main"], "exported as written, not escaped"

    found = await searched(home, "turnkit.toml")
    assert found == [["tide"], ["moon"], ["moon", "tide"], [], ["moon"]]
    assert await searched(home, "pg.toml") == found == await searched(home, "copy.toml")

    refused = turnkit("store", "copy", "--to", postgres_url, cwd=home, expect=1)
    one_line_error(refused, "is not empty (rows in agents, sessions", "copy into an empty database")
    again = turnkit("store", "copy", "--from", "copy.db", "--to", postgres_url, "--json", cwd=home, expect=1)
    assert again.stdout == "", "refused before anything was copied"

    # The PostgreSQL copy runs turns: its sequences continue past the copied ids (store-wide).
    last = max(m["id"] for name in sessions for m in json.loads(original[name])["messages"])
    reply = turnkit("--config", "pg.toml", "send", "--session", MAIN, "after the move", cwd=home)
    assert reply.stdout == "after the move\n"
    moved = turnkit("--config", "pg.toml", "sessions", "export", MAIN, cwd=home).json()
    assert [(m["id"], m["message"]["blocks"][0]["text"]) for m in moved["messages"][-2:]] == [
        (last + 1, "after the move"),
        (last + 2, "after the move"),
    ]
    assert moved["turns"][-1]["trace"], "new trace rows too"
    after = turnkit("--config", "pg.toml", "store", "info", "--json", cwd=home).json()
    assert after["tables"]["messages"] == counts["messages"] + 2
    assert after["leases"] == [], "the send's own lease, released and gone: it held no turn"


def test_the_copied_tables_are_the_schema(tmp_path: Path) -> None:
    run = [s for version in range(1, SCHEMA_VERSION + 1) for s in statements(version, "sqlite")]
    created = {name for s in run for name in re.findall(r"CREATE TABLE (\w+)", s)}
    dropped = {name for s in run for name in re.findall(r"DROP TABLE (\w+)", s)}
    assert created - dropped == {t.name for t in TABLES} | set(NOT_COPIED)
    assert len(MIGRATIONS) == SCHEMA_VERSION


# ---------------------------------------------------------------------- leases


async def test_info_shows_a_running_agents_lease_and_copy_refuses_it(home: Path) -> None:
    async with running_agent(home, turns=TURNS) as agent:
        await agent.send("hello")
        owner = agent.store.owner
        found = (await asyncio.to_thread(turnkit, "store", "info", "--json", cwd=home)).json()
        [lease] = [lease for lease in found["leases"] if lease["live"]]
        assert (lease["owner"], lease["agent_id"], lease["pid"]) == (
            owner,
            "default",
            os.getpid(),
        )
        assert 0 < lease["expires_in"] <= 15 and not lease["process_gone"]

        text = (await asyncio.to_thread(turnkit, "store", "info", cwd=home)).stdout
        assert re.search(
            rf"^  {owner}  agent default  host \S+  pid {os.getpid()}  live, expires in \d+ s$",
            text,
            re.MULTILINE,
        ), text
        assert re.search(r"^leases   1 live, 0 expired$", text, re.MULTILINE), text

        refused = await asyncio.to_thread(turnkit, "store", "copy", "--to", "b.db", cwd=home, expect=1)
        one_line_error(refused, f"has live leases ({owner} agent default host ", "stop the agent first")
        assert not (home / "b.db").exists(), "refused before the target was made"

        forced = await asyncio.to_thread(
            turnkit, "store", "copy", "--to", "b.db", "--ignore-leases", "--json", cwd=home
        )
        assert forced.json()["equal"]

    stopped = turnkit("store", "info", cwd=home).stdout
    assert owner not in stopped, "a stopped agent's lease, which held no turn, is gone"
    assert re.search(r"^leases   0 live, 0 expired$", stopped, re.MULTILINE), stopped


# ---------------------------------------------------------------------- migrate


async def test_migrate_brings_an_old_database_up_to_date(home: Path) -> None:
    old = SQLiteStore(str(home / "t.db"))
    await old.open(upto=2)
    await old.close()

    info = turnkit("store", "info", "--json", cwd=home).json()
    assert (info["schema_version"], info["code_schema_version"]) == (2, SCHEMA_VERSION)
    assert "records" not in info["tables"] and info["leases"] == []
    text = turnkit("store", "info", cwd=home).stdout
    assert f"schema   2 (this turnkit: {SCHEMA_VERSION}); `turnkit store migrate` brings it" in text
    refused = turnkit("store", "copy", "--to", "b.db", cwd=home, expect=1)
    one_line_error(refused, "has schema version 2", "run `turnkit store migrate` on it first")
    assert turnkit("store", "info", "--json", cwd=home).json()["schema_version"] == 2, "info migrates nothing"

    migrated = turnkit("store", "migrate", cwd=home).stdout
    assert migrated == f"{home / 't.db'}: migrated from schema version 2 to {SCHEMA_VERSION}\n"
    again = turnkit("store", "migrate", "--json", cwd=home).json()
    assert (again["engine"], again["from"], again["to"]) == ("sqlite", SCHEMA_VERSION, SCHEMA_VERSION)
    assert set(turnkit("store", "info", "--json", cwd=home).json()["tables"]) == {
        *(t.name for t in TABLES),
        "owners",
    }


def test_migrate_refuses_a_database_from_a_newer_turnkit(home: Path) -> None:
    turnkit("store", "migrate", cwd=home)
    with sqlite3.connect(home / "t.db") as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    result = turnkit("store", "migrate", cwd=home, expect=1)
    one_line_error(result, f"has schema version {SCHEMA_VERSION + 1}, newer than this turnkit knows")
    one_line_error(turnkit("store", "info", cwd=home, expect=1), "upgrade turnkit to open it")


def test_migrate_creates_the_schema_of_an_empty_postgresql_database(home: Path, postgres_url: str) -> None:
    empty = turnkit("store", "info", "--url", postgres_url, "--json", cwd=home).json()
    assert (empty["engine"], empty["schema_version"], empty["tables"]) == ("postgresql", 0, {})
    assert empty["size"]["total"] > 0
    found = turnkit("store", "migrate", "--url", postgres_url, "--json", cwd=home).json()
    assert (found["from"], found["to"]) == (0, SCHEMA_VERSION)
    assert found["url"] == postgres_url


# ---------------------------------------------------------------------- errors


def test_bad_urls_are_one_line_errors(home: Path) -> None:
    one_line_error(turnkit("store", "copy", "--to", "mysql://x/y", cwd=home, expect=1), "scheme 'mysql'")
    one_line_error(turnkit("store", "info", "--url", "missing.db", cwd=home, expect=1), "no database at")
    one_line_error(turnkit("store", "copy", "--to", "b.db", cwd=home, expect=1), "no database at")
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    one_line_error(turnkit("store", "info", "--url", unreachable, cwd=home, expect=1), "cannot connect to")
    turnkit("store", "migrate", cwd=home)
    one_line_error(
        turnkit("store", "copy", "--to", unreachable, cwd=home, expect=1), "cannot connect to", "nobody@"
    )
    one_line_error(turnkit("store", "copy", "--to", "t.db", cwd=home, expect=1), "the same database")
    assert not (home / "missing.db").exists() and not (home / "b.db").exists(), "nothing created"
