"""Recurring schedules: validating, creating, changing, pausing, resuming and
deleting them (each with its EventBridge recurring schedule), and making the
task of one occurrence (the executor's side).

Not to be confused with services/schedules.py: a task's one-time schedule.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from pynamodb.exceptions import DeleteError, PutError, UpdateError

from tasks import recurrence, scheduler
from tasks.errors import Conflict, Invalid, Unavailable
from tasks.models import (
    DUE_LISTING,
    LISTING_ALL,
    LISTING_SCHEDULES,
    PAUSE,
    RESUME,
    Schedule,
    ScheduleState,
    ScheduleTransition,
    Status,
    Task,
)
from tasks.selectors import schedule_get, schedule_get_if_exists, schedule_window
from tasks.services.creation import task_validate
from tasks.services.store import is_conditional_failure, now

logger = logging.getLogger(__name__)

OCCURRENCE_NAMESPACE = uuid.UUID("0b6f4f64-1d8e-4c52-9a4e-3f7f2d1c5b90")
MAX_DESCRIPTION_LENGTH = 256
REDACTED = "[redacted]"  # how the API and dashboard show secret header values
# The fields a create takes and a PATCH may change (as the service names them).
FIELDS = (
    "action",
    "payload",
    "cron",
    "rate",
    "timezone",
    "max_attempts",
    "start_at",
    "end_at",
    "description",
)
_LOC = {"max_attempts": "maxAttempts", "start_at": "startAt", "end_at": "endAt"}


@dataclass
class Definition:
    """A schedule's fields, checked and normalised, with its EventBridge
    expression."""

    action: str
    payload: dict
    cron: str | None
    rate: str | None
    timezone: str
    max_attempts: int
    start_at: datetime | None
    end_at: datetime | None
    description: str | None
    expression: str


def schedule_validate(
    *,
    action: str,
    payload: Any,
    cron: str | None = None,
    rate: str | None = None,
    timezone: str | None = "UTC",
    max_attempts: int | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    description: str | None = None,
    current_start_at: datetime | None = None,
) -> Definition:
    """Check every rule; Invalid lists each problem with its field. The
    payload and maxAttempts follow a task's rules (task_validate)."""
    errors: list[dict] = []

    def error(field: str, msg: str, type_: str = "value_error") -> None:
        errors.append({"loc": [_LOC.get(field, field)], "msg": msg, "type": type_})

    try:
        payload, _run_at, max_attempts = task_validate(
            action=action, payload=payload, run_at=now(), max_attempts=max_attempts
        )
    except Invalid as exc:
        errors.extend(exc.errors)

    expression = ""
    if (cron is None) == (rate is None):
        error(
            "cron", "give exactly one of cron (e.g. '0 9 * * MON-FRI') or rate (e.g. '5 minutes')"
        )
    else:
        try:
            if cron is not None:
                cron = " ".join(cron.split())
                expression = recurrence.cron_to_eventbridge(cron)
            else:
                expression = recurrence.rate_to_eventbridge(rate)
                rate = expression[5:-1]
        except recurrence.ExpressionError as exc:
            error("cron" if cron is not None else "rate", str(exc))

    timezone = "UTC" if timezone is None else timezone
    try:
        recurrence.zone(timezone)
    except recurrence.ExpressionError as exc:
        error("timezone", str(exc))

    for field, when in (("start_at", start_at), ("end_at", end_at)):
        if when is not None and when.utcoffset() is None:
            error(field, f"{_LOC[field]} must include a timezone, e.g. 2024-03-20T15:00:00Z")
    start_at = _utc(start_at)
    end_at = _utc(end_at)
    current = now()
    tolerance = timedelta(seconds=settings.TASK_PAST_TOLERANCE_SECONDS)
    if start_at is not None and start_at < current - tolerance and start_at != current_start_at:
        error("start_at", "startAt is in the past")
    if end_at is not None:
        if start_at is not None and end_at <= start_at:
            error("end_at", "endAt must be after startAt")
        elif end_at <= current:
            error("end_at", "endAt is in the past")
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        error("description", f"description is longer than {MAX_DESCRIPTION_LENGTH} characters")
    if errors:
        raise Invalid(errors)
    return Definition(
        action=action,
        payload=payload,
        cron=cron,
        rate=rate,
        timezone=timezone,
        max_attempts=max_attempts,
        start_at=start_at,
        end_at=end_at,
        description=description or None,
        expression=expression,
    )


