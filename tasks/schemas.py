"""Request and response schemas of the JSON API (camelCase, as the original)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ninja import Schema
from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from tasks.models import Status, Task

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
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_payload(task: Task) -> dict[str, Any]:
        return public_payload(task.payload)

    @staticmethod
    def resolve_next_attempt_at(task: Task) -> datetime | None:
        return task.due_at if task.status == Status.SCHEDULED else None


class TaskDetailOut(TaskOut):
    attempt_history: list[AttemptOut]


class TaskPageOut(CamelSchema):
    items: list[TaskOut]
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
