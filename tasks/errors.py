"""Domain exceptions; scheduler_site/api.py maps each to one HTTP status."""

from __future__ import annotations


class TaskError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TaskNotFound(TaskError):
    """404"""


class TaskConflict(TaskError):
    """409: the task's state does not allow the operation."""


class InvalidTask(TaskError):
    """422: errors is a list of {"loc": [...], "msg": ..., "type": ...}; loc
    names a body field as sent (camelCase), or starts with "header" or "query"."""

    def __init__(self, errors: list[dict]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


class InvalidCursor(TaskError):
    """400"""


class SchedulingFailed(TaskError):
    """503: the schedule could not be created; the task is stored as failed."""
