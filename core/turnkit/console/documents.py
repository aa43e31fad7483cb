"""Sessions, turns, messages, traces and audit events as JSON documents.

One shape for every reader: ``turnkit sessions export`` prints
:func:`session_document`, the console's API answers with the same pieces,
and the HTML export renders them. Each message carries its flags
(``compressed``, ``summary``) and what it is (``merged_from`` for a merge's
result) beside its blocks, so no reader has to know where the store keeps
them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from turnkit_hookspecs import unstructure

from ..store import AuditEvent, ContextItem, SessionRecord, StoredMessage, TurnRecord
from ..tracing import TraceRecord


def session_json(record: SessionRecord) -> dict[str, Any]:
    """A session: the contract's view, its agent and timestamps."""
    return {
        **unstructure(record.info),
        "agent_id": record.agent_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def turn_json(turn: TurnRecord) -> dict[str, Any]:
    """A turn as stored (``origin`` as JSON)."""
    document = attrs.asdict(turn, recurse=False)
    document["origin"] = None if turn.origin is None else unstructure(turn.origin)
    return document


def trace_json(call: TraceRecord) -> dict[str, Any]:
    """One hook call: point, kind, plugin, when it started, how long it took, how it ended."""
    return {
        "point": call.point,
        "kind": str(call.kind),
        "plugin": call.plugin,
        "started": call.started,
        "duration": call.duration,
        "outcome": call.outcome,
        "error": call.error,
    }


def message_json(stored: StoredMessage) -> dict[str, Any]:
    """A stored message with its flags; ``merged_from`` names the child a merge's result came from."""
    message = stored.message
    return {
        "id": stored.id,
        "session_id": stored.session_id,
        "turn_id": stored.turn_id,
        "created_at": stored.created_at,
        "compressed": stored.compressed,
        "summary": stored.summary,
        "merged_from": message.metadata.get("merged_from"),
        "message": unstructure(message),
    }


def audit_json(event: AuditEvent) -> dict[str, Any]:
    """One extension action: when, on which session and turn, by which plugin, what."""
    return {
        "id": event.id,
        "at": event.at,
        "session_id": event.session_id,
        "extension_id": event.extension_id,
        "action": event.action,
        "turn_id": event.turn_id,
        "detail": event.detail,
    }


def context_json(item: ContextItem) -> dict[str, Any]:
    """A context contribution, and the turn that consumed it (``None``: still pending)."""
    return attrs.asdict(item)


def session_document(
    record: SessionRecord,
    instructions: str | None,
    messages: Sequence[StoredMessage],
    turns: Sequence[TurnRecord],
    traces: Mapping[str, Sequence[TraceRecord]],
    audit: Sequence[AuditEvent],
) -> dict[str, Any]:
    """The whole session, as ``turnkit sessions export`` prints it: each turn with its trace."""
    return {
        "session": {**session_json(record), "instructions": instructions},
        "messages": [message_json(m) for m in messages],
        "turns": [
            {**turn_json(t), "trace": [trace_json(c) for c in traces.get(t.turn_id, ())]} for t in turns
        ],
        "audit": [audit_json(e) for e in audit],
    }
