"""Turn throughput and prompt assembly against floors measured in the same run.

Run: ``python benchmarks/bench_turns.py`` (``--quick`` for a shorter run;
``--postgresql [URL]`` to run the turns on PostgreSQL as well: on URL's
server, or on a throwaway one started by ``tests/support/postgres.py``).

* **Floors**: hand loops on the same kind of file (a WAL file with the same
  pragmas as the store). The *1-transaction floor* builds the reply and
  writes the inbound message and the reply in one transaction: the least
  any turn costs. The *same-guarantee floor* gives the promise turnkit
  gives, with two durable transactions per turn: one storing the inbound
  message (as a queued turn) before the model is called, one storing the
  reply and the turn's outcome before the caller hears it. With
  ``synchronous = full`` the second floor is the fair one: each commit is
  an fsync, and turnkit's guarantee needs two.
* **turnkit**: an :class:`~turnkit.agent.Agent` on a SQLite file with the
  echo model and 10 trivial plugins spread over the turn points (guard,
  pipelines, effects, a resolve answering ``None``). Reported: turns per
  second and wall-clock and CPU time per turn in one session, and turns per
  second across 100 sessions driven concurrently (where group commit lets
  turns of different sessions share one transaction and one fsync).
* **Statements**: every SQL statement the store's connection runs over 100
  turns of one session, counted by sqlite3's ``set_trace_callback`` (which
  sees each statement the library steps, ``executemany`` rows included):
  per turn, the statements other than transaction control, the write and
  read transactions; the housekeeping loop's ``PRAGMA data_version`` polls
  (time-driven, not per turn) are shown apart. Beside them, with
  ``synchronous = normal``, the process's CPU time per turn, split into the
  time spent inside the driver's calls (SQLite's own work, commits
  included; timed over other turns, as the timing costs time of its own),
  the CPU of the checkpoint thread (SQLite's work too, off the event loop),
  and the rest: the framework's share (each the median of three rounds).
* **Flatness**: the mean turn time over turns 10-110 and over the last 100
  of a 2,000-turn session.
* **Prompt assembly**: the time to assemble the next prompt (store window,
  pending context, assembly) for a session of 10 messages and one of
  100,000; it must follow the window, not the history.

The bars (docs/architecture.md, "Bars") are printed with each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnkit.agent import Agent
from turnkit.config import parse_config
from turnkit.manager import PluginManager
from turnkit.prompting import assemble
from turnkit.store import SQLiteStore
from turnkit_hookspecs import Message, hookimpl


def plugins() -> list[tuple[str, object]]:
    """Ten plugins over guard, pipeline, resolve and effect points."""

    class Guard:
        @hookimpl
        def turn_authorize(self, message: Message) -> None:
            return None

    class Inbound:
        @hookimpl
        def turn_inbound(self, message: Message) -> None:
            return None

    class Prompt_:
        @hookimpl
        def turn_prompt(self, prompt: object) -> None:
            return None

    class Outbound:
        @hookimpl
        def turn_outbound(self, message: Message) -> None:
            return None

    class NoAnswer:
        @hookimpl
        def turn_reply(self, prompt: object) -> None:
            return None

    class Completed:
        @hookimpl
        async def turn_completed(self, reply: Message) -> None:
            return None

    kinds = [Guard, Guard, Inbound, Inbound, Prompt_, Prompt_, Outbound, NoAnswer, Completed, Completed]
    return [(f"trivial-{i:02d}", cls()) for i, cls in enumerate(kinds)]


def agent(store: dict[str, object]) -> Agent:
    """An agent with the ten trivial plugins on ``store`` (the ``[store]`` table)."""
    config = parse_config({"store": store, "turns": {"history": 20}})
    manager = PluginManager(config.plugins)
    for name, plugin in plugins():
        manager.register(plugin, name)
    return Agent(config, manager=manager)


def sqlite_store(folder: Path, synchronous: str = "full") -> dict[str, object]:
    return {"url": str(folder / "bench.db"), "synchronous": synchronous}


#: The floors' schema: enough for a turn's rows (named apart from the store's, which may share the database).
FLOOR_TABLES = (
    "CREATE TABLE floor_messages (id INTEGER PRIMARY KEY, session TEXT, role TEXT, body TEXT)",
    "CREATE TABLE floor_turns (id INTEGER PRIMARY KEY, session TEXT, status TEXT, message_id INTEGER,"
    " reply_id INTEGER)",
)
INSERT_MESSAGE = "INSERT INTO floor_messages (session, role, body) VALUES (?, ?, ?) RETURNING id"


def floor_turns(execute: Callable[..., Any], turns: int, same_guarantee: bool) -> float:
    """Seconds per turn of the hand loop over ``execute`` (a DB-API connection's, ``?`` placeholders).

    ``same_guarantee``: two commits per turn, the inbound message (a queued
    turn) first, then the reply and the outcome; else one commit of both
    messages.
    """
    start = time.perf_counter()
    for number in range(turns):
        text = f"message {number}"
        if same_guarantee:
            execute("BEGIN")
            inbound = execute(INSERT_MESSAGE, ("s", "user", text)).fetchone()[0]
            turn = execute(
                "INSERT INTO floor_turns (session, status, message_id) VALUES (?, 'queued', ?) RETURNING id",
                ("s", inbound),
            ).fetchone()[0]
            execute("COMMIT")
        reply = json.dumps({"role": "assistant", "text": text})
        execute("BEGIN")
        if not same_guarantee:
            execute(INSERT_MESSAGE, ("s", "user", text))
        reply_id = execute(INSERT_MESSAGE, ("s", "assistant", reply)).fetchone()[0]
        if same_guarantee:
            execute(
                "UPDATE floor_turns SET status = 'completed', reply_id = ? WHERE id = ?", (reply_id, turn)
            )
        execute("COMMIT")
    return (time.perf_counter() - start) / turns


def sqlite_floor(path: Path, turns: int, synchronous: str, same_guarantee: bool) -> float:
    """:func:`floor_turns` on a SQLite WAL file with the store's pragmas."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    for statement in FLOOR_TABLES:
        db.execute(statement)
    try:
        return floor_turns(db.execute, turns, same_guarantee)
    finally:
        db.close()


async def one_session(store: dict[str, object], turns: int) -> tuple[float, float, list[float]]:
    """Wall-clock and CPU seconds per turn over one session, and each turn's time."""
    times = []
    async with agent(store) as a:
        session = (await a.sessions.open()).session_id
        cpu = time.process_time()
        for number in range(turns):
            started = time.perf_counter()
            result = await a.send(f"message {number}", session)
            times.append(time.perf_counter() - started)
            assert result.turn.status == "completed", result
        cpu = time.process_time() - cpu
    return sum(times) / turns, cpu / turns, times


async def many_sessions(store: dict[str, object], sessions: int, turns: int) -> float:
    """Seconds per turn with ``sessions`` sessions driven concurrently."""
    async with agent(store) as a:
        ids = [(await a.sessions.open()).session_id for _ in range(sessions)]

        async def drive(session: str) -> None:
            for number in range(turns):
                result = await a.send(f"message {number}", session)
                assert result.turn.status == "completed", result

        started = time.perf_counter()
        await asyncio.gather(*(drive(s) for s in ids))
        return (time.perf_counter() - started) / (sessions * turns)


@dataclass
class Statements:
    """What the store's connection ran per turn, and what it cost (see the module's docstring)."""

    statements: float
    writes: float
    reads: float
    polls: float
    cpu: float
    database: float
    checkpoints: float


class TimedConnection:
    """A sqlite3 connection whose calls (``execute`` and its cursors' fetches) are timed."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.seconds = 0.0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> TimedCursor:
        started = time.perf_counter()
        cursor = self.connection.execute(sql, params)
        self.seconds += time.perf_counter() - started
        return TimedCursor(cursor, self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


class TimedCursor:
    def __init__(self, cursor: sqlite3.Cursor, timed: TimedConnection) -> None:
        self._cursor = cursor
        self._timed = timed
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        started = time.perf_counter()
        try:
            return self._cursor.fetchone()
        finally:
            self._timed.seconds += time.perf_counter() - started

    def fetchall(self) -> list[Any]:
        started = time.perf_counter()
        try:
            return self._cursor.fetchall()
        finally:
            self._timed.seconds += time.perf_counter() - started


def _checkpointer_clock() -> int:
    """The CPU clock of the store's checkpoint thread (its work is SQLite's, done off the loop)."""
    [thread] = [t for t in threading.enumerate() if t.name == "turnkit-checkpoint"]
    assert thread.ident is not None
    return time.pthread_getcpuclockid(thread.ident)


async def statements(folder: Path, turns: int, rounds: int = 3) -> Statements:
    """Count the statements of ``turns`` turns of one session after a warm-up; then, ``rounds``
    times, measure the process's CPU time over as many more, and the checkpoint thread's part of
    it, and time the driver's calls over as many more again (``synchronous = normal``: CPU, no
    fsync). Each figure is the median of its rounds.

    The CPU is measured apart from the timing, whose wrapper costs time of its own: that is
    neither SQLite's nor the framework's."""
    seen: list[str] = []
    async with agent(sqlite_store(folder, "normal")) as a:
        session = (await a.sessions.open()).session_id
        for number in range(20):
            await a.send(f"warm-up {number}", session)
        store = a.store
        assert isinstance(store, SQLiteStore)
        connection = store._conn  # counting and timing need the driver's own connection
        assert connection is not None
        connection.set_trace_callback(seen.append)
        try:
            for number in range(turns):
                await a.send(f"message {number}", session)
        finally:
            connection.set_trace_callback(None)
        clock = _checkpointer_clock()
        cpus, checkpoints, database = [], [], []
        for _ in range(rounds):
            cpu, checkpoint = time.process_time(), time.clock_gettime(clock)
            for number in range(turns):
                await a.send(f"plain {number}", session)
            cpus.append(time.process_time() - cpu)
            checkpoints.append(time.clock_gettime(clock) - checkpoint)
            timed = TimedConnection(connection)
            store._conn = timed  # type: ignore[assignment]
            try:
                for number in range(turns):
                    await a.send(f"timed {number}", session)
            finally:
                store._conn = connection
            database.append(timed.seconds)
    kinds = Counter(_statement_kind(text) for text in seen)
    return Statements(
        kinds["statement"] / turns,
        kinds["write"] / turns,
        kinds["read"] / turns,
        kinds["poll"] / turns,
        statistics.median(cpus) / turns,
        statistics.median(database) / turns,
        statistics.median(checkpoints) / turns,
    )


#: What the heartbeat runs (time-driven, not per turn): the lease, the recovery sweep, old
#: idempotency keys, the search index's batch (browse.index_messages).
_HOUSEKEEPING = re.compile(r"\bowners\b|\bidempotency\b|\bmessages_fts|FROM messages WHERE id > ")


def _statement_kind(text: str) -> str:
    words = text.split(None, 2)
    first = words[0].upper()
    if first == "BEGIN":
        return "write" if len(words) > 1 and words[1].upper() == "IMMEDIATE" else "read"
    if first in ("COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END"):
        return "control"
    if text.strip().upper() == "PRAGMA DATA_VERSION" or _HOUSEKEEPING.search(text):
        return "poll"  # the housekeeping loop: other processes' commits, the heartbeat's chores
    return "statement"


async def assembly(folder: Path, sizes: list[int], rounds: int) -> dict[int, float]:
    """Seconds to assemble the next prompt for sessions of each size."""
    results = {}
    async with agent(sqlite_store(folder)) as a:
        store = a.store
        for size in sizes:
            session = (await a.sessions.open()).session_id
            for number in range(size):
                await store.append_message(session, Message.of("user", f"m{number}"))
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                window = await store.window(session, a.config.turns.history)
                pending = await store.pending_context(session)
                assemble(window, None, Message.of("user", "next"), pending, a.actions.tools)
                samples.append(time.perf_counter() - started)
            results[size] = statistics.median(samples)
    return results


def bar(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(
    label: str, floors: tuple[float, float], one: tuple[float, float], many: float, bars: str | None
) -> None:
    """Print one run's figures, and its bars: ``"full"`` holds the one-session turn to 1.5x
    the same-guarantee floor and 100 sessions to 3x its rate (group commit); ``"normal"`` (no
    fsync) the one-session turn to 10x the 1-transaction floor (the framework's 150 µs of CPU
    is read from :func:`statements`, apart); ``None``
    (PostgreSQL, where no bar is set) prints the ratios only."""
    single, fair = floors
    ours, cpu = one
    print(label)
    print(f"  floor, 1 txn/turn              {1 / single:7.0f} turns/s {1e6 * single:7.0f} µs/turn")
    print(f"  floor, same guarantee (2 txn)  {1 / fair:7.0f} turns/s {1e6 * fair:7.0f} µs/turn")
    print(
        f"  turnkit, one session           {1 / ours:7.0f} turns/s {1e6 * ours:7.0f} µs/turn"
        f" (CPU {1e6 * cpu:.0f} µs)  ratio {ours / single:.2f} to 1 txn, {ours / fair:.2f} to same guarantee"
    )
    speedup = ours / many
    print(
        f"  turnkit, 100 sessions at once  {1 / many:7.0f} turns/s {1e6 * many:7.0f} µs/turn"
        f"  {speedup:.2f}x one session's turns/s"
    )
    if bars == "full":
        print(f"  bar: one session <= 1.5x the same-guarantee floor: {bar(ours / fair <= 1.5)}")
        print(f"  bar: 100 sessions >= 3x one session's turns/s (group commit): {bar(speedup >= 3)}")
    elif bars == "normal":
        print(
            f"  bar: one session <= 10x the 1-txn floor: {bar(ours / single <= 10)}"
            " (the framework's CPU: see the split below)"
        )


def sqlite_runs(folder: Path, turns: int) -> None:
    for synchronous in ("full", "normal"):
        floors = (
            sqlite_floor(folder / f"floor1-{synchronous}.db", turns, synchronous, same_guarantee=False),
            sqlite_floor(folder / f"floor2-{synchronous}.db", turns, synchronous, same_guarantee=True),
        )
        ours, cpu, times = asyncio.run(
            one_session(sqlite_store(_sub(folder, f"one-{synchronous}"), synchronous), turns)
        )
        many = sqlite_store(_sub(folder, f"many-{synchronous}"), synchronous)
        concurrent = asyncio.run(many_sessions(many, 100, max(2, turns // 100)))
        report(f"[store] synchronous = {synchronous}", floors, (ours, cpu), concurrent, synchronous)
        early, late = statistics.mean(times[10:110]), statistics.mean(times[-100:])
        print(
            f"  flatness: turns 10-110 {1e6 * early:.0f} µs, last 100 of {turns} {1e6 * late:.0f} µs,"
            f" ratio {late / early:.2f}"
        )
    counted = asyncio.run(statements(_sub(folder, "statements"), min(turns, 1000)))
    print(
        f"SQL per turn (one session, sqlite3 trace): {counted.statements:.2f} statements besides"
        f" transaction control (bar <= 8: {bar(counted.statements <= 8)}), {counted.writes:.2f} write"
        f" and {counted.reads:.2f} read transactions; housekeeping (polls, lease) {counted.polls:.2f}/turn"
    )
    framework = counted.cpu - counted.database - counted.checkpoints
    print(
        f"  CPU per turn (normal) {1e6 * counted.cpu:.0f} µs:"
        f" inside SQLite calls {1e6 * counted.database:.0f} µs,"
        f" checkpoints (their thread) {1e6 * counted.checkpoints:.0f} µs,"
        f" the framework {1e6 * framework:.0f} µs (bar <= 150: {bar(framework <= 150e-6)})"
    )


def postgres_runs(url: str | None, turns: int) -> None:
    """The same turns on PostgreSQL, against the same floors on the same server."""
    import psycopg

    with postgres_database(url) as database:
        with psycopg.connect(database, autocommit=True) as db:
            server = db.execute("SHOW server_version").fetchone()
            fsync = db.execute("SHOW fsync").fetchone()
            synchronous = db.execute("SHOW synchronous_commit").fetchone()
            for statement in FLOOR_TABLES:
                db.execute(statement.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY"))

            def execute(sql: str, params: Sequence[Any] = ()) -> Any:
                return db.execute(sql.replace("?", "%s"), params)

            floors = (floor_turns(execute, turns, False), floor_turns(execute, turns, True))
        store = {"url": database}
        ours, cpu, _ = asyncio.run(one_session(store, turns))
        concurrent = asyncio.run(many_sessions(store, 100, max(2, turns // 100)))
    label = f"PostgreSQL {server[0] if server else '?'} (fsync {fsync[0] if fsync else '?'},"
    report(
        f"{label} synchronous_commit {synchronous[0] if synchronous else '?'})",
        floors,
        (ours, cpu),
        concurrent,
        None,
    )


@contextlib.contextmanager
def postgres_database(url: str | None) -> Iterator[str]:
    """``url``, or a fresh database on a throwaway server on loopback (removed afterwards)."""
    if url is not None:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.postgres import PostgresServer, find_binaries

    binaries = find_binaries()
    if binaries is None:
        raise SystemExit(
            "no PostgreSQL server binaries found (Debian: apt-get install postgresql); or give a URL"
        )
    with PostgresServer(binaries) as server:
        yield server.create_database()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer turns (a smoke run)")
    parser.add_argument(
        "--postgresql",
        nargs="?",
        const="",
        metavar="URL",
        help="also run on PostgreSQL (URL's database, else a throwaway server)",
    )
    args = parser.parse_args()
    turns, history = (300, 10_000) if args.quick else (2000, 100_000)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # a real disk, not a tmpfs: fsync counts
        folder = Path(tmp)
        sqlite_runs(folder, turns)
        if args.postgresql is not None:
            postgres_runs(args.postgresql or None, turns)
        sizes = asyncio.run(assembly(_sub(folder, "assembly"), [10, history], 50))
    small, large = sizes[10], sizes[history]
    print(
        f"prompt assembly: 10 messages {1e6 * small:.0f} µs, {history} messages {1e6 * large:.0f} µs,"
        f" ratio {large / small:.2f}"
    )
    sys.stdout.flush()


def _sub(folder: Path, name: str) -> Path:
    path = folder / name
    path.mkdir()
    return path


if __name__ == "__main__":
    main()
