"""The store's schema, as an ordered list of migrations.

Version ``N`` of a database means the first ``N`` entries of
:data:`MIGRATIONS` were applied; each entry is a tuple of statements run in
one transaction together with the row recording it in ``schema_version``.
Entries are never edited once released: a change to the schema is a new
entry, so a database made by any earlier turnkit can be brought up to date.

The SQL sticks to what SQLite and PostgreSQL both accept (``BOOLEAN`` with
``TRUE``/``FALSE``, ``REAL`` Unix timestamps, JSON kept as ``TEXT``, no
``AUTOINCREMENT``, no ``WITHOUT ROWID``); :func:`postgres` respells the
three types PostgreSQL reads differently (sequence columns, written
``INTEGER PRIMARY KEY``, become identity columns; ``INTEGER`` becomes
``BIGINT`` and ``REAL`` ``DOUBLE PRECISION``, which SQLite's are).
Statements are kept apart (not one script) because Python's
``executescript`` commits any open transaction first, which would break
the one-transaction-per-migration rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import StoreError

#: Version 1: sessions, their history and turns, contributed context, audit and inboxes.
_BASE = (
    """CREATE TABLE schema_version (
        version INTEGER PRIMARY KEY,
        applied_at REAL NOT NULL
    )""",
    """CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        registered_at REAL NOT NULL,
        last_seen REAL NOT NULL
    )""",
    """CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        parent_id TEXT REFERENCES sessions (id),
        root_id TEXT,
        fork_point INTEGER,
        metadata TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        CHECK (parent_id <> id)
    )""",
    "CREATE INDEX sessions_by_agent ON sessions (agent_id, updated_at)",
    "CREATE INDEX sessions_by_update ON sessions (updated_at)",
    "CREATE INDEX sessions_by_parent ON sessions (parent_id, created_at)",
    # ``id`` is the store-wide sequence: history order and fork points.
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id),
        turn_id TEXT,
        role TEXT NOT NULL,
        body TEXT NOT NULL,
        compressed BOOLEAN NOT NULL DEFAULT FALSE,
        summary BOOLEAN NOT NULL DEFAULT FALSE,
        created_at REAL NOT NULL
    )""",
    # Whole histories and fork-point bounds (``id <= ?``), newest id (MAX).
    "CREATE INDEX messages_by_session ON messages (session_id, id)",
    # The prompt window: newest uncompressed (non-)summaries first, LIMIT n.
    "CREATE INDEX messages_window ON messages (session_id, compressed, summary, id)",
    # A queued turn holds its inbound message as JSON in ``inbound``; when
    # the turn starts the message moves to ``messages`` and ``message_id``
    # points at it, so the message lives in exactly one place at a time.
    # ``rerun_of`` is UNIQUE so that no interrupted turn is re-run twice,
    # even by two processes racing on the same file.
    """CREATE TABLE turns (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id),
        number INTEGER NOT NULL,
        initiator TEXT NOT NULL,
        initiator_id TEXT,
        status TEXT NOT NULL,
        error TEXT,
        message_id INTEGER REFERENCES messages (id),
        inbound TEXT,
        rerun_of TEXT UNIQUE REFERENCES turns (id),
        queued_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        UNIQUE (session_id, number),
        CHECK ((message_id IS NULL) <> (inbound IS NULL))
    )""",
    # The lease: "is one running?" and "lowest queued number" are index seeks.
    "CREATE INDEX turns_by_status ON turns (session_id, status, number)",
    # Restart: every running / queued turn without scanning finished ones.
    "CREATE INDEX turns_by_state ON turns (status, session_id)",
    """CREATE TABLE context (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id),
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        extension_id TEXT NOT NULL,
        turn_id TEXT,
        created_at REAL NOT NULL,
        consumed_by TEXT
    )""",
    "CREATE INDEX context_pending ON context (session_id, consumed_by, id)",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        session_id TEXT NOT NULL REFERENCES sessions (id),
        turn_id TEXT,
        extension_id TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX audit_by_session ON audit (session_id, id)",
    """CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        from_agent TEXT NOT NULL,
        body TEXT NOT NULL,
        delivered_at REAL NOT NULL,
        session_id TEXT REFERENCES sessions (id),
        turn_id TEXT REFERENCES turns (id)
    )""",
    "CREATE INDEX inbox_by_agent ON inbox (agent_id, turn_id, id)",
)

#: Version 2: hook-call traces kept with the turn they belong to, in call order.
_TRACE = (
    """CREATE TABLE trace (
        id INTEGER PRIMARY KEY,
        scope TEXT,
        point TEXT NOT NULL,
        kind TEXT NOT NULL,
        plugin TEXT NOT NULL,
        duration REAL NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT
    )""",
    "CREATE INDEX trace_by_scope ON trace (scope, id)",
)

#: Version 3: services' own records (``context.storage(namespace)``), with text for full-text search.
_RECORDS = (
    """CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        namespace TEXT NOT NULL,
        collection TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        text TEXT,
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (namespace, collection, key)
    )""",
)

