"""The PostgreSQL engine: one database for every worker on every machine.

psycopg 3 with psycopg-pool's connection pool. The jobs are the same plain
functions the SQLite engine runs (so the two engines share every statement
but a handful of dialect fragments), which makes them synchronous: each
call runs on a thread of the store's, holding a pooled connection for one
transaction. A write runs at READ COMMITTED and takes the row locks it
needs (``FOR UPDATE`` on the session, ``SKIP LOCKED`` for work items
several workers look for at once); a read runs as one REPEATABLE READ
snapshot. A deadlock or serialization failure rolls back and is retried.

Other processes are heard through ``LISTEN``/``NOTIFY``: writing jobs
notify the ``turnkit`` channel in their transaction, so the notice goes
out exactly when they commit; one extra connection listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import StoreError
from .cache import TxCache
from .migrations import SCHEMA_VERSION, apply, refuse_newer
from .sql import SQLStore
from .tx import POSTGRES, Tx

T = TypeVar("T")

log = logging.getLogger("turnkit.store.postgres")

#: Transactions rolled back by a deadlock or a serialization failure are tried this often.
_ATTEMPTS = 4
#: A key for ``pg_advisory_xact_lock``: one migrating process at a time.
_MIGRATION_LOCK = 0x7475726E  # "turn"


class PostgresStore(SQLStore):
    """The store in a PostgreSQL database (``postgresql://user[:password]@host[:port]/db``)."""

    dialect = POSTGRES

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        poll: float = 0.05,
        connect_timeout: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``poll``: the first delay before a lost listening connection reconnects (doubling, to 5 s)."""
        super().__init__(clock)
        self._dsn = url
        self._pool_size = pool_size
        self._poll = poll
        self._connect_timeout = connect_timeout
        self._pool: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._notified = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    @property
    def url(self) -> str:
        """The URL without its password."""
        parts = urlsplit(self._dsn)
        if parts.password is None:
            return self._dsn
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))

    # ------------------------------------------------------------------ plumbing

    async def _transaction(self, job: Callable[[Tx], T], write: bool) -> T:
        executor = self._executor
        if executor is None:
            raise StoreError(f"store {self.url} is not open")
        return await asyncio.get_running_loop().run_in_executor(executor, self._run, job, write)

    def _run(self, job: Callable[[Tx], T], write: bool) -> T:
        import psycopg

        pool = self._pool
        if pool is None:
            raise StoreError(f"store {self.url} is closed")
        begin = "BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with pool.connection() as conn:
                    conn.execute(begin)
                    try:
                        tx = Tx(conn, self._clock(), TxCache(self._cache), POSTGRES)
                        result = job(tx)
                        conn.execute("COMMIT")
                        tx.cache.committed()
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                return result
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                if attempt == _ATTEMPTS:
                    raise StoreError(f"{self.url}: {exc}") from exc
                time.sleep(0.005 * attempt)
            except psycopg.Error as exc:
                raise StoreError(f"{self.url}: {exc}") from exc
            except Exception as exc:
                if type(exc).__module__.startswith("psycopg_pool"):
                    raise StoreError(f"{self.url}: {exc}") from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def changed(self, timeout: float) -> bool:
        """See :meth:`Store.changed`: woken by ``NOTIFY turnkit`` from any process's commit."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="turnkit listen")
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # arrives as the event is set, and the agent's housekeeping task then never stops.
            async with asyncio.timeout(timeout):
                await self._notified.wait()
        except TimeoutError:
            return False
        self._notified.clear()
        return True

    async def _listen(self) -> None:
        """Hold a ``LISTEN`` connection, reconnecting with backoff; any notice sets the event."""
        import psycopg

        delay = self._poll
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True, connect_timeout=self._connect_timeout
                ) as conn:
                    await conn.execute(f"LISTEN {POSTGRES.CHANNEL}")
                    delay = self._poll
                    self._notified.set()  # anything may have happened while we did not listen
                    async for _ in conn.notifies():
                        self._notified.set()
            except psycopg.Error as exc:
                log.warning("listening on %s failed (%s); retrying in %.1fs", self.url, exc, delay)
                self._notified.set()  # waiters look again rather than trust a deaf listener
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------------ lifecycle

    async def open(self, *, upto: int | None = None) -> None:
        """Connect the pool and migrate (one process at a time); ``upto`` as for SQLite."""
        try:
            import psycopg_pool
        except ImportError as exc:
            raise StoreError(
                f"store url {self.url}: the PostgreSQL store needs psycopg;"
                " install it with: pip install 'turnkit[postgresql]'"
            ) from exc
        if self._executor is not None:
            raise StoreError(f"store {self.url} is already open")
        target = SCHEMA_VERSION if upto is None else upto
        if not 0 <= target <= SCHEMA_VERSION:
            raise ValueError(f"upto must be between 0 and {SCHEMA_VERSION}, got {upto}")
        pool = psycopg_pool.ConnectionPool(
            self._dsn,
            min_size=1,
            max_size=self._pool_size,
            kwargs={"autocommit": True, "connect_timeout": self._connect_timeout},
            open=False,
            name="turnkit",
        )
        executor = ThreadPoolExecutor(max_workers=self._pool_size, thread_name_prefix="turnkit-postgres")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(executor, self._connect, pool, target)
        except BaseException:
            executor.shutdown(wait=False)
            await loop.run_in_executor(None, pool.close)
            raise
        self._pool, self._executor = pool, executor

    def _connect(self, pool: Any, target: int) -> None:
        import psycopg
        import psycopg_pool

        try:  # once by hand first: the pool would retry a wrong host or password until its timeout
            psycopg.connect(self._dsn, connect_timeout=self._connect_timeout).close()
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.url}: {str(exc).strip()}") from exc
        try:
            pool.open(wait=True, timeout=self._connect_timeout)
        except psycopg_pool.PoolTimeout as exc:
            raise StoreError(f"cannot connect to {self.url} within {self._connect_timeout}s") from exc
        try:
            with pool.connection() as conn:
                self._migrate(conn, target)
        except psycopg.Error as exc:
            raise StoreError(f"{self.url}: {exc}") from exc

    def _migrate(self, conn: Any, target: int) -> None:
        """Apply the missing migrations up to ``target``, each in its own transaction.

        Workers started together on a new database queue up on an advisory
        lock held for the whole migration, and each reads the version only
        once it holds it, so exactly one of them creates the schema.
        """
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            current = _version(conn)
            refuse_newer(self.url, current)
            for version in range(current + 1, target + 1):
                with conn.transaction():
                    apply(conn.execute, version, "postgresql", self._clock())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        pool, self._pool = self._pool, None
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, pool.close)
        finally:
            executor.shutdown(wait=False)

    async def schema_version(self) -> int:
        return await self._read(lambda tx: _version(tx.conn))


def _version(conn: Any) -> int:
    """The database's schema version; 0 for a database turnkit never touched."""
    # pg_class, not to_regclass(): the latter answers from a cache that may predate another
    # worker's just-committed migration.
    found = conn.execute(
        "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = 'schema_version' AND n.nspname = current_schema()"
    ).fetchone()
    if found is None:
        return 0
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    return int(version or 0)
