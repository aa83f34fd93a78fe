"""Small builders shared by the tests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import Client

from tasks import scheduler
from tasks.executor import run_task
from tasks.models import Task
from tasks.services import creation

PASSWORD = "correct horse battery"


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


def create_via_api(api, count: int, **overrides) -> list[str]:
    """Create `count` tasks through POST /api/tasks; their ids."""
    ids = []
    for _ in range(count):
        response = api.post("/api/tasks", task_body(**overrides))
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def due_task(url: str, *, data: Any = None, **fields: Any) -> Task:
    """A task stored through the service, due now (so the executor may claim it)."""
    payload = {"url": url, "data": {"message": "Hello World"} if data is None else data}
    payload.update(fields.pop("payload_extra", {}))
    task, _created = creation.task_create(
        action="webhook", payload=payload, run_at=datetime.now(UTC), **fields
    )
    return task


def stored(task_id: str) -> Task:
    return Task.get(task_id, consistent_read=True)


def stored_tasks() -> list[Task]:
    return list(Task.scan())


def make_task(run_in: timedelta = timedelta(hours=1), **payload) -> Task:
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook", "data": {"n": 1}, **payload},
        run_at=datetime.now(UTC) + run_in,
    )
    return task


def fail_task(httpserver, settings) -> Task:
    """A real failed task: one attempt at a receiver answering 500."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    httpserver.expect_request("/broken").respond_with_data("boom", status=500)
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": httpserver.url_for("/broken")},
        run_at=datetime.now(UTC),
        max_attempts=1,
    )
    assert run_task({"task_id": task.id})["result"] == "failed"
    return stored(task.id)


# --- schedules ---------------------------------------------------------------------------


def get_schedule(settings, name: str) -> dict:
    return scheduler.client().get_schedule(Name=name, GroupName=settings.SCHEDULE_GROUP)


def schedule_of(settings, task: Task) -> dict:
    return get_schedule(settings, task.schedule_name)


def schedule_exists(settings, name: str) -> bool:
    try:
        get_schedule(settings, name)
    except scheduler.client().exceptions.ResourceNotFoundException:
        return False
    return True


def schedule_names(settings) -> set[str]:
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)
    return {s["Name"] for s in schedules["Schedules"]}


# --- the dashboard ---------------------------------------------------------------------


def log_in(client: Client, username: str = "alice", password: str = PASSWORD, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def field_error(html: str, field: str) -> str:
    """The error text shown beside a form field."""
    block = re.search(rf'data-field="{field}".*?</div>', html, re.S)
    assert block, f"no field {field}"
    error = re.search(r'class="field-error"[^>]*>(.*?)</p>', block.group(0), re.S)
    return error.group(1) if error else ""


def form_data(**overrides) -> dict:
    data = {
        "url": "https://example.com/hooks/reminder",
        "method": "POST",
        "headers": "",
        "data": '{"message": "Hello World"}',
        "when": "in",
        "in_minutes": "10",
        "run_at": "",
        "timezone": "UTC",
        "max_attempts": "3",
        "submission": "a" * 32,
        "clone_of": "",
    }
    data.update(overrides)
    return data
