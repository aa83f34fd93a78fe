"""Domain operations on tasks: the API, the dashboard and the executor all
come through here."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from pynamodb.exceptions import DoesNotExist, PutError, UpdateError

from tasks import scheduler
from tasks.actions import ACTIONS, get_action
from tasks.errors import (
    InvalidTask,
    SchedulingFailed,
    TaskConflict,
    TaskNotFound,
)
from tasks.models import (
    LISTING_ALL,
    STATUS_CANCELLED,
    STATUS_FAILED,
    STATUS_RUNNING,
    STATUS_SCHEDULED,
    STATUSES,
    Task,
)
from tasks.pagination import decode_cursor, encode_cursor, key_of

logger = logging.getLogger(__name__)

ORDERS = ("newest", "due")
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c7a52-3f5e-4d0e-9a57-2b1f3a0c9e11")


def now() -> datetime:
    return datetime.now(UTC)


def is_conditional_failure(exc: PutError | UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


# --- create ------------------------------------------------------------------


def task_validate(
    *, action: str, payload: Any, run_at: datetime | None, max_attempts: int | None
) -> tuple[dict, datetime, int]:
    """Check a task against every rule; return (payload, run_at, max_attempts)
    normalised, or raise InvalidTask listing each problem with its field."""
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

    if max_attempts is None:
        max_attempts = settings.TASK_DEFAULT_MAX_ATTEMPTS
    if not 1 <= max_attempts <= settings.TASK_MAX_ATTEMPTS_LIMIT:
        error(
            ["maxAttempts"],
            f"maxAttempts must be between 1 and {settings.TASK_MAX_ATTEMPTS_LIMIT}",
        )
    if errors:
        raise InvalidTask(errors)
    return clean_payload, run_at, max_attempts


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
    """Store a task and its schedule. Returns (task, created); created is
    False when an Idempotency-Key replays an earlier identical request."""
    payload, run_at, max_attempts = task_validate(
        action=action, payload=payload, run_at=run_at, max_attempts=max_attempts
    )
    fingerprint = None
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 255:
            raise InvalidTask(
                [
                    {
                        "loc": ["header", "Idempotency-Key"],
                        "msg": "must be 1 to 255 characters",
                        "type": "value_error",
                    }
                ]
            )
        fingerprint = _fingerprint(action, payload, run_at, max_attempts)
        task_id = idempotent_task_id(created_by=created_by, idempotency_key=idempotency_key)
    else:
        task_id = uuid.uuid4().hex

    current = now()
    task = Task(
        id=task_id,
        action=action,
        payload=payload,
        run_at=run_at,
        due_at=max(run_at, current),
        status=STATUS_SCHEDULED,
        attempts=0,
        max_attempts=max_attempts,
        schedule_name=f"{task_id}-1",
        schedule_seq=1,
        listing=LISTING_ALL,
        request_fingerprint=fingerprint,
        created_by=created_by,
        created_at=current,
        updated_at=current,
    )
    try:
        task.save(condition=Task.id.does_not_exist())
    except PutError as exc:
        if not (fingerprint and is_conditional_failure(exc)):
            raise
        existing = task_get(task_id=task_id)
        if existing.request_fingerprint != fingerprint:
            raise TaskConflict(
                "this Idempotency-Key was already used with a different request"
            ) from None
        if existing.status == STATUS_FAILED and existing.attempts == 0:
            # The first request got a 503: its schedule could not be made and
            # the task never ran. The client's retry tries the schedule again.
            expected = (Task.status == STATUS_FAILED) & (Task.attempts == 0)
            try:
                return _reschedule(existing, expected, due=max(run_at, now())), False
            except TaskConflict:  # a concurrent retry did it
                return task_get(task_id=task_id), False
        return existing, False
    schedule_or_fail(task)
    return task, True


def idempotent_task_id(*, created_by: str | None, idempotency_key: str) -> str:
    """The id of the task created with this Idempotency-Key (keys are per caller)."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{created_by or ''}\n{idempotency_key}").hex


