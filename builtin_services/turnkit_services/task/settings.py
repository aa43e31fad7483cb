"""``[service.task]``: the scheduler's knobs and the tasks defined in the configuration.

A task is defined by a :class:`TaskSpec`, the same fields whether it comes
from a ``[[service.task.tasks]]`` table or from ``task.create``.
:func:`check_spec` is the one place a definition is validated, so both
report the same errors, each naming the field (and, for a table, where it
is in the file).
"""

from __future__ import annotations

import re
from typing import Literal, TypeAlias

import attrs
from attrs.validators import ge, gt, le

from .triggers import parse_trigger, zone

#: What to do with due times the scheduler could not run on time (see the user guide).
MissedPolicy: TypeAlias = Literal["once", "all", "skip"]
MISSED_POLICIES: tuple[MissedPolicy, ...] = ("once", "all", "skip")

#: Task names become part of session ids and command lines: keep them plain.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

#: The longest time setting: a larger one is a typo that would never come round.
DAY = 86_400.0


@attrs.frozen
class TaskSpec:
    """One task's definition: what the model is told, and when.

    At most one trigger: ``cron`` (five fields, or six with seconds last,
    evaluated in ``timezone``), ``at`` (one ISO 8601 time; without an
    offset it is read in ``timezone``), or neither for a task run only by
    hand. ``session`` makes every run a turn of that session instead of a
    session of its own. ``timezone`` and ``missed`` default to the
    service's.
    """

    name: str
    instructions: str
    cron: str | None = None
    at: str | None = None
    session: str | None = None
    timezone: str | None = None
    missed: MissedPolicy | None = None
    enabled: bool = True


@attrs.frozen
class TaskSettings:
    """``[service.task]``.

    ``timezone`` and ``missed`` apply to tasks that do not set their own.
    ``poll`` is how often (seconds) the scheduler looks for due runs while
    the agent serves; ``grace`` how late (seconds) a due time may be seen
    and still count as on time under ``missed = "skip"``; ``claim_lease``
    how long (seconds) a run claimed by another process is left to it
    before this one takes it over; ``keep_runs`` how many run records are
    kept per task (their sessions are never deleted). Times are at most a
    day (``poll`` at least 0.01 s); ``keep_runs`` is from 1 to 10⁶.
    """

    tasks: list[TaskSpec] = attrs.field(factory=list)
    timezone: str = "UTC"
    missed: MissedPolicy = "once"
    poll: float = attrs.field(default=1.0, validator=[ge(0.01), le(DAY)])
    grace: float = attrs.field(default=60.0, validator=[ge(0), le(DAY)])
    claim_lease: float = attrs.field(default=60.0, validator=[gt(0), le(DAY)])
    keep_runs: int = attrs.field(default=100, validator=[ge(1), le(1_000_000)])


def check_settings(settings: TaskSettings) -> None:
    """Raise ``ValueError`` naming the first bad key of ``[service.task]`` (ranges are checked when
    the table is read)."""
    where = "[service.task]"
    zone(settings.timezone, f"{where} timezone")
    seen: set[str] = set()
    for index, spec in enumerate(settings.tasks):
        check_spec(spec, settings, f"{where} tasks[{index}]")
        if spec.name in seen:
            raise ValueError(f"{where} tasks[{index}].name: task {spec.name!r} is defined twice")
        seen.add(spec.name)


def check_spec(spec: TaskSpec, settings: TaskSettings, where: str = "task") -> None:
    """Raise ``ValueError`` naming the first bad field of ``spec`` (``where`` prefixes it)."""
    if not NAME.match(spec.name):
        raise ValueError(
            f"{where}.name: {spec.name!r} is not a task name (letters, digits, '-' and '_',"
            " starting with a letter or digit, at most 64 characters)"
        )
    if not spec.instructions.strip():
        raise ValueError(f"{where}.instructions: must not be empty")
    if spec.cron is not None and spec.at is not None:
        raise ValueError(f"{where}: give cron or at, not both")
    if spec.session is not None and not spec.session.strip():
        raise ValueError(f"{where}.session: must not be empty (leave it out for a session per run)")
    if spec.missed is not None and spec.missed not in MISSED_POLICIES:
        raise ValueError(f"{where}.missed: {spec.missed!r} is not one of {', '.join(MISSED_POLICIES)}")
    timezone = spec.timezone if spec.timezone is not None else settings.timezone
    zone(timezone, f"{where}.timezone")
    parse_trigger(spec.cron, spec.at, timezone, where)
