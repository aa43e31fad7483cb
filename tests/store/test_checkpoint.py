"""WAL checkpoints on the store's thread: the log is copied back into the file every N commits,
off the committing connection, and the store's own connection no longer pays for it; the log
starts again from its beginning instead of growing."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from turnkit.store import SQLiteStore
from turnkit.store.checkpoint import Checkpointer
from turnkit_hookspecs import Message, SessionInfo


def _writer(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode that never checkpoints by itself."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    return conn


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_every_n_commits_the_log_is_copied_into_the_file_by_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    conn = _writer(path)
    checkpointer = Checkpointer(str(path), busy_timeout=1.0, every=50)
    try:
        for _ in range(49):
            conn.execute("INSERT INTO t (body) VALUES (?)", ("x" * 2000,))
            checkpointer.committed()
        time.sleep(0.2)
        small = path.stat().st_size
        assert small < 50_000, "no checkpoint before the 50th commit: the rows are in the log only"
        conn.execute("INSERT INTO t (body) VALUES (?)", ("x" * 2000,))
        checkpointer.committed()
        assert _wait_for(lambda: path.stat().st_size > 50 * 2000), "the 50th commit's checkpoint ran"
    finally:
        checkpointer.stop()
        conn.close()


def test_a_checkpoint_that_fails_is_tried_again_at_the_next_one(tmp_path: Path) -> None:
    missing = tmp_path / "not-yet" / "wal.db"
    checkpointer = Checkpointer(str(missing), busy_timeout=1.0, every=1)
    try:
        checkpointer.committed()  # the folder does not exist: the thread's connect fails, quietly
        time.sleep(0.1)
        missing.parent.mkdir()
        conn = _writer(missing)
        try:
            conn.execute("INSERT INTO t (body) VALUES (?)", ("y" * 40_000,))
            checkpointer.committed()
            assert _wait_for(lambda: missing.stat().st_size > 40_000), "the next checkpoint worked"
        finally:
            conn.close()
    finally:
        checkpointer.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A store at ``tmp_path / "turnkit.db"`` with session ``s``."""
    opened = SQLiteStore(str(tmp_path / "turnkit.db"))
    await opened.open()
    try:
        await opened.create_session(SessionInfo("s", "chat"), "agent")
        yield opened
    finally:
        await opened.close()


async def test_the_stores_commits_are_checkpointed_by_its_thread(store: SQLiteStore, tmp_path: Path) -> None:
    path = tmp_path / "turnkit.db"
    for number in range(300):
        await store.append_message("s", Message.of("user", f"message {number} " + "z" * 500))
    with sqlite3.connect(path) as reader:
        assert reader.execute("SELECT COUNT(*) FROM messages").fetchone() == (300,)
    # 300 commits are short of the backstop's 3,000 pages: only the thread copies them back
    assert _wait_for(lambda: path.stat().st_size > 300 * 500), "the store's commits were checkpointed"


async def test_the_log_starts_again_from_its_beginning_instead_of_growing(
    store: SQLiteStore, tmp_path: Path
) -> None:
    for number in range(2_000):  # some 16,000 pages (64 MiB) of log written in all
        await store.append_message("s", Message.of("user", f"message {number}"))
    log = (tmp_path / "turnkit.db-wal").stat().st_size
    assert log <= 16 * 2**20, f"the log grew to {log / 2**20:.1f} MiB"
