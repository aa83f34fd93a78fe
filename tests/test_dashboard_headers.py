"""The dashboard's headers and one-time messages come from Django's own
machinery (SECURE_CSP, django.contrib.messages), configured in settings."""

from __future__ import annotations

from django.utils.csp import CSP, build_policy

from tests.factories import make_task


def test_it_sends_the_content_policy_the_settings_state(dash, settings):
    response = dash.get("/")
    assert response["Content-Security-Policy"] == build_policy(settings.SECURE_CSP)
    settings.SECURE_CSP = {**settings.SECURE_CSP, "img-src": [CSP.SELF]}
    assert dash.get("/")["Content-Security-Policy"] == build_policy(settings.SECURE_CSP)


def test_it_never_caches_a_dashboard_page_or_redirect(client, operator):
    for response in (client.get("/"), client.get("/login/")):
        assert "no-store" in response["Cache-Control"]
        assert "Cookie" in response["Vary"]


def test_it_leaves_api_answers_to_the_api(api):
    response = api.get("/api/tasks")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_it_keeps_a_one_time_message_in_a_cookie_and_shows_it_once(dash):
    task = make_task()
    dash.post(f"/tasks/{task.id}/cancel/")
    assert "messages" in dash.cookies  # no database, no session key
    page = dash.get(f"/tasks/{task.id}/").content
    assert page.count(b"Task cancelled.") == 1
    assert b"Task cancelled." not in dash.get(f"/tasks/{task.id}/").content
