"""Validating and creating a task, with Idempotency-Key replays."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from pynamodb.exceptions import PutError

from tasks import faults
from tasks.actions import ACTIONS, get_action
from tasks.errors import Conflict, Invalid, ScheduleNotCreated, SchedulingFailed
from tasks.models import DUE_LISTING, LISTING_ALL, RESUBMIT, Status, Task
from tasks.selectors import task_get
from tasks.services.schedules import (
    drop_unless_current,
    first_schedule_name,
    schedule_create_first,
    schedule_delete_quietly,
    task_reschedule_under,
)
from tasks.services.store import is_conditional_failure, now

logger = logging.getLogger(__name__)

IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c7a52-3f5e-4d0e-9a57-2b1f3a0c9e11")


def task_validate(
    *, action: str, payload: Any, run_at: datetime | None, max_attempts: int | None
) -> tuple[dict, datetime, int]:
    """Check a task against every rule; return (payload, run_at, max_attempts)
    normalised, or raise Invalid listing each problem with its field."""
    errors: list[dict] = []

    def error(loc: list, msg: str, type_: str = "value_error") -> None:
        errors.append({"loc": loc, "msg": msg, "type": type_})

    from pydantic import ValidationError  # here: the executor never validates

    handler = get_action(action)
    clean_payload: dict = {}
    if handler is None:
        known = ", ".join(sorted(ACTIONS))
        error(["action"], f"unknown action {action!r}; known actions: {known}")
    elif not isinstance(payload, dict):
        error(["payload"], "payload must be an object")
    else:
        try:
            spec = handler.payload_model.model_validate(payload)
            clean_payload = spec.model_dump(mode="json", exclude_defaults=False)
        except ValidationError as exc:
            for item in exc.errors(include_url=False):
                msg = item["msg"].removeprefix("Value error, ")
                error(["payload", *item["loc"]], msg, item["type"])
        try:
            # allow_nan=False: Python's parser accepts NaN and Infinity, which
            # are not JSON, so no receiver could parse such a webhook body.
            size = len(json.dumps(payload, separators=(",", ":"), allow_nan=False).encode())
        except ValueError:
            size = 0
            error(["payload"], "payload must be JSON: NaN and Infinity are not allowed")
        except RecursionError:  # nested too deeply: the payload model said so
            size = 0
        if size > settings.TASK_MAX_PAYLOAD_BYTES:
            error(
                ["payload"],
                f"payload is {size} bytes; the limit is {settings.TASK_MAX_PAYLOAD_BYTES}",
            )

    run_at = _check_run_at(run_at, error)

    if max_attempts is None:
        max_attempts = settings.TASK_DEFAULT_MAX_ATTEMPTS
    if not 1 <= max_attempts <= settings.TASK_MAX_ATTEMPTS_LIMIT:
        error(
            ["maxAttempts"],
            f"maxAttempts must be between 1 and {settings.TASK_MAX_ATTEMPTS_LIMIT}",
        )
    if errors:
        raise Invalid(errors)
    return clean_payload, run_at, max_attempts


def _check_run_at(run_at: datetime | None, error: Callable[..., None]) -> datetime | None:
    """runAt normalised to UTC; each problem reported through `error`."""
    if run_at is None:
        error(["runAt"], "runAt is required", "missing")
    elif run_at.tzinfo is None or run_at.utcoffset() is None:
        error(["runAt"], "runAt must include a timezone, e.g. 2024-03-20T15:00:00Z")
    else:
        current = now()
        earliest = current - timedelta(seconds=settings.TASK_PAST_TOLERANCE_SECONDS)
        latest = current + timedelta(days=settings.TASK_MAX_HORIZON_DAYS)
        if run_at < earliest:
            error(
                ["runAt"],
                f"runAt is in the past; at most {settings.TASK_PAST_TOLERANCE_SECONDS} s "
                "ago is accepted (the task then runs at once)",
            )
        elif run_at > latest:
            error(["runAt"], f"runAt is more than {settings.TASK_MAX_HORIZON_DAYS} days ahead")
        else:
            # Converted only once in range: year 1 or 9999 with an offset
            # would overflow.
            run_at = run_at.astimezone(UTC)
    return run_at


def task_validate_run_at(*, run_at: datetime | None) -> datetime:
    """A new runAt (a reschedule): the same rules as a new task's."""
    errors: list[dict] = []

    def error(loc: list, msg: str, type_: str = "value_error") -> None:
        errors.append({"loc": loc, "msg": msg, "type": type_})

    checked = _check_run_at(run_at, error)
    if errors or checked is None:
        raise Invalid(errors)
    return checked