#: Version 4: many processes on one store. ``owners`` holds each turn-running process's
#: lease, and a running turn names its owner; a finished turn keeps its reply's id and
#: its deny, so that a process that did not run it can answer its caller; an
#: idempotency key names the turn a request created, once per agent.
_LEASES = (
    "ALTER TABLE turns ADD COLUMN owner TEXT",
    "ALTER TABLE turns ADD COLUMN deny TEXT",
    "ALTER TABLE turns ADD COLUMN reply_id INTEGER REFERENCES messages (id)",
    """CREATE TABLE owners (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started REAL NOT NULL,
        registered_at REAL NOT NULL,
        expires_at REAL NOT NULL
    )""",
    "CREATE INDEX owners_by_agent ON owners (agent_id, expires_at)",
    """CREATE TABLE idempotency (
        agent_id TEXT NOT NULL,
        key TEXT NOT NULL,
        turn_id TEXT NOT NULL REFERENCES turns (id),
        created_at REAL NOT NULL,
        PRIMARY KEY (agent_id, key)
    )""",
    "CREATE INDEX idempotency_by_age ON idempotency (created_at)",
)

#: Version 5: instructions and origins. ``sessions.instructions`` is a session's own
#: instructions (NULL: the agent's); ``turns.instructions`` the exact text a turn used (NULL:
#: none), written when it finishes; ``turns.origin`` where a channel received the turn's
#: message (JSON, NULL for other turns).
_INSTRUCTIONS = (
    "ALTER TABLE sessions ADD COLUMN instructions TEXT",
    "ALTER TABLE turns ADD COLUMN instructions TEXT",
    "ALTER TABLE turns ADD COLUMN origin TEXT",
)

#: Version 6: the console. ``trace.started`` is when a hook call began (Unix seconds; NULL in
#: rows written before it), so that a turn's calls can be drawn on a time axis; the indexes let
#: a page of sessions filtered by kind or status, and the turns that changed after a moment
#: (the live view), be read newest first without a scan. Each engine adds a full-text index of
#: the messages' text (the console's search).
_CONSOLE = (
    "ALTER TABLE trace ADD COLUMN started REAL",
    "CREATE INDEX sessions_by_kind ON sessions (kind, updated_at)",
    "CREATE INDEX sessions_by_status ON sessions (status, updated_at)",
    "CREATE INDEX turns_by_queued ON turns (queued_at)",
    "CREATE INDEX turns_by_finished ON turns (finished_at)",
)

#: Version 7: a trace is written as one row per scope and commit, ``calls`` a JSON array of
#: ``[point, kind, plugin, nanoseconds, outcome, error, started]`` in call order (``started``
#: in microseconds since the epoch), instead of a row per hook call (a turn's commit wrote a
#: dozen). The engine extras move the old rows over, one call per row so that their order is
#: kept, and drop the old table; SQLite's also take the message index out of the commit.
_COMPACT_TRACE = (
    """CREATE TABLE turn_traces (
        id INTEGER PRIMARY KEY,
        scope TEXT,
        calls TEXT NOT NULL
    )""",
    "CREATE INDEX turn_traces_by_scope ON turn_traces (scope, id)",
)

#: Version 7's move of the old trace rows, one call per row; each engine names its JSON array builder.
_OLD_TRACE = (
    "INSERT INTO turn_traces (scope, calls) SELECT scope,"
    " {array}({array}(point, kind, plugin, CAST(ROUND(duration * 1e9) AS {integer}), outcome, error,"
    " CAST(ROUND(started * 1e6) AS {integer}))){cast}"
    " FROM trace ORDER BY id"
)

#: Version 8: only finished turns in ``turns_by_finished`` (what the live view asks for, with
#: ``finished_at >= ?``), so that queueing a turn no longer writes a page of it.
_FINISHED_ONLY = (
    "DROP INDEX turns_by_finished",
    "CREATE INDEX turns_by_finished ON turns (finished_at) WHERE finished_at IS NOT NULL",
)

#: Every migration in order; the code's schema version is ``len(MIGRATIONS)``.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    _BASE,
    _TRACE,
    _RECORDS,
    _LEASES,
    _INSTRUCTIONS,
    _CONSOLE,
    _COMPACT_TRACE,
    _FINISHED_ONLY,
)

#: The text of a message body's blocks (only text blocks have one), in SQLite; ``{body}`` is
#: the JSON column.
SQLITE_MESSAGE_TEXT = (
    "(SELECT group_concat(json_extract(b.value, '$.text'), ' ') FROM json_each({body}, '$.blocks') b)"
)

