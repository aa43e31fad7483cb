"""WAL checkpoints off the event loop: the SQLite file's write-ahead log copied back in a thread.

SQLite's default copies the log back into the database file inside the
commit that finds it over 1,000 pages, on the connection that commits: with
the store's connection on the event loop, one turn in thirty or so then
paid for the copy of every page the others wrote, and for its fsync. A
:class:`Checkpointer` does that on a thread and a connection of its own,
``PASSIVE`` (it never waits for, nor blocks, a reader or a writer), once
every ``every`` commits: less often than the default, so a page that many
commits rewrote (an index's last leaf) is copied once.

The store's own connection keeps an automatic checkpoint at ``BACKSTOP``
pages, a little past what the thread's ``every`` commits write. The thread's
checkpoint never leaves the log empty (commits go on while it copies), and
only an empty log starts again from its beginning: the connection's own
checkpoint copies the few pages left, and the next commit rewrites the log
from its start. A log that keeps growing costs each commit's fsync an update
of the file's size in the filesystem's journal, so the sooner it stops
growing the better: at this backstop, after some 150 turns and 12 MiB.
Should the thread fall behind, the same checkpoint keeps the log bounded.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

#: The store connection's own automatic checkpoint, in pages (4 KiB each): about 12 MiB of log,
#: a little more than the thread's 256 commits write (some 10 pages each for a plain turn's).
BACKSTOP = 3_000


class Checkpointer:
    """Checkpoints one SQLite file on a daemon thread; :meth:`committed` counts the commits."""

    def __init__(self, path: str, busy_timeout: float, every: int = 256) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._every = every
        self._commits = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="turnkit-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """One more write committed; every ``every`` of them, a checkpoint is due."""
        self._commits += 1
        if self._commits >= self._every:
            self._commits = 0
            self._due.set()

    def stop(self) -> None:
        """End the thread (a checkpoint under way finishes first)."""
        self._stopping = True
        self._due.set()
        self._thread.join()

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                try:
                    if conn is None:
                        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the backstop checkpoints meanwhile; try at the next one
                    log.debug("checkpoint of %s failed: %s", self._path, exc)
        finally:
            if conn is not None:
                conn.close()
