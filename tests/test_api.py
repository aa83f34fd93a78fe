from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks import scheduler
from tasks.models import Task


def future(seconds: int = 3600) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def body(**overrides):
    data = {
        "action": "webhook",
        "payload": {"url": "https://example.com/hook", "data": {"message": "Hello World"}},
        "runAt": future(),
    }
    data.update(overrides)
    return data


def test_it_creates_a_task(api, settings):
    response = api.post("/api/tasks", body())
    assert response.status_code == 201, response.content
    task = response.json()
    assert task["status"] == "scheduled"
    assert task["action"] == "webhook"
    assert task["payload"]["data"] == {"message": "Hello World"}
    assert task["attempts"] == 0
    assert task["maxAttempts"] == 3
    stored = Task.get(task["id"])
    assert stored.status == "scheduled"
    schedule = scheduler.client().get_schedule(
        Name=stored.schedule_name, GroupName=settings.SCHEDULE_GROUP
    )
    assert task["id"] in schedule["Target"]["Input"]
