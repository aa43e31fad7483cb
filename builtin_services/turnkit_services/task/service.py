"""The task service: tasks defined in config or by actions, run by hand or on a schedule.

Each run is a turn (see :mod:`turnkit_services.task.runner`) in a session
of kind ``task`` named after the run, or in the task's target session.
``start`` only merges the configured tasks into the store; the scheduler
runs in ``serve`` (``turnkit serve``), looking for due runs every
``poll`` seconds. It keeps one ``next_run`` per task in the store and
advances it only after the due run's turn was accepted, so a restart
neither loses nor repeats a due run; due times that piled up while the host
was down follow the task's missed-runs policy (:mod:`.schedule`).

Time comes from ``clock`` (an aware ``datetime``), so that tests and
simulations can drive the schedule: ``TaskService(clock=my_clock)`` and
``await service.run_due()``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import attrs
from turnkit_hookspecs import (
    Deny,
    ExecutionContext,
    Message,
    Service,
    TurnInfo,
    TurnResult,
    action,
    hookimpl,
)

from . import points
from .model import FINAL, TaskInfo, TaskRecord, TaskRun, TaskStatus
from .records import TaskStore
from .runner import ClaimBusy, Runner, run_of
from .schedule import Due, plan
from .settings import MISSED_POLICIES, MissedPolicy, TaskSettings, TaskSpec, check_settings, check_spec
from .triggers import Trigger, iso, parse_iso, parse_trigger

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


class TaskService(Service):
    """Scheduled and manual task runs, each a session of kind task."""

    name = "task"
    hookspecs = (points,)
    settings_class = TaskSettings
    settings: TaskSettings

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or utc_now
        #: Names this service object in the run records it claims.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._runner: Runner | None = None
        #: Catch-up work per task name, while it runs (one at a time per task).
        self._inflight: dict[str, asyncio.Task[list[TaskRun]]] = {}

    @property
    def store(self) -> TaskStore:
        """This agent's tasks and runs in the agent's store."""
        return TaskStore(self.storage, self.context.agent_id)

    @property
    def runner(self) -> Runner:
        """What starts and records runs (set at start)."""
        if self._runner is None:
            raise RuntimeError("the task service is not started")
        return self._runner

    def now(self) -> datetime:
        """The service's clock: an aware ``datetime``."""
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError(f"the task service's clock returned a naive datetime ({moment}); give it a zone")
        return moment

    # ------------------------------------------------------------------ lifecycle

    async def start(self, context: ExecutionContext) -> None:
        """Check the settings and merge the configured tasks into the store; starts no scheduler."""
        if self.settings is None:
            self.settings = TaskSettings()
        check_settings(self.settings)
        self.context = context
        self._runner = Runner(context, self.store, self.settings, self.now, self.owner)
        await self._merge_config()

    async def serve(self, context: ExecutionContext) -> None:
        """Start due runs every ``poll`` seconds, until cancelled."""
        try:
            while True:
                try:
                    await self._launch_due()
                except Exception:  # a briefly unavailable store: look again next time
                    context.logger.exception("task scheduler: looking for due runs failed")
                await asyncio.sleep(self.settings.poll)
        finally:
            await self._cancel_inflight()

    async def stop(self) -> None:
        """Cancel runs still being started; their turns, if accepted, finish or are recovered."""
        await self._cancel_inflight()

    async def _cancel_inflight(self) -> None:
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ configured tasks

    async def _merge_config(self) -> None:
        """Create, refresh or remove the tasks of ``[[service.task.tasks]]``.

        A configured task keeps its stored schedule (``next_run``) across
        restarts; when its table changed, the table wins (and a changed
        trigger is scheduled afresh). A config task no longer in the file is
        deleted.
        """
        now = self.now()
        wanted = {spec.name for spec in self.settings.tasks}
        for spec in self.settings.tasks:
            fresh = TaskRecord(
                spec, "config", self._first_run(spec, now), created=iso(now), updated=iso(now), config=spec
            )
            if not await self.store.add(fresh):
                await self.store.change(spec.name, partial(self._apply_config, spec=spec, now=now))
        for record in await self.store.tasks():
            if record.source == "config" and record.spec.name not in wanted:
                await self.store.remove(record.spec.name)

    def _apply_config(self, old: TaskRecord, *, spec: TaskSpec, now: datetime) -> TaskRecord:
        if old.source == "config" and old.config == spec:
            return old
        new = attrs.evolve(old, spec=spec, source="config", config=spec, updated=iso(now))
        if _when(old.spec) != _when(spec) or old.source != "config":
            new = attrs.evolve(new, next_run=self._first_run(spec, now))
        return new

    # ------------------------------------------------------------------ scheduling

    def trigger(self, spec: TaskSpec) -> Trigger:
        """When ``spec`` is due, in its time zone (or the service's)."""
        return parse_trigger(spec.cron, spec.at, spec.timezone or self.settings.timezone)

    def _first_run(self, spec: TaskSpec, now: datetime) -> str | None:
        first = self.trigger(spec).next_after(now) if spec.enabled else None
        return iso(first) if first is not None else None

    def _policy(self, spec: TaskSpec) -> MissedPolicy:
        return spec.missed or self.settings.missed

    async def run_due(self) -> list[TaskRun]:
        """Run what is due by the clock, wait for those runs, and return them.

        This is one step of the serve loop, which does the same every
        ``poll`` seconds without waiting. A task whose runs are still being
        made by an earlier step is left to it.
        """
        launched = await self._launch_due()
        done = await asyncio.gather(*launched)
        return [run for runs in done for run in runs]

    async def _launch_due(self) -> list[asyncio.Task[list[TaskRun]]]:
        now = self.now()
        launched = []
        for record in await self.store.tasks():
            name = record.spec.name
            if name in self._inflight or not _is_due(record, now):
                continue
            work = asyncio.get_running_loop().create_task(self._catch_up(name), name=f"task {name} runs")
            self._inflight[name] = work
            work.add_done_callback(partial(self._done, name))
            launched.append(work)
        return launched

    def _done(self, name: str, _: object) -> None:
        self._inflight.pop(name, None)

    async def _catch_up(self, name: str) -> list[TaskRun]:
        """Deal with the due times of task ``name`` until it is not due: run, skip, advance."""
        runs: list[TaskRun] = []
        try:
            while True:
                record = await self.store.task(name)
                if record is None or record.next_run is None or not record.spec.enabled:
                    return runs
                spec = record.spec
                due = plan(
                    self.trigger(spec),
                    parse_iso(record.next_run),
                    self.now(),
                    self._policy(spec),
                    self.settings.grace,
                )
                if due is None:
                    return runs
                if due.run_at is not None:
                    runs.append(await self.runner.scheduled(self.describe(record), due.run_at, due.skipped))
                if not await self._advance(record, due):
                    return runs
        except ClaimBusy as busy:
            self.context.logger.info("task %s: %s; trying again later", name, busy)
        except Exception:
            self.context.logger.exception("task %s: a scheduled run could not be made", name)
        return runs

    async def _advance(self, seen: TaskRecord, due: Due) -> bool:
        """Move ``next_run`` past the due time dealt with, unless the task changed meanwhile."""
        moved = False

        def advance(current: TaskRecord) -> TaskRecord:
            nonlocal moved
            moved = current.next_run == seen.next_run and _when(current.spec) == _when(seen.spec)
            if not moved:
                return current
            return attrs.evolve(
                current,
                next_run=iso(due.next_run) if due.next_run is not None else None,
                skipped=current.skipped + due.skipped,
                updated=iso(self.now()),
            )

        await self.store.change(seen.spec.name, advance)
        return moved

    # ------------------------------------------------------------------ runs a restart re-ran

    @hookimpl
    async def turn_completed(self, turn: TurnInfo, message: Message, reply: Message) -> None:
        """Record a run whose turn completed (also one a restart re-ran)."""
        await self._turn_ended(message, TurnResult(turn, reply=reply))

    @hookimpl
    async def turn_failed(self, turn: TurnInfo, message: Message) -> None:
        """Record a run whose turn failed."""
        await self._turn_ended(message, TurnResult(turn))

    @hookimpl
    async def turn_denied(self, turn: TurnInfo, message: Message, deny: Deny) -> None:
        """Record a run whose turn ``turn_authorize`` refused."""
        await self._turn_ended(message, TurnResult(turn, deny=deny))

    async def _turn_ended(self, message: Message, result: TurnResult) -> None:
        if self._context is None:
            return
        run_id = run_of(message, self._context.agent_id)
        if run_id is None:
            return
        run = await self.store.run(run_id)
        if run is None or run.status in FINAL:
            return
        record = await self.store.task(run.task)
        await self.runner.record(run, self.describe(record) if record else None, result)

    # ------------------------------------------------------------------ actions

    def describe(self, record: TaskRecord) -> TaskInfo:
        """A stored task as users and plugins see it."""
        spec = record.spec
        return TaskInfo(
            name=spec.name,
            instructions=spec.instructions,
            trigger=self.trigger(spec).kind,
            cron=spec.cron,
            at=spec.at,
            session=spec.session,
            timezone=spec.timezone or self.settings.timezone,
            missed=self._policy(spec),
            enabled=spec.enabled,
            source=record.source,
            next_run=record.next_run,
            skipped=record.skipped,
        )

    async def _record(self, name: str) -> TaskRecord:
        record = await self.store.task(name)
        if record is None:
            names = ", ".join(r.spec.name for r in await self.store.tasks()) or "none"
            raise ValueError(f"no task {name!r} (tasks: {names})")
        return record

    async def _editable(self, name: str) -> TaskRecord:
        record = await self._record(name)
        if record.source == "config":
            raise ValueError(
                f"task {name!r} is defined in the configuration ([[service.task.tasks]]); change it there"
            )
        return record

    def _checked(self, spec: TaskSpec, now: datetime, old: TaskSpec | None = None) -> TaskSpec:
        """``spec`` if it is valid; a one-off time newly given must be in the future."""
        check_spec(spec, self.settings)
        at = self.trigger(spec).at
        if at is not None and at <= now and (old is None or _when(old) != _when(spec)):
            raise ValueError(f"task.at: {spec.at!r} is in the past (now is {iso(now)})")
        return spec

    @action(name="list")
    async def list_tasks(self) -> list[TaskInfo]:
        """Every task, by name."""
        return [self.describe(record) for record in await self.store.tasks()]

    @action
    async def create(
        self,
        name: str,
        instructions: str,
        cron: str | None = None,
        at: str | None = None,
        session: str | None = None,
        timezone: str | None = None,
        missed: str | None = None,
        enabled: bool = True,
    ) -> TaskInfo:
        """Create a task: manual, or with a cron expression or a one-off time (at).

        Args:
            name: the task's name, unique in the agent.
            instructions: what the model is asked to do on each run.
            cron: when it runs: a cron expression of five fields (minute hour day month weekday).
            at: when it runs once: an ISO 8601 date and time.
            session: run in this session (default: a new session per run).
            timezone: where cron and at are read, e.g. Europe/Paris (default: [service.task] timezone).
            missed: due times missed while down: once, all or skip (default: [service.task] missed).
            enabled: whether the scheduler runs it.
        """
        now = self.now()
        spec = TaskSpec(
            name,
            instructions,
            cron=cron or None,
            at=at or None,
            session=session or None,
            timezone=timezone or None,
            missed=_policy(missed),
            enabled=enabled,
        )
        record = TaskRecord(
            self._checked(spec, now), "action", self._first_run(spec, now), created=iso(now), updated=iso(now)
        )
        if not await self.store.add(record):
            raise ValueError(f"task {name!r} exists already (change it with task.update)")
        return self.describe(record)

    @action
    async def update(
        self,
        name: str,
        instructions: str | None = None,
        cron: str | None = None,
        at: str | None = None,
        session: str | None = None,
        timezone: str | None = None,
        missed: str | None = None,
    ) -> TaskInfo:
        """Change a task's fields; an empty string clears one (cron "" makes it manual).

        Args:
            name: the task to change.
            instructions: what the model is asked to do on each run.
            cron: a cron expression of five fields (replaces at).
            at: an ISO 8601 date and time to run once (replaces cron).
            session: run in this session.
            timezone: where cron and at are read, e.g. Europe/Paris.
            missed: due times missed while down: once, all or skip.
        """
        await self._editable(name)
        now = self.now()

        def change(old: TaskRecord) -> TaskRecord:
            spec = old.spec
            if instructions is not None:
                spec = attrs.evolve(spec, instructions=instructions)
            if cron is not None:
                spec = attrs.evolve(spec, cron=cron or None, at=None if cron else spec.at)
            if at is not None:
                spec = attrs.evolve(spec, at=at or None, cron=None if at else spec.cron)
            if session is not None:
                spec = attrs.evolve(spec, session=session or None)
            if timezone is not None:
                spec = attrs.evolve(spec, timezone=timezone or None)
            if missed is not None:
                spec = attrs.evolve(spec, missed=_policy(missed))
            new = attrs.evolve(old, spec=self._checked(spec, now, old.spec), updated=iso(now))
            if _when(spec) != _when(old.spec):
                new = attrs.evolve(new, next_run=self._first_run(spec, now))
            return new

        changed = await self.store.change(name, change)
        return self.describe(changed or await self._record(name))

    @action
    async def delete(self, name: str) -> bool:
        """Delete a task and its run records (the runs' sessions stay).

        Args:
            name: the task to delete.
        """
        await self._editable(name)
        return await self.store.remove(name)

    @action
    async def enable(self, name: str) -> TaskInfo:
        """Let the scheduler run a task again, from its next due time (missed ones are not run).

        Args:
            name: the task to enable.
        """
        return await self._enabled(name, True)

    @action
    async def disable(self, name: str) -> TaskInfo:
        """Stop the scheduler running a task (it can still be run by hand).

        Args:
            name: the task to disable.
        """
        return await self._enabled(name, False)

    async def _enabled(self, name: str, enabled: bool) -> TaskInfo:
        await self._record(name)
        now = self.now()

        def change(old: TaskRecord) -> TaskRecord:
            if old.spec.enabled == enabled:
                return old
            spec = attrs.evolve(old.spec, enabled=enabled)
            return attrs.evolve(old, spec=spec, next_run=self._first_run(spec, now), updated=iso(now))

        changed = await self.store.change(name, change)
        return self.describe(changed or await self._record(name))

    @action
    async def run(self, name: str) -> TaskRun:
        """Run a task now and wait for the run's outcome (works without serve, also when disabled).

        Args:
            name: the task to run.
        """
        return await self.runner.manual(self.describe(await self._record(name)))

    @action
    async def status(self, name: str) -> TaskStatus:
        """A task, its latest run, and how many runs are kept and unfinished.

        Args:
            name: the task.
        """
        record = await self._record(name)
        runs = await self.store.runs(name)
        unfinished = sum(1 for run in runs if run.status not in FINAL)
        return TaskStatus(self.describe(record), runs[-1] if runs else None, len(runs), unfinished)

    @action
    async def runs(self, name: str | None = None, limit: int = 20) -> list[TaskRun]:
        """The latest runs (of one task, or of all), newest first.

        Args:
            name: only this task's runs.
            limit: the most runs to list.
        """
        if name is not None:
            await self._record(name)
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        runs = await self.store.runs(name)
        return sorted(runs, key=lambda run: (run.scheduled, run.run_id), reverse=True)[:limit]


def _is_due(record: TaskRecord, now: datetime) -> bool:
    return record.spec.enabled and record.next_run is not None and parse_iso(record.next_run) <= now


def _when(spec: TaskSpec) -> tuple[str | None, str | None, str | None, bool]:
    """The fields that decide a task's due times."""
    return (spec.cron, spec.at, spec.timezone, spec.enabled)


def _policy(missed: str | None) -> MissedPolicy | None:
    """An action's ``missed`` argument, checked ("" or ``None``: the service's default)."""
    if not missed:
        return None
    for policy in MISSED_POLICIES:
        if policy == missed:
            return policy
    raise ValueError(f"missed: {missed!r} is not one of {', '.join(MISSED_POLICIES)}")
