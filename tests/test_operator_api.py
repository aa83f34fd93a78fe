"""The operator commands in the API (retry, run now, reschedule) and how a
task whose executor died after its claim is shown: the dashboard's rules,
through the same services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import EndpointConnectionError

from tasks import scheduler
from tasks.models import Status, Task
from tasks.services import running
from tests.factories import future, task_body

UNKNOWN_ID = "ab" * 16


def stored(task_id: str) -> Task:
    return Task.get(task_id, consistent_read=True)


def schedule_names(settings) -> set[str]:
    return {s.name for s in scheduler.schedule_list()}


def create(api, **overrides) -> dict:
    response = api.post("/api/tasks", task_body(**overrides))
    assert response.status_code == 201, response.content
    return response.json()


def fail(task_id: str) -> None:
    Task(id=task_id).update(actions=[Task.status.set(Status.FAILED), Task.error.set("HTTP 500")])


def make_stuck(task_id: str) -> None:
    Task(id=task_id).update(actions=[Task.due_at.set(datetime.now(UTC))])
    assert running.task_claim(task_id=task_id) is not None
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    Task(id=task_id).update(actions=[Task.lease_expires_at.set(lapsed)])


def test_it_documents_the_statuses_of_the_commands(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for command in ("retry", "run-now"):
        codes = {int(c) for c in paths[f"/api/tasks/{{task_id}}/{command}"]["post"]["responses"]}
        assert codes == {200, 401, 404, 409, 503}
    codes = paths["/api/tasks/{task_id}/reschedule"]["post"]["responses"]
    assert {int(c) for c in codes} == {200, 401, 404, 409, 422, 503}


# --- run now ------------------------------------------------------------------------------


def test_it_runs_a_scheduled_task_now(api, settings):
    task = create(api, runAt=future(3600))
    before = datetime.now(UTC)

    response = api.post(f"/api/tasks/{task['id']}/run-now")

    assert response.status_code == 200, response.content
    moved = response.json()
    assert moved["status"] == "scheduled"
    next_at = datetime.fromisoformat(moved["nextAttemptAt"])
    assert before - timedelta(seconds=1) <= next_at <= datetime.now(UTC)
    assert stored(task["id"]).schedule_name == f"{task['id']}-2"
    assert schedule_names(settings) == {f"{task['id']}-2"}


def test_it_refuses_to_run_now_a_task_that_is_not_scheduled(api):
    task = create(api)
    fail(task["id"])
    response = api.post(f"/api/tasks/{task['id']}/run-now")
    assert response.status_code == 409
    assert response.json() == {"detail": "task is failed; only a scheduled task can be run now"}
    assert stored(task["id"]).status == "failed"


# --- retry --------------------------------------------------------------------------------


def test_it_retries_a_failed_task(api, settings):
    task = create(api, maxAttempts=2)
    fail(task["id"])

    response = api.post(f"/api/tasks/{task['id']}/retry")

    assert response.status_code == 200, response.content
    retried = response.json()
    assert (retried["status"], retried["error"]) == ("scheduled", None)
    assert retried["maxAttempts"] == 2  # attempts so far (0) + a fresh round
    assert stored(task["id"]).schedule_name == f"{task['id']}-2"
    assert f"{task['id']}-2" in schedule_names(settings)


def test_it_refuses_to_retry_a_scheduled_task(api):
    task = create(api)
    response = api.post(f"/api/tasks/{task['id']}/retry")
    assert response.status_code == 409
    assert response.json() == {"detail": "task is scheduled; only a failed task can be retried"}


def test_it_retries_a_stuck_task_but_not_one_still_running(api):
    task = create(api, runAt=future(0))
    assert running.task_claim(task_id=task["id"]) is not None
    assert api.post(f"/api/tasks/{task['id']}/retry").status_code == 409

    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    Task(id=task["id"]).update(actions=[Task.lease_expires_at.set(lapsed)])
    response = api.post(f"/api/tasks/{task['id']}/retry")
    assert response.status_code == 200
    assert response.json()["status"] == "scheduled"


# --- reschedule ---------------------------------------------------------------------------


def test_it_reschedules_a_task_to_a_new_run_at(api, settings):
    task = create(api, runAt=future(3600))
    new_run_at = future(7200)

    response = api.post(f"/api/tasks/{task['id']}/reschedule", {"runAt": new_run_at})

    assert response.status_code == 200, response.content
    moved = response.json()
    assert moved["runAt"] == moved["nextAttemptAt"]
    assert datetime.fromisoformat(moved["runAt"]) == datetime.fromisoformat(new_run_at)
    kept = stored(task["id"])
    assert kept.run_at == kept.due_at == datetime.fromisoformat(new_run_at)
    [schedule] = schedule_names(settings)
    expression = scheduler.client().get_schedule(Name=schedule, GroupName=settings.SCHEDULE_GROUP)[
        "ScheduleExpression"
    ]
    assert expression == f"at({new_run_at.removesuffix('Z')})"


@pytest.mark.parametrize(
    ("run_at", "message"),
    [
        ("2024-03-20T15:00:00", "runAt must include a timezone"),
        ("2000-01-01T00:00:00Z", "runAt is in the past"),
        ("2999-01-01T00:00:00Z", "days ahead"),
    ],
)
def test_it_checks_the_new_run_at_as_a_create_does(api, run_at, message):
    task = create(api)
    response = api.post(f"/api/tasks/{task['id']}/reschedule", {"runAt": run_at})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "runAt"] and message in error["msg"]
    assert stored(task["id"]).schedule_name == f"{task['id']}-1"


def test_it_refuses_a_reschedule_without_a_run_at(api):
    task = create(api)
    response = api.post(f"/api/tasks/{task['id']}/reschedule", {})
    assert response.status_code == 422


def test_it_refuses_to_reschedule_a_task_that_is_not_scheduled(api):
    task = create(api)
    api.post(f"/api/tasks/{task['id']}/cancel")
    response = api.post(f"/api/tasks/{task['id']}/reschedule", {"runAt": future(60)})
    assert response.status_code == 409
    assert "only a scheduled task can be rescheduled" in response.json()["detail"]


@pytest.mark.parametrize("command", ["retry", "run-now", "reschedule"])
def test_it_answers_404_for_an_unknown_task(api, command):
    response = api.post(f"/api/tasks/{UNKNOWN_ID}/{command}", {"runAt": future(60)})
    assert response.status_code == 404
    assert response.json() == {"detail": f"task {UNKNOWN_ID} not found"}


@pytest.mark.parametrize("command", ["retry", "run-now", "reschedule"])
def test_it_needs_a_key(client, aws, command):
    response = client.post(f"/api/tasks/{UNKNOWN_ID}/{command}")
    assert response.status_code == 401


def test_it_answers_503_and_leaves_the_task_as_it_was_when_no_schedule_can_be_made(
    api, settings, monkeypatch
):
    task = create(api)

    def unreachable(**kwargs):
        raise EndpointConnectionError(endpoint_url="https://scheduler.example")

    monkeypatch.setattr(scheduler.client(), "create_schedule", unreachable)
    response = api.post(f"/api/tasks/{task['id']}/run-now")

    assert response.status_code == 503
    assert "could not create the schedule" in response.json()["detail"]
    kept = stored(task["id"])
    assert (kept.status, kept.schedule_name) == ("scheduled", f"{task['id']}-1")
    assert schedule_names(settings) == {f"{task['id']}-1"}


# --- outcome unknown ----------------------------------------------------------------------


def test_it_shows_a_task_whose_executor_died_after_the_claim_as_outcome_unknown(api):
    task = create(api, runAt=future(0))
    make_stuck(task["id"])

    shown = api.get(f"/api/tasks/{task['id']}").json()

    assert (shown["status"], shown["outcome"]) == ("running", "unknown")
    assert shown["error"] == (
        "outcome unknown: the request may have gone out; "
        f"webhook-id {task['id']} lets the receiver deduplicate"
    )
    listed = api.get("/api/tasks", status="running").json()["items"]
    assert [(t["id"], t["outcome"]) for t in listed] == [(task["id"], "unknown")]


def test_it_tells_a_task_never_claimed_from_one_whose_outcome_is_unknown(api):
    waiting = create(api, runAt=future(0))
    claimed = create(api, runAt=future(0))
    assert running.task_claim(task_id=claimed["id"]) is not None  # its executor is alive

    for task in (waiting, claimed):
        shown = api.get(f"/api/tasks/{task['id']}").json()
        assert (shown["outcome"], shown["error"]) == (None, None)
    assert api.get(f"/api/tasks/{waiting['id']}").json()["status"] == "scheduled"


@pytest.mark.parametrize("command", ["retry", "cancel"])
def test_it_keeps_the_lost_attempt_as_outcome_unknown_when_a_stuck_task_is_handled(api, command):
    task = create(api, runAt=future(0))
    make_stuck(task["id"])

    assert api.post(f"/api/tasks/{task['id']}/{command}").status_code == 200

    [attempt] = api.get(f"/api/tasks/{task['id']}").json()["attemptHistory"]
    assert (attempt["number"], attempt["outcome"]) == (1, "unknown")
    assert attempt["error"].startswith("outcome unknown: the request may have gone out")
    assert api.get(f"/api/tasks/{task['id']}").json()["outcome"] is None  # no longer stuck
