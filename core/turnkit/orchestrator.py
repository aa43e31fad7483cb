"""The session orchestrator: runs turns as DESIGN §4 guarantees.

* The inbound message is stored first (``Store.accept``), before anything
  else can fail: nothing accepted is lost.
* One turn at a time per session: a worker task per busy session claims the
  next queued turn through the store's lease (``claim_turn``), so turns run
  in FIFO order and never interleave; different sessions run concurrently.
* The point sequence: ``turn_authorize`` → ``turn_inbound`` → prompt
  assembly → ``turn_prompt`` → ``turn_reply`` (tool calls through
  ``tool_authorize`` and the owning service's action, bounded) →
  ``turn_outbound`` → commit (one transaction with the trace) → effects.
* At start, turns a crash left ``running`` are marked ``interrupted`` and
  re-run once or reported, per ``[turns] interrupted``.

Actions plugins take through a SessionExtensionContext are in
:mod:`turnkit.extension`; they call back into :class:`SessionOrchestrator`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import attrs
from turnkit_hookspecs import (
    ChunkListener,
    Initiator,
    Message,
    SessionInfo,
    ToolCallBlock,
    ToolOutputBlock,
    TurnResult,
)
from turnkit_hookspecs.context import running_turn

from .errors import SessionError, StoreError, TurnkitError
from .extension import ExtensionContext, SessionContexts
from .ids import new_id
from .prompting import assemble
from .streaming import TurnStream
from .tracing import trace_scope

if TYPE_CHECKING:
    from .actions import ActionRegistry
    from .config import Config
    from .manager import PluginManager
    from .store import Claim, SessionRecord, Store, TurnRecord
    from .tracing import TurnTraceSink

#: The extension id the runtime's own audit events carry.
RUNTIME = "turnkit"
#: Session records kept in memory so that a turn does not re-read its session.
SESSION_CACHE = 10_000


class SessionOrchestrator:
    """Runs the turns of one agent's sessions over a :class:`~turnkit.store.Store`."""

    def __init__(
        self,
        agent_id: str,
        store: Store,
        manager: PluginManager,
        config: Config,
        actions: ActionRegistry,
        traces: TurnTraceSink,
        logger: logging.Logger,
    ) -> None:
        self.agent_id = agent_id
        self.store = store
        self.manager = manager
        self.dispatch = manager.dispatch
        self.config = config
        self.actions = actions
        self.traces = traces
        self.log = logger
        self._sessions: OrderedDict[str, SessionRecord] = OrderedDict()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake: set[str] = set()
        self._waiters: dict[str, asyncio.Future[TurnResult]] = {}
        self._listeners: dict[str, ChunkListener] = {}
        self._idle: dict[str, asyncio.Event] = {}
        self._inbox: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Recover from a crash, resume queued turns, and start reading the inbox."""
        await self.store.register_agent(self.agent_id)
        await self._recover()
        for session_id in await self.store.sessions_with_queued_turns(self.agent_id):
            self._schedule(session_id)
        await self.check_inbox()
        self._inbox = asyncio.get_running_loop().create_task(self._poll_inbox())

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking turns; let running ones finish within ``timeout``, then cancel them.

        A cancelled turn stays ``running`` in the store, exactly as after a
        crash, and the next start recovers it.
        """
        self._closing = True
        if self._inbox is not None:
            self._inbox.cancel()
            await asyncio.gather(self._inbox, return_exceptions=True)
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(TurnkitError("the agent stopped before the turn ran; it stays queued"))
        self._waiters.clear()

    async def _recover(self) -> None:
        for turn in await self.store.interrupt_running(self.agent_id):
            detail = {"turn": turn.turn_id, "number": turn.number, "policy": self.config.turns.interrupted}
            if turn.rerun_of is not None:  # the re-run crashed too: once is the limit
                self.log.warning(
                    "turn %s re-ran an interrupted turn and was interrupted too; not re-run", turn.turn_id
                )
                detail["policy"] = "report"
            elif self.config.turns.interrupted == "rerun":
                try:
                    rerun = await self.store.requeue(turn.turn_id, new_id())
                except StoreError as exc:  # already re-run once: report instead of running twice
                    self.log.warning("interrupted turn %s not re-run: %s", turn.turn_id, exc)
                else:
                    detail["rerun"] = rerun.turn_id
            else:
                self.log.warning(
                    "turn %s of session %s was interrupted by a crash; its message stays stored, not re-run",
                    turn.turn_id,
                    turn.session_id,
                )
            await self.store.audit(turn.session_id, RUNTIME, "turn_interrupted", detail, turn.turn_id)

    # ------------------------------------------------------------------ sessions

    async def open_session(
        self,
        session_id: str | None = None,
        kind: str = "chat",
        metadata: dict[str, Any] | None = None,
    ) -> SessionRecord:
        """Return session ``session_id``, creating it if absent (a new id when none is given)."""
        if session_id is not None:
            existing = await self.find_session(session_id)
            if existing is not None:
                return existing
        info = SessionInfo(session_id or new_id(), kind, metadata=metadata or {})
        return self._remember(await self.store.create_session(info, self.agent_id))

    async def create_child(self, info: SessionInfo) -> SessionRecord:
        """Store a forked session (the fork itself is :mod:`turnkit.extension`'s)."""
        return self._remember(await self.store.create_session(info, self.agent_id))

    async def session(self, session_id: str) -> SessionRecord:
        """The stored session (cached), or :class:`SessionError` naming the id."""
        record = await self.find_session(session_id)
        if record is None:
            raise SessionError(f"no session {session_id!r}")
        return record

    async def find_session(self, session_id: str) -> SessionRecord | None:
        """The stored session (cached), or ``None``."""
        record = self._sessions.get(session_id)
        if record is None:
            record = await self.store.get_session(session_id)
            if record is not None:
                self._remember(record)
        return record

    async def set_status(self, session_id: str, status: str) -> None:
        """Move a session to ``status`` and forget its cached record."""
        await self.store.set_session_status(session_id, status)
        self._sessions.pop(session_id, None)

    def _remember(self, record: SessionRecord) -> SessionRecord:
        self._sessions[record.session_id] = record
        if len(self._sessions) > SESSION_CACHE:
            self._sessions.popitem(last=False)
        return record

    # ------------------------------------------------------------------ turns

    async def submit(
        self,
        session_id: str,
        message: Message,
        initiator: Initiator = "user",
        initiator_id: str | None = None,
        stream: ChunkListener | None = None,
    ) -> TurnResult:
        """Store ``message`` as a queued turn, run it in its turn, and return how it ended.

        ``stream`` receives the reply's chunks while the turn runs.
        """
        turn = await self.enqueue(session_id, message, initiator, initiator_id, stream)
        waiter = self._waiters.get(turn.turn_id)
        assert waiter is not None
        return await waiter

    async def enqueue(
        self,
        session_id: str,
        message: Message,
        initiator: Initiator = "user",
        initiator_id: str | None = None,
        stream: ChunkListener | None = None,
    ) -> TurnRecord:
        """Store ``message`` as a queued turn of an active session and schedule it; don't wait."""
        if self._closing:
            raise TurnkitError("the agent is stopping; it accepts no more messages")
        record = await self.session(session_id)
        if record.info.status != "active":
            raise SessionError(f"session {session_id!r} is {record.info.status}; it takes no more turns")
        turn_id, history = new_id(), self.config.turns.history
        self._waiters[turn_id] = asyncio.get_running_loop().create_future()
        if stream is not None:
            self._listeners[turn_id] = stream
        try:
            if session_id in self._workers:
                turn = await self.store.accept(session_id, turn_id, message, initiator, initiator_id)
                self._schedule(session_id)
            else:  # an idle session: accept and start the turn in one commit
                turn, claim = await self.store.accept_and_claim(
                    session_id, turn_id, message, initiator, initiator_id, history
                )
                self._schedule(session_id, claim)
        except BaseException:
            self._waiters.pop(turn_id, None)
            self._listeners.pop(turn_id, None)
            raise
        return turn

    async def settle(self, session_id: str) -> None:
        """Wait until this process runs no turn of ``session_id`` and has none queued for it."""
        while session_id in self._workers:
            await self._idle.setdefault(session_id, asyncio.Event()).wait()

    def _schedule(self, session_id: str, claim: Claim | None = None) -> None:
        """Make sure a worker runs the session's queued turns (starting with ``claim``, if given)."""
        self._wake.add(session_id)
        if session_id not in self._workers and not self._closing:
            self._idle.pop(session_id, None)
            work = self._work(session_id, claim)
            self._workers[session_id] = asyncio.get_running_loop().create_task(
                work, name=f"turns {session_id}"
            )

    async def _work(self, session_id: str, claim: Claim | None) -> None:
        """Run the session's queued turns one after another until none is left."""
        history = self.config.turns.history
        try:
            while not self._closing:
                if claim is None:
                    self._wake.discard(session_id)
                    claim = await self.store.claim_next(session_id, history)
                    if claim is None:
                        if session_id in self._wake:  # a message arrived while we looked
                            continue
                        return
                turn_id = claim.turn.turn_id
                try:
                    result = await self.run_turn(claim)
                except Exception as exc:  # the store failed under us: the turn stays running
                    self.log.exception("turn %s could not be finished", turn_id)
                    self._settle_waiter(turn_id, exc)
                    return
                self._settle_waiter(turn_id, result)
                claim = None
        finally:
            self._workers.pop(session_id, None)
            self._idle.setdefault(session_id, asyncio.Event()).set()

    def _settle_waiter(self, turn_id: str, outcome: TurnResult | BaseException) -> None:
        self._listeners.pop(turn_id, None)
        waiter = self._waiters.pop(turn_id, None)
        if waiter is None or waiter.done():
            return
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)

    async def run_turn(self, claim: Claim) -> TurnResult:
        """Run one claimed turn through the points and commit it."""
        turn, inbound = claim.turn, claim.message
        token = trace_scope.set(turn.turn_id)
        info = turn.info
        running = running_turn.set(info)
        try:
            session = await self.session(turn.session_id)
            contexts = SessionContexts(self, session.info, turn.turn_id)
            dispatch = self.dispatch
            try:
                deny = await dispatch.guard("turn_authorize", ctx=contexts, turn=info, message=inbound)
                if deny is not None:
                    error = f"denied by {deny.plugin}: {deny.reason}"
                    done = await self._finish(turn, "denied", error=error)
                    await dispatch.effect(
                        "turn_denied", ctx=contexts, turn=done.info, message=inbound, deny=deny
                    )
                    return TurnResult(done.info, deny=deny)
                message = await dispatch.pipeline("turn_inbound", ctx=contexts, turn=info, message=inbound)
                prompt = assemble(claim.window, turn.message_id, message, claim.context, self.actions.tools)
                prompt = await dispatch.pipeline("turn_prompt", ctx=contexts, turn=info, prompt=prompt)
                stream = TurnStream(dispatch, contexts, info, self._listeners.get(turn.turn_id))
                steps, reply = await self._reply(contexts, info, prompt, stream)
                reply = await dispatch.pipeline("turn_outbound", ctx=contexts, turn=info, message=reply)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                self.log.warning("turn %s of session %s failed: %s", turn.turn_id, turn.session_id, error)
                # contributed context stays pending: no answer was made with it
                done = await self._finish(turn, "failed", error=error)
                await dispatch.effect(
                    "turn_failed", ctx=contexts, turn=done.info, message=inbound, error=error
                )
                return TurnResult(done.info)
            consumed = [item.id for item in claim.context]
            done = await self._finish(turn, "completed", messages=[*steps, reply], consumed=consumed)
            await dispatch.effect(
                "turn_completed", ctx=contexts, turn=done.info, message=inbound, reply=reply
            )
            return TurnResult(done.info, reply=reply)
        finally:
            running_turn.reset(running)
            trace_scope.reset(token)

    async def _reply(
        self, contexts: SessionContexts, info: Any, prompt: Any, stream: TurnStream
    ) -> tuple[list[Message], Message]:
        """Ask the model, running the tool calls it makes, at most ``max_tool_steps`` rounds."""
        steps: list[Message] = []
        limit = self.config.turns.max_tool_steps
        while True:
            reply: Message = await self.dispatch.resolve(
                "turn_reply", ctx=contexts, turn=info, prompt=prompt, stream=stream
            )
            calls = reply.tool_calls
            if not calls:
                return steps, reply
            if len(steps) // 2 >= limit:
                raise TurnkitError(
                    f"the model asked for tools more than {limit} times ([turns] max_tool_steps)"
                )
            outputs = [await self._run_tool(contexts, info, call) for call in calls]
            results = Message("tool", outputs)
            steps += [reply, results]
            prompt = attrs.evolve(prompt, messages=(*prompt.messages, reply, results))

    async def _run_tool(self, contexts: SessionContexts, info: Any, call: ToolCallBlock) -> ToolOutputBlock:
        deny = await self.dispatch.guard("tool_authorize", ctx=contexts, turn=info, call=call)
        if deny is not None:
            return ToolOutputBlock(
                call.tool_call_id, f"denied by {deny.plugin}: {deny.reason}", is_error=True
            )
        return await self.actions.run_tool(call)

    async def _finish(
        self,
        turn: TurnRecord,
        status: Any,
        *,
        error: str | None = None,
        messages: list[Message] | None = None,
        consumed: list[int] | None = None,
    ) -> TurnRecord:
        return await self.store.finish_turn(
            turn.turn_id,
            status,
            error=error,
            messages=messages or (),
            consumed=consumed or (),
            trace=self.traces.take(),
        )

    async def flush_traces(self) -> None:
        """Store the trace of effects that finished after their turn was committed."""
        pending = self.traces.take()
        if pending:
            await self.store.append_trace(pending)

    # ------------------------------------------------------------------ inboxes

    async def check_inbox(self) -> None:
        """Take what other agents delivered to this agent and schedule those turns."""
        for turn in await self.store.take_inbox(self.agent_id):
            self._schedule(turn.session_id)

    async def _poll_inbox(self) -> None:
        while True:
            await asyncio.sleep(self.config.turns.inbox_poll)
            try:
                await self.check_inbox()
            except Exception:  # a busy or briefly broken store: try again next time
                self.log.warning("reading the inbox of %s failed", self.agent_id, exc_info=True)

    # ------------------------------------------------------------------ extension contexts

    async def extension(self, session_id: str, extension_id: str) -> ExtensionContext:
        """Act on ``session_id`` as ``extension_id`` outside any turn."""
        session = await self.session(session_id)
        return SessionContexts(self, session.info, None).for_plugin(extension_id)
