"""The two capability surfaces, as Protocols the runtime implements.

Services receive an :class:`ExecutionContext`; plugins receive a
:class:`SessionExtensionContext` as the ``ctx`` argument of every session
point. Neither is a host: they are views through which every action is routed
to the runtime's orchestrator (and audited there).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

import attrs

from .model import (
    ActionResult,
    ContextWindowState,
    Deny,
    ForkOptions,
    Initiator,
    Message,
    Origin,
    SessionInfo,
    StoredRecord,
    ToolCallBlock,
    ToolOutputBlock,
    ToolSpec,
    TurnInfo,
    TurnResult,
)

#: The turn being run in this task; the runtime sets it for the duration of a turn.
running_turn: ContextVar[TurnInfo | None] = ContextVar("turnkit_running_turn", default=None)


def current_turn() -> TurnInfo | None:
    """The turn whose points or tool calls are running now, or ``None`` outside a turn.

    A service action called as a tool learns here which session and turn
    asked for it (the shell service passes them to the command's
    environment, the memory service scopes a memory to the session).
    """
    return running_turn.get()


#: Receives the reply's text chunks as the model produces them (``SessionAccess.turn(stream=...)``).
ChunkListener = Callable[[str], Awaitable[None]]


class StorageConflict(Exception):
    """A compare-and-set write (``Storage.put(..., expect=N)``) found another version."""


class IdempotencyKeyReused(Exception):
    """``SessionAccess.turn(..., idempotency_key=K)`` with a key that already named a message
    to another session: a client's mistake, never a retry. (Contract 0.1.4.)"""

    def __init__(self, key: str, used_in: str, session_id: str) -> None:
        self.key = key
        self.used_in = used_in
        self.session_id = session_id
        super().__init__(
            f"idempotency key {key!r} was used for a message to session {used_in!r};"
            f" it cannot name a message to session {session_id!r}"
        )


@runtime_checkable
class ReplyStream(Protocol):
    """Where a streaming ``turn_reply`` writes its text as it is produced.

    Chunks go to whoever asked for the turn with a listener (an SSE client,
    a Telegram message being edited …), each through the ``turn_chunk``
    pipeline; with no listener, writing costs next to nothing. The reply the
    implementation returns is still the whole message: it is what is stored.
    """

    @property
    def active(self) -> bool:
        """Whether anyone listens; a provider may skip streaming when not."""

    async def write(self, text: str) -> None:
        """Deliver the next chunk of the reply's text."""


@runtime_checkable
class Dispatch(Protocol):
    """One call per extension point kind."""

    async def guard(self, point: str, /, **kwargs: Any) -> Deny | None:
        """Run a guard point; the first ``Deny`` (or a failing implementation) stops."""

    async def pipeline(self, point: str, /, **kwargs: Any) -> Any:
        """Thread the point's value through every implementation and return it."""

    async def effect(self, point: str, /, **kwargs: Any) -> None:
        """Start every implementation of an effect point; failures are isolated."""

    async def resolve(self, point: str, /, **kwargs: Any) -> Any:
        """Return the first non-``None`` answer, or raise naming the point."""


@runtime_checkable
class SessionExtensionContext(Protocol):
    """What a plugin may do to the session a point fires for.

    Every action fires its own points (e.g. ``session_fork`` then
    ``session_forked``) and is written to the session's audit trail with
    ``extension_id``. The two reads, :meth:`get_child_sessions` and
    :meth:`get_context_window_state`, change nothing and are not audited.
    """

    @property
    def extension_id(self) -> str:
        """The plugin acting through this context."""

    @property
    def session_id(self) -> str:
        """The session the point fires for."""

    @property
    def turn_id(self) -> str | None:
        """The running turn, or ``None`` outside a turn."""

    @property
    def parent_session_id(self) -> str | None:
        """The session this one was forked from, if any."""

    async def contribute_context(self, key: str, value: str) -> None:
        """Add ``value`` under ``key`` to the next turn's prompt (then consumed)."""

    async def fork(self, options: ForkOptions | None = None) -> str:
        """Create a child session seeing the history up to now; return its id."""

    async def merge(self, child_id: str, summary: str | None = None) -> Message:
        """Close a child; its summary enters this history as the returned message.

        ``summary`` is text; without it, ``session_compress`` is asked to
        summarise the child's messages with reason ``"merge"``. The message
        appended (and handed to ``session_merged``) is a ``system`` message
        ``Result of child session <child_id>: <summary>`` with
        ``metadata["merged_from"]`` set to ``child_id``.
        """

    async def abandon(self, child_id: str) -> None:
        """Close a child without merging anything back."""

    async def get_child_sessions(self) -> Sequence[SessionInfo]:
        """The sessions forked from this one, oldest first (a read: not audited)."""

    async def get_context_window_state(self) -> ContextWindowState:
        """How full the model's context window is for this session (a read: not audited)."""

    async def request_compression(self, reason: str) -> None:
        """Summarise older messages now; they are marked compressed, not deleted.

        ``history()`` still returns them, with ``metadata["compressed"]`` set
        to ``True``; the summary carries ``metadata["summary"]``.
        """

    async def send_to_agent(self, agent_id: str, message: Message) -> None:
        """Deliver ``message`` durably to another agent's inbox.

        The target is an agent (``[agent] id``) that has started at least
        once on this agent's store; any other id raises ``UnknownAgentError``
        naming the known ones. It runs the message as a turn (initiator
        ``agent``) of its session with this agent.
        """


