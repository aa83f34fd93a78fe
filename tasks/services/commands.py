"""Operator commands on a task (API and dashboard alike): cancel, run now,
retry. Each is one transition (tasks.models), applied as a conditional write."""

from __future__ import annotations

from django.conf import settings

from tasks.errors import Conflict
from tasks.models import CANCEL, RETRY, RUN_NOW, Status, Task, status_set
from tasks.selectors import known_task_id, task_get
from tasks.services.schedules import schedule_delete_quietly, task_reschedule_under
from tasks.services.store import conditional_update


def task_cancel(*, task_id: str) -> Task:
    """Cancel a scheduled task (or a stuck one: see Task.is_stuck)."""
    task = conditional_update(
        known_task_id(task_id),
        [*status_set(Status.CANCELLED), Task.error.set("cancelled")],
        CANCEL.condition(),
    )
    if task is None:
        current = task_get(task_id=task_id)
        raise Conflict(f"task is {current.status} and can no longer be cancelled")
    schedule_delete_quietly(task)
    return task


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
    return task_reschedule_under(current, RETRY, extra_attempts=budget)
