"""The ``store`` fixture, once per backend.

Every test here written against :class:`~turnkit.store.Store` runs on each
backend listed in ``BACKENDS``: SQLite with calls on the event loop's
thread, and on the store's own thread, and PostgreSQL (a fresh database of
the test session's server per test). Timestamps come from a clock that ticks one
second per call, so orderings by time never tie.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from turnkit.store import SQLiteStore, Store
from turnkit.store.postgres import PostgresStore

from .helpers import Clock, Connect

BACKENDS = ["sqlite", "sqlite-threaded", "postgresql"]


def _make(backend: str, where: str, clock: Clock) -> Store:
    if backend.startswith("sqlite"):
        threaded = backend == "sqlite-threaded"
        return SQLiteStore(str(Path(where) / "turnkit.db"), clock=clock, threaded=threaded)
    if backend == "postgresql":
        return PostgresStore(where, clock=clock, pool_size=4)
    raise AssertionError(f"no such backend {backend!r}")


@pytest.fixture(params=BACKENDS)
async def connect(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Connect]:
    """A factory of open stores sharing one database; all are closed at the end."""
    clock = Clock()
    opened: list[Store] = []
    where = request.getfixturevalue("postgres_url") if request.param == "postgresql" else str(tmp_path)

    async def open_one() -> Store:
        store = _make(request.param, where, clock)
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
