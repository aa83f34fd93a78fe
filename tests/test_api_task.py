"""One task through the JSON API: its detail and its cancel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import EndpointConnectionError

from tasks import scheduler
from tasks.executor import run_task
from tasks.models import Task
from tasks.services import running
from tests.factories import create_via_api, schedule_exists, task_body

# --- detail -------------------------------------------------------------------------


def test_it_shows_a_task_with_its_attempt_history(api, httpserver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    httpserver.expect_oneshot_request("/hook").respond_with_data("thanks", status=202)
    response = api.post("/api/tasks", task_body(payload={"url": httpserver.url_for("/hook")}))
    task_id = response.json()["id"]
    before = api.get(f"/api/tasks/{task_id}")
    assert before.status_code == 200
    assert before.json()["attemptHistory"] == []

    Task(id=task_id).update(actions=[Task.due_at.set(datetime.now(UTC))])
    assert run_task({"task_id": task_id})["result"] == "completed"

    detail = api.get(f"/api/tasks/{task_id}").json()
    assert detail["status"] == "completed"
    assert detail["attempts"] == 1
    assert detail["nextAttemptAt"] is None
    [attempt] = detail["attemptHistory"]
    assert attempt["number"] == 1
    assert attempt["outcome"] == "success"
    assert attempt["httpStatus"] == 202
    assert attempt["responseExcerpt"] == "thanks"
    assert attempt["error"] is None
    assert attempt["durationMs"] >= 0
    assert attempt["startedAt"] <= attempt["finishedAt"]


@pytest.mark.parametrize(
    "task_id", ["0123456789abcdef0123456789abcdef", "nope", "A" * 32, "x" * 3000]
)
def test_it_answers_404_for_an_unknown_task(api, task_id):
    for response in (
        api.get(f"/api/tasks/{task_id}"),
        api.post(f"/api/tasks/{task_id}/cancel"),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": f"task {task_id} not found"}


# --- cancel -------------------------------------------------------------------------


def test_it_cancels_a_scheduled_task_and_deletes_its_schedule(api, settings):
    task_id = create_via_api(api, 1)[0]
    schedule_name = Task.get(task_id).schedule_name
    assert schedule_exists(settings, schedule_name)

    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert response.json()["nextAttemptAt"] is None
    assert Task.get(task_id).status == "cancelled"
    assert not schedule_exists(settings, schedule_name)
    # A delivery of the deleted schedule that was already on its way runs nothing.
    Task(id=task_id).update(actions=[Task.due_at.set(datetime.now(UTC))])
    assert run_task({"task_id": task_id})["result"] == "skipped"
    assert Task.get(task_id).attempts == 0


def test_it_cancels_a_task_whose_schedule_is_already_gone(api, settings):
    task_id = create_via_api(api, 1)[0]
    scheduler.schedule_delete(name=Task.get(task_id).schedule_name)
    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert Task.get(task_id).status == "cancelled"


def test_it_refuses_to_cancel_twice(api):
    task_id = create_via_api(api, 1)[0]
    assert api.post(f"/api/tasks/{task_id}/cancel").status_code == 200
    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 409
    assert response.json() == {"detail": "task is cancelled and can no longer be cancelled"}


@pytest.mark.parametrize("status", ["running", "completed", "failed"])
def test_it_refuses_to_cancel_a_task_that_is_no_longer_scheduled(api, status):
    task_id = create_via_api(api, 1)[0]
    Task(id=task_id).update(actions=[Task.status.set(status)])
    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 409
    assert response.json()["detail"] == f"task is {status} and can no longer be cancelled"
    assert Task.get(task_id).status == status


def test_it_keeps_the_cancel_even_when_the_schedule_cannot_be_deleted(api, monkeypatch):
    task_id = create_via_api(api, 1)[0]

    def delete_schedule(**kwargs):
        raise EndpointConnectionError(endpoint_url="https://scheduler.us-east-1.amazonaws.com")

    monkeypatch.setattr(scheduler.client(), "delete_schedule", delete_schedule)
    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert Task.get(task_id).status == "cancelled"
    assert running.task_claim(task_id=task_id) is None
