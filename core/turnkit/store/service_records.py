"""The SQLite jobs behind services' records (``context.storage(namespace)``).

Records are rows of ``records`` keyed by (namespace, collection, key) with a
JSON value and a version counting writes. Full-text search goes through the
FTS5 index ``records_fts`` that triggers keep in step with ``records.text``;
a user's query is reduced to its words, each quoted, so that no FTS5 syntax
(``NEAR``, ``*``, column filters, unbalanced quotes) can reach the engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from turnkit_hookspecs import StorageConflict, StoredRecord

if TYPE_CHECKING:
    from .sqlite import _Tx

_COLUMNS = "r.collection, r.key, r.value, r.version, r.text, r.updated_at"
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD = re.compile(r"\w+", re.UNICODE)


def put(
    tx: _Tx,
    namespace: str,
    collection: str,
    key: str,
    value: Mapping[str, Any],
    text: str | None,
    expect: int | None,
) -> StoredRecord:
    """Insert or replace; compare-and-set against ``expect`` when given."""
    body = _json(value, namespace, collection, key)
    row = tx.one(
        "SELECT version FROM records WHERE namespace = ? AND collection = ? AND key = ?",
        (namespace, collection, key),
    )
    version = row[0] if row else 0
    _check(expect, version, namespace, collection, key)
    if row is None:
        tx.run(
            "INSERT INTO records (namespace, collection, key, value, text, version, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            (namespace, collection, key, body, text, tx.now, tx.now),
        )
    else:
        tx.run(
            "UPDATE records SET value = ?, text = ?, version = version + 1, updated_at = ?"
            " WHERE namespace = ? AND collection = ? AND key = ?",
            (body, text, tx.now, namespace, collection, key),
        )
    return StoredRecord(collection, key, json.loads(body), version + 1, text, tx.now)


def get(tx: _Tx, namespace: str, collection: str, key: str) -> StoredRecord | None:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM records r WHERE r.namespace = ? AND r.collection = ? AND r.key = ?",
        (namespace, collection, key),
    )
    return _record(row) if row else None


def delete(tx: _Tx, namespace: str, collection: str, key: str, expect: int | None) -> bool:
    row = tx.one(
        "SELECT version FROM records WHERE namespace = ? AND collection = ? AND key = ?",
        (namespace, collection, key),
    )
    _check(expect, row[0] if row else 0, namespace, collection, key)
    if row is None:
        return False
    tx.run(
        "DELETE FROM records WHERE namespace = ? AND collection = ? AND key = ?", (namespace, collection, key)
    )
    return True


def listing(
    tx: _Tx,
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
    clause, values = _where(where)
    sql += clause + " ORDER BY r.key"
    if limit is not None:
        sql += " LIMIT ?"
        values.append(limit)
    return [_record(row) for row in tx.all(sql, [*params, *values])]


def search(
    tx: _Tx, namespace: str, collection: str, query: str, where: Mapping[str, Any], limit: int
) -> list[StoredRecord]:
    words = _WORD.findall(query)
    if not words:
        return []
    match = " OR ".join('"' + word.replace('"', '""') + '"' for word in dict.fromkeys(words))
    clause, values = _where(where)
    found = tx.all(
        f"SELECT {_COLUMNS}, bm25(records_fts) FROM records_fts JOIN records r ON r.id = records_fts.rowid"
        f" WHERE records_fts MATCH ? AND r.namespace = ? AND r.collection = ?{clause}"
        " ORDER BY bm25(records_fts), r.key LIMIT ?",
        [match, namespace, collection, *values, limit],
    )
    # bm25 is lower for better matches; the contract's score is higher for better ones.
    return [_record(row[:-1], score=-row[-1]) for row in found]


def _where(where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    clause, values = "", list[Any]()
    for field, wanted in where.items():
        if not _FIELD.match(field):
            raise ValueError(f"where: {field!r} is not a top-level field name")
        if wanted is None:
            clause += " AND json_extract(r.value, ?) IS NULL"
            values.append(f"$.{field}")
        elif isinstance(wanted, str | int | float | bool):
            clause += " AND json_extract(r.value, ?) = ?"
            values += [f"$.{field}", wanted]
        else:
            raise ValueError(f"where: {field!r} must be compared to a string, number, bool or None")
    return clause, values


def _check(expect: int | None, version: int, namespace: str, collection: str, key: str) -> None:
    if expect is not None and expect != version:
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