def _utc(when: datetime | None) -> datetime | None:
    if when is None or when.utcoffset() is None:
        return None
    return when.astimezone(UTC)


def schedule_create(
    *,
    action: str,
    payload: Any,
    cron: str | None = None,
    rate: str | None = None,
    timezone: str | None = "UTC",
    max_attempts: int | None = None,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    description: str | None = None,
    created_by: str | None = None,
) -> Schedule:
    """Store the schedule and create its EventBridge recurring schedule. If
    that cannot be made, nothing is kept and Unavailable is raised."""
    definition = schedule_validate(
        action=action,
        payload=payload,
        cron=cron,
        rate=rate,
        timezone=timezone,
        max_attempts=max_attempts,
        start_at=start_at,
        end_at=end_at,
        description=description,
    )
    current = now()
    schedule = Schedule(
        id=uuid.uuid4().hex,
        state=ScheduleState.ENABLED,
        version=1,
        listing=LISTING_SCHEDULES,
        created_by=created_by,
        created_at=current,
        updated_at=current,
        **_attributes(definition),
    )
    schedule.save(condition=Schedule.id.does_not_exist())
    try:
        _sync(schedule)
    except Unavailable:
        schedule.delete()
        raise
    return schedule


def _attributes(definition: Definition) -> dict:
    return {field: getattr(definition, field) for field in (*FIELDS, "expression")}


def _sync(schedule: Schedule, *, create: bool = True) -> None:
    """Make the EventBridge schedule match the stored one (whole)."""
    call = scheduler.recurring_create if create else scheduler.recurring_update
    try:
        call(
            name=schedule.id,
            expression=schedule.expression,
            timezone=schedule.timezone,
            enabled=schedule.state == ScheduleState.ENABLED,
            # A rate's rhythm starts at its anchor (see schedule_window).
            start=schedule_window(schedule).anchor,
            end=schedule.end_at,
        )
    except scheduler.SchedulerError as exc:
        logger.error("schedule %s: EventBridge refused it: %s", schedule.id, exc)
        raise Unavailable(f"could not save the EventBridge schedule: {exc}") from exc


def schedule_update(*, schedule_id: str, changes: dict[str, Any]) -> Schedule:
    """Change any of FIELDS (a cron replaces a rate and the other way
    round); the EventBridge schedule is replaced whole."""
    current = schedule_get(schedule_id=schedule_id)
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ValueError(f"not schedule fields: {sorted(unknown)}")
    fields = {field: getattr(current, field) for field in FIELDS}
    if "cron" in changes and "rate" not in changes:
        fields["rate"] = None
    if "rate" in changes and "cron" not in changes:
        fields["cron"] = None
    fields.update(changes)
    if isinstance(fields["payload"], dict):
        fields["payload"] = _keep_redacted_headers(fields["payload"], current.payload)
    definition = schedule_validate(**fields, current_start_at=current.start_at)
    updated = _save_version(current, _attributes(definition))
    try:
        _sync(updated, create=False)
    except Unavailable:
        _save_version(
            updated, {field: getattr(current, field) for field in (*FIELDS, "expression")}
        )
        raise
    return updated


def _keep_redacted_headers(payload: dict, stored: dict) -> dict:
    """Header values sent back as shown ([redacted], see tasks.schemas) keep
    the stored secret values, which the client never saw."""
    headers, kept = payload.get("headers"), stored.get("headers") or {}
    if not isinstance(headers, dict) or REDACTED not in headers.values():
        return payload
    restored = {k: kept.get(k, v) if v == REDACTED else v for k, v in headers.items()}
    return {**payload, "headers": restored}


