"""Store jobs on hook-call traces, kept with the turn they belong to, in call order.

A commit writes one compact row per scope (a turn's calls, or the late
effects of an earlier turn), not a row per call: a turn's trace is one
statement of its commit. Reading a scope joins its rows back into calls.
"""

from __future__ import annotations

from ..tracing import Trace, TraceRecord
from . import rows
from .tx import Tx


def insert_trace(tx: Tx, trace: Trace) -> None:
    found = rows.trace_rows(trace)
    if found:
        values = ", ".join(["(?, ?)"] * len(found))
        tx.run(f"INSERT INTO turn_traces (scope, calls) VALUES {values}", [v for row in found for v in row])


def trace(tx: Tx, turn_id: str) -> list[TraceRecord]:
    found = tx.all("SELECT calls FROM turn_traces WHERE scope = ? ORDER BY id", (turn_id,))
    return [record for (calls,) in found for record in rows.trace_records(turn_id, calls)]
