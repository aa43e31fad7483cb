"""Which due time of a task runs now, per its missed-runs policy: a pure decision, no I/O.

The scheduler keeps one stored ``next_run`` per task, the earliest due time
not yet dealt with. When the clock has passed it, :func:`plan` says which
due time to run (if any), which due times were passed over, and where
``next_run`` moves once that is done. Due times pile up when the host was
down (or a run outlasted the schedule's period); the policy decides:

* ``once`` — run once, for the latest due time; the earlier ones are skipped;
* ``all``  — run every due time, oldest first, one after another;
* ``skip`` — skip them all, except the latest if it is at most ``grace``
  seconds late (so an on-time run is never skipped).
"""

from __future__ import annotations

from datetime import datetime

import attrs

from .settings import MissedPolicy
from .triggers import Trigger

#: Passed-over due times are counted up to this many (a cron of every second, down for days …).
COUNT_LIMIT = 10_000


@attrs.frozen
class Due:
    """What to do about a task whose ``next_run`` has come.

    ``run_at`` is the due time to run now (``None``: none, all skipped);
    ``skipped`` how many due times are passed over; ``next_run`` where the
    task's next run moves once this is done (``None``: never again).
    """

    run_at: datetime | None
    skipped: int
    next_run: datetime | None


def plan(
    trigger: Trigger, next_run: datetime, now: datetime, policy: MissedPolicy, grace: float
) -> Due | None:
    """What to do now about a task due at ``next_run``, or ``None`` when it is not due yet."""
    if next_run > now:
        return None
    if policy == "all":
        return Due(next_run, 0, trigger.next_after(next_run))
    latest = trigger.latest(now)
    if latest is None or latest < next_run:  # the trigger changed under a stored next_run
        latest = next_run
    skipped = trigger.count(next_run, latest, COUNT_LIMIT)
    if policy == "skip" and (now - latest).total_seconds() > grace:
        return Due(None, skipped + 1, trigger.next_after(now))
    return Due(latest, skipped, trigger.next_after(latest))
