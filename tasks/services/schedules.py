"""A task's EventBridge schedule: each attempt gets its own one-time
schedule, named by the task id and a sequence number."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from pynamodb.exceptions import UpdateError

from tasks import scheduler, taskqueue
from tasks.errors import Conflict, ScheduleNotCreated, SchedulingFailed
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


def _dispatch(*, name: str, task_id: str, due: datetime) -> None:
    lead = timedelta(seconds=SCHEDULE_MIN_LEAD_SECONDS)
    if taskqueue.enabled() and scheduler.fire_time(due) <= now() + lead:
        taskqueue.task_enqueue(task_id=task_id, due=due, delay_seconds=taskqueue.delay_for(due))
    else:
        scheduler.schedule_create(name=name, task_id=task_id, when=due)


def schedule_or_fail(task: Task) -> None:
    """Create the task's current schedule (or, due within a minute or two
    with the hop queue, its queue message); if that fails, store the task as
    failed (never `scheduled` without a way to fire) and raise SchedulingFailed."""
    try:
        _dispatch(name=task.schedule_name, task_id=task.id, due=task.due_at)
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


def schedule_create_first(*, name: str, task_id: str, when: datetime) -> None:
    """Create a schedule before the write that makes a task scheduled under
    it: a crash in between leaves at most an orphan schedule, which fires
    into a task not scheduled under that name (the executor skips it, and
    `manage.py reconcile` deletes it), never a task without a schedule. With
    the hop queue, an attempt due within a minute or two gets its queue
    message instead (one left by a write that did not happen arrives into a
    task it cannot claim). ScheduleNotCreated (a 503), with nothing changed,
    if it cannot be made."""
    try:
        _dispatch(name=name, task_id=task_id, due=when)
    except (scheduler.SchedulerError, taskqueue.QueueError) as exc:
        reason = f"could not create the schedule: {exc}"
        logger.error("task %s: %s (%s)", task_id, reason, name)
        raise ScheduleNotCreated(reason, f"{reason}; task {task_id} is unchanged") from exc


def task_reschedule_under(
    current: Task,
    transition: Transition,
    *,
    extra_attempts: int = 0,
    due: datetime | None = None,
    run_at: datetime | None = None,
    extra_updates: list | None = None,
) -> Task:
    """Take `transition` to make the task's next attempt due at `due` (now by
    default) under a new schedule, made first; a failed task is scheduled
    again (its error cleared); `run_at` also moves the task's runAt."""
    due = due or now()
    schedule_updates, name, _seq = next_schedule(current, due)
    schedule_create_first(name=name, task_id=current.id, when=due)
    updates = [*status_set(Status.SCHEDULED), *schedule_updates]
    if extra_attempts:
        updates.append(Task.max_attempts.set(current.attempts + extra_attempts))
    if run_at is not None:
        updates.append(Task.run_at.set(run_at))
    if current.status != Status.SCHEDULED:
        updates.append(Task.error.remove())
    updates += extra_updates or []
    # The sequence check makes two concurrent reschedules of the same task
    # resolve to one.
    condition = transition.condition() & (Task.schedule_seq == current.schedule_seq)
    task = conditional_update(current.id, updates, condition)
    if task is None:
        drop_unless_current(task_id=current.id, name=name)
        raise Conflict("task changed meanwhile; reload it and try again")
    if current.status == Status.SCHEDULED:
        schedule_delete_quietly(current)
    return task


def drop_unless_current(*, task_id: str, name: str) -> None:
    """Delete a schedule made first for a write that did not happen, unless
    the task is scheduled under that name after all (a concurrent request
    made the same one and won)."""
    try:
        task = Task.get(task_id, consistent_read=True)
    except Task.DoesNotExist:
        task = None
    if task is not None and task.status == Status.SCHEDULED and task.schedule_name == name:
        return
    schedule_delete_quietly(Task(id=task_id, schedule_name=name))


def schedule_delete_quietly(task: Task) -> None:
    # A schedule left behind is harmless: the executor will not claim a task
    # that is no longer scheduled and due. So a failure here is only logged.
    if not task.schedule_name:
        return
    try:
        scheduler.schedule_delete(name=task.schedule_name)
    except scheduler.SchedulerError:
        logger.warning("task %s: could not delete schedule %s", task.id, task.schedule_name)
