"""The runtime's SessionExtensionContext: what a plugin may do to a session.

Every action goes through the orchestrator and its store, fires its points
(a guard before, an effect after the change is committed, a resolve where a
value is needed) and is written to the audit trail under the acting
extension's id. Pure reads (``get_child_sessions``,
``get_context_window_state``) are not audited: the trail is the record of
what plugins did to a session, and a summarizer measuring the window after
every turn would otherwise bury it. Each plugin gets its own view: the
dispatcher hands ``SessionContexts.for_plugin(name)`` to an implementation
taking ``ctx``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from turnkit_hookspecs import ContextWindowState, ForkOptions, Message, SessionInfo

from .errors import SessionError, UnknownAgentError
from .plan import ContextSource
from .prompting import context_message, visible
from .store import Acting

if TYPE_CHECKING:
    from .orchestrator import SessionOrchestrator

T = TypeVar("T")


class SessionContexts(ContextSource):
    """The ``ctx`` of one dispatch: a view per plugin, made on first use."""

    __slots__ = ("_orchestrator", "_views", "session", "turn_id")

    def __init__(self, orchestrator: SessionOrchestrator, session: SessionInfo, turn_id: str | None) -> None:
        self._orchestrator = orchestrator
        self.session = session
        self.turn_id = turn_id
        self._views: dict[str, ExtensionContext] = {}

    def for_plugin(self, plugin: str) -> ExtensionContext:
        """The view ``plugin`` acts through (audited under its name)."""
        view = self._views.get(plugin)
        if view is None:
            view = self._views[plugin] = ExtensionContext(
                self._orchestrator, self.session, self.turn_id, plugin
            )
        return view


class ExtensionContext:
    """One extension's handle on one session (implements ``SessionExtensionContext``)."""

    def __init__(
        self, orchestrator: SessionOrchestrator, session: SessionInfo, turn_id: str | None, extension_id: str
    ) -> None:
        self._o = orchestrator
        self._session = session
        self._turn_id = turn_id
        self._extension_id = extension_id

    def __repr__(self) -> str:
        return f"<ExtensionContext {self._extension_id} on session {self._session.session_id}>"

    @property
    def extension_id(self) -> str:
        """The plugin (or service) acting through this context."""
        return self._extension_id

    @property
    def session_id(self) -> str:
        """The session the point fires for."""
        return self._session.session_id

    @property
    def turn_id(self) -> str | None:
        """The running turn, or ``None`` outside a turn."""
        return self._turn_id

    @property
    def parent_session_id(self) -> str | None:
        """The session this one was forked from, if any."""
        return self._session.parent_session_id

    # ------------------------------------------------------------------ helpers

    def _contexts(self, session: SessionInfo | None = None) -> SessionContexts:
        return SessionContexts(self._o, session or self._session, self._turn_id)

    @property
    def _acting(self) -> Acting:
        return Acting(self._extension_id, self._turn_id)

    async def _audit(self, action: str, detail: dict[str, Any] | None = None) -> None:
        await self._o.store.audit(self.session_id, self._extension_id, action, detail or {}, self._turn_id)

    # ------------------------------------------------------------------ actions

    async def contribute_context(self, key: str, value: str) -> None:
        """Add ``key: value`` to the next turn's prompt of this session (then consumed)."""
        _require(key, str, "key")
        _require(value, str, "value")
        await self._o.store.add_context(self.session_id, key, value, self._extension_id, self._turn_id)
        await self._audit("contribute_context", {"key": key, "chars": len(value)})
        await self._o.points.session_context_contributed(self._contexts(), key, value)

    async def fork(self, options: ForkOptions | None = None) -> str:
        """Create a child session seeing this history up to now; return its id.

        ``session_fork`` guards it (a deny raises :class:`SessionError`); the
        child inherits the pending contributed context unless told not to;
        an ``initial_message`` starts the child's first turn (initiator
        ``extension``) without waiting for it. The child, its context, its
        first message and the audit event are written in one transaction.
        """
        options = _require(options if options is not None else ForkOptions(), ForkOptions, "options")
        contexts = self._contexts()
        deny = await self._o.points.session_fork(contexts, options)
        if deny is not None:
            await self._audit("fork_denied", {"reason": options.reason, "denied_by": deny.plugin})
            raise SessionError(f"fork of session {self.session_id!r} denied by {deny.plugin}: {deny.reason}")
        child, first = await self._o.sessions.fork(self.session_id, options, self._acting)
        await self._o.points.session_forked(contexts, child, options)
        if first is not None:
            self._o.schedule(child.session_id)
        return child.session_id

    async def merge(self, child_id: str, summary: str | None = None) -> Message:
        """Close a child, appending its summary (given, or resolved) to this history.

        The summary is text: the one given, else what ``session_compress``
        answers for the child's whole history with reason ``"merge"``. It is
        appended as a ``system`` message ``Result of child session <id>:
        <summary>`` whose ``metadata["merged_from"]`` is the child's id, so
        readers can tell it from a compression summary; that message is
        returned and handed to ``session_merged``. Waits for the child's
        queued turns first, so that a fork with an initial message followed
        by a merge brings back the child's answer.
        """
        child = await self._o.sessions.child(self.session_id, _require(child_id, str, "child_id"))
        contexts = self._contexts()
        await self._o.settle(child_id)
        if summary is None:
            history = [m.with_flags() for m in await self._o.store.messages(child_id)]
            summary = await self._o.points.session_compress(contexts, history, "merge")
        text = _require(summary, str, "summary")
        message = Message.of(
            "system", f"Result of child session {child_id}: {text}", metadata={"merged_from": child_id}
        )
        await self._o.sessions.merge(self.session_id, child_id, message, self._acting)
        merged = _with_status(child.info, "merged")
        await self._o.points.session_merged(contexts, merged, message)
        return message

    async def abandon(self, child_id: str) -> None:
        """Close a child without bringing anything back."""
        child = await self._o.sessions.child(self.session_id, _require(child_id, str, "child_id"))
        await self._o.sessions.abandon(self.session_id, child_id, self._acting)
        abandoned = _with_status(child.info, "abandoned")
        await self._o.points.session_abandoned(self._contexts(), abandoned)

    async def get_child_sessions(self) -> Sequence[SessionInfo]:
        """The sessions forked from this one, oldest first (a read: not audited)."""
        return [record.info for record in await self._o.store.child_sessions(self.session_id)]

    async def get_context_window_state(self) -> ContextWindowState:
        """How full the next prompt's window is, counted by ``session_token_count`` (a read: not audited)."""
        messages = await self._window_messages()
        tokens = await self._o.points.session_token_count(self._contexts(), messages)
        return ContextWindowState.measure(tokens, self._o.config.model.max_tokens)

    async def _window_messages(self) -> list[Message]:
        store, history = self._o.store, self._o.config.turns.history
        window = visible(await store.window(self.session_id, history))
        messages = [m.message for m in window]
        pending = await store.pending_context(self.session_id)
        return [*messages, context_message(pending)] if pending else messages

    async def request_compression(self, reason: str) -> None:
        """Summarise all but the newest ``[turns] keep_recent`` messages, now.

        The summary comes from ``session_compress``; the summarised messages
        are marked compressed (kept, never deleted) and the next prompt uses
        the summary plus the recent messages. An earlier summary still in
        effect is summarised first, whatever its position among the
        messages (it stands for everything before them), so compressing
        again never loses what it said. Nothing to compress is not an
        error: it is audited as such.
        """
        _require(reason, str, "reason")
        plan = await self._o.sessions.compressible(self.session_id, self._o.config.turns.keep_recent)
        if plan.upto is None:
            await self._audit("compress_skipped", {"reason": reason, "messages": plan.seen})
            return
        contexts = self._contexts()
        text = await self._o.points.session_compress(contexts, plan.messages, reason)
        summary = await self._o.sessions.compress(self.session_id, plan.upto, text, reason, self._turn_id)
        compressed = len(plan.messages)
        await self._audit("compress", {"reason": reason, "compressed": compressed, "upto": plan.upto})
        await self._o.points.session_compressed(contexts, summary, compressed, reason)

    async def send_to_agent(self, agent_id: str, message: Message) -> None:
        """Deliver ``message`` to ``agent_id``'s durable inbox (guarded by ``agent_message``)."""
        _require(agent_id, str, "agent_id")
        _require(message, Message, "message")
        deny = await self._o.points.agent_message(self._contexts(), agent_id, message)
        if deny is not None:
            await self._audit("send_to_agent_denied", {"to": agent_id, "denied_by": deny.plugin})
            raise SessionError(f"message to agent {agent_id!r} denied by {deny.plugin}: {deny.reason}")
        known = await self._o.store.agents()
        if agent_id not in known:
            raise UnknownAgentError(
                f"no agent {agent_id!r} uses this store (known agents: {', '.join(known)});"
                f" an agent is known once it has started with [agent] id = {agent_id!r} on this [store] url"
            )
        item = await self._o.store.deliver(agent_id, self._o.agent_id, message)
        await self._audit("send_to_agent", {"to": agent_id, "inbox_id": item.id})
        if agent_id == self._o.agent_id:
            await self._o.check_inbox()


def _require(value: Any, expected: type[T], name: str) -> T:
    if not isinstance(value, expected):
        raise TypeError(f"{name} must be a {expected.__name__}, not {type(value).__name__}")
    return value


def _with_status(info: SessionInfo, status: Any) -> SessionInfo:
    return attrs.evolve(info, status=status)
