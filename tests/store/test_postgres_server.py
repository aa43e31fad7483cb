"""The PostgreSQL test server itself (tests/support/postgres.py): the store's PostgreSQL tests stand on it.

Checked for real: SQL runs and persists, two tests' databases do not see each
other, it is reachable on 127.0.0.1 and nowhere else, and a stopped server
leaves neither a process nor a directory behind.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from turnkit.store.migrations import SCHEMA_VERSION
from turnkit.store.postgres import PostgresStore

from tests.support.postgres import HOST, SUPERUSER, PostgresServer, database_name


def test_runs_sql_in_a_fresh_database(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            SUPERUSER,
            database_name(postgres_url),
        )
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        conn.execute("CREATE TABLE notes (id integer PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO notes VALUES (1, %s)", ["grüße ✓"])
    # committed by the first connection's context exit: a second connection reads it back
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("grüße ✓",)]
        assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)


def test_databases_are_isolated(postgres_server: PostgresServer, postgres_url: str) -> None:
    other_url = postgres_server.create_database()
    try:
        assert other_url != postgres_url
        with psycopg.connect(postgres_url) as conn:
            conn.execute("CREATE TABLE only_here (x integer)")
        with psycopg.connect(other_url) as conn:
            assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
            conn.execute("CREATE TABLE only_here (x integer)")  # the same name is free here
            conn.execute("INSERT INTO only_here VALUES (2)")
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*) FROM only_here").fetchone() == (0,)
    finally:
        postgres_server.drop_database(database_name(other_url))


def test_drop_database_ends_open_sessions(postgres_server: PostgresServer) -> None:
    """A test that leaks a connection (a pool not closed) must not make its teardown fail."""
    url = postgres_server.create_database("test_dropped_while_open")
    leaked = psycopg.connect(url)
    try:
        postgres_server.drop_database("test_dropped_while_open")
        with psycopg.connect(postgres_server.url()) as conn:
            names = conn.execute("SELECT datname FROM pg_database").fetchall()
        assert ("test_dropped_while_open",) not in names
        with pytest.raises(psycopg.OperationalError):
            leaked.execute("SELECT 1")
        postgres_server.drop_database("test_dropped_while_open")  # already gone: no error
    finally:
        leaked.close()


async def test_async_pool(postgres_url: str) -> None:
    """The store will talk through psycopg-pool's async pool: it works against this server."""
    async with AsyncConnectionPool(postgres_url, min_size=2, max_size=4, open=False) as pool:
        async with pool.connection() as conn:
            await conn.execute("CREATE TABLE t (n integer)")
            await conn.execute("INSERT INTO t SELECT generate_series(1, 10)")
        async with pool.connection() as conn:
            cursor = await conn.execute("SELECT sum(n) FROM t")
            assert await cursor.fetchone() == (55,)


def _refuses(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect((host, port))
        except OSError:  # refused, or no such address here (no IPv6)
            return True
    return False


def _outward_address() -> str | None:
    """This machine's address towards the outside (no packet is sent), or None without a route."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
        except OSError:
            return None
        address: str = sock.getsockname()[0]
    return None if address.startswith("127.") else address


def test_listens_on_loopback_only(postgres_server: PostgresServer) -> None:
    port = postgres_server.port
    assert port is not None
    assert postgres_server.url("x") == f"postgresql://{SUPERUSER}@{HOST}:{port}/x"
    with psycopg.connect(postgres_server.url()) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == (HOST,)
        assert conn.execute("SELECT host(inet_server_addr())").fetchone() == (HOST,)
        (socket_dir,) = conn.execute("SHOW unix_socket_directories").fetchone() or ("",)
    # the Unix socket is in the server's temporary directory, not the system's /var/run/postgresql
    assert postgres_server.root is not None
    assert Path(socket_dir) == postgres_server.root
    assert (postgres_server.root / f".s.PGSQL.{port}").is_socket()
    # other loopback addresses (Linux routes all of 127/8 to lo), IPv6 loopback and the outward address
    others = ["127.0.0.2", "::1", *filter(None, [_outward_address()])]
    assert [host for host in others if not _refuses(host, port)] == []


def _running(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie does not: pg_ctl's server is reparented to PID 1,
    and a container's PID 1 may never reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    state = next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))
    return state not in ("Z", "X")


def test_stop_removes_server_and_directory(postgres_server: PostgresServer) -> None:
    """A second server (about a second): stop() must leave no process, port or directory behind.

    It asks for the session's server only for its binaries, and so that it is
    skipped, or fails in CI, exactly as the fixture decides.
    """
    server = PostgresServer(postgres_server.binaries).start()
    root, port = server.root, server.port
    assert root is not None and port is not None
    pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
    server.stop()
    assert not root.exists()
    assert _refuses(HOST, port)
    assert not _running(pid)
    server.stop()  # idempotent


async def test_workers_opening_a_new_database_together_migrate_it_once(postgres_url: str) -> None:
    """Several stores opening one fresh database at the same moment: one creates the schema."""
    stores = [PostgresStore(postgres_url, pool_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        assert {await store.schema_version() for store in stores} == {SCHEMA_VERSION}
    finally:
        for store in stores:
            await store.close()
