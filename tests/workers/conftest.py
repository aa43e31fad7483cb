"""Fixtures of the worker tests: the fixture model installed once, a store per backend, a cluster per test.

Every test here runs twice, on a SQLite file and on a PostgreSQL database
(the root ``postgres_url`` fixture: a fresh database of the session's
server), because the promises hold for both and they keep them by different
means (``PRAGMA data_version`` polling and file locks, ``LISTEN``/``NOTIFY``
and row locks).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dists import install_distribution

from .support import SLOW_MODEL, Cluster

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture model, installed (built with hatchling, no index) into a folder for ``PYTHONPATH``."""
    return install_distribution(SLOW_MODEL, tmp_path_factory.mktemp("workers-plugin"))


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shared store: a SQLite file in the test's folder, or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "store.db")


@pytest.fixture
def cluster(tmp_path: Path, store_url: str, plugin_dir: Path) -> Iterator[Cluster]:
    """A folder with a ``turnkit.toml`` on the store; every process started from it is killed at the end.

    The store is fresh: the workers a test starts together create its schema.
    """
    folder = tmp_path / "cluster"
    folder.mkdir()
    cluster = Cluster(folder, store_url, plugin_dir)
    try:
        yield cluster
    finally:
        cluster.close()
