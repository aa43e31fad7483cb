"""Store jobs behind services' records (``context.storage(namespace)``).

Records are rows of ``records`` keyed by (namespace, collection, key) with a
JSON value and a version counting writes. Compare-and-set is written as
conditional statements (``INSERT … ON CONFLICT DO NOTHING``, ``UPDATE …
WHERE version = ?``) whose row counts tell whether the write happened, so
two processes racing on one record can never both win, on either engine.

Full-text search: SQLite uses the FTS5 index ``records_fts`` that triggers
keep in step with ``records.text``; PostgreSQL a GIN index over the
``folded`` column (the text with case and diacritics folded, which this
module writes). A user's query is reduced to its words either way, so no
query syntax can reach the engine.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from turnkit_hookspecs import StorageConflict, StoredRecord

from .tx import Tx

_COLUMNS = "r.collection, r.key, r.value, r.version, r.text, r.updated_at"
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD = re.compile(r"\w+", re.UNICODE)
_KEY = "namespace = ? AND collection = ? AND key = ?"


def put(
    tx: Tx,
    namespace: str,
    collection: str,
    key: str,
    value: Mapping[str, Any],
    text: str | None,
    expect: int | None,
) -> StoredRecord:
    """Insert or replace; compare-and-set against ``expect`` when given."""
    body = _json(value, namespace, collection, key)
    where = (namespace, collection, key)
    if expect is None:
        version = tx.one(
            "INSERT INTO records (namespace, collection, key, value, text, version, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (namespace, collection, key) DO UPDATE SET"
            " value = excluded.value, text = excluded.text, version = records.version + 1,"
            " updated_at = excluded.updated_at RETURNING version",
            (*where, body, text, tx.now, tx.now),
        )[0]
    elif expect == 0:
        inserted = tx.run(
            "INSERT INTO records (namespace, collection, key, value, text, version, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (namespace, collection, key) DO NOTHING",
            (*where, body, text, tx.now, tx.now),
        )
        if inserted.rowcount == 0:
            _conflict(tx, expect, namespace, collection, key)
        version = 1
    else:
        updated = tx.run(
            f"UPDATE records SET value = ?, text = ?, version = version + 1, updated_at = ?"
            f" WHERE {_KEY} AND version = ?",
            (body, text, tx.now, *where, expect),
        )
        if updated.rowcount == 0:
            _conflict(tx, expect, namespace, collection, key)
        version = expect + 1
    if tx.dialect.name == "postgresql":
        tx.run(f"UPDATE records SET folded = ? WHERE {_KEY}", (fold(text) if text else None, *where))
    return StoredRecord(collection, key, json.loads(body), version, text, tx.now)


def get(tx: Tx, namespace: str, collection: str, key: str) -> StoredRecord | None:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM records r WHERE r.namespace = ? AND r.collection = ? AND r.key = ?",
        (namespace, collection, key),
    )
    return _record(row) if row else None


def delete(tx: Tx, namespace: str, collection: str, key: str, expect: int | None) -> bool:
    where = (namespace, collection, key)
    if expect is None:
        return tx.run(f"DELETE FROM records WHERE {_KEY}", where).rowcount > 0
    if expect == 0:
        _conflict(tx, expect, namespace, collection, key)
        return False
    if tx.run(f"DELETE FROM records WHERE {_KEY} AND version = ?", (*where, expect)).rowcount == 0:
        _conflict(tx, expect, namespace, collection, key)
    return True


def listing(
    tx: Tx,
    namespace: str,
    collection: str,
    prefix: str | None,
    where: Mapping[str, Any],
    limit: int | None,
) -> list[StoredRecord]:
    sql = f"SELECT {_COLUMNS} FROM records r WHERE r.namespace = ? AND r.collection = ?"
    params: list[Any] = [namespace, collection]
    if prefix:
        sql += " AND substr(r.key, 1, ?) = ?"
        params += [len(prefix), prefix]
    clause, values = _where(tx, where)
    sql += clause + " ORDER BY r.key"
    if limit is not None:
        sql += " LIMIT ?"
        values.append(limit)
    return [_record(row) for row in tx.all(sql, [*params, *values])]


def search(
    tx: Tx, namespace: str, collection: str, query: str, where: Mapping[str, Any], limit: int
) -> list[StoredRecord]:
    words = list(dict.fromkeys(_WORD.findall(query)))
    if not words:
        return []
    clause, values = _where(tx, where)
    if tx.dialect.name == "postgresql":
        # \w+ words hold no tsquery syntax; quoting them makes each one lexeme.
        match = " | ".join(f"'{fold(word)}'" for word in words)
        found = tx.all(
            f"SELECT {_COLUMNS}, ts_rank(to_tsvector('simple', COALESCE(r.folded, '')), q) AS score"
            " FROM records r, to_tsquery('simple', ?) q"
            " WHERE to_tsvector('simple', COALESCE(r.folded, '')) @@ q"
            f" AND r.namespace = ? AND r.collection = ?{clause} ORDER BY score DESC, r.key LIMIT ?",
            [match, namespace, collection, *values, limit],
        )
        return [_record(row[:-1], score=float(row[-1])) for row in found]
    match = " OR ".join('"' + word.replace('"', '""') + '"' for word in words)
    found = tx.all(
        f"SELECT {_COLUMNS}, bm25(records_fts) FROM records_fts JOIN records r ON r.id = records_fts.rowid"
        f" WHERE records_fts MATCH ? AND r.namespace = ? AND r.collection = ?{clause}"
        " ORDER BY bm25(records_fts), r.key LIMIT ?",
        [match, namespace, collection, *values, limit],
    )
    # bm25 is lower for better matches; the contract's score is higher for better ones.
    return [_record(row[:-1], score=-row[-1]) for row in found]


def fold(text: str) -> str:
    """``text`` without case and diacritics, as SQLite's ``unicode61 remove_diacritics`` sees it."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _where(tx: Tx, where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    clause, values = "", list[Any]()
    dialect = tx.dialect
    for field, wanted in where.items():
        if not _FIELD.match(field):
            raise ValueError(f"where: {field!r} is not a top-level field name")
        if wanted is None:
            clause += f" AND {dialect.json_is_null('r.value')}"
            values.append(dialect.json_field(field))
        elif isinstance(wanted, str | int | float | bool):
            clause += f" AND {dialect.json_equals('r.value')}"
            values += [dialect.json_field(field), dialect.json_value(wanted)]
        else:
            raise ValueError(f"where: {field!r} must be compared to a string, number, bool or None")
    return clause, values


def _conflict(tx: Tx, expect: int, namespace: str, collection: str, key: str) -> None:
    """Raise a StorageConflict unless the record is at version ``expect`` (``0``: absent)."""
    row = tx.one(f"SELECT version FROM records WHERE {_KEY}", (namespace, collection, key))
    version = row[0] if row else 0
    if version == expect:
        return
    found = "absent" if version == 0 else f"at version {version}"
    wanted = "absent" if expect == 0 else f"at version {expect}"
    raise StorageConflict(f"{namespace}/{collection}/{key}: expected {wanted}, found {found}")


def _json(value: Mapping[str, Any], namespace: str, collection: str, key: str) -> str:
    if not isinstance(value, Mapping):
        raise TypeError(f"{namespace}/{collection}/{key}: a record's value must be a mapping")
    try:
        return json.dumps(dict(value), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{namespace}/{collection}/{key}: value is not JSON: {exc}") from exc


def _record(row: Any, score: float | None = None) -> StoredRecord:
    collection, key, value, version, text, updated = row
    return StoredRecord(collection, key, json.loads(value), version, text, updated, score)