def schedule_or_fail(task: Task) -> None:
    """Create the task's current schedule; if that fails, store the task as
    failed (never `scheduled` without a schedule) and raise SchedulingFailed."""
    try:
        scheduler.schedule_create(name=task.schedule_name, task_id=task.id, when=task.due_at)
    except scheduler.SchedulerError as exc:
        reason = f"could not create the schedule: {exc}"
        logger.error("task %s: %s", task.id, reason)
        try:
            task.update(
                actions=[
                    Task.status.set(STATUS_FAILED),
                    Task.error.set(reason),
                    Task.updated_at.set(now()),
                ],
                condition=Task.status == STATUS_SCHEDULED,
            )
        except UpdateError:
            logger.exception("task %s: could not record the scheduling failure", task.id)
        raise SchedulingFailed(f"{reason}; task {task.id} is stored as failed") from exc


# --- read ------------------------------------------------------------------------


def _known_form(task_id: str) -> str:
    """Task ids are 32 hex digits (uuid hex); anything else cannot exist, and
    must not reach DynamoDB, which answers a key over 2 KB with an error."""
    if len(task_id) != 32 or not all(c in "0123456789abcdef" for c in task_id):
        raise TaskNotFound(f"task {task_id} not found")
    return task_id


def task_get(*, task_id: str) -> Task:
    try:
        return Task.get(_known_form(task_id), consistent_read=True)
    except DoesNotExist:
        raise TaskNotFound(f"task {task_id} not found") from None


@dataclass
class TaskPage:
    items: list[Task]
    next_cursor: str | None


def task_list(
    *,
    status: str | None = None,
    order: str = "newest",
    limit: int = 20,
    cursor: str | None = None,
) -> TaskPage:
    """One page of tasks, always a Query on an index (never a Scan).

    newest: createdAt descending. due: runAt ascending (next due first); with
    no status it lists the scheduled tasks, the only ones that are due.
    """
    if status is not None and status not in STATUSES:
        raise InvalidTask(
            [
                {
                    "loc": ["query", "status"],
                    "msg": f"status must be one of {', '.join(STATUSES)}",
                    "type": "enum",
                }
            ]
        )
    if order not in ORDERS:
        raise InvalidTask(
            [
                {
                    "loc": ["query", "order"],
                    "msg": f"order must be one of {', '.join(ORDERS)}",
                    "type": "enum",
                }
            ]
        )
    if order == "due":
        index, hash_key, forward = Task.status_run_at_index, status or STATUS_SCHEDULED, True
    elif status:
        index, hash_key, forward = Task.status_created_at_index, status, False
    else:
        index, hash_key, forward = Task.created_at_index, LISTING_ALL, False
    index_name = index.Meta.index_name
    start_key = decode_cursor(cursor, index_name, hash_key) if cursor else None
    # One item more than the page: whether there is a next page is known now,
    # so the last page is never an empty one.
    results = index.query(
        hash_key,
        scan_index_forward=forward,
        limit=limit + 1,
        page_size=limit + 1,
        last_evaluated_key=start_key,
    )
    items = list(results)
    if len(items) <= limit:
        return TaskPage(items=items, next_cursor=None)
    items = items[:limit]
    return TaskPage(
        items=items, next_cursor=encode_cursor(key_of(items[-1], index_name), index_name)
    )


# Counting reads every index entry it counts, so counts stop here: the
# dashboard polls them, and must cost the same with a million tasks.
COUNT_CAP = 1000


def task_counts() -> dict[str, int]:
    """How many tasks have each status, up to COUNT_CAP: a count above it
    (COUNT_CAP + 1) means "more than COUNT_CAP". Select=COUNT queries reading
    at most COUNT_CAP + 1 index entries per status."""
    connection = Task._get_connection()
    index_name = Task.status_created_at_index.Meta.index_name
    counts = {}
    for status in STATUSES:
        count, start = 0, None
        while count <= COUNT_CAP:
            page = connection.query(
                status,
                index_name=index_name,
                select="COUNT",
                limit=COUNT_CAP + 1 - count,
                exclusive_start_key=start,
            )
            count += page["Count"]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        counts[status] = min(count, COUNT_CAP + 1)
    return counts


