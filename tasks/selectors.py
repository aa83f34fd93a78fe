"""Reads of tasks (one item, a page of a listing) and
of recurring schedules (one, a page, each one's last occurrence)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import batched, islice

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


# A listing filtered by status reads items, not index entries: the task
# indexes carry no status (tasks/models.py), so each page reads the index in
# its order and keeps the items of that status. It reads at most this many
# items: a page of a rare status in a long history may come back short (even
# empty) with a nextCursor to read on from, as a DynamoDB filter would.
FILTER_READ_BUDGET = 1000
# "Next due first" starts this long before now: a scheduled task overdue by
# more than that has lost its way (reconcile's business), and is listed by
# status=scheduled, newest first.
DUE_LOOKBACK = timedelta(minutes=15)


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
    that are due) by their next attempt, next due first, from DUE_LOOKBACK
    ago; with another status, that status newest first. With a schedule_id:
    that recurring schedule's occurrences, newest first. The indexes hold
    keys only: the page's items are read with BatchGetItem.
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
        since = datetime.now(UTC) - DUE_LOOKBACK
        return _page(
            Task.status_run_at_index,
            DUE_LISTING,
            True,
            limit,
            cursor,
            status=Status.SCHEDULED,
            range_key_condition=Task.due_at >= since,
        )
    return _page(Task.created_at_index, LISTING_ALL, False, limit, cursor, status=status)


def _page(
    index,
    hash_key: str,
    forward: bool,
    limit: int,
    cursor: str | None,
    *,
    status: str | None = None,
    range_key_condition=None,
) -> TaskPage:
    """A page of `limit` items in the index's order; with a status, only the
    items of that status, reading at most FILTER_READ_BUDGET of them."""
    index_name = index.Meta.index_name
    start_key = decode_cursor(cursor, index_name, hash_key, status) if cursor else None
    # One item more than the page: whether there is a next page is known now,
    # so the last page is never an empty one.
    wanted = limit + 1
    batch = wanted if status is None else min(100, FILTER_READ_BUDGET)  # 100: BatchGetItem's most
    results = index.query(
        hash_key,
        range_key_condition,
        scan_index_forward=forward,
        page_size=batch,
        last_evaluated_key=start_key,
    )
    # A keys-only index gives ids, read with BatchGetItem; another (the
    # recurring schedules' listing) carries the items themselves.
    keys_only = isinstance(index.Meta.projection, KeysOnlyProjection)
    items: list = []
    read = 0
    for chunk in batched(results, batch, strict=False):  # the query pages on by itself
        found = _read_items([entry.id for entry in chunk]) if keys_only else chunk
        items += [task for task in found if status is None or task.status == status]
        read += len(chunk)
        if len(items) >= wanted:
            items = items[:limit]
            return TaskPage(items, encode_cursor(key_of(items[-1], index_name), index_name, status))
        if read >= FILTER_READ_BUDGET:
            # Short of a page: the next one reads on after the last entry read.
            return TaskPage(items, encode_cursor(key_of(chunk[-1], index_name), index_name, status))
    return TaskPage(items, None)


def _read_items(ids: list[str]) -> list[Task]:
    """The tasks of a listed page, in its order (BatchGetItem answers in any
    order); one deleted meanwhile is left out."""
    if not ids:
        return []
    found = {task.id: task for task in Task.batch_get(ids)}
    return [found[task_id] for task_id in ids if task_id in found]


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
    """Each schedule's newest occurrence: a one-entry Query per schedule (the
    index holds keys only), then one BatchGetItem for them all."""
    newest = {}
    for schedule_id in schedule_ids:
        for entry in Task.schedule_occurrence_index.query(
            schedule_id, scan_index_forward=False, limit=1, page_size=1
        ):
            newest[entry.id] = schedule_id
    return {newest[task.id]: task for task in _read_items(list(newest))}