@runtime_checkable
class SessionAccess(Protocol):
    """How services reach sessions (``context.session``); the runtime owns them.

    A turn started here runs through the orchestrator like any other: the
    message is stored first, turns of one session run one at a time in FIFO
    order, and every point fires.
    """

    async def open(
        self, session_id: str | None = None, *, kind: str = "chat", metadata: Mapping[str, Any] | None = None
    ) -> SessionInfo:
        """Return session ``session_id``, creating it (of ``kind``) if absent or if no id is given."""

    async def get(self, session_id: str) -> SessionInfo | None:
        """The session, or ``None`` when there is no such session."""

    async def list_sessions(self, kind: str | None = None) -> Sequence[SessionInfo]:
        """This agent's sessions, most recently active first."""

    async def turn(
        self,
        session_id: str,
        message: Message,
        *,
        initiator: Initiator = "user",
        initiator_id: str | None = None,
        stream: ChunkListener | None = None,
        idempotency_key: str | None = None,
        origin: Origin | None = None,
    ) -> TurnResult:
        """Run one turn with ``message`` (queued behind earlier ones) and return how it ended.

        ``stream`` is awaited with each text chunk of the reply as the model
        produces it (after the ``turn_chunk`` pipeline); the result still
        carries the whole stored reply. Any process sharing the agent's
        store may run the turn; the result comes back here all the same
        (streaming only when this process runs it).

        ``idempotency_key`` makes a retry safe: a second call with the same
        key (from any process, while or after the first one's turn runs)
        stores nothing and returns the first call's turn. The key is stored
        with the message, in one transaction, and kept for ``[store]
        idempotency_keep`` seconds. The same key for another session raises
        :class:`IdempotencyKeyReused`. (Contract 0.1.4.)

        ``origin`` is where a channel received the message; it is stored with
        the turn and handed on as ``TurnInfo.origin``. (Contract 0.1.5.)
        """

    async def queued(self, session_id: str) -> Sequence[tuple[TurnInfo, Message]]:
        """The session's turns waiting to run, in the order they will, with their messages.

        Queued messages enter the history only when their turn starts; this
        is how a reader sees them before. (Contract 0.1.4.)
        """

    async def history(self, session_id: str) -> Sequence[Message]:
        """Every message of the session in order, compressed ones included.

        A message that prompts no longer show carries ``metadata["compressed"]
        = True``; a summary written by compression ``metadata["summary"] =
        True`` (a merged child's result has ``merged_from`` instead).
        """

    async def set_instructions(self, session_id: str, instructions: str | None) -> None:
        """Give the session instructions of its own, replacing the agent's (``[agent] instructions``).

        They take effect from the session's next turn started, in whichever
        process runs it; ``""`` means no instructions at all, ``None`` goes
        back to the agent's. A fork starts with its parent's. The
        ``turn_instructions`` pipeline still shapes what each turn uses.
        Text the store cannot keep (a NUL character, over a million
        characters) raises ``ValueError``, and an unknown session an error
        naming it. (Contract 0.1.5.)
        """

    async def instructions(self, session_id: str) -> str | None:
        """The session's own instructions (:meth:`set_instructions`), or ``None`` if it has none.

        (Contract 0.1.5.)
        """

    async def extension(self, session_id: str, extension_id: str) -> SessionExtensionContext:
        """Act on a session as ``extension_id`` (fork, merge …), audited under that id."""