# --- change ------------------------------------------------------------------------


def conditional_update(
    task_id: str, actions: list, condition, *, read_back: bool = True
) -> Task | None:
    """Apply a conditional update; None when the condition failed. The task
    returned holds the updated item, or with read_back=False only its id (the
    item is not read back: the executor's hot path)."""
    task = Task(id=task_id)
    actions = [*actions, Task.updated_at.set(now())]
    try:
        if read_back:
            task.update(actions=actions, condition=condition)
        else:
            Task._get_connection().update_item(task_id, actions=actions, condition=condition)
    except UpdateError as exc:
        if not is_conditional_failure(exc):
            raise
        return None
    return task


def next_schedule(task: Task, due: datetime) -> tuple[list, str, int]:
    """The actions that make the task's next attempt due at `due` under a new
    schedule (named by the task id and a sequence number), with that name and
    number."""
    seq = task.schedule_seq + 1
    name = f"{task.id}-{seq}"
    actions = [Task.due_at.set(due), Task.schedule_name.set(name), Task.schedule_seq.set(seq)]
    return actions, name, seq


def _stuck():
    """A running task whose executor's claim has lapsed: it died."""
    return (Task.status == STATUS_RUNNING) & (Task.lease_expires_at < now())


def task_cancel(*, task_id: str) -> Task:
    """Cancel a scheduled task (or a stuck one, see _stuck)."""
    task = conditional_update(
        _known_form(task_id),
        [Task.status.set(STATUS_CANCELLED), Task.error.set("cancelled")],
        (Task.status == STATUS_SCHEDULED) | _stuck(),
    )
    if task is None:
        current = task_get(task_id=task_id)
        raise TaskConflict(f"task is {current.status} and can no longer be cancelled")
    _delete_schedule_quietly(task)
    return task


def task_run_now(*, task_id: str) -> Task:
    """Move a scheduled task's next attempt to now."""
    current = task_get(task_id=task_id)
    if current.status != STATUS_SCHEDULED:
        raise TaskConflict(f"task is {current.status}; only a scheduled task can be run now")
    return _reschedule(current, Task.status == STATUS_SCHEDULED)


def task_retry(*, task_id: str) -> Task:
    """Give a failed (or stuck) task a fresh round of attempts, starting now."""
    current = task_get(task_id=task_id)
    if current.status == STATUS_FAILED:
        expected = Task.status == STATUS_FAILED
    elif current.is_stuck:
        expected = _stuck()
    else:
        raise TaskConflict(f"task is {current.status}; only a failed task can be retried")
    budget = min(current.max_attempts, settings.TASK_MAX_ATTEMPTS_LIMIT)
    return _reschedule(current, expected, extra_attempts=budget)


def _reschedule(
    current: Task, expected, *, extra_attempts: int = 0, due: datetime | None = None
) -> Task:
    """Make the task's next attempt due at `due` (now by default), under a
    new schedule; a failed task is scheduled again (its error cleared)."""
    schedule_actions, _name, _seq = next_schedule(current, due or now())
    actions = [Task.status.set(STATUS_SCHEDULED), *schedule_actions]
    if extra_attempts:
        actions.append(Task.max_attempts.set(current.attempts + extra_attempts))
    if current.status != STATUS_SCHEDULED:
        actions.append(Task.error.remove())
    # The sequence check makes two concurrent reschedules of the same task
    # resolve to one.
    condition = expected & (Task.schedule_seq == current.schedule_seq)
    task = conditional_update(current.id, actions, condition)
    if task is None:
        raise TaskConflict("task changed meanwhile; reload it and try again")
    if current.status == STATUS_SCHEDULED:
        _delete_schedule_quietly(current)
    schedule_or_fail(task)
    return task


def _delete_schedule_quietly(task: Task) -> None:
    # A schedule left behind is harmless: the executor will not claim a task
    # that is no longer scheduled and due. So a failure here is only logged.
    if not task.schedule_name:
        return
    try:
        scheduler.schedule_delete(name=task.schedule_name)
    except scheduler.SchedulerError:
        logger.warning("task %s: could not delete schedule %s", task.id, task.schedule_name)
