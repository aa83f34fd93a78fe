"""CORS on the JSON API: browser apps on the configured origins may call it,
no other origin may, and the dashboard is never shared."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from scheduler_site.env import env_origins

APP = "https://app.example.com"


@pytest.fixture
def cors(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]


def _get(client, api_key: str, origin: str):
    return client.get(
        "/api/tasks", headers={"Authorization": f"Bearer {api_key}", "Origin": origin}
    )


def _preflight(client, path: str, origin: str, method: str = "POST"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_it_lets_an_allowed_origin_read_the_api(cors, client, api_key):
    response = _get(client, api_key, APP)
    assert response.status_code == 200
    assert response.json() == {"items": [], "nextCursor": None}
    assert response["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Credentials" not in response
    assert "origin" in response["Vary"].lower()


def test_it_answers_an_allowed_origins_preflight(cors, client):
    response = _preflight(client, "/api/tasks", APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    allowed_headers = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed_headers
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Max-Age"] == "86400"


def _allowed_methods(response) -> set[str]:
    return {m.strip() for m in response["Access-Control-Allow-Methods"].split(",")}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/schedules/abc"),
        ("PATCH", "/api/schedules/abc"),
        ("DELETE", "/api/dead-letters/abc"),
    ],
)
def test_it_allows_the_apis_delete_and_patch_in_a_preflight(cors, client, method, path):
    response = _preflight(client, path, APP, method=method)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    assert method in _allowed_methods(response)


def test_it_allows_every_method_the_api_uses(cors, client):
    """A route added with a new method fails here until CORS allows it."""
    schema = client.get("/api/openapi.json").json()
    used = {method.upper() for operations in schema["paths"].values() for method in operations}
    assert {"DELETE", "GET", "PATCH", "POST"} <= used
    response = _preflight(client, "/api/tasks", APP)
    assert used <= _allowed_methods(response)


def test_it_answers_a_preflight_on_the_original_path(cors, client):
    response = _preflight(client, "/schedule-task", APP)
    assert response["Access-Control-Allow-Origin"] == APP


def test_it_gives_another_origin_no_cors_headers(cors, client, api_key):
    response = _get(client, api_key, "https://evil.example")
    assert response.status_code == 200  # the browser, not the server, withholds it
    assert "Access-Control-Allow-Origin" not in response
    preflight = _preflight(client, "/api/tasks", "https://evil.example")
    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Methods" not in preflight


def test_it_shares_nothing_by_default(client, api_key, settings):
    assert settings.CORS_ALLOWED_ORIGINS == []
    response = _get(client, api_key, APP)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Origin" not in _preflight(client, "/api/tasks", APP)


def test_it_never_shares_the_dashboard(cors, client):
    response = _preflight(client, "/", APP)
    assert "Access-Control-Allow-Origin" not in response


def test_it_reads_origins_from_the_environment(monkeypatch):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", f"{APP}, http://localhost:3000")
    assert env_origins("CORS_ALLOWED_ORIGINS") == [APP, "http://localhost:3000"]


@pytest.mark.parametrize(
    "bad", ["app.example.com", "https://app.example.com/", "https://app.example.com/x", "*"]
)
def test_it_refuses_an_origin_that_is_not_one(monkeypatch, bad):
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", bad)
    with pytest.raises(ImproperlyConfigured, match="not an origin"):
        env_origins("CORS_ALLOWED_ORIGINS")