def _fingerprint(action: str, payload: dict, run_at: datetime, max_attempts: int) -> str:
    body = json.dumps(
        [action, payload, run_at.isoformat(), max_attempts], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(body.encode()).hexdigest()


def task_create(
    *,
    action: str,
    payload: Any,
    run_at: datetime | None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    created_by: str | None = None,
) -> tuple[Task, bool]:
    """Make a task's schedule, then store the task. Returns (task, created);
    created is False when an Idempotency-Key replays an earlier identical
    request.

    Schedule first: a crash between the two calls leaves at most an orphan
    schedule that fires into nothing (the executor skips an unknown task;
    `manage.py reconcile` deletes it), never a task `scheduled` without a
    schedule. The schedule's name is the task id and 1, its Input the id."""
    payload, run_at, max_attempts = task_validate(
        action=action, payload=payload, run_at=run_at, max_attempts=max_attempts
    )
    fingerprint = None
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 255:
            raise Invalid.one(["header", "Idempotency-Key"], "must be 1 to 255 characters")
        fingerprint = _fingerprint(action, payload, run_at, max_attempts)
        task_id = idempotent_task_id(created_by=created_by, idempotency_key=idempotency_key)
        # A replay makes no schedule: one consistent read first.
        existing = _stored(task_id)
        if existing is not None:
            return _replay(existing, fingerprint, run_at), False
    else:
        task_id = uuid.uuid4().hex

    current = now()
    task = Task(
        id=task_id,
        action=action,
        payload=payload,
        run_at=run_at,
        due_at=max(run_at, current),
        status=Status.SCHEDULED,
        attempts=0,
        max_attempts=max_attempts,
        schedule_name=first_schedule_name(task_id),
        schedule_seq=1,
        listing=LISTING_ALL,
        due_listing=DUE_LISTING,
        request_fingerprint=fingerprint,
        created_by=created_by,
        created_at=current,
        updated_at=current,
    )
    try:
        schedule_create_first(name=task.schedule_name, task_id=task_id, when=task.due_at)
    except ScheduleNotCreated as exc:
        return _store_unschedulable(task, exc.reason, fingerprint, run_at)
    faults.point("task_create.after_schedule")
    try:
        task.save(condition=Task.id.does_not_exist())
    except PutError as exc:
        if fingerprint and is_conditional_failure(exc):
            # A concurrent request with the same key stored the task first.
            drop_unless_current(task_id=task_id, name=task.schedule_name)
            return _replay(task_get(task_id=task_id), fingerprint, run_at), False
        schedule_delete_quietly(task)
        raise
    return task, True


def _stored(task_id: str) -> Task | None:
    try:
        return Task.get(task_id, consistent_read=True)
    except Task.DoesNotExist:
        return None


def _replay(existing: Task, fingerprint: str, run_at: datetime) -> Task:
    """The task an earlier request with the same Idempotency-Key made."""
    if existing.request_fingerprint != fingerprint:
        raise Conflict("this Idempotency-Key was already used with a different request")
    if RESUBMIT.allows(existing) and existing.attempts == 0:
        # The first request got a 503: its schedule could not be made and
        # the task never ran. The client's retry tries the schedule again.
        try:
            return task_reschedule_under(existing, RESUBMIT, due=max(run_at, now()))
        except Conflict:  # a concurrent retry did it
            return task_get(task_id=existing.id)
    return existing


def _store_unschedulable(
    task: Task, reason: str, fingerprint: str | None, run_at: datetime
) -> tuple[Task, bool]:
    """Keep the record of what was asked and why it did not run: the task,
    stored `failed` (it needs no schedule), and a 503 for the client."""
    task.status, task.error = Status.FAILED, reason
    try:
        task.save(condition=Task.id.does_not_exist())
    except PutError as exc:
        if fingerprint and is_conditional_failure(exc):
            return _replay(task_get(task_id=task.id), fingerprint, run_at), False
        logger.exception("task %s: could not record the scheduling failure", task.id)
        raise SchedulingFailed(f"{reason}; nothing was stored") from None
    raise SchedulingFailed(f"{reason}; task {task.id} is stored as failed")


def idempotent_task_id(*, created_by: str | None, idempotency_key: str) -> str:
    """The id of the task created with this Idempotency-Key (keys are per caller)."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{created_by or ''}\n{idempotency_key}").hex
