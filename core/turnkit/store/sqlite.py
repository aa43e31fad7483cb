"""The SQLite engine: the embedded default.

One connection per store. Each job is one transaction (``BEGIN IMMEDIATE``
when it writes, so that processes sharing the file queue up on SQLite's
lock instead of failing half-way; a plain ``BEGIN`` when it only reads, so
that its statements see one snapshot). Files run in WAL mode, so readers in
other processes are not blocked by a writer; ``synchronous`` and
``busy_timeout`` come from :class:`~turnkit.config.StoreConfig`. Other
processes' commits are noticed through ``PRAGMA data_version``, polled.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..errors import StoreError
from .cache import TxCache
from .checkpoint import BACKSTOP, Checkpointer
from .group_commit import GroupCommit, Job, Outcome
from .migrations import SCHEMA_VERSION, apply, refuse_newer
from .sql import SQLStore
from .tx import SQLITE, Tx

T = TypeVar("T")

MEMORY = ":memory:"
_SYNCHRONOUS = ("normal", "full")


class SQLiteStore(SQLStore):
    """The store in one SQLite file (or in memory, for tests).

    By default transactions run on the calling (event loop) thread: a
    turn's two transactions take tens of microseconds plus the commit's
    fsync, less than handing each to a thread and back, which measured about
    180 µs per call here. With ``threaded=True`` (``[store] thread = true``)
    they run on the store's own thread instead, so that waiting for another
    process's lock on a shared file (up to ``busy_timeout``) never stalls
    the event loop.

    A read runs at once. Writes go through :class:`GroupCommit`: those made
    while the event loop goes once round (``group_commit`` seconds more at
    most) share one transaction and one fsync, in the order they were made,
    and each is answered only once it committed. A call that is cancelled
    still commits (or rolls back) as a whole. Two instances, in one process
    or several, may open the same file.
    """

    dialect = SQLITE

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "normal",
        busy_timeout: float = 5.0,
        threaded: bool = False,
        poll: float = 0.05,
        group_commit: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``poll`` is how often (seconds) :meth:`changed` looks for other connections' commits;
        ``group_commit`` how long at most a write waits for others to share its commit."""
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}")
        super().__init__(clock)
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._threaded = threaded
        self._poll = poll
        self._group_wait = group_commit
        self._group: GroupCommit | None = None  # while open
        self._executor: ThreadPoolExecutor | None = None
        # Touched by one thread at a time: the executor's, or the event loop's when not threaded.
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None  # while a file is open
        self._data_version: int | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    @property
    def url(self) -> str:
        return self.path

    # ------------------------------------------------------------------ plumbing

    async def _transaction(self, job: Callable[[Tx], T], write: bool) -> T:
        group = self._group
        if group is None:
            raise StoreError(f"store {self.path} is not open")
        if write:
            return await group.write(job)
        if not self._threaded:
            read: T = self._run([job], False)[0][1]
            return read
        outcomes = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, [job], False)
        result: T = outcomes[0][1]
        return result

    def _commit(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run a batch of writes (see :class:`GroupCommit`) as one transaction."""
        return self._run(jobs, True)

    def _run(self, jobs: Sequence[Job], write: bool) -> list[Outcome]:
        """Run ``jobs`` in one transaction (on the store's thread); their outcomes once committed.

        Several jobs (a group commit) each run in a savepoint of their own,
        so that one that raises is undone alone and the others commit; a
        lone job needs none: if it raises, the whole transaction rolls back
        and the error is raised here.
        """
        conn = self._conn
        if conn is None:
            raise StoreError(f"store {self.path} is closed")
        shared = len(jobs) > 1
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                txs = [Tx(conn, self._clock(), TxCache(self._cache), SQLITE) for _ in jobs]
                outcomes = [self._step(conn, job, tx, shared) for job, tx in zip(jobs, txs, strict=True)]
                conn.execute("COMMIT")
                for tx, (ok, _) in zip(txs, outcomes, strict=True):
                    if ok:
                        tx.cache.committed()
                if write and self._checkpointer is not None:
                    self._checkpointer.committed()
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._failure(exc) from exc
        return outcomes

    def _step(self, conn: sqlite3.Connection, job: Job, tx: Tx, shared: bool) -> Outcome:
        """One job of a transaction; with ``shared`` in its own savepoint, its error its outcome."""
        if not shared:
            return True, job(tx)
        conn.execute("SAVEPOINT job")
        try:
            result = job(tx)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return False, self._failure(exc) if isinstance(exc, sqlite3.Error) else exc
        conn.execute("RELEASE job")
        return True, result

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

    async def changed(self, timeout: float) -> bool:
        """See :meth:`Store.changed`: ``PRAGMA data_version`` moves when another connection commits."""
        deadline = time.monotonic() + timeout
        while True:
            version = await self._transaction(lambda tx: int(tx.one("PRAGMA data_version")[0]), False)
            seen, self._data_version = self._data_version, version
            if seen is not None and seen != version:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(self._poll, left))

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
        if self.path != MEMORY:
            self._checkpointer = Checkpointer(self.path, self._busy_timeout)
        self._group = GroupCommit(self._commit, executor if self._threaded else None, self._group_wait)

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
                self._use_wal(conn)
                conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP}")  # see checkpoint.py
            conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            self._migrate(conn, target)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._failure(exc) from exc
            raise
        self._conn = conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL (it stays so), retrying while another process does the same.

        Changing the journal mode needs the file to itself and fails at once,
        without waiting on ``busy_timeout``, when another connection opens it
        at that moment: workers started together on a new file race here.
        """
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                busy = getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self, conn: sqlite3.Connection, target: int) -> None:
        """Apply the missing migrations up to ``target``, each in its own transaction."""
        current = _version(conn)
        refuse_newer(self.path, current)
        for version in range(current + 1, target + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the lock.
                if _version(conn) < version:
                    apply(conn.execute, version, "sqlite", self._clock())
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        await group.idle()  # writes already made still commit
        executor, self._executor = self._executor, None
        assert executor is not None  # open, since it had a group
        checkpointer, self._checkpointer = self._checkpointer, None
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
            if checkpointer is not None:
                await asyncio.get_running_loop().run_in_executor(executor, checkpointer.stop)
        finally:
            executor.shutdown(wait=False)

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def schema_version(self) -> int:
        return await self._read(lambda tx: _version(tx.conn))


def _version(conn: sqlite3.Connection | object) -> int:
    """The database's schema version; 0 for a database turnkit never touched."""
    assert isinstance(conn, sqlite3.Connection)
    table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    if conn.execute(table).fetchone() is None:
        return 0
    version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    return int(version or 0)
