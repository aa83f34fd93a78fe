"""/api/schedules and a recurring schedule's occurrences, under moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tasks import scheduler
from tasks.executor import run_task
from tasks.models import Schedule, Task
from tests.factories import iso


def body(**overrides) -> dict:
    data = {
        "action": "webhook",
        "payload": {"url": "https://example.com/hook", "data": {"n": 1}},
        "cron": "0 9 * * MON-FRI",
        "timezone": "Europe/Paris",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def eventbridge(settings, schedule_id: str) -> dict:
    return scheduler.client().get_schedule(Name=schedule_id, GroupName=settings.SCHEDULE_GROUP)


def patch(client, api, path: str, data: dict):
    return client.patch(
        path, json.dumps(data), content_type="application/json", headers=api.headers
    )


def delete(client, api, path: str):
    return client.delete(path, headers=api.headers)


@pytest.fixture
def created(api) -> dict:
    response = api.post("/api/schedules", body())
    assert response.status_code == 201, response.content
    return response.json()


def test_it_creates_a_cron_schedule_and_its_eventbridge_schedule(api, created, settings):
    assert set(created) == {
        "id",
        "action",
        "payload",
        "cron",
        "rate",
        "timezone",
        "state",
        "nextRunAt",
        "nextRuns",
        "expression",
        "description",
        "summary",
        "maxAttempts",
        "startAt",
        "endAt",
        "createdAt",
        "updatedAt",
    }
    assert created["cron"] == "0 9 * * MON-FRI" and created["rate"] is None
    assert created["expression"] == "cron(0 9 ? * MON-FRI *)"
    assert created["state"] == "enabled"
    assert created["summary"] == "At 09:00, Monday through Friday (Europe/Paris)"
    assert created["maxAttempts"] == settings.TASK_DEFAULT_MAX_ATTEMPTS
    runs = [datetime.fromisoformat(r) for r in created["nextRuns"]]
    assert (
        len(runs) == 5 and runs == sorted(runs) and created["nextRunAt"] == created["nextRuns"][0]
    )
    for run in runs:
        local = run.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
        assert (local.hour, local.minute) == (9, 0) and local.weekday() < 5

    stored = Schedule.get(created["id"])
    assert (stored.expression, stored.timezone, stored.state) == (
        "cron(0 9 ? * MON-FRI *)",
        "Europe/Paris",
        "enabled",
    )
    schedule = eventbridge(settings, created["id"])
    assert schedule["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert schedule["State"] == "ENABLED"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["Target"]["Arn"] == settings.EXECUTOR_FUNCTION_ARN
    assert json.loads(schedule["Target"]["Input"]) == {
        "command": "tasks.executor.run_task",
        "schedule_id": created["id"],
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }


def test_it_creates_a_rate_schedule_with_a_start_and_end(api, settings):
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    end = start + timedelta(hours=1)
    response = api.post(
        "/api/schedules",
        body(cron=None, rate="15 minutes", timezone=None, startAt=iso(start), endAt=iso(end)),
    )
    assert response.status_code == 201, response.content
    schedule = response.json()
    assert (schedule["rate"], schedule["expression"], schedule["timezone"]) == (
        "15 minutes",
        "rate(15 minutes)",
        "UTC",
    )
    assert schedule["nextRuns"] == [iso(start + timedelta(minutes=15 * k)) for k in range(4)]
    stored = eventbridge(settings, schedule["id"])
    assert stored["StartDate"] == start and stored["EndDate"] == end


def test_it_answers_401_without_a_key(client):
    response = client.post("/api/schedules", body(), content_type="application/json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("overrides", "loc", "words"),
    [
        ({"cron": "0 9 * *"}, "cron", "4 fields"),
        ({"cron": "61 9 * * *"}, "cron", "bad minute"),
        ({"cron": "0 9 1 * MON"}, "cron", "EventBridge Scheduler cannot express"),
        ({"cron": None, "rate": "30 seconds"}, "rate", "at least 1 minute"),
        ({"cron": None, "rate": "0 minutes"}, "rate", "at least 1 minute"),
        ({"cron": None, "rate": "soon"}, "rate", "a number and a unit"),
        ({"cron": None}, "cron", "exactly one of cron"),
        ({"rate": "5 minutes"}, "cron", "exactly one of cron"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown timezone"),
        ({"startAt": "2030-01-02T00:00:00Z", "endAt": "2030-01-01T00:00:00Z"}, "endAt", "after"),
        ({"startAt": "2030-01-01T00:00:00Z", "endAt": "2030-01-01T00:00:00Z"}, "endAt", "after"),
        ({"endAt": "2020-01-01T00:00:00Z"}, "endAt", "in the past"),
        ({"startAt": "2020-01-01T00:00:00Z"}, "startAt", "in the past"),
        ({"startAt": "2030-01-01T00:00:00"}, "startAt", "timezone"),
        ({"maxAttempts": 0}, "maxAttempts", "between 1 and"),
        ({"action": "email"}, "action", "unknown action"),
        ({"payload": {"url": "ftp://example.com/x"}}, "payload", "http"),
    ],
)
def test_it_refuses_invalid_schedules_naming_the_field(api, overrides, loc, words):
    response = api.post("/api/schedules", body(**overrides))
    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert any(e["loc"][:2] == ["body", loc] and words in e["msg"] for e in detail), detail
    assert list(Schedule.scan()) == []


def test_it_refuses_unknown_fields_and_wrong_types(api):
    assert api.post("/api/schedules", body(every="day")).status_code == 422
    assert api.post("/api/schedules", body(maxAttempts="3")).status_code == 422


def test_it_gets_lists_and_pages_schedules(api, created):
    second = api.post("/api/schedules", body(cron="*/5 * * * *")).json()
    assert api.get(f"/api/schedules/{created['id']}").json()["id"] == created["id"]
    assert api.get("/api/schedules/0123456789abcdef0123456789abcdef").status_code == 404
    assert api.get("/api/schedules/not-an-id").status_code == 404
    first_page = api.get("/api/schedules", limit=1).json()
    assert [s["id"] for s in first_page["items"]] == [second["id"]]  # newest first
    rest = api.get("/api/schedules", limit=1, cursor=first_page["nextCursor"]).json()
    assert [s["id"] for s in rest["items"]] == [created["id"]] and rest["nextCursor"] is None
    assert api.get("/api/schedules", cursor="garbage").status_code == 400


def test_it_patches_a_schedule_and_replaces_the_eventbridge_definition_whole(
    client, api, created, settings
):
    response = patch(client, api, f"/api/schedules/{created['id']}", {"rate": "2 hours"})
    assert response.status_code == 200, response.content
    changed = response.json()
    assert (changed["cron"], changed["rate"], changed["expression"]) == (
        None,
        "2 hours",
        "rate(2 hours)",
    )
    assert changed["timezone"] == "Europe/Paris" and changed["payload"] == created["payload"]
    schedule = eventbridge(settings, created["id"])
    assert schedule["ScheduleExpression"] == "rate(2 hours)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert json.loads(schedule["Target"]["Input"])["schedule_id"] == created["id"]
    assert schedule["State"] == "ENABLED"

    response = patch(
        client, api, f"/api/schedules/{created['id']}", {"cron": "0 7 * * *", "description": "x"}
    )
    assert response.json()["expression"] == "cron(0 7 * * ? *)"
    assert response.json()["description"] == "x"


def test_it_refuses_an_invalid_patch_and_keeps_the_schedule(client, api, created, settings):
    response = patch(client, api, f"/api/schedules/{created['id']}", {"cron": "0 9 1 * MON"})
    assert response.status_code == 422
    response = patch(
        client, api, f"/api/schedules/{created['id']}", {"cron": "* * * * *", "rate": "1 hour"}
    )
    assert response.status_code == 422
    assert api.get(f"/api/schedules/{created['id']}").json()["expression"] == created["expression"]
    assert eventbridge(settings, created["id"])["ScheduleExpression"] == created["expression"]
    missing = patch(
        client, api, "/api/schedules/0123456789abcdef0123456789abcdef", {"rate": "1 hour"}
    )
    assert missing.status_code == 404


def test_it_pauses_and_resumes_with_eventbridges_state(api, created, settings):
    path = f"/api/schedules/{created['id']}"
    paused = api.post(f"{path}/pause")
    assert paused.status_code == 200
    assert (paused.json()["state"], paused.json()["nextRunAt"], paused.json()["nextRuns"]) == (
        "paused",
        None,
        [],
    )
    assert eventbridge(settings, created["id"])["State"] == "DISABLED"
    assert api.post(f"{path}/pause").status_code == 409
    resumed = api.post(f"{path}/resume")
    assert resumed.json()["state"] == "enabled" and len(resumed.json()["nextRuns"]) == 5
    assert eventbridge(settings, created["id"])["State"] == "ENABLED"
    assert api.post(f"{path}/resume").status_code == 409
    assert api.post("/api/schedules/0123456789abcdef0123456789abcdef/pause").status_code == 404


def test_it_keeps_nothing_when_eventbridge_refuses_the_schedule(api, monkeypatch):
    def refuse(**kwargs):
        raise scheduler.SchedulerError("ThrottlingException: slow down")

    monkeypatch.setattr(scheduler, "recurring_create", refuse)
    response = api.post("/api/schedules", body())
    assert response.status_code == 503
    assert "ThrottlingException" in response.json()["detail"]
    assert list(Schedule.scan()) == []


# --- occurrences ------------------------------------------------------------------------


def occurrence_event(schedule_id: str, when: str) -> dict:
    return {
        "command": "tasks.executor.run_task",
        "schedule_id": schedule_id,
        "scheduled_time": when,
    }


@pytest.fixture
def hook(receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    return receiver.url_for("/hook")


def test_it_makes_one_task_per_occurrence_however_often_it_is_delivered(api, hook, receiver):
    schedule = api.post("/api/schedules", body(payload={"url": hook, "data": {"n": 1}})).json()
    now = datetime.now(UTC).replace(microsecond=0)
    earlier = now - timedelta(minutes=1)
    event = occurrence_event(schedule["id"], iso(earlier))

    first = run_task(event)
    duplicate = run_task(dict(event))
    assert first["result"] == "completed" and duplicate["result"] == "skipped"
    assert first["taskId"] == duplicate["taskId"]
    assert len(receiver.log) == 1

    later = run_task(occurrence_event(schedule["id"], iso(now)))
    assert later["taskId"] != first["taskId"]
    ids = [r.headers["webhook-id"] for r, _ in receiver.log]
    assert ids == [first["taskId"], later["taskId"]]

    listed = api.get("/api/tasks", scheduleId=schedule["id"]).json()
    assert [t["id"] for t in listed["items"]] == [later["taskId"], first["taskId"]]  # newest first
    task = api.get(f"/api/tasks/{first['taskId']}").json()
    assert task["scheduleId"] == schedule["id"] and task["occurrenceAt"] == iso(earlier)
    assert task["status"] == "completed" and task["runAt"] == iso(earlier)
    assert len(list(Task.scan())) == 2


def test_it_lists_occurrences_only_newest_first_without_a_status(api, created):
    response = api.get("/api/tasks", scheduleId=created["id"], status="failed")
    assert response.status_code == 422
    assert api.get("/api/tasks", scheduleId=created["id"]).json() == {
        "items": [],
        "nextCursor": None,
    }


def test_it_makes_nothing_for_a_paused_or_deleted_schedule(client, api, hook, receiver):
    schedule = api.post("/api/schedules", body(payload={"url": hook})).json()
    when = iso(datetime.now(UTC).replace(microsecond=0))
    api.post(f"/api/schedules/{schedule['id']}/pause")
    assert run_task(occurrence_event(schedule["id"], when))["result"] == "ignored"
    api.post(f"/api/schedules/{schedule['id']}/resume")
    assert delete(client, api, f"/api/schedules/{schedule['id']}").status_code == 204
    assert run_task(occurrence_event(schedule["id"], when))["result"] == "ignored"
    assert run_task(occurrence_event(schedule["id"], "yesterday"))["result"] == "ignored"
    assert list(Task.scan()) == [] and receiver.log == []


def test_it_deletes_the_schedule_and_keeps_its_occurrences(client, api, hook, settings):
    schedule = api.post("/api/schedules", body(payload={"url": hook})).json()
    done = run_task(occurrence_event(schedule["id"], iso(datetime.now(UTC).replace(microsecond=0))))
    response = delete(client, api, f"/api/schedules/{schedule['id']}")
    assert response.status_code == 204
    assert api.get(f"/api/schedules/{schedule['id']}").status_code == 404
    with pytest.raises(scheduler.client().exceptions.ResourceNotFoundException):
        eventbridge(settings, schedule["id"])
    assert delete(client, api, f"/api/schedules/{schedule['id']}").status_code == 404
    kept = api.get("/api/tasks", scheduleId=schedule["id"]).json()["items"]
    assert [t["id"] for t in kept] == [done["taskId"]]


def test_it_retries_an_occurrence_with_a_one_time_schedule_of_its_own(api, receiver, settings):
    receiver.expect_request("/down").respond_with_data("no", status=503)
    schedule = api.post("/api/schedules", body(payload={"url": receiver.url_for("/down")})).json()
    result = run_task(
        occurrence_event(schedule["id"], iso(datetime.now(UTC).replace(microsecond=0)))
    )
    assert result["result"] == "scheduled"
    task = Task.get(result["taskId"])
    assert task.schedule_name == f"{task.id}-1" and task.attempts == 1
    names = [
        s["Name"]
        for s in scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)["Schedules"]
    ]
    assert sorted(names) == sorted([schedule["id"], task.schedule_name])


def test_it_keeps_secret_header_values_a_patch_sends_back_redacted(client, api):
    payload = {"url": "https://example.com/hook", "headers": {"X-Token": "s3cret", "X-Tag": "a"}}
    schedule = api.post("/api/schedules", body(payload=payload)).json()
    shown = schedule["payload"]
    assert shown["headers"] == {"X-Token": "[redacted]", "X-Tag": "a"}
    shown["headers"]["X-Tag"] = "b"
    response = patch(client, api, f"/api/schedules/{schedule['id']}", {"payload": shown})
    assert response.status_code == 200
    assert Schedule.get(schedule["id"]).payload["headers"] == {"X-Token": "s3cret", "X-Tag": "b"}


def test_it_changes_nothing_when_eventbridge_refuses_a_change(client, api, created, monkeypatch):
    def refuse(**kwargs):
        raise scheduler.SchedulerError("ThrottlingException: slow down")

    monkeypatch.setattr(scheduler, "recurring_update", refuse)
    path = f"/api/schedules/{created['id']}"
    assert patch(client, api, path, {"cron": "0 7 * * *"}).status_code == 503
    assert api.post(f"{path}/pause").status_code == 503
    stored = Schedule.get(created["id"])
    assert (stored.cron, stored.expression, stored.state) == (
        "0 9 * * MON-FRI",
        "cron(0 9 ? * MON-FRI *)",
        "enabled",
    )
    monkeypatch.undo()
    assert api.post(f"{path}/pause").json()["state"] == "paused"  # the version moved on cleanly
