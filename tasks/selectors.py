"""Reads of tasks (one item, a page of a listing, the counts per status) and
of recurring schedules (one, a page, each one's last occurrence)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import KeysOnlyProjection

from tasks.errors import Invalid, NotFound
from tasks.models import (
    DUE_LISTING,
    LISTING_ALL,
    LISTING_SCHEDULES,
    STATUSES,
    Schedule,
    ScheduleState,
    Status,
    Task,
)
from tasks.services.cursors import decode_cursor, encode_cursor, key_of

ORDERS = ("newest", "due")


def known_task_id(task_id: str) -> str:
    """Task ids are 32 hex digits (uuid hex); anything else cannot exist, and
    must not reach DynamoDB, which answers a key over 2 KB with an error."""
    if len(task_id) != 32 or not all(c in "0123456789abcdef" for c in task_id):
        raise NotFound(f"task {task_id} not found")
    return task_id


def task_get(*, task_id: str) -> Task:
    try:
        return Task.get(known_task_id(task_id), consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"task {task_id} not found") from None


def task_get_if_running(*, task_id: str) -> Task | None:
    """The task (its status and lease only) if it is running; else None.
    Read only when a claim failed, to tell a task being (or stuck) running
    from one that is finished, cancelled or not yet due."""
    try:
        task = Task.get(
            task_id, consistent_read=True, attributes_to_get=["id", "status", "lease_expires_at"]
        )
    except Task.DoesNotExist:
        return None
    return task if task.status == Status.RUNNING else None


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
    schedule_id: str | None = None,
) -> TaskPage:
    """One page of tasks, always a Query on an index (never a Scan).

    newest: createdAt descending. due: the scheduled tasks (the only ones
    that are due) by their next attempt, next due first; with another status,
    that status newest first. With a schedule_id: that recurring schedule's
    occurrences, newest first. The task indexes hold keys only: the page's
    items are read with one BatchGetItem.
    """
    if schedule_id is not None:
        if status is not None or order != "newest":
            raise Invalid.one(
                ["query", "scheduleId"],
                "scheduleId lists newest first, without a status",
                "value_error",
            )
        return _page(Task.schedule_occurrence_index, schedule_id, False, limit, cursor)
    if status is not None and status not in STATUSES:
        raise Invalid.one(
            ["query", "status"], f"status must be one of {', '.join(STATUSES)}", "enum"
        )
    if order not in ORDERS:
        raise Invalid.one(["query", "order"], f"order must be one of {', '.join(ORDERS)}", "enum")
    if order == "due" and status in (None, Status.SCHEDULED):
        index, hash_key, forward = Task.status_run_at_index, DUE_LISTING, True
    elif status:
        index, hash_key, forward = Task.status_created_at_index, status, False
    else:
        index, hash_key, forward = Task.created_at_index, LISTING_ALL, False
    return _page(index, hash_key, forward, limit, cursor)


def _page(index, hash_key: str, forward: bool, limit: int, cursor: str | None) -> TaskPage:
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
    if isinstance(index.Meta.projection, KeysOnlyProjection):
        items = _read_items([entry.id for entry in results])
    else:
        items = list(results)  # the index carries whole items
    if len(items) <= limit:
        return TaskPage(items=items, next_cursor=None)
    items = items[:limit]
    return TaskPage(
        items=items, next_cursor=encode_cursor(key_of(items[-1], index_name), index_name)
    )


def _read_items(ids: list[str]) -> list[Task]:
    """The tasks of a listed page, in its order (BatchGetItem answers in any
    order); one deleted meanwhile is left out."""
    if not ids:
        return []
    found = {task.id: task for task in Task.batch_get(ids)}
    return [found[task_id] for task_id in ids if task_id in found]


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


# --- recurring schedules -------------------------------------------------------------


def schedule_get(*, schedule_id: str) -> Schedule:
    try:
        return Schedule.get(_known_schedule_id(schedule_id), consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"schedule {schedule_id} not found") from None


def schedule_get_if_exists(*, schedule_id: str) -> Schedule | None:
    try:
        return schedule_get(schedule_id=schedule_id)
    except NotFound:
        return None


def _known_schedule_id(schedule_id: str) -> str:
    try:
        return known_task_id(schedule_id)  # the same form: uuid hex
    except NotFound:
        raise NotFound(f"schedule {schedule_id[:64]} not found") from None


def schedule_list(*, limit: int = 20, cursor: str | None = None) -> TaskPage:
    """One page of recurring schedules, newest first (items are Schedules)."""
    return _page(Schedule.listing_index, LISTING_SCHEDULES, False, limit, cursor)


NEXT_RUNS = 5


def schedule_window(schedule: Schedule):
    """Where the schedule may fire; a rate's rhythm starts at startAt, or at
    the first whole minute after it was created."""
    from tasks.recurrence import Window

    anchor = schedule.start_at
    if anchor is None and schedule.rate:
        created = schedule.created_at
        anchor = created.replace(second=0, microsecond=0)
        if anchor < created:
            anchor += timedelta(minutes=1)
    return Window(start=schedule.start_at, end=schedule.end_at, anchor=anchor)


def schedule_next_runs(
    schedule: Schedule, *, count: int = NEXT_RUNS, after: datetime | None = None
) -> list[datetime]:
    """Its next `count` times (UTC), as EventBridge will fire them; none
    while it is paused."""
    from tasks.recurrence import fire_times

    if schedule.state != ScheduleState.ENABLED:
        return []
    times = fire_times(
        schedule.expression,
        schedule.timezone,
        after=after or datetime.now(UTC),
        window=schedule_window(schedule),
    )
    return list(islice(times, count))


def schedule_last_occurrences(*, schedule_ids: list[str]) -> dict[str, Task]:
    """Each schedule's newest occurrence (a one-item Query per schedule)."""
    found = {}
    for schedule_id in schedule_ids:
        for task in Task.schedule_occurrence_index.query(
            schedule_id, scan_index_forward=False, limit=1, page_size=1
        ):
            found[schedule_id] = task
    return found
