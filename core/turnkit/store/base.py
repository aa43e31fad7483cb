"""The session store interface.

Everything the orchestrator persists goes through :class:`Store`. Methods
that change several rows are **one transaction** each, so a crash leaves
either all or none of their effect; the docstrings say which rows move
together. Nothing here assumes SQLite: ids are strings chosen by the caller
(sessions, turns) or sequence numbers chosen by the store (messages, context,
audit, inbox), timestamps are Unix seconds, JSON goes through the contract's
converter.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from turnkit_hookspecs import Deny, Initiator, Message, Origin, SessionInfo, StoredRecord, TurnStatus

from ..tracing import Trace, TraceRecord
from .forks import Acting
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


class Store(abc.ABC):
    """Durable sessions, messages, turns, context, audit, inboxes and traces.

    Any number of store instances, in one process or many, may share one
    database. Each instance has an :attr:`owner` id: the turns it claims
    are leased to that owner (see :mod:`turnkit.store.leases`).
    """

    #: The owner id of the turns this instance claims.
    owner: str

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where the database is (a file path, or a URL without its password)."""

    # ------------------------------------------------------------------ lifecycle

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (running pending migrations).

        Raises :class:`~turnkit.errors.StoreError` when the database was made
        by a newer turnkit (its schema version is above the code's).
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection; safe to call twice."""

    @abc.abstractmethod
    async def schema_version(self) -> int:
        """The schema version of the open database."""

    @abc.abstractmethod
    async def changed(self, timeout: float) -> bool:
        """Wait until another connection may have committed something, at most ``timeout`` seconds.

        ``True`` when a change was seen (a hint: look again at what you wait
        for), ``False`` on the timeout. It never misses a commit made after
        the previous call returned, though it may wake without one.
        """

    # ------------------------------------------------------------------ agents

    @abc.abstractmethod
    async def register_agent(self, agent_id: str) -> None:
        """Record that ``agent_id`` uses this store (idempotent; refreshes its last-seen time)."""

    @abc.abstractmethod
    async def agents(self) -> list[str]:
        """Every agent id ever registered, sorted."""

    # ------------------------------------------------------------------ leases

    @abc.abstractmethod
    async def register_owner(self, agent_id: str, host: str, pid: int, started: float, lease: float) -> None:
        """Start (or renew) this instance's lease as a runner of ``agent_id``'s turns, for ``lease`` s.

        ``host``, ``pid`` and ``started`` (the process's start time) let a
        process on the same host prove the owner dead before its lease ends.
        """

    @abc.abstractmethod
    async def renew_owner(self, lease: float) -> bool:
        """Extend this instance's lease by ``lease`` seconds from now; ``False`` if it had expired."""

    @abc.abstractmethod
    async def release_owner(self) -> None:
        """End this instance's lease now (a clean stop)."""

    @abc.abstractmethod
    async def expire_owner(self, owner: str) -> None:
        """End another owner's lease now: its process is known to be dead."""

    @abc.abstractmethod
    async def disown(self, turn_ids: Sequence[str]) -> None:
        """Give up this instance's lease on these ``running`` turns: the next takeover takes them."""

    @abc.abstractmethod
    async def owners(self, agent_id: str | None = None) -> list[OwnerRecord]:
        """The leases on record (of one agent), oldest first."""

    @abc.abstractmethod
    async def take_over(self, agent_id: str, policy: str) -> list[Takeover]:
        """One transaction: every ``running`` turn of ``agent_id`` whose owner's lease is over
        becomes ``interrupted``, is re-queued once when ``policy`` is ``rerun`` (never a
        re-run of a re-run), and is audited (``lease_taken_over``). A live owner's turns
        are never touched."""

    # ------------------------------------------------------------------ sessions

    @abc.abstractmethod
    async def create_session(self, info: SessionInfo, agent_id: str) -> SessionRecord:
        """Insert a session; raises :class:`~turnkit.errors.StoreError` if the id exists.

        ``info.root_session_id`` of ``None`` means the session is its own root.
        """

    @abc.abstractmethod
    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The session, or ``None``."""

    @abc.abstractmethod
    async def list_sessions(
        self, agent_id: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[SessionRecord]:
        """Sessions (optionally of one agent / kind), most recently updated first."""

    @abc.abstractmethod
    async def session_ids_starting(self, prefix: str, limit: int = 10) -> list[str]:
        """The ids (at most ``limit``, in order) of the sessions whose id starts with ``prefix``.

        How the command line finds the session a shortened id names.
        """

    @abc.abstractmethod
    async def child_sessions(self, session_id: str) -> list[SessionRecord]:
        """The sessions forked directly from ``session_id``, oldest first."""

    @abc.abstractmethod
    async def set_session_status(self, session_id: str, status: str) -> None:
        """Move a session to ``status`` (one of :data:`~turnkit.store.sessions.SESSION_STATUSES`)."""

    @abc.abstractmethod
    async def session_instructions(self, session_id: str) -> str | None:
        """The session's own instructions, or ``None`` when it has none (it uses the agent's).

        Raises :class:`~turnkit.errors.StoreError` for an unknown session.
        """

    @abc.abstractmethod
    async def set_session_instructions(self, session_id: str, instructions: str | None) -> None:
        """Set (``None``: clear) the session's own instructions; an unknown session is a StoreError.

        A fork copies its parent's in the fork's transaction; the next turn
        to start reads them in its claim (:attr:`Claim.instructions`).
        """

    @abc.abstractmethod
    async def fork(
        self,
        child: SessionInfo,
        agent_id: str,
        *,
        inherit_context: bool,
        initial_message: Message | None,
        acting: Acting,
        reason: str,
        after_turn: str | None = None,
    ) -> tuple[SessionRecord, TurnRecord | None]:
        """One transaction: create ``child`` (its fork point set to the parent's newest
        message, or to the end of the parent's finished turn ``after_turn``; its
        instructions the parent's own), copy the parent's pending context
        into it if asked, queue its initial message (initiator ``extension``), and audit
        ``fork`` on the parent."""

    @abc.abstractmethod
    async def merge(self, parent: str, child: str, summary: Message, acting: Acting) -> StoredMessage:
        """One transaction: append ``summary`` to ``parent``, mark ``child`` merged, audit ``merge``."""

    @abc.abstractmethod
    async def abandon(self, parent: str, child: str, acting: Acting) -> None:
        """One transaction: mark ``child`` abandoned and audit ``abandon`` on ``parent``."""

    # ------------------------------------------------------------------ messages

    @abc.abstractmethod
    async def append_message(
        self, session_id: str, message: Message, turn_id: str | None = None, *, summary: bool = False
    ) -> StoredMessage:
        """Append one message to a session's history."""

    @abc.abstractmethod
    async def messages(self, session_id: str, *, lineage: bool = False) -> list[StoredMessage]:
        """The session's whole history in order, compressed messages included.

        With ``lineage`` the history the session *sees* is returned: for a
        fork, its ancestors' messages up to each fork point come first.
        """

    @abc.abstractmethod
    async def last_message_id(self, session_id: str) -> int | None:
        """The id of the newest message the session sees (a fork point), or ``None``.

        That is its own newest message, or, if it has none yet, the newest
        one of its lineage up to the fork point: a fork of a fresh fork must
        still see the grandparent's history.
        """

    @abc.abstractmethod
    async def window(self, session_id: str, limit: int) -> list[StoredMessage]:
        """What the next prompt sees, in order: the newest uncompressed summary
        (if any) followed by the newest ``limit`` uncompressed, non-summary
        messages of the session's lineage (ancestors up to the fork points).

        The cost must depend on ``limit``, not on the history's length
        (indexed, newest first, ``LIMIT``).
        """

    @abc.abstractmethod
    async def compress(
        self, session_id: str, upto_id: int, summary: Message, turn_id: str | None
    ) -> StoredMessage:
        """One transaction: mark the session's own uncompressed messages (and
        summaries) with ``id <= upto_id`` compressed, and append ``summary`` as
        a summary message. Returns the stored summary."""

    # ------------------------------------------------------------------ turns

    @abc.abstractmethod
    async def accept(
        self,
        session_id: str,
        turn_id: str,
        message: Message,
        initiator: Initiator,
        initiator_id: str | None = None,
        *,
        idempotency_key: str | None = None,
        origin: Origin | None = None,
    ) -> TurnRecord:
        """One transaction: store a ``queued`` turn numbered after the
        session's last turn, holding the inbound ``message`` (in the turn
        row: it enters the history only when the turn starts, so queued
        messages never appear in an earlier turn's prompt and the history
        stays in conversational order), and touch the session's
        ``updated_at``. After this returns the message is durable.

        With an ``idempotency_key`` already stored for the session's agent,
        nothing is written and the turn that key made is returned (a turn
        id other than ``turn_id``); a key used in another session raises
        :class:`~turnkit.errors.IdempotencyKeyReused`. ``origin`` is stored
        with the turn (and with a re-run of it)."""

    @abc.abstractmethod
    async def claim_turn(self, session_id: str) -> tuple[TurnRecord, Message] | None:
        """One transaction: if no turn of the session is ``running``, take its
        next ``queued`` turn — re-runs first, then by number — move it to
        ``running`` (setting ``started_at``), append its inbound message to
        the history unless it is already there (a re-run), record that
        message's id as the turn's ``message_id``, and return the turn with
        its inbound message; otherwise ``None``. The turn names this
        instance's :attr:`owner`. At most one turn per session runs at a
        time, whichever process claimed it."""

    @abc.abstractmethod
    async def claim_next(self, session_id: str, history: int) -> Claim | None:
        """:meth:`claim_turn`, and in the same transaction the new turn's
        window (``history`` messages), pending context (its own
        contributions left out) and its session's own instructions."""

    @abc.abstractmethod
    async def accept_and_claim(
        self,
        session_id: str,
        turn_id: str,
        message: Message,
        initiator: Initiator,
        initiator_id: str | None,
        history: int,
        *,
        idempotency_key: str | None = None,
        origin: Origin | None = None,
    ) -> tuple[TurnRecord, Claim | None]:
        """One transaction: :meth:`accept`, then — only when the session has
        no other queued or running turn, and the turn is new — :meth:`claim_next`.
        The common case of a turn in an idle session then costs one commit to start."""

    @abc.abstractmethod
    async def finish_turn(
        self,
        turn_id: str,
        status: TurnStatus,
        *,
        error: str | None = None,
        deny: Deny | None = None,
        messages: Sequence[Message] = (),
        consumed: Sequence[int] = (),
        trace: Trace | None = None,
        instructions: str | None = None,
    ) -> TurnRecord:
        """One transaction: append ``messages`` (tool steps, the reply) to the
        turn's session with this ``turn_id``, set the turn's final ``status``,
        ``error``, ``deny``, ``finished_at`` and the ``instructions`` its prompt
        began with (and, when completed, its reply: the last of ``messages``),
        mark the ``consumed`` context items as consumed by this turn, and store
        ``trace`` (calls of any scope; :func:`turnkit.tracing.compact` makes one of records)."""

    @abc.abstractmethod
    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        """The turn, or ``None``."""

    @abc.abstractmethod
    async def turns(self, session_id: str) -> list[TurnRecord]:
        """The session's turns by number."""

    @abc.abstractmethod
    async def queued_turns(self, session_id: str) -> list[tuple[TurnRecord, Message]]:
        """The session's ``queued`` turns in the order they will run, with their inbound messages."""

    @abc.abstractmethod
    async def claimable_sessions(self, agent_id: str) -> list[str]:
        """Ids of ``agent_id``'s sessions holding ``queued`` turns and running none,
        the longest-waiting first."""

    @abc.abstractmethod
    async def queued_count(self, agent_id: str) -> int:
        """How many turns of ``agent_id``'s sessions are ``queued`` (for the metrics)."""

    @abc.abstractmethod
    async def outcomes(self, turn_ids: Sequence[str]) -> list[TurnOutcome]:
        """Where each known turn of ``turn_ids`` stands (unknown ids are left out)."""

    @abc.abstractmethod
    async def forget_idempotency_keys(self, before: float) -> int:
        """Drop the idempotency keys stored before ``before`` (Unix time); how many went."""

    # ------------------------------------------------------------------ contributed context

    @abc.abstractmethod
    async def add_context(
        self, session_id: str, key: str, value: str, extension_id: str, turn_id: str | None
    ) -> ContextItem:
        """Store a contribution for a later turn's prompt."""

    @abc.abstractmethod
    async def pending_context(self, session_id: str, exclude_turn: str | None = None) -> list[ContextItem]:
        """Unconsumed contributions of the session in order, leaving out those
        made during ``exclude_turn`` (they belong to the turn after it)."""

    # ------------------------------------------------------------------ audit

    @abc.abstractmethod
    async def audit(
        self,
        session_id: str,
        extension_id: str,
        action: str,
        detail: Mapping[str, Any] | None = None,
        turn_id: str | None = None,
    ) -> AuditEvent:
        """Append an audit event (``detail`` must be JSON-serialisable)."""

    @abc.abstractmethod
    async def audit_events(self, session_id: str) -> list[AuditEvent]:
        """The session's audit trail in order."""

    # ------------------------------------------------------------------ inboxes

    @abc.abstractmethod
    async def deliver(self, agent_id: str, from_agent: str, message: Message) -> InboxItem:
        """Put ``message`` durably in ``agent_id``'s inbox."""

    @abc.abstractmethod
    async def take_inbox(self, agent_id: str) -> list[TurnRecord]:
        """One transaction: for each inbox item of ``agent_id`` not yet taken,
        in delivery order, open the session ``inbox_session_id(agent_id,
        from_agent)`` (kind ``"agent"``, created if absent) and accept the
        message there as a queued turn with initiator ``agent`` and
        ``initiator_id`` the sender; mark the item taken with that turn.
        Returns the new turns (so nothing delivered is lost or doubled)."""

    @abc.abstractmethod
    async def inbox(self, agent_id: str) -> list[InboxItem]:
        """Every item ever delivered to ``agent_id``, taken or not, in order."""

    # ------------------------------------------------------------------ traces

    @abc.abstractmethod
    async def append_trace(self, trace: Trace) -> None:
        """Store calls whose turn was already finished (late effects)."""

    @abc.abstractmethod
    async def trace(self, turn_id: str) -> list[TraceRecord]:
        """The hook calls recorded for a turn, in call order."""

    # ------------------------------------------------------------------ browsing (the console)

    @abc.abstractmethod
    async def index_messages(self, limit: int | None) -> int:
        """Bring the full-text index of the messages up to date, by ``limit`` messages at most
        (``None``: all); how many were indexed. An engine whose index follows each commit
        (PostgreSQL's) has nothing to do; SQLite's is kept off the turn's commits."""

    @abc.abstractmethod
    async def find_sessions(self, query: SessionQuery) -> list[SessionRecord]:
        """One page of the sessions ``query`` selects, most recently updated first.

        The cost follows ``query.limit``, not the number of sessions (keyset
        pagination on indexes, full-text search).
        """

    @abc.abstractmethod
    async def turns_changed(self, since: float, limit: int) -> list[TurnRecord]:
        """At most ``limit`` turns queued or finished at or after ``since`` (Unix time), of any
        session and agent, oldest change first: what the console's live view polls."""

    @abc.abstractmethod
    async def audit_page(
        self, before: int | None = None, limit: int = 100, extension_id: str | None = None
    ) -> list[AuditEvent]:
        """Audit events of every session (of one extension), newest first, ids below ``before``."""

    @abc.abstractmethod
    async def turn_messages(self, session_id: str, turn_id: str) -> list[StoredMessage]:
        """The messages ``turn_id`` added to its session's history, in order."""

    @abc.abstractmethod
    async def context_items(self, session_id: str) -> list[ContextItem]:
        """Every context contribution of the session, consumed ones too, in order."""

    # ------------------------------------------------------------------ service records

    @abc.abstractmethod
    async def put_record(
        self,
        namespace: str,
        collection: str,
        key: str,
        value: Mapping[str, Any],
        text: str | None,
        expect: int | None,
    ) -> StoredRecord:
        """Create or replace a record in one transaction; ``expect`` is a version to compare-and-set.

        Raises :class:`turnkit_hookspecs.StorageConflict` when ``expect``
        (``0``: absent) does not match, writing nothing.
        """

    @abc.abstractmethod
    async def get_record(self, namespace: str, collection: str, key: str) -> StoredRecord | None:
        """The record, or ``None``."""

    @abc.abstractmethod
    async def delete_record(self, namespace: str, collection: str, key: str, expect: int | None) -> bool:
        """Remove a record; ``False`` when there was none."""

    @abc.abstractmethod
    async def list_records(
        self,
        namespace: str,
        collection: str,
        prefix: str | None,
        where: Mapping[str, Any],
        limit: int | None,
    ) -> list[StoredRecord]:
        """Records ordered by key (``where`` matches top-level value fields by equality)."""

    @abc.abstractmethod
    async def search_records(
        self, namespace: str, collection: str, query: str, where: Mapping[str, Any], limit: int
    ) -> list[StoredRecord]:
        """Records whose text holds any word of ``query``, best match first, ``score`` set."""
