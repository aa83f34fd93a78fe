"""Creating tasks through the JSON API, and the original /schedule-task path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from tasks import scheduler
from tasks.models import Task
from tasks.services import access
from tests.factories import future, get_schedule, iso, schedule_exists, stored_tasks, task_body

# --- create -------------------------------------------------------------------------


def test_it_creates_a_task(api, settings):
    run_at = future(3600)
    response = api.post("/api/tasks", task_body(runAt=run_at))
    assert response.status_code == 201, response.content
    task = response.json()
    assert set(task) == {
        "id",
        "action",
        "payload",
        "runAt",
        "status",
        "attempts",
        "maxAttempts",
        "error",
        "outcome",
        "nextAttemptAt",
        "createdAt",
        "updatedAt",
    }
    assert task["status"] == "scheduled"
    assert task["action"] == "webhook"
    assert task["payload"] == {
        "url": "https://example.com/hook",
        "data": {"message": "Hello World"},
        "method": "POST",
        "headers": {},
    }
    assert task["attempts"] == 0
    assert task["maxAttempts"] == 3
    assert task["error"] is None
    assert datetime.fromisoformat(task["runAt"]) == datetime.fromisoformat(run_at)
    assert task["nextAttemptAt"] == task["runAt"]

    stored = Task.get(task["id"])
    assert stored.status == "scheduled"
    assert stored.run_at == datetime.fromisoformat(run_at)
    assert stored.max_attempts == 3
    schedule = get_schedule(settings, stored.schedule_name)
    assert json.loads(schedule["Target"]["Input"])["task_id"] == task["id"]


def test_it_stores_runat_given_with_an_offset_in_utc(api):
    in_utc = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    with_offset = (in_utc + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    response = api.post("/api/tasks", task_body(runAt=with_offset))
    assert response.status_code == 201, response.content
    assert response.json()["runAt"] == iso(in_utc)
    assert Task.get(response.json()["id"]).run_at == in_utc


def test_it_takes_maxattempts_and_method_and_headers(api):
    body = task_body(maxAttempts=5)
    body["payload"].update(method="put", headers={"X-Team": "ops"})
    response = api.post("/api/tasks", body)
    assert response.status_code == 201, response.content
    task = response.json()
    assert task["maxAttempts"] == 5
    assert task["payload"]["method"] == "PUT"
    assert task["payload"]["headers"] == {"X-Team": "ops"}
    stored = Task.get(task["id"])
    assert stored.max_attempts == 5
    assert stored.payload["method"] == "PUT"


def test_it_runs_a_task_whose_runat_just_passed_at_once(api, settings):
    run_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    response = api.post("/api/tasks", task_body(runAt=iso(run_at)))
    assert response.status_code == 201, response.content
    task = response.json()
    # runAt is kept as asked; the attempt is due now.
    assert datetime.fromisoformat(task["runAt"]) == run_at
    next_attempt = datetime.fromisoformat(task["nextAttemptAt"])
    assert next_attempt > run_at + timedelta(seconds=55)
    assert next_attempt <= datetime.now(UTC)
    schedule = get_schedule(settings, Task.get(task["id"]).schedule_name)
    fires = datetime.strptime(schedule["ScheduleExpression"], "at(%Y-%m-%dT%H:%M:%S)")
    assert fires.replace(tzinfo=UTC) >= next_attempt.replace(microsecond=0)


def test_it_redacts_credential_headers_in_answers_but_sends_them_as_given(api):
    body = task_body()
    body["payload"]["headers"] = {"Authorization": "Bearer s3cret", "X-Api-Key": "k", "X-Team": "a"}
    response = api.post("/api/tasks", body)
    assert response.status_code == 201, response.content
    headers = response.json()["payload"]["headers"]
    assert headers == {"Authorization": "[redacted]", "X-Api-Key": "[redacted]", "X-Team": "a"}
    detail = api.get(f"/api/tasks/{response.json()['id']}").json()
    assert "s3cret" not in json.dumps(detail)
    assert Task.get(response.json()["id"]).payload["headers"]["Authorization"] == "Bearer s3cret"


def test_it_replays_a_create_with_the_same_idempotency_key(api, settings):
    body = task_body()
    first = api.post("/api/tasks", body, **{"Idempotency-Key": "order-42"})
    second = api.post("/api/tasks", body, **{"Idempotency-Key": "order-42"})
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert len(stored_tasks()) == 1
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)["Schedules"]
    assert len(schedules) == 1


def test_it_refuses_an_idempotency_key_reused_with_another_body(api):
    first = api.post("/api/tasks", task_body(), **{"Idempotency-Key": "order-43"})
    assert first.status_code == 201
    response = api.post("/api/tasks", task_body(maxAttempts=7), **{"Idempotency-Key": "order-43"})
    assert response.status_code == 409
    assert "Idempotency-Key" in response.json()["detail"]
    assert [t.id for t in stored_tasks()] == [first.json()["id"]]
    assert Task.get(first.json()["id"]).max_attempts == 3


def test_it_scopes_idempotency_keys_to_the_api_key(api, client, aws):
    _record, other_key = access.apikey_create(name="other team")
    first = api.post("/api/tasks", task_body(), **{"Idempotency-Key": "same"})
    second = client.post(
        "/api/tasks",
        task_body(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {other_key}", "Idempotency-Key": "same"},
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert len(stored_tasks()) == 2


def _fail_create_schedule(monkeypatch, error: Exception) -> None:
    def create_schedule(**kwargs):
        raise error

    monkeypatch.setattr(scheduler.client(), "create_schedule", create_schedule)


@pytest.mark.parametrize(
    "error",
    [
        ClientError(
            {"Error": {"Code": "ServiceQuotaExceededException", "Message": "too many"}},
            "CreateSchedule",
        ),
        EndpointConnectionError(endpoint_url="https://scheduler.us-east-1.amazonaws.com"),
    ],
    ids=["client-error", "unreachable"],
)
def test_it_answers_503_and_stores_the_task_failed_when_scheduling_fails(
    api, settings, monkeypatch, error
):
    _fail_create_schedule(monkeypatch, error)
    response = api.post("/api/tasks", task_body())
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "could not create the schedule" in detail
    [stored] = stored_tasks()
    assert stored.id in detail
    # Never `scheduled` without a schedule: kept as failed, with the reason.
    assert stored.status == "failed"
    assert stored.error.startswith("could not create the schedule")
    assert api.get(f"/api/tasks/{stored.id}").json()["status"] == "failed"
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)["Schedules"]
    assert schedules == []


def test_a_retried_create_after_a_503_schedules_the_task(api, settings, monkeypatch):
    body = task_body()
    real_create = scheduler.client().create_schedule
    _fail_create_schedule(
        monkeypatch, EndpointConnectionError(endpoint_url="https://scheduler.example")
    )
    first = api.post("/api/tasks", body, **{"Idempotency-Key": "order-44"})
    assert first.status_code == 503

    monkeypatch.setattr(scheduler.client(), "create_schedule", real_create)
    second = api.post("/api/tasks", body, **{"Idempotency-Key": "order-44"})
    assert second.status_code == 201, second.content
    task = second.json()
    [stored] = stored_tasks()
    assert task["id"] == stored.id and task["id"] in first.json()["detail"]
    assert task["status"] == "scheduled" and task["error"] is None
    assert stored.status == "scheduled"
    assert schedule_exists(settings, stored.schedule_name)
    # And a third time is a plain replay: the same task, one schedule.
    third = api.post("/api/tasks", body, **{"Idempotency-Key": "order-44"})
    assert third.status_code == 201 and third.json()["id"] == task["id"]
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)["Schedules"]
    assert [s["Name"] for s in schedules] == [stored.schedule_name]


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("delete", "/api/tasks", 405, {"GET", "POST"}),
        ("put", "/api/tasks/" + "ab" * 16, 405, {"GET"}),
        ("get", "/schedule-task", 405, {"POST"}),
        ("get", "/api/no-such-route", 404, None),
    ],
)
def test_the_api_answers_unknown_routes_and_methods_in_json(
    client, api_key, method, path, status, allow
):
    response = getattr(client, method)(path, headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == status
    assert response.json() == {"detail": {404: "Not Found", 405: "Method not allowed"}[status]}
    if allow:
        assert {m.strip() for m in response["Allow"].split(",")} == allow


def test_the_dashboard_keeps_its_own_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


# --- the original's path -------------------------------------------------------------

ORIGINAL_CURL_BODY = """{
  "action": "webhook",
  "payload": {
    "url": "https://your-webhook-url.com",
    "data": {
      "message": "Hello World"
    }
  },
  "runAt": "%s"
}"""


def test_it_accepts_the_original_body_unchanged_at_schedule_task(client, api_key, settings):
    # The original README's curl body, byte for byte but for a runAt that is
    # still in the future (its 2024 date is now in the past).
    run_at = future(600)
    response = client.post(
        "/schedule-task",
        ORIGINAL_CURL_BODY % run_at,
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 201, response.content
    task = response.json()
    assert task["status"] == "scheduled"
    assert task["payload"]["url"] == "https://your-webhook-url.com"
    assert task["payload"]["data"] == {"message": "Hello World"}
    stored = Task.get(task["id"])
    assert stored.run_at == datetime.fromisoformat(run_at)
    assert schedule_exists(settings, stored.schedule_name)


def test_it_validates_at_schedule_task_as_at_api_tasks(api):
    response = api.post("/schedule-task", task_body(runAt="2030-03-20T15:00:00"))
    assert response.status_code == 422
    assert "timezone" in json.dumps(response.json()["detail"])
    assert stored_tasks() == []


def test_it_honours_the_idempotency_key_at_schedule_task(api):
    body = task_body()
    first = api.post("/schedule-task", body, **{"Idempotency-Key": "k1"})
    second = api.post("/api/tasks", body, **{"Idempotency-Key": "k1"})
    assert first.status_code == 201
    assert second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
