"""What the task service stores, returns from its actions and hands to its points.

``TaskInfo`` and ``TaskRun`` are frozen attrs classes, like the contract's
data model: the actions return them (``turnkit invoke`` prints them as
JSON) and the points ``task_authorize`` and ``task_finished`` receive them.
``TaskRecord`` is the stored form of a task, with what the scheduler
needs to remember.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs

from .settings import MissedPolicy, TaskSpec
from .triggers import TriggerKind

#: ``claimed``: reserved by a scheduler, not yet past ``task_authorize``; ``running``: its turn
#: is queued or running; the others are final.
RunStatus: TypeAlias = Literal["claimed", "running", "completed", "failed", "denied"]
FINAL: frozenset[str] = frozenset({"completed", "failed", "denied"})
#: Where a task was defined; a ``config`` task is changed by editing the file.
Source: TypeAlias = Literal["config", "action"]


@attrs.frozen
class TaskInfo:
    """A task as users and plugins see it, with its defaults resolved.

    ``trigger`` is ``cron``, ``at`` or ``manual``; ``next_run`` the next
    due time (UTC ISO; ``None`` when disabled, run by hand only, or a
    one-off that has run); ``skipped`` counts due times passed over under
    the missed-runs policy since the task was created.
    """

    name: str
    instructions: str
    trigger: TriggerKind
    cron: str | None
    at: str | None
    session: str | None
    timezone: str
    missed: MissedPolicy
    enabled: bool
    source: Source
    next_run: str | None
    skipped: int


@attrs.frozen
class TaskRun:
    """One run of a task: a turn in its session, and how it ended.

    ``run_id`` is ``task-<name>-<scheduled, compact UTC>``, with
    ``-manual`` appended for a run by hand (and ``-2``, ``-3`` … for more
    manual runs within the same second).
    ``session_id`` is the run's own session (of kind ``task``, with the run
    id as its id), or the task's target session. ``scheduled`` is the due
    time it runs for (for a manual run, when it was asked for);
    ``trigger`` is ``schedule`` or ``manual``. ``reply`` is the reply's
    text once ``completed``; ``error`` says why it ``failed`` or was
    ``denied``, and ``denied_by`` names the plugin that refused it.
    ``skipped`` counts the earlier due times this run stands in for
    (missed-runs policy ``once``). ``owner`` identifies the scheduler
    process that claimed it.
    """

    run_id: str
    task: str
    session_id: str
    trigger: Literal["schedule", "manual"]
    scheduled: str
    status: RunStatus
    owner: str
    claimed_at: str
    started: str | None = None
    finished: str | None = None
    turn_id: str | None = None
    reply: str | None = None
    error: str | None = None
    denied_by: str | None = None
    skipped: int = 0


@attrs.frozen
class TaskStatus:
    """``task.status``: the task, its latest run, and how many runs are kept or unfinished."""

    task: TaskInfo
    last_run: TaskRun | None
    runs: int
    unfinished: int


@attrs.frozen
class TaskRecord:
    """A task as stored: its definition and the scheduler's state.

    ``config`` is the configuration table last applied to a config task:
    while the file keeps it unchanged, changes made by actions (``enable``,
    ``disable``) stand; when the table changes, it wins again.
    """

    spec: TaskSpec
    source: Source
    next_run: str | None = None
    skipped: int = 0
    created: str = ""
    updated: str = ""
    config: TaskSpec | None = None
