"""Storage primitives under the services: the clock, and conditional writes."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.exceptions import PutError, UpdateError

from tasks.models import Task


def now() -> datetime:
    return datetime.now(UTC)


def is_conditional_failure(exc: PutError | UpdateError) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


def conditional_update(
    task_id: str, updates: list, condition, *, read_back: bool = True
) -> Task | None:
    """Apply PynamoDB update expressions under a condition; None when the
    condition failed. The task returned holds the updated item, or with
    read_back=False only its id (the item is not read back: the executor's
    hot path)."""
    task = Task(id=task_id)
    updates = [*updates, Task.updated_at.set(now())]
    try:
        if read_back:
            task.update(actions=updates, condition=condition)
        else:
            Task._get_connection().update_item(task_id, actions=updates, condition=condition)
    except UpdateError as exc:
        if not is_conditional_failure(exc):
            raise
        return None
    return task