@runtime_checkable
class Storage(Protocol):
    """A service's own durable records, kept in the agent's store.

    Records live in named collections under the namespace the storage was
    opened with (``context.storage("task")``), as JSON objects with an
    optional ``text`` indexed for full-text search. Writes are committed
    before the call returns. ``where`` matches top-level fields of the value
    by equality (``None`` matches a missing or null field).
    """

    async def put(
        self,
        collection: str,
        key: str,
        value: Mapping[str, Any],
        *,
        text: str | None = None,
        expect: int | None = None,
    ) -> StoredRecord:
        """Create or replace a record and return it.

        ``expect`` makes the write a compare-and-set: ``0`` means the record
        must not exist yet, ``N`` that it must be at version ``N``; otherwise
        :class:`StorageConflict` is raised and nothing is written.
        """

    async def get(self, collection: str, key: str) -> StoredRecord | None:
        """The record, or ``None``."""

    async def delete(self, collection: str, key: str, *, expect: int | None = None) -> bool:
        """Remove a record; ``False`` when there was none (``expect`` as in :meth:`put`)."""

    async def list(
        self,
        collection: str,
        *,
        prefix: str | None = None,
        where: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> Sequence[StoredRecord]:
        """Records ordered by key, optionally those whose key starts with ``prefix``."""

    async def search(
        self,
        collection: str,
        query: str,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int = 10,
    ) -> Sequence[StoredRecord]:
        """Records whose ``text`` matches the words of ``query``, best first (``score`` set).

        ``query`` is plain words, not a query language: a record matches when
        it holds any of them, and holding more of them, or rarer ones, ranks
        it higher.
        """


#: An ASGI application: ``await app(scope, receive, send)`` (the types ASGI servers and starlette use).
AsgiApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


def _paths(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(paths)


@attrs.frozen
class WebApp:
    """An ASGI application the runtime serves on the agent's HTTP server (``ExecutionContext.web_apps``).

    ``public`` are the paths below the application's own served without the
    bearer token: exact paths (``"/"``: the application's root), or every
    path starting with what precedes a final ``*`` (``"/assets/*"``). They
    are for a page and its static files, which hold no data, so that the
    page can load and ask for the token. Everything else takes the token like
    the HTTP API. (Contract 0.1.7.)
    """

    app: AsgiApp
    public: tuple[str, ...] = attrs.field(default=(), converter=_paths)


@runtime_checkable
class ExecutionContext(Protocol):
    """The capability surface handed to services."""

    @property
    def agent_id(self) -> str:
        """The id of the agent hosting the service (``[agent] id``)."""

    @property
    def config(self) -> Any:
        """The agent's structured configuration."""

    @property
    def env(self) -> Mapping[str, str]:
        """The environment the agent was started with."""

    @property
    def logger(self) -> logging.Logger:
        """The agent's logger."""

    @property
    def session(self) -> SessionAccess:
        """How services reach sessions: open, run a turn, read history."""

    @property
    def plugins(self) -> Dispatch:
        """Dispatch of the four extension point kinds."""

    @property
    def tools(self) -> Sequence[ToolSpec]:
        """The services' actions marked ``tool=True``, as the model is offered them (before ``turn_tools``).

        What a channel exposing the agent's tools to other programs (MCP)
        lists; ``run_tool`` runs one.
        """

    async def run_tool(self, call: ToolCallBlock) -> ToolOutputBlock:
        """Run one of :attr:`tools` as a model's call of it runs, outside any turn.

        The output is what the model would read: the action's value as text
        (JSON unless it is a string), its failure as an error output, the
        agent's secrets scrubbed from both. A name that is not one of
        :attr:`tools` is an error output, not an exception. No turn point
        fires (``tool_authorize`` guards the model's calls within a turn):
        a channel exposing tools decides itself who may call them.
        """

    async def invoke(self, action: str, payload: Mapping[str, Any] | None = None) -> ActionResult:
        """Call ``service.action`` with ``payload`` as keyword arguments.

        An unknown service or action raises; an exception inside the action
        comes back as an ``ActionResult`` with ``ok=False``.
        """

    def storage(self, namespace: str) -> Storage:
        """Durable records of ``namespace`` (by convention the service's name) in the agent's store."""

    @property
    def web_apps(self) -> Mapping[str, WebApp]:
        """ASGI apps the runtime serves on the agent's HTTP server, by path (``"/console"``, and
        ``"/metrics"`` when ``[telemetry] metrics`` is on).

        The chat service's HTTP channel mounts each at its path, behind its
        bearer token except for the app's ``public`` paths; an agent without
        that channel serves none of them. Built when first read. (Contract 0.1.7.)
        """
