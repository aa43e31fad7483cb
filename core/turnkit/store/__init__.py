"""The session store: its interface, its records, and opening one from config.

``open_store`` is the one place that maps ``[store] url`` to a backend, so
adding PostgreSQL later is a new scheme here, not a change to callers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import StoreError
from .base import SESSION_STATUSES, Store, inbox_session_id
from .records import AuditEvent, Claim, ContextItem, InboxItem, SessionRecord, StoredMessage, TurnRecord
from .sqlite import MEMORY, SQLiteStore

if TYPE_CHECKING:
    from ..config import StoreConfig

__all__ = [
    "SESSION_STATUSES",
    "AuditEvent",
    "Claim",
    "ContextItem",
    "InboxItem",
    "SQLiteStore",
    "SessionRecord",
    "Store",
    "StoredMessage",
    "TurnRecord",
    "inbox_session_id",
    "open_store",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SUPPORTED = "a file path, ':memory:', 'sqlite:///relative/path' or 'sqlite:////absolute/path'"


async def open_store(config: StoreConfig, base_dir: str) -> Store:
    """Create the store ``config.url`` names and open it (migrating its schema).

    A relative path is taken from ``base_dir`` (the configuration file's
    folder), never from the working directory, so the same config finds the
    same database wherever the agent is started.
    """
    store = SQLiteStore(
        sqlite_path(config.url, base_dir),
        synchronous=config.synchronous,
        busy_timeout=config.busy_timeout,
        threaded=config.thread,
    )
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
