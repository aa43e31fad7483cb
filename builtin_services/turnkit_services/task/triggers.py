"""When a task is due: cron expressions, one-off times, and the UTC strings times are stored as.

Times inside the service are aware ``datetime`` objects; in records and
action results they are UTC ISO 8601 strings with whole seconds
(``2024-05-01T07:00:00Z``), which sort like the times they name. Cron
expressions are evaluated by croniter in the task's time zone, so
``0 9 * * *`` in ``Europe/Paris`` is 09:00 Paris time, summer and winter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from croniter import CroniterError, croniter

TriggerKind: TypeAlias = Literal["manual", "cron", "at"]

#: Stored and shown times: UTC, whole seconds.
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: The time part of a run's id (``task-report-20240501T070000Z``).
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def iso(moment: datetime) -> str:
    """``moment`` as a stored time string (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime(ISO_FORMAT)


def stamp(moment: datetime) -> str:
    """``moment`` as the compact UTC form used in run ids."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_iso(text: str) -> datetime:
    """A stored time string back as an aware ``datetime``."""
    return datetime.fromisoformat(text).astimezone(UTC)


def zone(name: str, where: str) -> ZoneInfo:
    """The IANA time zone ``name``; ``ValueError`` naming ``where`` if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{where}: {name!r} is not a known time zone (e.g. 'UTC', 'Europe/Paris')") from exc


@attrs.frozen
class Trigger:
    """The due times of one task: a cron expression, one moment, or none (run by hand)."""

    kind: TriggerKind
    timezone: ZoneInfo
    cron: str | None = None
    at: datetime | None = None

    def next_after(self, moment: datetime) -> datetime | None:
        """The first due time strictly after ``moment`` (``None``: there is none)."""
        if self.cron is not None:
            local = moment.astimezone(self.timezone)
            found: datetime = croniter(self.cron, local).get_next(datetime)
            return found.astimezone(UTC)
        if self.at is not None and self.at > moment:
            return self.at
        return None

    def latest(self, moment: datetime) -> datetime | None:
        """The last due time at or before ``moment`` (``None``: there is none)."""
        if self.cron is not None:
            local = moment.astimezone(self.timezone)
            before: datetime = croniter(self.cron, local).get_prev(datetime)
            after = self.next_after(before)
            return after if after is not None and after <= moment else before.astimezone(UTC)
        if self.at is not None and self.at <= moment:
            return self.at
        return None

    def count(self, start: datetime, end: datetime, limit: int) -> int:
        """How many due times fall in ``[start, end)``, counting at most ``limit``."""
        found, moment = 0, self.latest(start)
        if moment is None or moment < start:
            moment = self.next_after(start)
        while moment is not None and moment < end and found < limit:
            found += 1
            moment = self.next_after(moment)
        return found


def parse_trigger(cron: str | None, at: str | None, timezone: str, where: str = "task") -> Trigger:
    """The trigger of a task definition; ``ValueError`` naming the field if it is malformed."""
    tz = zone(timezone, f"{where}.timezone")
    if cron is not None:
        try:
            croniter(cron)
        except (CroniterError, ValueError, TypeError) as exc:
            raise ValueError(f"{where}.cron: {cron!r} is not a cron expression ({exc})") from exc
        return Trigger("cron", tz, cron=cron)
    if at is not None:
        try:
            moment = datetime.fromisoformat(at)
        except ValueError as exc:
            raise ValueError(
                f"{where}.at: {at!r} is not an ISO 8601 time (e.g. '2024-05-01T09:00:00+02:00')"
            ) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return Trigger("at", tz, at=moment.astimezone(UTC).replace(microsecond=0))
    return Trigger("manual", tz)
