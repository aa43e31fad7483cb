"""The ``store`` fixture, once per backend.

Every test here written against :class:`~turnkit.store.Store` runs on each
backend listed in ``BACKENDS`` (SQLite with calls on the event loop's
thread, and on the store's own thread); a PostgreSQL store joins by adding its name
and a branch in :func:`_make`. Timestamps come from a clock that ticks one
second per call, so orderings by time never tie.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from turnkit.store import SQLiteStore, Store

from .helpers import Clock, Connect

BACKENDS = ["sqlite", "sqlite-threaded"]


def _make(backend: str, tmp_path: Path, clock: Clock) -> Store:
    if backend.startswith("sqlite"):
        threaded = backend == "sqlite-threaded"
        return SQLiteStore(str(tmp_path / "turnkit.db"), clock=clock, threaded=threaded)
    raise AssertionError(f"no such backend {backend!r}")


@pytest.fixture(params=BACKENDS)
async def connect(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Connect]:
    """A factory of open stores sharing one database; all are closed at the end."""
    clock = Clock()
    opened: list[Store] = []

    async def open_one() -> Store:
        store = _make(request.param, tmp_path, clock)
        await store.open()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
async def store(connect: Connect) -> Store:
    """An open, empty store."""
    return await connect()
