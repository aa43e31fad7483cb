"""The session orchestrator: runs turns as ``docs/architecture.md`` promises.

* The inbound message is stored first (``Store.accept``), before anything
  else can fail: nothing accepted is lost.
* One turn at a time per session, in FIFO order, whichever process runs it:
  a worker task per busy session claims the next queued turn through the
  store (``claim_next``), which refuses while a turn of the session runs
  anywhere; different sessions run concurrently.
* The point sequence: ``turn_authorize`` → ``turn_inbound`` → prompt
  assembly → ``turn_prompt`` → ``turn_reply`` (tool calls through
  ``tool_authorize`` and the owning service's action, bounded) →
  ``turn_outbound`` → commit (one transaction with the trace) → effects.
* Many processes, one store: a process that runs turns holds a lease
  (:mod:`turnkit.lease`) renewed by a heartbeat. The turns of a process
  whose lease ran out are taken over (interrupted, re-run once or
  reported, per ``[turns] interrupted``); a live process's turns are never
  touched. A caller waiting for a turn that another process runs hears
  how it ended through the store (``Store.changed`` and ``outcomes``).

Session actions (fork, merge …) are :mod:`turnkit.sessions`'; plugins take
them through :mod:`turnkit.extension`, which calls back in here to
schedule a child's first turn or to wait for a child's turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import attrs
from turnkit_hookspecs import (
    ChunkListener,
    Deny,
    ImageBlock,
    Initiator,
    Message,
    Origin,
    SessionInfo,
    ToolCallBlock,
    ToolOutputBlock,
    TurnResult,
)
from turnkit_hookspecs.context import running_turn

from .errors import NoResolutionError, ResolveError, SessionError, TurnkitError
from .extension import ExtensionContext, SessionContexts
from .ids import new_id
from .instructions import chosen, used
from .lease import ProcessIdentity, is_gone, this_process
from .prompting import assemble
from .sessions import Sessions
from .streaming import TurnStream
from .telemetry import Telemetry
from .tracing import trace_scope

if TYPE_CHECKING:
    from .actions import ActionRegistry
    from .config import Config
    from .points import Points
    from .secrets import Secrets
    from .store import Claim, Store, TurnOutcome, TurnRecord
    from .tracing import TurnTraceSink

#: The extension id the runtime's own audit events carry.
RUNTIME = "turnkit"
_FINAL = ("completed", "denied", "failed", "interrupted")
#: Messages added to the store's search index per transaction, at each heartbeat.
_INDEX_BATCH = 500


class SessionOrchestrator:
    """Runs the turns of one agent's sessions over a :class:`~turnkit.store.Store`."""

    def __init__(
        self,
        agent_id: str,
        store: Store,
        points: Points,
        config: Config,
        actions: ActionRegistry,
        traces: TurnTraceSink,
        logger: logging.Logger,
        secrets: Secrets,
        instructions: str = "",
        telemetry: Telemetry | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.store = store
        self.points = points
        self.config = config
        self.actions = actions
        self.traces = traces
        self.log = logger
        #: A failure's text reaches effects and callers scrubbed (the store scrubs what it keeps).
        self.secrets = secrets
        #: The agent's instructions (``[agent] instructions`` or its file), for sessions without their own.
        self.instructions = instructions
        self.sessions = Sessions(store, agent_id)
        self.telemetry = Telemetry() if telemetry is None else telemetry
        self._identity = this_process()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake: set[str] = set()
        #: Claims made while the session's worker still ran, for that worker (see schedule).
        self._handed: dict[str, Claim] = {}
        #: Callers waiting for a turn: each its own future, so that a caller cancelled (its future
        #: with it) leaves the others waiting; no shield, which costs a round of the event loop.
        self._waiters: dict[str, list[asyncio.Future[TurnResult]]] = {}
        #: Turns waited for here that any process may run: turn id → session id.
        self._remote: dict[str, str] = {}
        #: Turns this process claimed but could not commit, to disown (see _after_failure).
        self._disowned: set[str] = set()
        self._listeners: dict[str, ChunkListener] = {}
        #: What settle() waits on while a session's worker runs; the worker sets and drops it as it ends.
        self._idle: dict[str, asyncio.Event] = {}
        self._housekeeping: asyncio.Task[None] | None = None
        self._activation = asyncio.Lock()
        #: Set (and replaced) whenever the store says another process committed something.
        self._change = asyncio.Event()
        self._active = False
        self._sweeping = False
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, resume: bool = True) -> None:
        """Register the agent; with ``resume``, start running turns at once (see :meth:`activate`).

        Without it the process runs no turn, recovers nothing and takes no
        lease until it is asked to run one (``turnkit send``, an action
        that starts a turn): a command that only reads leaves every other
        process's work alone.
        """
        await self.store.register_agent(self.agent_id)
        if resume:
            await self.activate(sweep=True)

    async def activate(self, *, sweep: bool = False) -> None:
        """Become a runner of this agent's turns (once): take a lease, take over the turns of
        processes whose lease ran out, run the queued turns nobody runs, read the inbox.

        With ``sweep`` the process keeps doing so every ``[store] heartbeat``
        (``turnkit serve``, an embedded agent); without it it only renews
        its lease and hears about the turns it waits for.
        """
        self._sweeping = self._sweeping or sweep
        if self._closing:
            return
        async with self._activation:  # once; callers arriving meanwhile wait for the lease too
            if not self._active:
                await self._activate()

    async def _activate(self) -> None:
        await self._register()  # if it fails, the next turn tries again
        # Registered before anything is claimed: a claimed turn always names a live lease.
        self._active = True
        try:
            await self._recover()
            await self.check_inbox()
        except Exception:  # the lease is held: the heartbeat recovers again
            self.log.warning(
                "recovering the turns of %s failed; trying again later", self.agent_id, exc_info=True
            )
        self._housekeeping = asyncio.get_running_loop().create_task(self._keep_house(), name="turnkit lease")

    async def stop(self, timeout: float = 10.0) -> None:
        """Finish what is under way, then stop taking turns; after ``timeout``, cancel.

        Intake stays open while the running turns finish and the effects they
        queued drain, since an effect may start more work that must not be
        half-done (a fork's first message, run here and now): only when all
        is quiet, or ``timeout`` is over, does the orchestrator refuse new
        messages and cancel what still runs. A cancelled turn stays
        ``running`` in the store, exactly as after a crash; the lease is
        released, so the next process to look (another worker, or the next
        start) takes it over at once.
        """
        dispatch = self.points.dispatch
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    workers = list(self._workers.values())
                    if workers:
                        await asyncio.wait(workers)
                    await dispatch.drain()
                    if not self._workers:
                        break
        self._closing = True
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(
                        TurnkitError("the agent stopped before the turn ran; it stays queued")
                    )
        self._waiters.clear()
        self._remote.clear()
        if self._active:
            with contextlib.suppress(Exception):  # a broken store: the lease simply runs out
                await self.store.release_owner()

    async def _register(self) -> None:
        me, lease = self._identity, self.config.store.lease
        await self.store.register_owner(self.agent_id, me.host, me.pid, me.started, lease)

    async def _recover(self) -> None:
        """Take over the turns of processes whose lease is over; run what nobody runs."""
        for owner in await self.store.owners(self.agent_id):
            mine = owner.id == self.store.owner
            if owner.live and not mine and is_gone(ProcessIdentity(owner.host, owner.pid, owner.started)):
                self.log.info("process %s (pid %d) is gone: its lease ends now", owner.id, owner.pid)
                await self.store.expire_owner(owner.id)
        for taken in await self.store.take_over(self.agent_id, self.config.turns.interrupted):
            turn = taken.turn
            if taken.rerun is not None:
                self.log.warning(
                    "turn %s of session %s was interrupted (its process %s stopped holding its lease);"
                    " re-running its message as turn %s",
                    turn.turn_id,
                    turn.session_id,
                    taken.owner,
                    taken.rerun.turn_id,
                )
            else:
                self.log.warning(
                    "turn %s of session %s was interrupted (its process %s stopped holding its lease);"
                    " its message stays stored, not re-run",
                    turn.turn_id,
                    turn.session_id,
                    taken.owner,
                )
        for session_id in await self.store.claimable_sessions(self.agent_id):
            self.schedule(session_id)

    async def _keep_house(self) -> None:
        """Renew the lease, hear about turns waited for, and (when sweeping) recover and read the inbox."""
        store, turns = self.config.store, self.config.turns
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + store.heartbeat
        next_inbox = loop.time() + turns.inbox_poll
        while True:
            try:
                due = min(next_beat, next_inbox) if self._sweeping else next_beat
                changed = await self.store.changed(max(0.0, due - loop.time()))
                if changed:  # the one reader of store.changed(): others wait on self._change
                    self._change.set()
                    self._change = asyncio.Event()
                if self._remote and (changed or loop.time() >= due):
                    await self.check_remote()
                now = loop.time()
                if self._sweeping and now >= next_inbox:
                    next_inbox = now + turns.inbox_poll
                    await self.check_inbox()
                if now >= next_beat:
                    next_beat = now + store.heartbeat
                    await self._heartbeat()
            except Exception:  # a busy or briefly broken store: try again next time
                self.log.warning("keeping the lease of %s failed", self.agent_id, exc_info=True)
                await asyncio.sleep(min(1.0, store.heartbeat))

    async def _heartbeat(self) -> None:
        if not await self.store.renew_owner(self.config.store.lease):
            self.log.warning(
                "the lease of this process had run out (was the event loop blocked, or the store"
                " unreachable, for longer than [store] lease?): turns it was running may have been"
                " taken over by another process; taking a new lease"
            )
            await self._register()
        if self._disowned:
            await self._disown()  # and recovers
        elif self._sweeping:
            await self._recover()
        if self._sweeping:
            await self.store.forget_idempotency_keys(time.time() - self.config.store.idempotency_keep)
            # Until caught up, a short transaction at a time: turns go on between them.
            while await self.store.index_messages(_INDEX_BATCH) == _INDEX_BATCH:
                pass

    # ------------------------------------------------------------------ sessions

    async def open_session(
        self,
        session_id: str | None = None,
        kind: str = "chat",
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        """Return session ``session_id``, creating it if absent (a new id when none is given)."""
        return (await self.sessions.open(session_id, kind, metadata)).info

    async def set_status(self, session_id: str, status: str) -> None:
        """Move a session to ``status``."""
        await self.sessions.set_status(session_id, status)

    # ------------------------------------------------------------------ turns

    async def submit(
        self,
        session_id: str,
        message: Message,
        initiator: Initiator = "user",
        initiator_id: str | None = None,
        stream: ChunkListener | None = None,
        idempotency_key: str | None = None,
        origin: Origin | None = None,
    ) -> TurnResult:
        """Store ``message`` as a queued turn, wait for it to run (here or in another process)
        and return how it ended.

        ``stream`` receives the reply's chunks when this process runs the
        turn. With an ``idempotency_key`` an earlier call already stored,
        nothing new is stored: the result is that call's turn's. ``origin``
        is stored with the turn (``TurnInfo.origin``).
        """
        _, waiter = await self._enqueue(
            session_id, message, initiator, initiator_id, stream, idempotency_key, origin
        )
        return await waiter  # cancelled with its caller: the turn goes on

    async def enqueue(
        self,
        session_id: str,
        message: Message,
        initiator: Initiator = "user",
        initiator_id: str | None = None,
        stream: ChunkListener | None = None,
    ) -> TurnRecord:
        """Store ``message`` as a queued turn of an active session and schedule it; don't wait."""
        turn, _ = await self._enqueue(session_id, message, initiator, initiator_id, stream, None, None)
        return turn

    async def _enqueue(
        self,
        session_id: str,
        message: Message,
        initiator: Initiator,
        initiator_id: str | None,
        stream: ChunkListener | None,
        key: str | None,
        origin: Origin | None,
    ) -> tuple[TurnRecord, asyncio.Future[TurnResult]]:
        if self._closing:
            raise TurnkitError("the agent is stopping; it accepts no more messages")
        await self.activate()
        record = await self.sessions.get(session_id)
        if record.info.status != "active":
            raise SessionError(f"session {session_id!r} is {record.info.status}; it takes no more turns")
        turn_id, history = new_id(), self.config.turns.history
        waiter: asyncio.Future[TurnResult] = asyncio.get_running_loop().create_future()
        self._waiters[turn_id] = [waiter]
        if stream is not None:
            self._listeners[turn_id] = stream
        try:
            if session_id in self._workers:
                turn = await self.store.accept(
                    session_id, turn_id, message, initiator, initiator_id, idempotency_key=key, origin=origin
                )
                claim = None
            else:  # an idle session: accept and start the turn in one commit
                turn, claim = await self.store.accept_and_claim(
                    session_id,
                    turn_id,
                    message,
                    initiator,
                    initiator_id,
                    history,
                    idempotency_key=key,
                    origin=origin,
                )
        except BaseException:
            self._waiters.pop(turn_id, None)
            self._listeners.pop(turn_id, None)
            raise
        if turn.turn_id != turn_id:  # a retry: an earlier call with this key stored the turn
            self._waiters.pop(turn_id, None)
            self._listeners.pop(turn_id, None)
            self._waiters.setdefault(turn.turn_id, []).append(waiter)
            self._remote.setdefault(turn.turn_id, session_id)
            await self.check_remote()
            return turn, waiter
        if claim is None:  # queued behind another turn, which may run in another process
            self._remote[turn_id] = session_id
        self.schedule(session_id, claim)
        return turn, waiter

    async def queued(self, session_id: str) -> list[tuple[TurnRecord, Message]]:
        """The session's queued turns (stored, not yet started), in the order they will run."""
        await self.sessions.get(session_id)
        return await self.store.queued_turns(session_id)

    async def settle(self, session_id: str) -> None:
        """Wait until no turn of ``session_id`` is queued or running, in this process or any other.

        A merge waits here for its child's turns, which another worker's
        sweep may have picked up.
        """
        while True:
            while session_id in self._workers:
                await self._idle.setdefault(session_id, asyncio.Event()).wait()
            pending = [t for t in await self.store.turns(session_id) if t.status in ("queued", "running")]
            if not pending:
                return
            if session_id not in self._workers and not any(t.status == "running" for t in pending):
                self.schedule(session_id)  # queued and nobody runs it: run it here
                continue
            # asyncio.timeout, not wait_for, which on 3.11 may swallow a cancellation
            with contextlib.suppress(TimeoutError):  # look again on a change, or now and then
                async with asyncio.timeout(self.config.store.heartbeat):
                    await self._change.wait()

    def schedule(self, session_id: str, claim: Claim | None = None) -> None:
        """Make sure a worker runs the session's queued turns (starting with ``claim``, if given).

        A session is *woken* when a turn may be queued for it: its worker
        then looks in the store again before it stops. A ``claim`` is the
        turn itself, started already, so it wakes nothing: a worker that
        ran a claimed turn and was not woken meanwhile stops without asking
        the store (an empty claim would cost a write transaction per turn).
        A turn queued by another process meanwhile is that process's to
        claim (it waits for it, and claims it when the session is idle).
        A claim made while the session's worker was still going (writes
        are answered at commit, so a caller may start a turn while that
        worker is asking the store for one) is handed to that worker.
        """
        if claim is None:
            self._wake.add(session_id)
        elif session_id in self._workers:  # a worker that looked in the store meanwhile
            self._handed[session_id] = claim  # takes it before it stops
            self._wake.add(session_id)
            return
        if session_id not in self._workers and not self._closing:
            work = self._work(session_id, claim)
            self._workers[session_id] = asyncio.get_running_loop().create_task(
                work, name=f"turns {session_id}"
            )

    async def _work(self, session_id: str, claim: Claim | None) -> None:
        """Run the session's queued turns one after another until none is left (or one runs elsewhere).

        A turn started in an idle session (a ``claim`` from ``accept_and_claim``) had nothing
        queued before it: after it, the worker asks the store again only if woken meanwhile.
        After a turn taken from the queue it asks anyway, as more may wait behind it.
        """
        history = self.config.turns.history
        try:
            while not self._closing:
                queued = False  # whether the turn about to run came from the store's queue
                if claim is None:
                    claim = self._handed.pop(session_id, None)
                if claim is None:
                    self._wake.discard(session_id)
                    claim = await self.store.claim_next(session_id, history)
                    if claim is None:
                        if session_id in self._wake:  # a message arrived while we looked
                            continue
                        return
                    queued = True
                turn_id = claim.turn.turn_id
                self._remote.pop(turn_id, None)  # it runs here: its waiter is settled here
                try:
                    result = await self.run_turn(claim)
                except Exception as exc:  # the store failed under us, or the turn was taken over
                    self.log.exception("turn %s could not be finished", turn_id)
                    await self._after_failure(session_id, turn_id, exc)
                    if self._disowned:  # the store is still broken: the heartbeat takes it from here
                        return
                    claim = None  # the store answers again: run what is queued (the re-run first)
                    continue
                self._settle_waiter(turn_id, result)
                claim = None
                if not queued and session_id not in self._wake:  # nothing was queued meanwhile
                    return
        finally:
            self._workers.pop(session_id, None)
            idle = self._idle.pop(session_id, None)  # made by settle() waiting for this worker
            if idle is not None:
                idle.set()

    async def _after_failure(self, session_id: str, turn_id: str, error: Exception) -> None:
        """A turn that could not be committed (the store failed, or it was taken over meanwhile).

        Its caller waits for the turn's re-run. A turn still ``running`` in
        the store is disowned: this process gives up its lease on it (now,
        or at a later heartbeat while the store stays broken), so that a
        takeover re-runs it instead of its session waiting behind it for
        as long as this process lives.
        """
        self._remote[turn_id] = session_id
        self._disowned.add(turn_id)
        with contextlib.suppress(Exception):  # a broken store: the heartbeat tries again
            await self._disown()
            await self.check_remote()

    async def _disown(self) -> None:
        """Give up this process's lease on the turns it could not commit, and take them over."""
        if self._disowned:
            await self.store.disown(sorted(self._disowned))
            self._disowned.clear()
            await self._recover()

    async def check_remote(self) -> None:
        """Settle the waiters of turns that ended in any process; claim queued ones nobody runs."""
        if not self._remote:
            return
        for outcome in await self.store.outcomes(list(self._remote)):
            self._follow(outcome)

    def _follow(self, outcome: TurnOutcome) -> None:
        turn = outcome.turn
        session_id = self._remote.get(turn.turn_id)
        if session_id is None:
            return
        if turn.status not in _FINAL:
            if turn.status == "queued" and not outcome.busy and session_id not in self._workers:
                self.schedule(session_id)  # its session is idle: run it here
            return
        del self._remote[turn.turn_id]
        if outcome.rerun is not None:  # taken over and queued again: wait for the re-run
            waiters = self._waiters.pop(turn.turn_id, None)
            if waiters:
                self._waiters.setdefault(outcome.rerun, []).extend(waiters)
                self._remote[outcome.rerun] = session_id
            return
        self._settle_waiter(turn.turn_id, TurnResult(turn.info, reply=outcome.reply, deny=outcome.deny))

    def _settle_waiter(self, turn_id: str, outcome: TurnResult | BaseException) -> None:
        self._listeners.pop(turn_id, None)
        self._remote.pop(turn_id, None)
        for waiter in self._waiters.pop(turn_id, ()):
            if waiter.done():  # its caller was cancelled
                continue
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
        self.telemetry.turn_started(info)
        try:
            session = await self.sessions.get(turn.session_id)
            contexts = SessionContexts(self, session.info, turn.turn_id)
            points = self.points
            instructions: str | None = None  # what the prompt began with, recorded with the turn
            try:
                deny = await points.turn_authorize(contexts, info, inbound)
                if deny is not None:
                    error = f"denied by {deny.plugin}: {deny.reason}"
                    done = await self._finish(turn, "denied", error=error, deny=deny)
                    await points.turn_denied(contexts, done.info, inbound, deny)
                    return TurnResult(done.info, deny=deny)
                message = await points.turn_inbound(contexts, info, inbound)
                text = chosen(claim.instructions, self.instructions)
                instructions = used(await points.turn_instructions(contexts, info, text))
                tools = await points.turn_tools(contexts, info, self.actions.tools)
                prompt = assemble(claim.window, turn.message_id, message, claim.context, tools, instructions)
                prompt = await points.turn_prompt(contexts, info, prompt)
                stream = TurnStream(points, contexts, info, self._listeners.get(turn.turn_id))
                steps, reply = await self._reply(contexts, info, prompt, stream)
                reply = await points.turn_outbound(contexts, info, reply)
            except Exception as exc:
                error = self.secrets.scrub(f"{type(exc).__name__}: {exc}")
                # A caller waiting here reports the failure itself (one line, in words); for
                # anyone else (a queued turn, another process's caller) the log is the report.
                waited = turn.turn_id in self._waiters
                self.log.log(
                    logging.INFO if waited else logging.WARNING,
                    "turn %s of session %s failed: %s",
                    turn.turn_id,
                    turn.session_id,
                    error,
                )
                # contributed context stays pending: no answer was made with it
                done = await self._finish(turn, "failed", error=error, instructions=instructions)
                await points.turn_failed(contexts, done.info, inbound, error)
                return TurnResult(done.info)
            consumed = [item.id for item in claim.context]
            done = await self._finish(
                turn, "completed", messages=[*steps, reply], consumed=consumed, instructions=instructions
            )
            finished = done.info
            await points.turn_completed(contexts, finished, inbound, reply)
            return TurnResult(finished, reply=reply)
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
            reply = await self.points.turn_reply(contexts, info, prompt, stream)
            calls = reply.tool_calls
            if not calls:
                return steps, reply
            if len(steps) // 2 >= limit:
                raise TurnkitError(
                    f"the model asked for tools more than {limit} times ([turns] max_tool_steps)"
                )
            offered = {tool.name: tool.plugin for tool in prompt.tools}
            outputs = []
            for call in calls:
                with self.telemetry.tool_step(info, call):
                    outputs.append(await self._run_tool(contexts, info, call, offered))
            results = Message("tool", outputs)
            steps += [reply, results]
            prompt = attrs.evolve(prompt, messages=(*prompt.messages, reply, results))

    async def _run_tool(
        self, contexts: SessionContexts, info: Any, call: ToolCallBlock, offered: dict[str, str | None]
    ) -> ToolOutputBlock:
        """Run a tool call the guard allows: a plugin's tool by that plugin, else a service's action.

        ``offered`` maps the names on offer this turn to their plugins
        (``None``: a service's): a tool left out of the prompt cannot be
        called either. A plugin's failure is the model's to read (an error
        output naming the plugin), not the turn's: a tool that breaks is one
        answer, and the model may go on without it.
        """
        deny = await self.points.tool_authorize(contexts, info, call)
        if deny is not None:
            denied = self.secrets.scrub(f"denied by {deny.plugin}: {deny.reason}")
            return ToolOutputBlock(call.tool_call_id, denied, is_error=True)
        if call.name not in offered:
            return ToolOutputBlock(call.tool_call_id, f"unknown tool {call.name!r}", is_error=True)
        plugin = offered[call.name]
        if plugin is None:
            return await self.actions.run_tool(call)
        try:
            output = await self.points.tool_call(plugin, contexts, info, call)
        except NoResolutionError:
            failed = f"plugin {plugin!r} offered the tool {call.name!r} but its tool_call did not answer"
        except ResolveError as exc:
            failed = str(exc)
        else:
            if isinstance(output.output, str) and all(isinstance(i, ImageBlock) for i in output.images):
                scrubbed = self.secrets.scrub(output.output)
                return attrs.evolve(output, tool_call_id=call.tool_call_id, output=scrubbed)
            failed = f"plugin {plugin!r} answered {call.name!r} with an output that is not text and images"
        failed = self.secrets.scrub(failed)
        self.log.warning("tool %s: %s", call.name, failed)
        return ToolOutputBlock(call.tool_call_id, failed, is_error=True)

    async def _finish(
        self,
        turn: TurnRecord,
        status: Any,
        *,
        error: str | None = None,
        deny: Deny | None = None,
        messages: list[Message] | None = None,
        consumed: list[int] | None = None,
        instructions: str | None = None,
    ) -> TurnRecord:
        done = await self.store.finish_turn(
            turn.turn_id,
            status,
            error=error,
            deny=deny,
            messages=messages or (),
            consumed=consumed or (),
            trace=self.traces.take(),
            instructions=instructions,
        )
        self.telemetry.turn_finished(done)
        took = 1000 * (done.finished_at - done.started_at) if done.finished_at and done.started_at else 0.0
        self.log.info("session %s turn %d %s in %.0f ms", done.session_id, done.number, done.status, took)
        return done

    async def flush_traces(self) -> None:
        """Store the trace of effects that finished after their turn was committed."""
        pending = self.traces.take()
        if pending:
            await self.store.append_trace(pending)

    # ------------------------------------------------------------------ inboxes

    async def check_inbox(self) -> None:
        """Take what other agents delivered to this agent and schedule those turns."""
        for turn in await self.store.take_inbox(self.agent_id):
            self.schedule(turn.session_id)

    # ------------------------------------------------------------------ extension contexts

    async def extension(self, session_id: str, extension_id: str) -> ExtensionContext:
        """Act on ``session_id`` as ``extension_id`` outside any turn."""
        session = await self.sessions.get(session_id)
        return SessionContexts(self, session.info, None).for_plugin(extension_id)
