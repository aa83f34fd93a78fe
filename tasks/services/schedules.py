"""A task's EventBridge schedule: each attempt gets its own one-time
schedule, named by the task id and a sequence number."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pynamodb.exceptions import UpdateError

from tasks import scheduler, taskqueue
from tasks.errors import Conflict, SchedulingFailed
from tasks.models import Status, Task, Transition, status_set
from tasks.services.store import conditional_update, now

logger = logging.getLogger(__name__)

# A schedule is made only when it fires at least this far ahead; an attempt
# due sooner goes to the hop queue directly (one SendMessage, cheaper than a
# schedule's invocation plus the executor's hop).
SCHEDULE_MIN_LEAD_SECONDS = 5


def first_schedule_name(task_id: str) -> str:
    return f"{task_id}-1"


def next_schedule(task: Task, due: datetime) -> tuple[list, str, int]:
    """The updates that make the task's next attempt due at `due` under a new
    schedule, with that schedule's name and sequence number."""
    seq = task.schedule_seq + 1
    name = f"{task.id}-{seq}"
    updates = [Task.due_at.set(due), Task.schedule_name.set(name), Task.schedule_seq.set(seq)]
    return updates, name, seq


def _dispatch(task: Task) -> None:
    due = task.due_at
    lead = timedelta(seconds=SCHEDULE_MIN_LEAD_SECONDS)
    if taskqueue.enabled() and scheduler.fire_time(due) <= now() + lead:
        taskqueue.task_enqueue(task_id=task.id, due=due, delay_seconds=taskqueue.delay_for(due))
    else:
        scheduler.schedule_create(name=task.schedule_name, task_id=task.id, when=due)


def schedule_or_fail(task: Task) -> None:
    """Create the task's current schedule (or, due within a minute or two
    with the hop queue, its queue message); if that fails, store the task as
    failed (never `scheduled` without a way to fire) and raise SchedulingFailed."""
    try:
        _dispatch(task)
    except (scheduler.SchedulerError, taskqueue.QueueError) as exc:
        reason = f"could not create the schedule: {exc}"
        logger.error("task %s: %s", task.id, reason)
        try:
            task.update(
                actions=[
                    *status_set(Status.FAILED),
                    Task.error.set(reason),
                    Task.updated_at.set(now()),
                ],
                condition=Task.status == Status.SCHEDULED,
            )
        except UpdateError:
            logger.exception("task %s: could not record the scheduling failure", task.id)
        raise SchedulingFailed(f"{reason}; task {task.id} is stored as failed") from exc


def task_reschedule_under(
    current: Task,
    transition: Transition,
    *,
    extra_attempts: int = 0,
    due: datetime | None = None,
) -> Task:
    """Take `transition` to make the task's next attempt due at `due` (now by
    default) under a new schedule; a failed task is scheduled again (its
    error cleared)."""
    schedule_updates, _name, _seq = next_schedule(current, due or now())
    updates = [*status_set(Status.SCHEDULED), *schedule_updates]
    if extra_attempts:
        updates.append(Task.max_attempts.set(current.attempts + extra_attempts))
    if current.status != Status.SCHEDULED:
        updates.append(Task.error.remove())
    # The sequence check makes two concurrent reschedules of the same task
    # resolve to one.
    condition = transition.condition() & (Task.schedule_seq == current.schedule_seq)
    task = conditional_update(current.id, updates, condition)
    if task is None:
        raise Conflict("task changed meanwhile; reload it and try again")
    if current.status == Status.SCHEDULED:
        schedule_delete_quietly(current)
    schedule_or_fail(task)
    return task


def schedule_delete_quietly(task: Task) -> None:
    # A schedule left behind is harmless: the executor will not claim a task
    # that is no longer scheduled and due. So a failure here is only logged.
    if not task.schedule_name:
        return
    try:
        scheduler.schedule_delete(name=task.schedule_name)
    except scheduler.SchedulerError:
        logger.warning("task %s: could not delete schedule %s", task.id, task.schedule_name)
