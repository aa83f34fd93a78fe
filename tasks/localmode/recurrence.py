"""When the local stand-in fires a recurring schedule, read from a
GetSchedule answer as EventBridge would: its cron() or rate() expression in
its ScheduleExpressionTimezone, between StartDate and EndDate, with
<aws.scheduler.scheduled-time> in the Input replaced by the time it fires
for. The evaluation is tasks.recurrence's, the one the API's nextRuns uses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import islice

from tasks.recurrence import (
    SCHEDULED_TIME,
    Window,
    fire_times,
    previous_fire_time,
    scheduled_time_text,
)


def is_recurring(expression: str) -> bool:
    return expression.startswith(("cron(", "rate("))


def _utc(value) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC)


def window(schedule: dict) -> Window:
    """StartDate and EndDate; a rate schedule without a StartDate keeps the
    rhythm of the first whole minute after it was created."""
    start, end = _utc(schedule.get("StartDate")), _utc(schedule.get("EndDate"))
    anchor = start
    created = _utc(schedule.get("CreationDate"))
    if anchor is None and created is not None:
        anchor = created.replace(second=0, microsecond=0)
        if anchor < created:
            anchor += timedelta(minutes=1)
    return Window(start=start, end=end, anchor=anchor)


def next_fire(schedule: dict, *, after: datetime) -> datetime | None:
    """The schedule's next time strictly after `after`; None once it has ended."""
    times = fire_times(
        schedule["ScheduleExpression"],
        schedule.get("ScheduleExpressionTimezone") or "UTC",
        after=after,
        window=window(schedule),
    )
    return next(islice(times, 1), None)


def first_fire(schedule: dict, *, now: datetime) -> datetime | None:
    """When to fire a schedule just read: its most recent time since it was
    last changed, if that has passed unfired (missed while nothing ran, e.g.
    before a restart: it runs once, late; were it not missed, the executor
    makes nothing twice), else its next time."""
    changed = _utc(schedule.get("LastModificationDate")) or now
    missed = previous_fire_time(
        schedule["ScheduleExpression"],
        schedule.get("ScheduleExpressionTimezone") or "UTC",
        before=now,
        window=window(schedule),
    )
    if missed is not None and missed > changed:
        return missed
    return next_fire(schedule, after=now)


def event(schedule: dict, when: datetime) -> dict:
    """The Target Input for the invocation at `when`, the context attribute
    replaced as EventBridge replaces it."""
    text = schedule["Target"].get("Input") or "{}"
    return json.loads(text.replace(SCHEDULED_TIME, scheduled_time_text(when)))
