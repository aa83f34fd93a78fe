"""Repairing what a fault left behind (`manage.py reconcile`; on AWS a rate
schedule runs it through the executor function every 5 minutes; the local
mode runs it at start):

- a `scheduled` task whose current schedule is missing gets it back (at its
  due time, or at once when that has passed);
- a schedule whose task does not exist, or is not scheduled under that name,
  is deleted (it would fire into nothing);
- `running` tasks whose claim has lapsed (stuck: their outcome is unknown)
  are listed, never changed: only an operator can tell whether the request
  went out.

A full pass (`manage.py reconcile`, the local mode's at start) reads every
task in the due index. The rate schedule's pass (`recent_only`) reads only
the tasks due in a window around now, [now - RECENT_BEHIND, now +
RECENT_AHEAD], and of those only the ones without a schedule under their id
(the ones that have fired, or lost it), so its cost follows the tasks that
pass through it, not what is stored: about RECENT_BEHIND / 5 minutes reads of
each task (BatchGetItem, eventually consistent: 0.5 RRU for an item up to
4 KB), a keys-only Query of the tasks created lately for the orphan check,
one ListSchedules call per 100 schedules, one call per repair, and one
consistent GetItem per schedule that looks orphaned.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from tasks import scheduler
from tasks.models import DUE_LISTING, Status, Task
from tasks.services.store import now

logger = logging.getLogger(__name__)

# What the app names a task's schedule: the task id and a sequence number.
# Anything else in the group (the reconcile schedule itself) is not ours.
TASK_SCHEDULE_NAME = re.compile(r"^([0-9a-f]{32})-([0-9]+)$")
# Work in flight is left alone for this long: a create between its two calls,
# a schedule fired but not yet claimed (EventBridge may fire up to 60 s early,
# the executor then waits up to 65 s), a retry between its record and its
# schedule. The local mode passes 0 at start: nothing is in flight then.
GRACE_SECONDS = 180
# How often the rate schedule runs it (terraform/reconcile.tf).
PERIOD = timedelta(minutes=5)
# The rate schedule's window (recent_only). Behind: a task stays in view
# until its claim has lapsed (the executor's lease) past the grace, for two
# more runs, so a missed run misses nothing. Ahead: a task whose schedule
# is lost is given it back before it is due.
RECENT_AHEAD = 2 * PERIOD


def recent_behind() -> timedelta:
    return timedelta(seconds=GRACE_SECONDS + settings.EXECUTOR_LEASE_SECONDS) + 2 * PERIOD


# Only what reconcile reads: the bytes a run moves (not what DynamoDB bills:
# it bills the whole items) stay small whatever the payloads.
FIELDS = ["id", "status", "schedule_name", "due_at", "updated_at", "lease_expires_at", "run_at"]


@dataclass
class Reconciled:
    scheduled_tasks: int = 0
    schedules: int = 0
    # task ids whose schedule was made again, and those of them that were overdue
    repaired: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)  # schedule names
    stuck: list[Task] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.scheduled_tasks} scheduled tasks, {self.schedules} schedules: "
            f"{len(self.repaired)} schedules made again ({len(self.overdue)} overdue, "
            f"run at once), {len(self.orphans_deleted)} orphan schedules deleted, "
            f"{len(self.stuck)} tasks stuck running, {len(self.errors)} errors"
        )


def tasks_reconcile(
    *,
    grace_seconds: float | None = None,
    settled_before: datetime | None = None,
    dry_run: bool = False,
    recent_only: bool = False,
) -> Reconciled:
    """Repair what a fault left. Tasks changed and schedules created within
    the grace are in flight and left alone, and so are tasks due within it (on
    AWS a schedule is deleted as it fires, before the executor claims).
    `settled_before`: nothing changed before this instant is in flight, and
    schedules are deleted only after their invocation (the local mode, from
    its start: its previous processes are gone). `recent_only`: the rate
    schedule's pass over a window of due times (see the module's doc)."""
    result = Reconciled()
    current = now()
    grace = timedelta(seconds=GRACE_SECONDS if grace_seconds is None else grace_seconds)
    cutoff = current - grace
    if settled_before is not None:
        cutoff = max(cutoff, settled_before)
    # Schedules first, tasks second: a task stored meanwhile has its schedule
    # (made first) in the listing already, or is left to the next run.
    schedules = {s.name: s for s in scheduler.schedule_list() if TASK_SCHEDULE_NAME.match(s.name)}
    tasks = _tasks_in_view(current, schedules, recent_only)
    scheduled = [t for t in tasks if t.status == Status.SCHEDULED]
    result.schedules, result.scheduled_tasks = len(schedules), len(scheduled)

    for task in scheduled:
        firing = settled_before is None and current - grace < task.due_at < current + grace
        if task.schedule_name in schedules or task.updated_at > cutoff or firing:
            continue
        overdue = task.due_at <= current
        logger.warning(
            "task %s is scheduled without its schedule %s: %s",
            task.id,
            task.schedule_name,
            "making it now (overdue: it runs at once)" if overdue else "making it again",
        )
        if not dry_run:
            try:
                when = max(task.due_at, current)
                scheduler.schedule_create(name=task.schedule_name, task_id=task.id, when=when)
            except scheduler.SchedulerError as exc:
                result.errors.append(f"task {task.id}: could not make its schedule: {exc}")
                continue
        result.repaired.append(task.id)
        if overdue:
            result.overdue.append(task.id)

    wanted = {task.schedule_name for task in scheduled}
    candidates = {
        name: TASK_SCHEDULE_NAME.match(name).group(1)
        for name, summary in schedules.items()
        if name not in wanted and summary.created_at is not None and summary.created_at <= cutoff
    }
    if recent_only:
        candidates = _unwanted_recent(candidates, schedules, since=cutoff - 2 * PERIOD)
    for name, task_id in candidates.items():
        if _scheduled_under(task_id, name):
            continue  # stored after the index was read
        logger.warning("schedule %s fires into no scheduled task: deleting it", name)
        if not dry_run:
            try:
                scheduler.schedule_delete(name=name)
            except scheduler.SchedulerError as exc:
                result.errors.append(f"schedule {name}: could not delete it: {exc}")
                continue
        result.orphans_deleted.append(name)

    result.stuck = [t for t in tasks if t.is_stuck]
    for task in result.stuck:
        logger.warning("task %s is stuck running: %s", task.id, task.outcome_message)
    for error in result.errors:
        logger.error("reconcile: %s", error)
    return result


def _tasks_in_view(current: datetime, schedules: dict, recent_only: bool) -> list[Task]:
    """The tasks to check, with only FIELDS. The due index holds keys only:
    its ids, then BatchGetItem. A recent-only pass reads only the tasks
    without a schedule under their id: one that has its schedule is neither
    missing it nor running."""
    if recent_only:
        window = Task.due_at.between(current - recent_behind(), current + RECENT_AHEAD)
        ids = [e.id for e in Task.status_run_at_index.query(DUE_LISTING, window)]
        with_schedule = {TASK_SCHEDULE_NAME.match(name).group(1) for name in schedules}
        ids = [task_id for task_id in ids if task_id not in with_schedule]
    else:
        ids = [e.id for e in Task.status_run_at_index.query(DUE_LISTING)]
    return list(Task.batch_get(ids, attributes_to_get=FIELDS)) if ids else []


def _unwanted_recent(candidates: dict, schedules: dict, since: datetime) -> dict:
    """Of the schedules made since the previous runs (the older ones were
    checked then), those whose task is not scheduled under them, read
    eventually consistent (the caller confirms each with a consistent read)."""
    recent = {n: t for n, t in candidates.items() if schedules[n].created_at >= since}
    if not recent:
        return {}
    fields = ["id", "status", "schedule_name"]
    found = {t.id: t for t in Task.batch_get(set(recent.values()), attributes_to_get=fields)}
    return {
        name: task_id
        for name, task_id in recent.items()
        if task_id not in found
        or found[task_id].status != Status.SCHEDULED
        or found[task_id].schedule_name != name
    }


def _scheduled_under(task_id: str, name: str) -> bool:
    try:
        task = Task.get(
            task_id, consistent_read=True, attributes_to_get=["status", "schedule_name"]
        )
    except Task.DoesNotExist:
        return False
    return task.status == Status.SCHEDULED and task.schedule_name == name
