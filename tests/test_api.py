"""The JSON API: auth, create, the /schedule-task alias, list, detail, cancel."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pynamodb.connection.base import Connection

from tasks import scheduler
from tasks.executor import run_task
from tasks.models import Task
from tasks.services import access, running
from tests.factories import future, iso, task_body

ROUTES = [
    ("post", "/api/tasks"),
    ("post", "/schedule-task"),
    ("get", "/api/tasks"),
    ("get", "/api/tasks/0123456789abcdef0123456789abcdef"),
    ("post", "/api/tasks/0123456789abcdef0123456789abcdef/cancel"),
]


def get_schedule(settings, name: str) -> dict:
    return scheduler.client().get_schedule(Name=name, GroupName=settings.SCHEDULE_GROUP)


def schedule_exists(settings, name: str) -> bool:
    try:
        get_schedule(settings, name)
    except scheduler.client().exceptions.ResourceNotFoundException:
        return False
    return True


def stored_tasks() -> list[Task]:
    return list(Task.scan())


# --- auth ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer tsk_not-a-real-key", "Basic dXNlcjpwYXNz", "tsk_not-a-real-key"],
)
def test_it_refuses_every_task_route_without_a_valid_key(client, aws, method, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    call = getattr(client, method)
    if method == "post":
        response = call(path, task_body(), content_type="application/json", headers=headers)
    else:
        response = call(path, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}
    assert stored_tasks() == []


def test_it_refuses_a_revoked_key(api, api_key, client):
    assert api.get("/api/tasks").status_code == 200
    key = access.apikey_authenticate(raw_key=api_key)
    access.apikey_revoke(key_id=key.key_id)
    response = client.get("/api/tasks", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Unauthorized"}


def test_it_stores_api_keys_only_as_their_hash(aws):
    record, raw = access.apikey_create(name="ci")
    stored = [key.attribute_values for key in access.ApiKey.scan()]
    assert len(stored) == 1
    assert raw not in json.dumps(stored, default=str)
    assert record.key_hash != raw


@pytest.mark.parametrize("path", ["/api/docs", "/api/openapi.json"])
def test_it_serves_the_api_docs_without_a_key(client, collected_static, path):
    response = client.get(path)
    assert response.status_code == 200
    assert b"Task Scheduler API" in response.content


def test_it_documents_every_route_with_bearer_auth(client):
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    assert set(paths) >= {"/api/tasks", "/api/tasks/{task_id}", "/api/tasks/{task_id}/cancel"}
    for operations in paths.values():
        for operation in operations.values():
            assert operation["security"] == [{"ApiKeyAuth": []}]


def test_it_documents_the_statuses_each_route_can_answer(client):
    # As the README's route table lists them.
    paths = client.get("/api/openapi.json").json()["paths"]
    documented = {
        (method.upper(), path): {int(code) for code in operation["responses"]}
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert documented == {
        ("POST", "/api/tasks"): {201, 400, 401, 409, 413, 422, 503},
        ("GET", "/api/tasks"): {200, 400, 401, 422},
        ("GET", "/api/tasks/{task_id}"): {200, 401, 404},
        ("POST", "/api/tasks/{task_id}/cancel"): {200, 401, 404, 409},
        ("POST", "/api/schedules"): {201, 400, 401, 413, 422, 503},
        ("GET", "/api/schedules"): {200, 400, 401, 422},
        ("GET", "/api/schedules/{schedule_id}"): {200, 401, 404},
        ("PATCH", "/api/schedules/{schedule_id}"): {200, 400, 401, 404, 409, 413, 422, 503},
        ("POST", "/api/schedules/{schedule_id}/pause"): {200, 401, 404, 409, 503},
        ("POST", "/api/schedules/{schedule_id}/resume"): {200, 401, 404, 409, 503},
        ("DELETE", "/api/schedules/{schedule_id}"): {204, 401, 404, 503},
    }


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


# --- list ---------------------------------------------------------------------------


def _create(api, count: int, **overrides) -> list[str]:
    ids = []
    for _ in range(count):
        response = api.post("/api/tasks", task_body(**overrides))
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    return ids


def _all_pages(api, **params) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/tasks", **query)
        assert response.status_code == 200, response.content
        page = response.json()
        assert set(page) == {"items", "nextCursor"}
        assert len(page["items"]) <= int(params.get("limit", 20))
        assert page["items"] or pages == 0, "a cursor led to an empty page"
        ids += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            return ids, pages
        assert pages < 20


def test_it_lists_tasks_newest_first_page_by_page(api):
    ids = _create(api, 5)
    listed, pages = _all_pages(api, limit=2)
    assert listed == list(reversed(ids))
    assert pages == 3


@pytest.fixture
def dynamodb_paging(monkeypatch):
    """Queries answer as DynamoDB does: a Query that stops at its Limit
    carries a LastEvaluatedKey even when nothing comes after (moto leaves it
    out then), so a client that trusts it makes one more, empty, page."""
    from tasks.services.cursors import _KEYS

    real = Connection.query

    def like_dynamodb(self, *args, **kwargs):
        data = real(self, *args, **kwargs)
        items, limit = data.get("Items", []), kwargs.get("limit")
        if limit and len(items) == limit and "LastEvaluatedKey" not in data:
            attrs = _KEYS[kwargs["index_name"]][1]
            data["LastEvaluatedKey"] = {a: items[-1][a] for a in attrs}
        return data

    monkeypatch.setattr(Connection, "query", like_dynamodb)


def test_it_ends_on_a_full_page_when_the_count_is_a_multiple_of_the_limit(api, dynamodb_paging):
    ids = _create(api, 4)
    listed, pages = _all_pages(api, limit=2)
    assert listed == list(reversed(ids))
    assert pages == 2
    listed, pages = _all_pages(api, order="due", limit=4)
    assert sorted(listed) == sorted(ids)
    assert pages == 1


def test_it_lists_one_status_only(api):
    keep = _create(api, 3)
    cancelled = keep.pop(1)
    assert api.post(f"/api/tasks/{cancelled}/cancel").status_code == 200

    page = api.get("/api/tasks", status="cancelled").json()
    assert [item["id"] for item in page["items"]] == [cancelled]
    assert page["items"][0]["status"] == "cancelled"
    scheduled, _pages = _all_pages(api, status="scheduled", limit=1)
    assert scheduled == list(reversed(keep))


def test_it_lists_due_tasks_in_runat_order(api):
    later = _create(api, 1, runAt=future(7200))
    sooner = _create(api, 1, runAt=future(600))
    middle = _create(api, 1, runAt=future(3600))
    listed, pages = _all_pages(api, order="due", limit=2)
    assert listed == sooner + middle + later
    assert pages == 2


def test_it_lists_with_a_query_never_a_scan(api, monkeypatch):
    ids = _create(api, 2)

    def no_scan(*args, **kwargs):
        raise AssertionError("listing must not Scan")

    monkeypatch.setattr(Connection, "scan", no_scan)
    for params in ({}, {"status": "scheduled"}, {"order": "due"}, {"limit": 1}):
        listed, _pages = _all_pages(api, **params)
        assert sorted(listed) == sorted(ids)


def test_it_returns_an_empty_page_when_there_are_no_tasks(api):
    response = api.get("/api/tasks")
    assert response.status_code == 200
    assert response.json() == {"items": [], "nextCursor": None}


@pytest.mark.parametrize("cursor", ["not-a-cursor", "e30", "eyJpIjoieCIsImsiOnt9fQ", "%%%"])
def test_it_refuses_a_malformed_cursor(api, cursor):
    _create(api, 1)
    response = api.get("/api/tasks", cursor=cursor)
    assert response.status_code == 400
    assert response.json()["detail"]


def _cursor(index: str, key: dict) -> str:
    raw = json.dumps({"i": index, "k": key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "key",
    [
        # DynamoDB answers a ValidationException (a 500) for an empty key value.
        {"id": {"S": ""}, "listing": {"S": "task"}, "created_at": {"S": ""}},
        {"id": {"N": "1"}, "listing": {"S": "task"}, "created_at": {"S": "x"}},
        {"id": {"S": "x"}, "listing": {"S": "task"}},
        {"id": {"S": "x" * 400}, "listing": {"S": "task"}, "created_at": {"S": "x"}},
        ["not", "a", "key"],
    ],
    ids=["empty values", "wrong type", "missing attribute", "too long", "not an object"],
)
def test_it_refuses_a_forged_cursor(api, key):
    _create(api, 1)
    response = api.get("/api/tasks", cursor=_cursor("listing-created_at-index", key))
    assert response.status_code == 400
    assert response.json() == {"detail": "invalid cursor"}


def test_it_refuses_a_cursor_from_another_listing(api):
    _create(api, 3)
    cursor = api.get("/api/tasks", limit=1).json()["nextCursor"]
    assert cursor
    for params in ({"status": "scheduled"}, {"order": "due"}):
        response = api.get("/api/tasks", cursor=cursor, **params)
        assert response.status_code == 400
        assert response.json() == {"detail": "cursor does not belong to this listing"}
    status_cursor = api.get("/api/tasks", status="scheduled", limit=1).json()["nextCursor"]
    response = api.get("/api/tasks", cursor=status_cursor, status="failed")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"status": "done"}, {"order": "oldest"}],
)
def test_it_refuses_bad_list_parameters(api, params):
    response = api.get("/api/tasks", **params)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", next(iter(params))]


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
    task_id = _create(api, 1)[0]
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
    task_id = _create(api, 1)[0]
    scheduler.schedule_delete(name=Task.get(task_id).schedule_name)
    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert Task.get(task_id).status == "cancelled"


def test_it_refuses_to_cancel_twice(api):
    task_id = _create(api, 1)[0]
    assert api.post(f"/api/tasks/{task_id}/cancel").status_code == 200
    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 409
    assert response.json() == {"detail": "task is cancelled and can no longer be cancelled"}


@pytest.mark.parametrize("status", ["running", "completed", "failed"])
def test_it_refuses_to_cancel_a_task_that_is_no_longer_scheduled(api, status):
    task_id = _create(api, 1)[0]
    Task(id=task_id).update(actions=[Task.status.set(status)])
    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 409
    assert response.json()["detail"] == f"task is {status} and can no longer be cancelled"
    assert Task.get(task_id).status == status


def test_it_keeps_the_cancel_even_when_the_schedule_cannot_be_deleted(api, monkeypatch):
    task_id = _create(api, 1)[0]

    def delete_schedule(**kwargs):
        raise EndpointConnectionError(endpoint_url="https://scheduler.us-east-1.amazonaws.com")

    monkeypatch.setattr(scheduler.client(), "delete_schedule", delete_schedule)
    response = api.post(f"/api/tasks/{task_id}/cancel")
    assert response.status_code == 200
    assert Task.get(task_id).status == "cancelled"
    assert running.task_claim(task_id=task_id) is None