#: Statements only SQLite runs, in the same transaction as the migration of that version:
#: the FTS5 index over ``records.text``, kept in step by triggers (PostgreSQL spells it
#: as a ``tsvector`` column instead).
SQLITE_EXTRAS: dict[int, tuple[str, ...]] = {
    3: (
        """CREATE VIRTUAL TABLE records_fts USING fts5(
            text, content='records', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
        )""",
        """CREATE TRIGGER records_fts_insert AFTER INSERT ON records WHEN new.text IS NOT NULL BEGIN
            INSERT INTO records_fts (rowid, text) VALUES (new.id, new.text);
        END""",
        """CREATE TRIGGER records_fts_delete AFTER DELETE ON records WHEN old.text IS NOT NULL BEGIN
            INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END""",
        # One trigger, so that the old entry is always removed before the new one is added.
        """CREATE TRIGGER records_fts_update AFTER UPDATE ON records BEGIN
            INSERT INTO records_fts (records_fts, rowid, text)
                SELECT 'delete', old.id, old.text WHERE old.text IS NOT NULL;
            INSERT INTO records_fts (rowid, text) SELECT new.id, new.text WHERE new.text IS NOT NULL;
        END""",
    ),
    # Contentless: the text is the messages' (no copy kept); a message is never deleted
    # or rewritten (compression flips a column), so inserts are all the index must follow.
    6: (
        """CREATE VIRTUAL TABLE messages_fts USING fts5(
            text, content='', tokenize='unicode61 remove_diacritics 2'
        )""",
        f"""CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, text)
                VALUES (new.id, {SQLITE_MESSAGE_TEXT.format(body="new.body")});
        END""",
        "INSERT INTO messages_fts (rowid, text)"
        f" SELECT m.id, {SQLITE_MESSAGE_TEXT.format(body='m.body')} FROM messages m",
    ),
    # The message index leaves the commit: its trigger ran some twenty statements of FTS5's own
    # in every turn's two commits. Messages are indexed after they commit instead, in id order
    # (ids grow with each commit, as SQLite has one writer at a time) up to ``upto``: by the
    # sweeping process's heartbeat, and by a search first of all (browse.index_messages).
    7: (
        _OLD_TRACE.format(array="json_array", integer="INTEGER", cast=""),
        "DROP TABLE trace",
        "DROP TRIGGER messages_fts_insert",
        "CREATE TABLE messages_fts_indexed (upto INTEGER NOT NULL)",
        "INSERT INTO messages_fts_indexed (upto) SELECT COALESCE(MAX(id), 0) FROM messages",
    ),
}

#: The text search vector of a message's text blocks (only they have a ``text``) on PostgreSQL:
#: what ``messages_search`` indexes, and so what a query must spell exactly to use it.
POSTGRES_MESSAGE_TEXT = "to_tsvector('simple', jsonb_path_query_array(body::jsonb, '$.blocks[*].text')::text)"

#: Statements only PostgreSQL runs, with the migration of that version: full-text search
#: over ``records.folded`` (the text with case and diacritics folded by the store).
POSTGRES_EXTRAS: dict[int, tuple[str, ...]] = {
    3: (
        "ALTER TABLE records ADD COLUMN folded TEXT",
        "CREATE INDEX records_search ON records USING GIN (to_tsvector('simple', COALESCE(folded, '')))",
    ),
    6: (f"CREATE INDEX messages_search ON messages USING GIN ({POSTGRES_MESSAGE_TEXT})",),
    7: (_OLD_TRACE.format(array="json_build_array", integer="BIGINT", cast="::text"), "DROP TABLE trace"),
}

#: The schema version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)

_SEQUENCE = re.compile(r"\bINTEGER PRIMARY KEY\b")
_INTEGER = re.compile(r"\bINTEGER\b")
_REAL = re.compile(r"\bREAL\b")


def postgres(statement: str) -> str:
    """A migration statement as PostgreSQL must read it to mean what SQLite does."""
    statement = _SEQUENCE.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", statement)
    return _REAL.sub("DOUBLE PRECISION", _INTEGER.sub("BIGINT", statement))


def statements(version: int, engine: str) -> tuple[str, ...]:
    """What migration ``version`` runs on ``engine`` (``sqlite`` or ``postgresql``)."""
    common = MIGRATIONS[version - 1]
    if engine == "postgresql":
        return (*(postgres(s) for s in common), *POSTGRES_EXTRAS.get(version, ()))
    return (*common, *SQLITE_EXTRAS.get(version, ()))


def refuse_newer(where: str, current: int) -> None:
    """A StoreError when the database at ``where`` was made by a newer turnkit."""
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{where} has schema version {current}, newer than this turnkit knows"
            f" ({SCHEMA_VERSION}); upgrade turnkit to open it"
        )


def apply(execute: Callable[..., object], version: int, engine: str, applied_at: float) -> None:
    """Run migration ``version`` through ``execute`` (a connection's), recording it.

    The caller holds the transaction (and whatever lock keeps other
    processes from migrating at the same time).
    """
    for statement in statements(version, engine):
        execute(statement)
    mark = "%s" if engine == "postgresql" else "?"
    execute(
        f"INSERT INTO schema_version (version, applied_at) VALUES ({mark}, {mark})", (version, applied_at)
    )
