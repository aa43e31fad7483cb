"""What a memory is: a text kept for later, scoped to the agent, a session or a principal."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import attrs

#: Who a memory belongs to. ``agent``: everything this agent does; ``session``: one
#: conversation or task run; ``principal``: one person across their sessions (for chat
#: turns the principal is the turn's ``initiator_id``, ``"<channel>:<id>"``).
Scope: TypeAlias = Literal["agent", "session", "principal"]
SCOPES: tuple[Scope, ...] = ("agent", "session", "principal")


@attrs.frozen
class Memory:
    """One memory, as the memory points and the actions' callers see it.

    ``scope_id`` is the agent's id, the session's id or the principal's id,
    following ``scope``. ``session_id`` and ``turn_id`` name the turn that
    stored it (``None`` when it was stored outside a turn, e.g. from the
    command line). ``score`` is set on search results: higher is better.
    """

    id: str
    text: str
    scope: Scope
    scope_id: str
    agent_id: str
    created: float
    session_id: str | None = None
    turn_id: str | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: what actions return and tools show the model."""
        return attrs.asdict(self)
