"""Operator commands on a task (API and dashboard alike): cancel, run now,
retry, reschedule. Each is one transition (tasks.models), applied as a conditional write."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from tasks.errors import Conflict
from tasks.models import (
    CANCEL,
    RESCHEDULE,
    RETRY,
    RUN_NOW,
    AttemptRecord,
    Outcome,
    Status,
    Task,
    status_set,
)
from tasks.selectors import task_get
from tasks.services.creation import task_validate_run_at
from tasks.services.schedules import schedule_delete_quietly, task_reschedule_under
from tasks.services.store import conditional_update, now


def task_cancel(*, task_id: str) -> Task:
    """Cancel a scheduled task (or a stuck one: see Task.is_stuck; its lost
    attempt is recorded, outcome unknown)."""
    current = task_get(task_id=task_id)
    task = conditional_update(
        current.id,
        [
            *status_set(Status.CANCELLED),
            Task.error.set("cancelled"),
            *unknown_attempt_updates(current),
        ],
        CANCEL.condition(),
    )
    if task is None:
        current = task_get(task_id=task_id)
        raise Conflict(f"task is {current.status} and can no longer be cancelled")
    schedule_delete_quietly(task)
    return task


def unknown_attempt_updates(current: Task) -> list:
    """For a stuck task, the attempt its executor never recorded: outcome
    unknown, so that a retried or cancelled task still says that the
    request may have gone out. Nothing for any other task."""
    if not current.is_stuck:
        return []
    claimed = current.lease_expires_at - timedelta(seconds=settings.EXECUTOR_LEASE_SECONDS)
    attempt = AttemptRecord(
        number=current.attempts,
        started_at=claimed,
        finished_at=now(),
        outcome=Outcome.UNKNOWN,
        duration_ms=0,
        error=current.outcome_message,
    )
    return [Task.attempt_history.set((Task.attempt_history | []).append([attempt]))]


def task_run_now(*, task_id: str) -> Task:
    """Move a scheduled task's next attempt to now."""
    current = task_get(task_id=task_id)
    if not RUN_NOW.allows(current):
        raise Conflict(f"task is {current.status}; only a scheduled task can be run now")
    return task_reschedule_under(current, RUN_NOW)


def task_retry(*, task_id: str) -> Task:
    """Give a failed (or stuck) task a fresh round of attempts, starting now."""
    current = task_get(task_id=task_id)
    if not RETRY.allows(current):
        raise Conflict(f"task is {current.status}; only a failed task can be retried")
    budget = min(current.max_attempts, settings.TASK_MAX_ATTEMPTS_LIMIT)
    return task_reschedule_under(
        current, RETRY, extra_attempts=budget, extra_updates=unknown_attempt_updates(current)
    )


def task_reschedule(*, task_id: str, run_at: datetime | None) -> Task:
    """Move a scheduled task's next attempt (and its runAt) to `run_at`,
    checked by the same rules as a new task's runAt."""
    current = task_get(task_id=task_id)
    run_at = task_validate_run_at(run_at=run_at)
    if not RESCHEDULE.allows(current):
        raise Conflict(f"task is {current.status}; only a scheduled task can be rescheduled")
    return task_reschedule_under(current, RESCHEDULE, due=max(run_at, now()), run_at=run_at)
