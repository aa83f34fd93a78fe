"""Request and response schemas of the JSON API (camelCase, as the original)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ninja import Schema
from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from pydantic.alias_generators import to_camel

from tasks.models import Schedule, Status, Task

# Header values that look like credentials are never echoed back.
_SENSITIVE = re.compile(r"auth|token|secret|key|cookie|password|signature", re.I)
REDACTED = "[redacted]"


class CamelSchema(Schema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TaskIn(CamelSchema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    action: str = Field(max_length=64, examples=["webhook"])
    payload: dict[str, Any] = Field(
        examples=[{"url": "https://example.com/hook", "data": {"message": "Hello World"}}]
    )
    run_at: datetime = Field(examples=["2024-03-20T15:00:00Z"])
    # strict: true or 3.0 is not a number of attempts.
    max_attempts: int | None = Field(default=None, strict=True, examples=[3])


class AttemptOut(CamelSchema):
    number: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    http_status: int | None
    duration_ms: int
    error: str | None
    response_excerpt: str | None


class TaskOut(CamelSchema):
    id: str
    action: str
    payload: dict[str, Any]
    run_at: datetime
    status: str
    attempts: int
    max_attempts: int
    error: str | None
    next_attempt_at: datetime | None
    schedule_id: str | None = None
    occurrence_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_payload(task: Task) -> dict[str, Any]:
        return public_payload(task.payload)

    @staticmethod
    def resolve_next_attempt_at(task: Task) -> datetime | None:
        return task.due_at if task.status == Status.SCHEDULED else None

    @model_serializer(mode="wrap")
    def _occurrence_fields_on_occurrences_only(self, handler: SerializerFunctionWrapHandler):
        data = handler(self)
        if self.schedule_id is None:
            for name in ("schedule_id", "occurrence_at", "scheduleId", "occurrenceAt"):
                data.pop(name, None)
        return data


class TaskDetailOut(TaskOut):
    attempt_history: list[AttemptOut]


class TaskPageOut(CamelSchema):
    items: list[TaskOut]
    next_cursor: str | None


class ScheduleIn(CamelSchema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    action: str = Field(max_length=64, examples=["webhook"])
    payload: dict[str, Any] = Field(
        examples=[{"url": "https://example.com/hook", "data": {"message": "Good morning"}}]
    )
    cron: str | None = Field(default=None, max_length=200, examples=["0 9 * * MON-FRI"])
    rate: str | None = Field(default=None, max_length=64, examples=["5 minutes"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Paris"])
    max_attempts: int | None = Field(default=None, strict=True, examples=[3])
    start_at: datetime | None = None
    end_at: datetime | None = None
    description: str | None = Field(default=None, max_length=1000)


class SchedulePatch(CamelSchema):
    """Any of ScheduleIn's fields; those sent replace the stored ones (a
    cron replaces a rate; null clears startAt, endAt or description)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    action: str | None = Field(default=None, max_length=64)
    payload: dict[str, Any] | None = None
    cron: str | None = Field(default=None, max_length=200)
    rate: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)
    max_attempts: int | None = Field(default=None, strict=True)
    start_at: datetime | None = None
    end_at: datetime | None = None
    description: str | None = Field(default=None, max_length=1000)

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class ScheduleOut(CamelSchema):
    id: str
    action: str
    payload: dict[str, Any]
    cron: str | None
    rate: str | None
    timezone: str
    state: str
    next_run_at: datetime | None
    next_runs: list[datetime]
    expression: str
    description: str | None
    summary: str
    max_attempts: int
    start_at: datetime | None
    end_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_payload(schedule: Schedule) -> dict[str, Any]:
        return public_payload(schedule.payload)

    @staticmethod
    def resolve_next_runs(schedule: Schedule) -> list[datetime]:
        from tasks.selectors import schedule_next_runs

        return schedule_next_runs(schedule)

    @staticmethod
    def resolve_next_run_at(schedule: Schedule) -> datetime | None:
        from tasks.selectors import schedule_next_runs

        runs = schedule_next_runs(schedule, count=1)
        return runs[0] if runs else None

    @staticmethod
    def resolve_summary(schedule: Schedule) -> str:
        from tasks.recurrence import describe

        return describe(cron=schedule.cron, rate=schedule.rate, timezone=schedule.timezone)


class SchedulePageOut(CamelSchema):
    items: list[ScheduleOut]
    next_cursor: str | None


class ErrorOut(Schema):
    detail: str


def public_payload(payload: dict[str, Any]) -> dict[str, Any]:
    headers = payload.get("headers")
    if not headers:
        return payload
    return {
        **payload,
        "headers": {k: REDACTED if _SENSITIVE.search(k) else v for k, v in headers.items()},
    }
