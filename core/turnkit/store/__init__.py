"""The session store: its interface, its records, and opening one from config.

``open_store`` is the one place that maps ``[store] url`` to an engine:
a file path or ``sqlite://`` URL opens the embedded SQLite store, a
``postgresql://`` URL the PostgreSQL one (which needs the ``postgresql``
extra: ``pip install 'turnkit[postgresql]'``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..secrets import Secrets
from .base import Store
from .forks import Acting
from .inbox import inbox_session_id
from .records import (
    AuditEvent,
    Claim,
    ContextItem,
    InboxItem,
    OwnerRecord,
    SessionQuery,
    SessionRecord,
    StoredMessage,
    Takeover,
    TurnOutcome,
    TurnRecord,
)
from .sessions import SESSION_STATUSES
from .sql import SQLStore
from .sqlite import MEMORY, SQLiteStore

if TYPE_CHECKING:
    from ..config import StoreConfig

__all__ = [
    "SESSION_STATUSES",
    "Acting",
    "AuditEvent",
    "Claim",
    "ContextItem",
    "InboxItem",
    "OwnerRecord",
    "SQLiteStore",
    "SessionQuery",
    "SessionRecord",
    "Store",
    "StoredMessage",
    "Takeover",
    "TurnOutcome",
    "TurnRecord",
    "inbox_session_id",
    "make_store",
    "open_store",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES = ("postgresql", "postgres")
_SUPPORTED = (
    "a file path, ':memory:', 'sqlite:///relative/path', 'sqlite:////absolute/path'"
    " or 'postgresql://user@host/database'"
)


def make_store(
    config: StoreConfig, base_dir: str, url: str | None = None, *, secrets: Secrets | None = None
) -> Store:
    """The store ``url`` (default: ``config.url``) names, not yet open.

    ``secrets`` are scrubbed from what it writes (see :class:`SQLStore`).
    """
    url = config.url if url is None else url
    match = _SCHEME.match(url)
    store: SQLStore
    if match is not None and match.group(1) in _POSTGRES:
        from .postgres import PostgresStore

        store = PostgresStore(url, pool_size=config.pool_size, poll=config.poll)
    else:
        store = SQLiteStore(
            sqlite_path(url, base_dir),
            synchronous=config.synchronous,
            busy_timeout=config.busy_timeout,
            threaded=config.thread,
            poll=config.poll,
            group_commit=config.group_commit,
        )
    if secrets is not None:
        store.secrets = secrets
    return store


async def open_store(
    config: StoreConfig, base_dir: str, url: str | None = None, *, secrets: Secrets | None = None
) -> Store:
    """Create the store ``config.url`` (or ``url``) names and open it (migrating its schema).

    A relative path is taken from ``base_dir`` (the configuration file's
    folder), never from the working directory, so the same config finds the
    same database wherever the agent is started. ``secrets`` are scrubbed
    from what it writes.
    """
    store = make_store(config, base_dir, url, secrets=secrets)
    await store.open()
    return store


def sqlite_path(url: str, base_dir: str) -> str:
    """The SQLite file ``url`` names, or :data:`MEMORY`; StoreError for other schemes."""
    match = _SCHEME.match(url)
    if match is not None:
        if match.group(1) != "sqlite":
            raise StoreError(
                f"store url {url!r}: scheme {match.group(1)!r} is not supported (use {_SUPPORTED})"
            )
        rest = url[len("sqlite://") :]
        if not rest.startswith("/") or rest == "/":
            raise StoreError(f"store url {url!r} names no file (use {_SUPPORTED})")
        url = rest[1:]
    if url == MEMORY:
        return MEMORY
    return str(Path(base_dir) / Path(url).expanduser())
