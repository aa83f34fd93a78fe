"""Small builders shared by the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.models import Task
from tasks.services import creation


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def future(seconds: float = 3600) -> str:
    """An ISO-8601 UTC time `seconds` from now, in whole seconds (the API
    answers in milliseconds)."""
    return iso(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds))


def task_body(**overrides: Any) -> dict:
    """A valid create body in the original system's shape."""
    body: dict[str, Any] = {
        "action": "webhook",
        "payload": {"url": "https://example.com/hook", "data": {"message": "Hello World"}},
        "runAt": future(),
    }
    body.update(overrides)
    return body


def due_task(url: str, *, data: Any = None, **fields: Any) -> Task:
    """A task stored through the service, due now (so the executor may claim it)."""
    payload = {"url": url, "data": {"message": "Hello World"} if data is None else data}
    payload.update(fields.pop("payload_extra", {}))
    task, _created = creation.task_create(
        action="webhook", payload=payload, run_at=datetime.now(UTC), **fields
    )
    return task
