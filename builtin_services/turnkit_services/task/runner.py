"""One run of a task: claim it, ask ``task_authorize``, run its turn, record how it ended.

A run is identified by ``task-<name>-<due time>``, so "has this due time
run already?" has one answer for every process sharing the store:

1. **Claim.** The run record is created with compare-and-set; only one
   process succeeds. A process finding the record asks whether the run's
   turn was accepted (its message, tagged with the run id, is queued in the
   session or in its history): then the run happened, or is happening, and is not
   started again. A claim without an accepted turn belongs to its owner for
   ``claim_lease`` seconds, then anyone may take it over (its owner died
   between claiming and queueing the turn).
2. **Authorize.** ``task_authorize`` may deny: the run is recorded as
   ``denied`` and nothing runs. Then the claim becomes ``running`` by
   compare-and-set, only if it is still ours (a slow guard may have let the
   lease run out and another process take the run over).
3. **Turn.** The instructions go to the run's session as a turn like any
   other; the orchestrator stores the message before running it, and re-runs
   it once at restart if a crash interrupts it.
4. **Record.** The outcome is written once (compare-and-set from an
   unfinished status) and ``task_finished`` fires. Whoever sees the turn end
   first writes it: this runner when the turn returns, or the service's
   ``turn_completed``/``turn_failed``/``turn_denied`` implementations, which
   are the only ones to see a turn a restart re-ran.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Literal

import attrs
from turnkit_hookspecs import ExecutionContext, Message, TurnResult

from .model import FINAL, RunStatus, TaskInfo, TaskRun
from .records import TaskStore
from .settings import TaskSettings
from .triggers import iso, parse_iso, stamp

#: The metadata key of a run's message: ``{"name", "run", "scheduled", "trigger", "agent_id"}``.
RUN_METADATA = "task"


class ClaimBusy(Exception):
    """Another process claimed this run moments ago and may still be starting it."""


def run_of(message: Message, agent_id: str) -> str | None:
    """The run id of agent ``agent_id`` a message was sent for, or ``None`` for any other message."""
    tag = message.metadata.get(RUN_METADATA)
    if not isinstance(tag, Mapping) or tag.get("agent_id") != agent_id:
        return None
    run = tag.get("run")
    return run if isinstance(run, str) else None


class Runner:
    """Runs tasks on behalf of one service object (``owner`` names it in claims)."""

    def __init__(
        self,
        context: ExecutionContext,
        store: TaskStore,
        settings: TaskSettings,
        clock: Callable[[], datetime],
        owner: str,
    ) -> None:
        self.context = context
        self.store = store
        self.settings = settings
        self.clock = clock
        self.owner = owner

    # ------------------------------------------------------------------ starting runs

    async def scheduled(self, task: TaskInfo, due: datetime, skipped: int = 0) -> TaskRun:
        """Run ``task`` for the due time ``due``, unless that run already happened or is happening.

        Returns the run (the existing one if it was found). Raises
        :class:`ClaimBusy` when another process holds a fresh claim on it.
        """
        run = self._new_run(task, f"task-{task.name}-{stamp(due)}", "schedule", due, skipped)
        while not await self.store.claim(run):
            existing = await self.store.run(run.run_id)
            if existing is None:
                continue  # deleted between our claim and our look: claim again
            if existing.status in FINAL or await self.accepted(existing):
                return existing
            run = await self._take_over(existing)
            break
        return await self._execute(task, run)

    async def manual(self, task: TaskInfo) -> TaskRun:
        """Run ``task`` now, by hand, as ``task-<name>-<now>-manual`` (``-2``, ``-3`` … within one second)."""
        now = self.clock()
        base = f"task-{task.name}-{stamp(now)}-manual"  # never the id of a scheduled run
        for number in itertools.count(1):
            run = self._new_run(task, base if number == 1 else f"{base}-{number}", "manual", now, 0)
            if await self.store.claim(run):
                return await self._execute(task, run)
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends

    def _new_run(
        self,
        task: TaskInfo,
        run_id: str,
        trigger: Literal["schedule", "manual"],
        scheduled: datetime,
        skipped: int,
    ) -> TaskRun:
        return TaskRun(
            run_id=run_id,
            task=task.name,
            session_id=task.session or run_id,
            trigger=trigger,
            scheduled=iso(scheduled),
            status="claimed",
            owner=self.owner,
            claimed_at=iso(self.clock()),
            skipped=skipped,
        )

    async def _take_over(self, existing: TaskRun) -> TaskRun:
        now = self.clock()

        def take(run: TaskRun) -> TaskRun:
            age = (now - parse_iso(run.claimed_at)).total_seconds()
            if run.status in FINAL or (run.owner != self.owner and age < self.settings.claim_lease):
                return run
            return attrs.evolve(run, owner=self.owner, claimed_at=iso(now), status="claimed")

        taken = await self.store.change_run(existing.run_id, take)
        if taken is None or taken.owner != self.owner or taken.status in FINAL:
            raise ClaimBusy(f"run {existing.run_id} is claimed by {existing.owner}")
        return taken

    async def accepted(self, run: TaskRun) -> bool:
        """Whether the run's turn was accepted: its message is stored in its session.

        A message waits among the session's queued turns until its turn
        starts (behind a long turn of a target session, perhaps in another
        process), so those count too. They are read before the history: a
        turn starting in between is then seen in one or the other.
        """
        sessions = self.context.session
        if await sessions.get(run.session_id) is None:
            return False
        agent = self.context.agent_id
        waiting = [message for _, message in await sessions.queued(run.session_id)]
        history = await sessions.history(run.session_id)
        return any(run_of(message, agent) == run.run_id for message in [*waiting, *history])

    # ------------------------------------------------------------------ running

    async def _execute(self, task: TaskInfo, run: TaskRun) -> TaskRun:
        deny = await self.context.plugins.guard("task_authorize", task=task, run=run)
        if deny is not None:
            return await self._finished(run, task, "denied", error=deny.reason, denied_by=deny.plugin)
        sessions = self.context.session
        message = Message.of(
            "user",
            task.instructions,
            author=f"task:{task.name}",
            metadata={
                RUN_METADATA: {
                    "name": task.name,
                    "run": run.run_id,
                    "scheduled": run.scheduled,
                    "trigger": run.trigger,
                    "agent_id": self.context.agent_id,
                }
            },
        )
        started = iso(self.clock())
        mine = await self.store.change_run(run.run_id, partial(self._start, started))
        if mine is None or mine.owner != self.owner or mine.status != "running":
            return mine or run  # taken over (our claim outlived its lease while authorizing): theirs now
        run = mine
        try:
            await self._open_session(task, run)
            result = await sessions.turn(
                run.session_id, message, initiator="system", initiator_id=f"task:{task.name}"
            )
        except Exception as exc:
            if await self.accepted(run):  # the turn is stored and will run: it is recorded when it ends
                self.context.logger.warning("task run %s: its turn is queued but %s", run.run_id, exc)
                return await self.store.run(run.run_id) or run
            return await self._finished(run, task, "failed", error=f"{type(exc).__name__}: {exc}")
        return await self.record(run, task, result)

    def _start(self, started: str, current: TaskRun) -> TaskRun:
        """``current`` marked ``running``, if it is still our claim."""
        if current.owner != self.owner or current.status != "claimed":
            return current
        return attrs.evolve(current, status="running", started=started)

    async def _open_session(self, task: TaskInfo, run: TaskRun) -> None:
        """Open the run's session: its own (new, of kind ``task``), or the task's target session."""
        agent = self.context.agent_id
        metadata = {"task": task.name, "run": run.run_id, "agent_id": agent}
        session = await self.context.session.open(run.session_id, kind="task", metadata=metadata)
        owner = session.metadata.get("agent_id", agent)
        if task.session is None and (session.metadata.get("run") != run.run_id or owner != agent):
            raise ValueError(
                f"session {run.session_id!r} exists already and is not this run's (agent {owner!r});"
                " agents sharing a store need distinct task names"
            )

    async def record(self, run: TaskRun, task: TaskInfo | None, result: TurnResult) -> TaskRun:
        """Record the outcome of the run's turn (unless it is recorded already)."""
        status = result.turn.status
        if status == "completed":
            return await self._finished(
                run, task, "completed", turn_id=result.turn.turn_id, reply=result.reply
            )
        if status == "denied" and result.deny is not None:
            return await self._finished(
                run,
                task,
                "denied",
                turn_id=result.turn.turn_id,
                error=result.deny.reason,
                denied_by=result.deny.plugin,
            )
        error = result.turn.error or f"the turn ended {status}"
        return await self._finished(run, task, "failed", turn_id=result.turn.turn_id, error=error)

    async def _finished(
        self,
        run: TaskRun,
        task: TaskInfo | None,
        status: RunStatus,
        *,
        turn_id: str | None = None,
        reply: Message | None = None,
        error: str | None = None,
        denied_by: str | None = None,
    ) -> TaskRun:
        """Write the final status once; the writer that moved it fires ``task_finished``."""
        finished = iso(self.clock())
        moved = False

        def finish(current: TaskRun) -> TaskRun:
            nonlocal moved
            moved = current.status not in FINAL
            if not moved:
                return current
            return attrs.evolve(
                current,
                status=status,
                finished=finished,
                turn_id=turn_id or current.turn_id,
                reply=reply.text if reply is not None else None,
                error=error,
                denied_by=denied_by,
            )

        done = await self.store.change_run(run.run_id, finish)
        if done is None:  # its task was deleted meanwhile, and its records with it
            return run
        if moved:
            if task is not None:
                await self.context.plugins.effect("task_finished", task=task, run=done, reply=reply)
            await self.store.prune(done.task, self.settings.keep_runs)
        return done
