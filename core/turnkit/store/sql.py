"""The store's operations over SQL, written once for every engine.

:class:`SQLStore` turns each :class:`~turnkit.store.base.Store` method into
one job (a function of the modules named for what they hold: sessions,
history, turns, leases, forks …) run in one transaction. An engine
subclass says only how a transaction is opened and committed
(:meth:`SQLStore._transaction`), how it connects and migrates, and how it
hears of other processes' commits (:meth:`SQLStore.changed`).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from turnkit_hookspecs import Deny, Initiator, Message, Origin, SessionInfo, StoredRecord, TurnStatus

from ..errors import StoreError
from ..ids import new_id
from ..secrets import Secrets
from ..tracing import Trace, TraceRecord
from . import (
    audit,
    browse,
    contributions,
    forks,
    history,
    inbox,
    leases,
    service_records,
    sessions,
    traces,
    turns,
)
from .base import Store
from .cache import MessageCache
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
from .tx import Dialect, Tx

P = ParamSpec("P")
T = TypeVar("T")


class SQLStore(Store):
    """Every store operation as one job in one transaction; engines subclass it.

    What the runtime writes about sessions (messages, turn errors and
    denies, traces, audit details, contributed context, inboxes) passes
    :attr:`secrets` first, here, where it is encoded for the jobs: the
    stored rows, and what is read back from them, hold ``[secret]`` instead
    of a secret value. The services' own records are stored as given: they
    are read back as the service's state (keys, compare-and-set values) and
    must come back exactly as written.
    """

    dialect: Dialect

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """``clock`` replaces ``time.time`` for timestamps (tests use it to make ties impossible)."""
        self._clock = clock
        self._cache = MessageCache()
        #: The values scrubbed from what is written (none unless the agent gives its own).
        self.secrets = Secrets()
        #: The owner id of the turns this store instance claims (one per process, see leases).
        self.owner = new_id()

    # ------------------------------------------------------------------ plumbing

    @abc.abstractmethod
    async def _transaction(self, job: Callable[[Tx], T], write: bool) -> T:
        """Run ``job`` in one transaction and return its result (rolled back if it raises)."""

    async def _read(self, job: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._transaction(lambda tx: job(tx, *args, **kwargs), False)

    async def _write(self, job: Callable[Concatenate[Tx, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._transaction(lambda tx: job(tx, *args, **kwargs), True)

    # ------------------------------------------------------------------ agents and leases

    async def register_agent(self, agent_id: str) -> None:
        await self._write(sessions.register_agent, agent_id)

    async def agents(self) -> list[str]:
        return await self._read(sessions.agents)

    async def register_owner(self, agent_id: str, host: str, pid: int, started: float, lease: float) -> None:
        await self._write(leases.register_owner, self.owner, agent_id, host, pid, started, lease)

    async def renew_owner(self, lease: float) -> bool:
        return await self._write(leases.renew_owner, self.owner, lease)

    async def release_owner(self) -> None:
        await self._write(leases.release_owner, self.owner)

    async def expire_owner(self, owner: str) -> None:
        await self._write(leases.expire_owner, owner)

    async def disown(self, turn_ids: Sequence[str]) -> None:
        await self._write(leases.disown, self.owner, turn_ids)

    async def owners(self, agent_id: str | None = None) -> list[OwnerRecord]:
        return await self._read(leases.owners, agent_id)

    async def take_over(self, agent_id: str, policy: str) -> list[Takeover]:
        return await self._write(leases.take_over, agent_id, self.owner, policy)

    # ------------------------------------------------------------------ sessions

    async def create_session(self, info: SessionInfo, agent_id: str) -> SessionRecord:
        metadata = sessions.json_text(info.metadata, f"metadata of session {info.session_id!r}")
        return await self._write(sessions.create_session, info, agent_id, metadata)

    async def get_session(self, session_id: str) -> SessionRecord | None:
        return await self._read(sessions.get_session, session_id)

    async def list_sessions(
        self, agent_id: str | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[SessionRecord]:
        return await self._read(sessions.list_sessions, agent_id, kind, limit)

    async def session_ids_starting(self, prefix: str, limit: int = 10) -> list[str]:
        return await self._read(sessions.session_ids_starting, prefix, limit)

    async def child_sessions(self, session_id: str) -> list[SessionRecord]:
        return await self._read(sessions.child_sessions, session_id)

    async def set_session_status(self, session_id: str, status: str) -> None:
        sessions.check_status(status)
        await self._write(sessions.set_session_status, session_id, status)

    async def session_instructions(self, session_id: str) -> str | None:
        return await self._read(sessions.session_instructions, session_id)

    async def set_session_instructions(self, session_id: str, instructions: str | None) -> None:
        text = None if instructions is None else self.secrets.scrub(instructions)
        await self._write(sessions.set_session_instructions, session_id, text)

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
        initial = None if initial_message is None else (new_id(), self.secrets.encode(initial_message)[1])
        reason = self.secrets.scrub(reason)
        return await self._write(
            forks.fork, child, agent_id, inherit_context, initial, acting, reason, after_turn
        )

    async def merge(self, parent: str, child: str, summary: Message, acting: Acting) -> StoredMessage:
        summary, body = self.secrets.encode(summary)
        return await self._write(forks.merge, parent, child, summary, body, acting)

    async def abandon(self, parent: str, child: str, acting: Acting) -> None:
        await self._write(forks.abandon, parent, child, acting)

    # ------------------------------------------------------------------ messages

    async def append_message(
        self, session_id: str, message: Message, turn_id: str | None = None, *, summary: bool = False
    ) -> StoredMessage:
        message, body = self.secrets.encode(message)
        return await self._write(history.append_message, session_id, message, body, turn_id, summary)

    async def messages(self, session_id: str, *, lineage: bool = False) -> list[StoredMessage]:
        return await self._read(history.messages, session_id, lineage)

    async def last_message_id(self, session_id: str) -> int | None:
        return await self._read(history.last_message_id, session_id)

    async def window(self, session_id: str, limit: int) -> list[StoredMessage]:
        """See :meth:`Store.window`; the summary is the newest one the session sees.

        That is the session's own newest uncompressed summary if it has one,
        else its parent's up to the fork point, and so on up the lineage. The
        cost is a few index seeks per ancestor plus ``limit`` rows.
        """
        _not_negative(limit, "limit")
        return await self._read(history.window, session_id, limit)

    async def compress(
        self, session_id: str, upto_id: int, summary: Message, turn_id: str | None
    ) -> StoredMessage:
        summary, body = self.secrets.encode(summary)
        return await self._write(history.compress, session_id, upto_id, summary, body, turn_id)

    # ------------------------------------------------------------------ turns

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
        body = self.secrets.encode(message)[1]
        return await self._write(
            turns.accept,
            session_id,
            turn_id,
            body,
            initiator,
            initiator_id,
            idempotency_key,
            self._origin(origin),
        )

    async def claim_turn(self, session_id: str) -> tuple[TurnRecord, Message] | None:
        return await self._write(turns.claim_turn, session_id, self.owner)

    async def claim_next(self, session_id: str, history: int) -> Claim | None:
        _not_negative(history, "history")
        return await self._write(turns.claim_next, session_id, history, self.owner)

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
        _not_negative(history, "history")
        return await self._write(
            turns.accept_and_claim,
            session_id,
            turn_id,
            self.secrets.encode(message),
            initiator,
            initiator_id,
            history,
            self.owner,
            idempotency_key,
            self._origin(origin),
        )

    def _origin(self, origin: Origin | None) -> str | None:
        """An origin's JSON as stored (scrubbed: its metadata is the channel's)."""
        return None if origin is None else self.secrets.encode(origin)[1]

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
        """See :meth:`Store.finish_turn`.

        Refuses a turn that already finished (say, taken over after its
        lease expired while this process still ran it): its message may be
        re-run, so this late result must not be recorded too. ``consumed``
        ids that are not pending context of the turn's session are skipped.
        """
        if status not in turns.FINAL:
            raise StoreError(
                f"turn {turn_id!r} cannot finish as {status!r} (one of {', '.join(turns.FINAL)})"
            )
        secrets = self.secrets
        bodies = [secrets.encode(m) for m in messages]
        denied = None if deny is None else secrets.encode(deny)[1]
        error = None if error is None else secrets.scrub(error)
        trace = {} if trace is None else _scrubbed_trace(trace, secrets)
        used = None if instructions is None else secrets.scrub(instructions)
        return await self._write(
            turns.finish_turn, turn_id, status, error, denied, bodies, consumed, trace, used
        )

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        return await self._read(turns.get_turn, turn_id)

    async def turns(self, session_id: str) -> list[TurnRecord]:
        return await self._read(turns.turns, session_id)

    async def queued_turns(self, session_id: str) -> list[tuple[TurnRecord, Message]]:
        return await self._read(turns.queued, session_id)

    async def claimable_sessions(self, agent_id: str) -> list[str]:
        return await self._read(turns.claimable_sessions, agent_id)

    async def queued_count(self, agent_id: str) -> int:
        return await self._read(turns.queued_count, agent_id)

    async def outcomes(self, turn_ids: Sequence[str]) -> list[TurnOutcome]:
        if not turn_ids:
            return []
        return await self._read(turns.outcomes, turn_ids)

    async def forget_idempotency_keys(self, before: float) -> int:
        return await self._write(turns.forget_keys, before)

    # ------------------------------------------------------------------ contributed context

    async def add_context(
        self, session_id: str, key: str, value: str, extension_id: str, turn_id: str | None
    ) -> ContextItem:
        key, value = self.secrets.scrub(key), self.secrets.scrub(value)
        return await self._write(contributions.add_context, session_id, key, value, extension_id, turn_id)

    async def pending_context(self, session_id: str, exclude_turn: str | None = None) -> list[ContextItem]:
        return await self._read(contributions.pending_context, session_id, exclude_turn)

    # ------------------------------------------------------------------ audit

    async def audit(
        self,
        session_id: str,
        extension_id: str,
        action: str,
        detail: Mapping[str, Any] | None = None,
        turn_id: str | None = None,
    ) -> AuditEvent:
        detail = self.secrets.scrub_data(dict(detail or {}))
        text = sessions.json_text(detail, f"detail of audit action {action!r}")
        return await self._write(audit.audit, session_id, extension_id, action, detail, text, turn_id)

    async def audit_events(self, session_id: str) -> list[AuditEvent]:
        return await self._read(audit.audit_events, session_id)

    # ------------------------------------------------------------------ inboxes

    async def deliver(self, agent_id: str, from_agent: str, message: Message) -> InboxItem:
        message, body = self.secrets.encode(message)
        return await self._write(inbox.deliver, agent_id, from_agent, message, body)

    async def take_inbox(self, agent_id: str) -> list[TurnRecord]:
        """See :meth:`Store.take_inbox`; the new turns get ids from :func:`turnkit.ids.new_id`."""
        return await self._write(inbox.take_inbox, agent_id)

    async def inbox(self, agent_id: str) -> list[InboxItem]:
        return await self._read(inbox.inbox, agent_id)

    # ------------------------------------------------------------------ traces

    async def append_trace(self, trace: Trace) -> None:
        if any(trace.values()):  # nothing to store is not worth a transaction
            await self._write(traces.insert_trace, _scrubbed_trace(trace, self.secrets))

    async def trace(self, turn_id: str) -> list[TraceRecord]:
        return await self._read(traces.trace, turn_id)

    # ------------------------------------------------------------------ browsing (the console)

    async def find_sessions(self, query: SessionQuery) -> list[SessionRecord]:
        _not_negative(query.limit, "limit")
        if query.text:  # a search sees every message committed before it
            await self.index_messages(None)
        return await self._read(browse.find_sessions, query)

    async def index_messages(self, limit: int | None) -> int:
        if not self.dialect.search_lags:
            return 0
        return await self._write(browse.index_messages, limit)

    async def turns_changed(self, since: float, limit: int) -> list[TurnRecord]:
        _not_negative(limit, "limit")
        return await self._read(browse.turns_changed, since, limit)

    async def audit_page(
        self, before: int | None = None, limit: int = 100, extension_id: str | None = None
    ) -> list[AuditEvent]:
        _not_negative(limit, "limit")
        return await self._read(browse.audit_page, before, limit, extension_id)

    async def turn_messages(self, session_id: str, turn_id: str) -> list[StoredMessage]:
        return await self._read(browse.turn_messages, session_id, turn_id)

    async def context_items(self, session_id: str) -> list[ContextItem]:
        return await self._read(browse.context_items, session_id)

    # ------------------------------------------------------------------ service records

    async def put_record(
        self,
        namespace: str,
        collection: str,
        key: str,
        value: Mapping[str, Any],
        text: str | None,
        expect: int | None,
    ) -> StoredRecord:
        return await self._write(service_records.put, namespace, collection, key, value, text, expect)

    async def get_record(self, namespace: str, collection: str, key: str) -> StoredRecord | None:
        return await self._read(service_records.get, namespace, collection, key)

    async def delete_record(self, namespace: str, collection: str, key: str, expect: int | None) -> bool:
        return await self._write(service_records.delete, namespace, collection, key, expect)

    async def list_records(
        self,
        namespace: str,
        collection: str,
        prefix: str | None,
        where: Mapping[str, Any],
        limit: int | None,
    ) -> list[StoredRecord]:
        return await self._read(service_records.listing, namespace, collection, prefix, where, limit)

    async def search_records(
        self, namespace: str, collection: str, query: str, where: Mapping[str, Any], limit: int
    ) -> list[StoredRecord]:
        return await self._read(service_records.search, namespace, collection, query, where, limit)


def _scrubbed_trace(trace: Trace, secrets: Secrets) -> Trace:
    """``trace`` with secrets scrubbed from its calls' error texts (the rest is names and numbers)."""
    if not secrets:
        return trace
    return {
        scope: [(*call[:5], secrets.scrub(call[5]), call[6]) if call[5] else call for call in calls]
        for scope, calls in trace.items()
    }


def _not_negative(value: int, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
