"""Store jobs on hook-call traces, kept with the turn they belong to, in call order."""

from __future__ import annotations

from collections.abc import Sequence

from ..tracing import TraceRecord
from . import rows
from .tx import Tx


def insert_trace(tx: Tx, records: Sequence[TraceRecord]) -> None:
    if records:
        tx.many(
            f"INSERT INTO trace ({rows.TRACE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [rows.trace_params(record) for record in records],
        )


def trace(tx: Tx, turn_id: str) -> list[TraceRecord]:
    found = tx.all(f"SELECT {rows.TRACE_COLUMNS} FROM trace WHERE scope = ? ORDER BY id", (turn_id,))
    return [rows.trace_record(row) for row in found]
