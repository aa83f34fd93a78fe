"""The dashboard's login, sessions and page security, through Django's test client."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.test import Client

from tasks.models import Operator
from tasks.services import access
from tests.factories import PASSWORD, log_in, make_task, stored

# --- login ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/tasks/new/", "/keys/", "/tasks/" + "0" * 32 + "/"])
def test_it_sends_every_page_to_the_login_page_without_a_session(client, operator, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    if path != "/":
        assert f"next={path.replace('/', '%2F')}" in response["Location"]


def test_it_logs_in_and_out(client, operator):
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'name="csrfmiddlewaretoken"' in page.content

    response = log_in(client)
    assert response.status_code == 302
    assert response["Location"] == "/"
    listing = client.get("/")
    assert listing.status_code == 200
    assert b"alice" in listing.content

    assert client.get("/logout/").status_code == 405  # only a form's POST logs out
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_it_refuses_a_wrong_password(client, operator):
    response = log_in(client, password="wrong password")
    assert response.status_code == 400
    assert b"Wrong username or password." in response.content
    assert client.get("/").status_code == 302
    assert Operator.get("alice").failed_logins == 1


def test_it_refuses_an_unknown_operator_the_same_way(client, operator):
    response = log_in(client, username="mallory")
    assert response.status_code == 400
    assert b"Wrong username or password." in response.content


def test_it_locks_the_account_after_repeated_failed_logins(client, operator):
    for _ in range(access.LOGIN_MAX_FAILURES):
        assert log_in(client, password="guess").status_code == 400
    response = log_in(client)  # even the right password, for a while
    assert response.status_code == 400
    assert b"locked for 15 minutes" in response.content
    assert client.get("/").status_code == 302
    assert Operator.get("alice").locked_until > datetime.now(UTC)


def test_its_lockout_does_not_tell_which_accounts_exist(client, operator):
    # Locked (alice exists), unknown (mallory): the same answer, word for word.
    for _ in range(access.LOGIN_MAX_FAILURES):
        log_in(client, password="guess")

    def answer(username: str) -> tuple[int, str]:
        response = log_in(client, username=username, password="guess")
        errors = re.findall(
            r'<[^>]*class="[^"]*error[^"]*"[^>]*>(.*?)</', response.content.decode()
        )
        return response.status_code, errors

    locked, unknown = answer("alice"), answer("mallory")
    assert locked == unknown
    assert locked[0] == 400 and any("Wrong username or password" in e for e in locked[1])


def test_it_refuses_a_login_without_its_csrf_token(operator):
    client = Client(enforce_csrf_checks=True)
    assert log_in(client).status_code == 403


def test_it_refuses_an_action_without_its_csrf_token(operator):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    login = client.post(
        "/login/", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert login.status_code == 302
    task = make_task()
    assert client.post(f"/tasks/{task.id}/cancel/").status_code == 403
    assert stored(task.id).status == "scheduled"


def test_it_gives_a_new_session_and_csrf_token_on_login(client, operator):
    client.get("/login/")
    csrf_before = client.cookies["csrftoken"].value
    client.cookies["sessionid"] = "planted-by-an-attacker"
    log_in(client)
    assert client.cookies["sessionid"].value != "planted-by-an-attacker"
    assert client.cookies["csrftoken"].value != csrf_before
    assert client.get("/").status_code == 200


def test_it_ends_sessions_when_the_password_changes(dash):
    access.operator_set_password(username="alice", password="a new password")
    assert dash.get("/").status_code == 302


def test_it_goes_back_to_the_page_asked_for_after_login_but_never_offsite(client, operator):
    assert log_in(client, QUERY_STRING="next=/keys/")["Location"] == "/keys/"
    client.post("/logout/")
    response = client.post(
        "/login/?next=https://evil.example/", {"username": "alice", "password": PASSWORD}
    )
    assert response["Location"] == "/"


def test_it_tells_a_poll_from_an_ended_session_to_reload_the_page(client, operator):
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/login/"


def test_it_sends_pages_uncached_with_a_strict_content_policy(dash):
    response = dash.get("/")
    assert "no-store" in response["Cache-Control"]
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
