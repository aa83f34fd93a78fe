"""The JSON API's auth and its OpenAPI documentation."""

from __future__ import annotations

import json

import pytest

from tasks.services import access
from tests.factories import stored_tasks, task_body

ROUTES = [
    ("post", "/api/tasks"),
    ("post", "/schedule-task"),
    ("get", "/api/tasks"),
    ("get", "/api/tasks/0123456789abcdef0123456789abcdef"),
    ("post", "/api/tasks/0123456789abcdef0123456789abcdef/cancel"),
]

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
        ("POST", "/api/tasks/{task_id}/retry"): {200, 401, 404, 409, 503},
        ("POST", "/api/tasks/{task_id}/run-now"): {200, 401, 404, 409, 503},
        ("POST", "/api/tasks/{task_id}/reschedule"): {200, 401, 404, 409, 422, 503},
        ("GET", "/api/dead-letters"): {200, 401, 503},
        ("POST", "/api/dead-letters/replay-all"): {200, 401, 503},
        ("POST", "/api/dead-letters/{message_id}/replay"): {200, 401, 404, 409, 503},
        ("DELETE", "/api/dead-letters/{message_id}"): {204, 401, 404, 503},
        ("POST", "/api/schedules"): {201, 400, 401, 413, 422, 503},
        ("GET", "/api/schedules"): {200, 400, 401, 422},
        ("GET", "/api/schedules/{schedule_id}"): {200, 401, 404},
        ("PATCH", "/api/schedules/{schedule_id}"): {200, 400, 401, 404, 409, 413, 422, 503},
        ("POST", "/api/schedules/{schedule_id}/pause"): {200, 401, 404, 409, 503},
        ("POST", "/api/schedules/{schedule_id}/resume"): {200, 401, 404, 409, 503},
        ("DELETE", "/api/schedules/{schedule_id}"): {204, 401, 404, 503},
    }
