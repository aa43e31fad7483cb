"""Fixtures every test directory may use: a real PostgreSQL server for the session, a database per test.

The server is started only when a test asks for it; the logic lives in
:mod:`tests.support.postgres`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer, database_name, find_binaries


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server of our own (loopback, temporary directory) for the whole session.

    No server binaries: skipped, except in CI (``CI=true``), where that means
    ``.ci/run`` failed to install them, and the tests fail instead of passing unnoticed.
    """
    binaries = find_binaries()
    if binaries is None:
        reason = "no PostgreSQL server binaries (initdb) found in /usr/lib/postgresql/*/bin or on PATH"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must have them (.ci/run installs Debian's postgresql)")
        pytest.skip(f"{reason}; install PostgreSQL (Debian: apt-get install postgresql) to run these tests")
    with PostgresServer(binaries) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database on the session's server; dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(database_name(url))
