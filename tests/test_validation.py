"""Every bad input gets a 4xx with a message, never a 500, and stores nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tasks import scheduler
from tasks.models import Task
from tests.factories import future, task_body

DAY = 86400


def with_payload(**changes) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        body["payload"].update(changes)

    return change


def with_fields(**changes) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        body.update(changes)

    return change


def without(*path: str) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


# (case id, change to a valid body, status, error location, words in the message)
BAD_BODIES = [
    ("naive runAt", with_fields(runAt="2030-03-20T15:00:00"), ["runAt"], "timezone"),
    ("runAt long past", with_fields(runAt=future(-600)), ["runAt"], "in the past"),
    ("runAt beyond horizon", with_fields(runAt=future(366 * DAY)), ["runAt"], "365 days"),
    ("runAt year 1", with_fields(runAt="0001-01-01T00:00:00+14:00"), ["runAt"], "in the past"),
    ("runAt year 9999", with_fields(runAt="9999-12-31T23:59:59-14:00"), ["runAt"], "365 days"),
    ("runAt not a time", with_fields(runAt="tomorrow"), ["body", "runAt"], "datetime"),
    ("runAt missing", without("runAt"), ["body", "runAt"], "required"),
    ("unknown action", with_fields(action="email"), ["action"], "unknown action 'email'"),
    ("action missing", without("action"), ["body", "action"], "required"),
    ("action not a string", with_fields(action=["webhook"]), ["body", "action"], "string"),
    ("payload missing", without("payload"), ["body", "payload"], "required"),
    ("payload not an object", with_fields(payload="https://x.y"), ["body", "payload"], "dict"),
    ("url missing", without("payload", "url"), ["payload", "url"], "required"),
    ("url not http", with_payload(url="ftp://example.com/f"), ["payload", "url"], "http://"),
    ("url no host", with_payload(url="https:///hook"), ["payload", "url"], "host"),
    ("url not a url", with_payload(url="example.com/hook"), ["payload", "url"], "http://"),
    ("url with credentials", with_payload(url="https://u:p@example.com/"), ["payload", "url"], "credentials"),
    ("url bad port", with_payload(url="https://example.com:99999/"), ["payload", "url"], "port"),
    ("url bad ipv6", with_payload(url="http://[::1/"), ["payload", "url"], "IPv6"),
    ("url too long", with_payload(url="https://example.com/" + "a" * 2048), ["payload", "url"], "2048"),
    ("url loopback", with_payload(url="http://127.0.0.1:8000/"), ["payload", "url"], "loopback"),
    ("url ipv6 loopback", with_payload(url="http://[::1]/"), ["payload", "url"], "loopback"),
    ("url mapped loopback", with_payload(url="http://[::ffff:127.0.0.1]/"), ["payload", "url"], "loopback"),
    ("url private", with_payload(url="http://10.0.0.1/"), ["payload", "url"], "private"),
    ("url metadata", with_payload(url="http://169.254.169.254/latest/"), ["payload", "url"], "metadata"),
    ("url unspecified", with_payload(url="http://0.0.0.0/"), ["payload", "url"], "address"),
    ("method GET", with_payload(method="GET"), ["payload", "method"], "POST"),
    ("headers not an object", with_payload(headers=["X-A: 1"]), ["payload", "headers"], "dict"),
    ("header value not a string", with_payload(headers={"X-A": 1}), ["payload", "headers", "X-A"], "string"),
    ("header sets content-type", with_payload(headers={"Content-Type": "text/plain"}), ["payload", "headers"], "set by the scheduler"),
    ("header forges signature", with_payload(headers={"webhook-signature": "v1,x"}), ["payload", "headers"], "set by the scheduler"),
    ("header bad name", with_payload(headers={"Bad Header": "x"}), ["payload", "headers"], "invalid header name"),
    ("header injection", with_payload(headers={"X-A": "a\r\nX-B: b"}), ["payload", "headers"], "invalid value"),
    ("too many headers", with_payload(headers={f"X-{i}": "v" for i in range(21)}), ["payload", "headers"], "at most 20"),
    ("payload unknown field", with_payload(body="x"), ["payload", "body"], "not permitted"),
    ("payload too big", with_payload(data="x" * 70_000), ["payload"], "limit is 65536"),
    ("maxAttempts 0", with_fields(maxAttempts=0), ["maxAttempts"], "between 1 and 10"),
    ("maxAttempts 11", with_fields(maxAttempts=11), ["maxAttempts"], "between 1 and 10"),
    ("maxAttempts huge", with_fields(maxAttempts=10**30), ["maxAttempts"], "between 1 and 10"),
    ("maxAttempts fraction", with_fields(maxAttempts=2.5), ["body", "maxAttempts"], "integer"),
    ("maxAttempts text", with_fields(maxAttempts="three"), ["body", "maxAttempts"], "integer"),
    ("maxAttempts boolean", with_fields(maxAttempts=True), ["body", "maxAttempts"], "integer"),
    ("unknown field", with_fields(when="now"), ["body", "when"], "not permitted"),
]  # fmt: skip


def _locations(detail: list[dict]) -> list[list]:
    return [error["loc"] for error in detail]


def _assert_nothing_stored(settings) -> None:
    assert list(Task.scan()) == []
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)
    assert schedules["Schedules"] == []


@pytest.mark.parametrize("path", ["/api/tasks", "/schedule-task"])
@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_it_refuses_a_bad_body_with_422_and_says_why(api, settings, path, change, loc, words):
    body = task_body()
    change(body)
    response = api.post(path, body)
    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    # The field as sent (camelCase), under "body" (ninja's parser adds its
    # parameter name: ["body", "body", "runAt"]).
    field = loc[1:] if loc[0] == "body" else loc
    matching = [e for e in detail if e["loc"][0] == "body" and e["loc"][-len(field) :] == field]
    assert matching, detail
    assert any(words.lower() in e["msg"].lower() for e in matching), detail
    _assert_nothing_stored(settings)


def test_it_lists_every_problem_at_once(api):
    body = task_body(action="email", runAt="2030-01-01T00:00:00", maxAttempts=99)
    response = api.post("/api/tasks", body)
    assert response.status_code == 422
    assert _locations(response.json()["detail"]) == [
        ["body", "action"],
        ["body", "runAt"],
        ["body", "maxAttempts"],
    ]


def test_it_refuses_nan_and_infinity_in_the_payload(api, client, api_key, settings):
    # Python's JSON parser accepts these tokens, but they are not JSON: a
    # receiver could not parse the webhook body.
    for token in ("NaN", "Infinity", "-Infinity"):
        raw = json.dumps(task_body()).replace('"Hello World"', token)
        response = client.post(
            "/api/tasks",
            raw,
            content_type="application/json",
            headers={"Authorization": f"Bearer {api_key}"},
        )
        assert response.status_code == 422, response.content
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "payload"]
        assert "NaN" in error["msg"]
    _assert_nothing_stored(settings)


@pytest.mark.parametrize(
    ("raw", "status", "detail"),
    [
        ("not json", 400, "Cannot parse request body"),
        ('{"action": "webhook",', 400, "Cannot parse request body"),
        ("[" * 50_000 + "]" * 50_000, 400, "Cannot parse request body"),
        ("[1, 2]", 422, None),
        ("", 422, None),
        ("null", 422, None),
    ],
    ids=["text", "truncated", "deeply nested", "array", "empty", "null"],
)
def test_it_refuses_a_body_that_is_not_a_json_object(
    client, api_key, settings, raw, status, detail
):
    response = client.post(
        "/api/tasks",
        raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == status, response.content
    if detail:
        assert response.json() == {"detail": detail}
    else:
        assert response.json()["detail"][0]["msg"]
    _assert_nothing_stored(settings)


def test_it_refuses_a_request_body_over_the_upload_limit_with_413(client, api_key, settings):
    raw = json.dumps(task_body(payload={"url": "https://example.com", "data": "x" * 3_000_000}))
    response = client.post(
        "/api/tasks",
        raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "too large" in response.json()["detail"]
    _assert_nothing_stored(settings)


def test_it_refuses_an_overlong_idempotency_key(api, settings):
    response = api.post("/api/tasks", task_body(), **{"Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert "1 to 255" in error["msg"]
    _assert_nothing_stored(settings)


# --- what is accepted at the edges -------------------------------------------------


@pytest.mark.parametrize(
    "run_at",
    [
        # Made when the test runs, not when it is collected: a long suite
        # would otherwise push "200 s ago" past the tolerance.
        lambda: future(-200),
        lambda: future(364 * DAY),
        lambda: (
            (datetime.now(UTC) + timedelta(hours=1))
            .astimezone(timezone(timedelta(hours=5.5)))
            .isoformat()
        ),
    ],
    ids=["within the past tolerance", "within the horizon", "with an offset"],
)
def test_it_accepts_runat_within_the_policy(api, run_at):
    response = api.post("/api/tasks", task_body(runAt=run_at()))
    assert response.status_code == 201, response.content
    assert Task.get(response.json()["id"]).status == "scheduled"


def test_it_follows_the_configured_limits(api, settings):
    settings.TASK_MAX_ATTEMPTS_LIMIT = 20
    settings.TASK_MAX_HORIZON_DAYS = 2
    settings.TASK_PAST_TOLERANCE_SECONDS = 0
    assert api.post("/api/tasks", task_body(maxAttempts=20)).status_code == 201
    too_far = api.post("/api/tasks", task_body(runAt=future(3 * DAY)))
    assert too_far.status_code == 422
    assert "2 days" in too_far.json()["detail"][0]["msg"]
    assert api.post("/api/tasks", task_body(runAt=future(-30))).status_code == 422


def test_it_accepts_a_payload_just_under_the_size_limit(api, settings):
    settings.TASK_MAX_PAYLOAD_BYTES = 2048
    body = task_body()
    body["payload"]["data"] = "x" * 1900
    assert api.post("/api/tasks", body).status_code == 201
    body["payload"]["data"] = "x" * 2100
    assert api.post("/api/tasks", body).status_code == 422


def test_it_accepts_private_addresses_only_when_allowed(api, settings):
    body = task_body(payload={"url": "http://127.0.0.1:9/hook"})
    assert api.post("/api/tasks", body).status_code == 422
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    assert api.post("/api/tasks", body).status_code == 201
    assert api.post("/api/tasks", task_body(payload={"url": "http://10.0.0.1/"})).status_code == 201
    # Metadata and link-local addresses stay refused even then.
    metadata = api.post("/api/tasks", task_body(payload={"url": "http://169.254.169.254/"}))
    assert metadata.status_code == 422
