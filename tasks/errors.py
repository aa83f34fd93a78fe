"""The domain's one error tree. scheduler_site/api.py maps each kind to one
HTTP status; the dashboard shows the message. Tasks, API keys and operators
all raise these."""

from __future__ import annotations


class DomainError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """404"""


class Conflict(DomainError):
    """409: the current state does not allow the operation."""


class Invalid(DomainError):
    """422: errors is a list of {"loc": [...], "msg": ..., "type": ...}; loc
    names a body field as sent (camelCase), or starts with "header" or "query"."""

    def __init__(self, errors: list[dict]) -> None:
        super().__init__("; ".join(e["msg"] for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, loc: list, msg: str, type_: str = "value_error") -> Invalid:
        return cls([{"loc": loc, "msg": msg, "type": type_}])


class BadRequest(DomainError):
    """400: a request that is not about a field (e.g. a list cursor)."""


class InvalidCursor(BadRequest):
    """A list cursor that is malformed, forged, or from another listing."""


class Unavailable(DomainError):
    """503: a dependency failed (e.g. the schedule could not be created)."""


class SchedulingFailed(Unavailable):
    """The schedule could not be created; the task is stored as failed."""


class ScheduleNotCreated(Unavailable):
    """A schedule made before the write that needs it could not be made:
    nothing was changed. `reason` says why, without the consequence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