def _save_version(current: Schedule, attributes: dict, condition=None) -> Schedule:
    """Write the attributes if the schedule is still the version read."""
    updates = [
        getattr(Schedule, name).set(value)
        if value is not None
        else getattr(Schedule, name).remove()
        for name, value in attributes.items()
    ]
    updates += [Schedule.version.add(1), Schedule.updated_at.set(now())]
    check = Schedule.version == current.version
    if condition is not None:
        check = check & condition
    schedule = Schedule(id=current.id)
    try:
        schedule.update(actions=updates, condition=check)
    except UpdateError as exc:
        if is_conditional_failure(exc):
            raise Conflict("the schedule changed meanwhile; reload it and try again") from None
        raise
    return schedule


def schedule_pause(*, schedule_id: str) -> Schedule:
    """Stop its occurrences (EventBridge State DISABLED); 409 unless enabled."""
    return _transition(schedule_id, PAUSE)


def schedule_resume(*, schedule_id: str) -> Schedule:
    """Start its occurrences again from the next time; 409 unless paused."""
    return _transition(schedule_id, RESUME)


def _transition(schedule_id: str, transition: ScheduleTransition) -> Schedule:
    current = schedule_get(schedule_id=schedule_id)
    if not transition.allows(current):
        raise Conflict(f"cannot {transition.name} a schedule that is {current.state}")
    updated = _save_version(current, {"state": transition.target}, transition.condition())
    try:
        _sync(updated, create=False)
    except Unavailable:
        _save_version(updated, {"state": transition.source})
        raise
    return updated


def schedule_delete(*, schedule_id: str) -> None:
    """Delete the EventBridge schedule (it stops firing), then the record.
    Its occurrences stay, as tasks."""
    current = schedule_get(schedule_id=schedule_id)
    try:
        scheduler.schedule_delete(name=current.id)
    except scheduler.SchedulerError as exc:
        raise Unavailable(f"could not delete the EventBridge schedule: {exc}") from exc
    try:
        current.delete(condition=Schedule.id.exists())
    except DeleteError as exc:
        if not is_conditional_failure(exc):
            raise


# --- occurrences (the executor's side) -----------------------------------------------------


def occurrence_id(*, schedule_id: str, occurrence_at: datetime) -> str:
    """The task id of one occurrence: the same for every delivery of it."""
    text = f"{schedule_id}\n{recurrence.scheduled_time_text(occurrence_at)}"
    return uuid.uuid5(OCCURRENCE_NAMESPACE, text).hex


def occurrence_create(*, schedule_id: str, scheduled_time: str) -> Task | None:
    """The task of the occurrence EventBridge scheduled for `scheduled_time`,
    created by a conditional put keyed on (schedule, time): a duplicate
    delivery finds it made already and creates nothing. None when there is
    nothing to run: the schedule is gone or paused, or the time is unreadable."""
    try:
        occurrence_at = datetime.fromisoformat(scheduled_time)
    except (TypeError, ValueError):
        logger.error("schedule %s: unreadable scheduled time %r", schedule_id, scheduled_time)
        return None
    if occurrence_at.utcoffset() is None:
        occurrence_at = occurrence_at.replace(tzinfo=UTC)
    occurrence_at = occurrence_at.astimezone(UTC)
    schedule = schedule_get_if_exists(schedule_id=schedule_id)
    if schedule is None or schedule.state != ScheduleState.ENABLED:
        logger.info(
            "schedule %s: gone or paused; occurrence %s ignored", schedule_id, occurrence_at
        )
        return None
    current = now()
    task = Task(
        id=occurrence_id(schedule_id=schedule_id, occurrence_at=occurrence_at),
        action=schedule.action,
        payload=schedule.payload,
        run_at=occurrence_at,
        due_at=occurrence_at,
        status=Status.SCHEDULED,
        attempts=0,
        max_attempts=schedule.max_attempts,
        schedule_name=None,  # the recurring schedule fired it; retries get their own
        schedule_seq=0,
        listing=LISTING_ALL,
        due_listing=DUE_LISTING,  # in the due index for life
        created_by=f"schedule:{schedule_id}",
        schedule_id=schedule_id,
        occurrence_at=occurrence_at,
        created_at=current,
        updated_at=current,
    )
    try:
        task.save(condition=Task.id.does_not_exist())
    except PutError as exc:
        if not is_conditional_failure(exc):
            raise
        logger.info(
            "occurrence %s of schedule %s exists: a duplicate delivery", task.id, schedule_id
        )
    return task
