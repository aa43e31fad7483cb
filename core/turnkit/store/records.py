"""What the session store holds, as plain frozen records.

The contract's :class:`~turnkit_hookspecs.SessionInfo` and
:class:`~turnkit_hookspecs.TurnInfo` are what plugins see; these records add
what only the runtime and the CLI need (owners, timestamps, row ids).
Timestamps are Unix seconds (``time.time()``).
"""

from __future__ import annotations

from typing import Any

import attrs
from turnkit_hookspecs import Deny, Initiator, Message, Origin, SessionInfo, TurnInfo, TurnStatus


@attrs.frozen
class SessionRecord:
    """A stored session: the contract's view plus its agent and timestamps."""

    info: SessionInfo
    agent_id: str
    created_at: float
    updated_at: float

    @property
    def session_id(self) -> str:
        """Shortcut for ``info.session_id``."""
        return self.info.session_id


@attrs.frozen
class StoredMessage:
    """A message in a session's history.

    ``id`` is a store-wide increasing sequence number: ordering by it is the
    history's order, and a fork point is the id of the parent's last message
    the child sees. ``summary`` marks a message written by compression (a
    merge's message is an ordinary one, with ``merged_from`` in its
    metadata); ``compressed`` marks a message replaced in prompts by a
    summary (kept, never deleted).
    """

    id: int
    session_id: str
    turn_id: str | None
    message: Message
    created_at: float
    compressed: bool = False
    summary: bool = False

    def with_flags(self) -> Message:
        """The message as readers of a history get it: ``metadata["compressed"]`` and
        ``metadata["summary"]`` set to ``True`` where the flag is.

        The flags are columns, not part of the stored body, so without this a
        plugin reading ``history()`` could not tell what prompts no longer show
        from what they do. Prompts take ``message`` as it is.
        """
        flags = {"compressed": True} if self.compressed else {}
        if self.summary:
            flags["summary"] = True
        if not flags:
            return self.message
        return attrs.evolve(self.message, metadata={**self.message.metadata, **flags})


@attrs.frozen
class TurnRecord:
    """A stored turn.

    ``message_id`` is its inbound message's id in the history, set when the
    turn starts (``None`` while queued); ``rerun_of`` is the interrupted turn
    it re-runs; ``owner`` the process lease it ran under (see
    :mod:`turnkit.store.leases`); ``instructions`` the exact instructions its
    prompt began with, recorded when it finished (``None``: it had none);
    ``origin`` where a channel received its message (a re-run keeps it).
    """

    turn_id: str
    session_id: str
    number: int
    initiator: Initiator
    initiator_id: str | None
    status: TurnStatus
    message_id: int | None
    queued_at: float
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    rerun_of: str | None = None
    owner: str | None = None
    instructions: str | None = None
    origin: Origin | None = None

    @property
    def info(self) -> TurnInfo:
        """The contract's view of this turn."""
        return TurnInfo(
            self.turn_id,
            self.session_id,
            self.number,
            self.initiator,
            self.initiator_id,
            self.status,
            self.error,
            self.origin,
        )


@attrs.frozen
class ContextItem:
    """Context contributed by an extension, waiting for the next turn's prompt.

    ``turn_id`` is the turn during which it was contributed (it lands in a
    later one); ``consumed_by`` the turn whose prompt used it.
    """

    id: int
    session_id: str
    key: str
    value: str
    extension_id: str
    turn_id: str | None
    created_at: float
    consumed_by: str | None = None


@attrs.frozen
class AuditEvent:
    """One action taken on a session through a SessionExtensionContext (or by the runtime)."""

    id: int
    at: float
    session_id: str
    turn_id: str | None
    extension_id: str
    action: str
    detail: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class InboxItem:
    """A message delivered to an agent's inbox; ``turn_id`` is set once an agent took it."""

    id: int
    agent_id: str
    from_agent: str
    message: Message
    delivered_at: float
    session_id: str | None = None
    turn_id: str | None = None


@attrs.frozen
class Claim:
    """A turn just started, with what its prompt needs, read in the same transaction.

    ``window`` is :meth:`Store.window`, ``context`` is
    :meth:`Store.pending_context` (leaving out the turn's own contributions)
    and ``instructions`` is :meth:`Store.session_instructions`, as of the
    moment the turn started: one store round trip instead of four on every
    turn, and an override set by any process is seen by the next turn
    whichever process runs it.
    """

    turn: TurnRecord
    message: Message
    window: list[StoredMessage]
    context: list[ContextItem]
    instructions: str | None = None


@attrs.frozen
class TurnOutcome:
    """Where a turn stands, as a process waiting for it reads it from the store.

    ``reply`` is set once a turn completed, ``deny`` once one was denied;
    ``busy`` says whether a turn of its session is running right now;
    ``rerun`` names the turn re-running an interrupted one.
    """

    turn: TurnRecord
    reply: Message | None
    deny: Deny | None
    busy: bool
    rerun: str | None = None


@attrs.frozen
class OwnerRecord:
    """A process's lease: who holds it, where it runs, until when (``live`` as of reading)."""

    id: str
    agent_id: str
    host: str
    pid: int
    started: float
    registered_at: float
    expires_at: float
    live: bool


@attrs.frozen
class Takeover:
    """A running turn taken over from ``owner``, whose lease was over.

    ``turn`` is the turn as now stored (``interrupted``); ``rerun`` the turn
    queued to run its message again, if ``policy`` was ``rerun``.
    """

    turn: TurnRecord
    rerun: TurnRecord | None
    owner: str | None
    policy: str


@attrs.frozen
class SessionQuery:
    """Which sessions a page of the console lists, newest activity first.

    ``text`` matches the start of a session's id, or the words of one of its
    messages (all of them, whole words, any case); the others are equality
    filters (``channel`` is the chat channel a chat session was opened on).
    ``after`` resumes after the last session of the previous page: its
    ``(updated_at, id)``.
    """

    text: str | None = None
    kind: str | None = None
    status: str | None = None
    agent_id: str | None = None
    channel: str | None = None
    after: tuple[float, str] | None = None
    limit: int = 50
