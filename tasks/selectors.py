"""Reads of tasks: one item, a page of a listing, the counts per status."""

from __future__ import annotations

from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from tasks.errors import Invalid, NotFound
from tasks.models import DUE_LISTING, LISTING_ALL, STATUSES, Status, Task
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
) -> TaskPage:
    """One page of tasks, always a Query on an index (never a Scan).

    newest: createdAt descending. due: the scheduled tasks (the only ones
    that are due) by their next attempt, next due first; with another status,
    that status newest first. The indexes hold keys only: the page's items are
    read with one BatchGetItem.
    """
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
    items = _read_items([entry.id for entry in results])
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
