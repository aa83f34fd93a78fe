"""Request and response schemas of the JSON API (camelCase, as the original)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from django.conf import settings
from ninja import Schema
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tasks.actions import ACTIONS
from tasks.actions.webhook_payload import WebhookPayload
from tasks.models import Schedule, Status, Task

# Header values that look like credentials are never echoed back.
_SENSITIVE = re.compile(r"auth|token|secret|key|cookie|password|signature", re.I)
REDACTED = "[redacted]"


class CamelSchema(Schema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def _iso_datetime(value: Any) -> Any:
    """runAt as the contract says: an ISO-8601 string (RFC 3339 is one), not
    a Unix timestamp, which pydantic would otherwise take, as a number or as
    a string of digits. Whether it has a timezone, and when it is, the
    service checks (the dashboard's times come through there too)."""
    if isinstance(value, datetime):  # from Python, not from JSON
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.upper())  # RFC 3339 allows t and z
        except ValueError:
            pass
    raise PydanticCustomError(
        "datetime_parsing",
        "Input should be an ISO-8601 datetime string with a timezone, e.g. {example}",
        {"example": RUN_AT_EXAMPLE},
    )


def _run_at_example() -> str:
    """Tomorrow at 15:00 UTC: an example the API accepts (a fixed date would
    drift into the past, or beyond TASK_MAX_HORIZON_DAYS)."""
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    return tomorrow.replace(hour=15, minute=0, second=0, microsecond=0).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


RUN_AT_EXAMPLE = _run_at_example()
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]


def _payload_schema(schema: dict[str, Any]) -> None:
    """The payload in the OpenAPI schema: the webhook action's fields and
    rules (the service validates it per action)."""
    schema.update(WebhookPayload.model_json_schema())
    schema.pop("title", None)


class TaskIn(CamelSchema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    action: str = Field(max_length=64, examples=["webhook"], json_schema_extra={"enum": [*ACTIONS]})
    payload: dict[str, Any] = Field(
        examples=[{"url": "https://example.com/hook", "data": {"message": "Hello World"}}],
        json_schema_extra=_payload_schema,
    )
    run_at: IsoDateTime = Field(
        examples=[RUN_AT_EXAMPLE],
        description=(
            "ISO-8601 (e.g. RFC 3339) with a timezone (Z or +02:00); not a Unix timestamp. "
            f"At most TASK_PAST_TOLERANCE_SECONDS ({settings.TASK_PAST_TOLERANCE_SECONDS}) "
            "in the past (it then runs at once), at most TASK_MAX_HORIZON_DAYS "
            f"({settings.TASK_MAX_HORIZON_DAYS}) ahead."
        ),
    )
    # strict: true or 3.0 is not a number of attempts. The range is the
    # service's check (its message names the setting); stated here for clients.
    max_attempts: int | None = Field(
        default=None,
        strict=True,
        examples=[3],
        json_schema_extra={"minimum": 1, "maximum": settings.TASK_MAX_ATTEMPTS_LIMIT},
    )


class RescheduleIn(CamelSchema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    run_at: IsoDateTime = Field(
        examples=[RUN_AT_EXAMPLE], description="ISO-8601 with a timezone, as a task's runAt."
    )


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
    # "unknown": the executor died after claiming the task (its claim has
    # lapsed), so the request may have gone out; null otherwise.
    outcome: Literal["unknown"] | None
    next_attempt_at: datetime | None
    schedule_id: str | None = None
    occurrence_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_error(task: Task) -> str | None:
        return task.outcome_message or task.error

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


class DeadLetterOut(CamelSchema):
    id: str
    task_id: str | None
    reason: str
    source: Literal["scheduler", "executor", "local"]
    sent_at: datetime | None
    age_seconds: int | None
    receive_count: int


class DeadLetterPageOut(CamelSchema):
    items: list[DeadLetterOut]
    queue: str | None
    approximate_total: int


class ReplayedOut(CamelSchema):
    id: str
    task_id: str | None
    result: Literal["run_now", "removed", "kept"]
    detail: str


class ReplayedPageOut(CamelSchema):
    items: list[ReplayedOut]


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
    start_at: IsoDateTime | None = None
    end_at: IsoDateTime | None = None
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
    start_at: IsoDateTime | None = None
    end_at: IsoDateTime | None = None
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
