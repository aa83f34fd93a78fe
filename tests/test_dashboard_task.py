"""A task's page in the dashboard and its operator commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tasks import scheduler
from tasks.executor import run_task
from tasks.services import commands, creation
from tests.factories import fail_task, make_task, stored

# --- detail ------------------------------------------------------------------------------


def test_it_shows_a_task_with_its_attempt_history(dash, httpserver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    httpserver.expect_request("/hook").respond_with_data("down for maintenance", status=503)
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": httpserver.url_for("/hook"), "data": {"order": 42, "items": ["a"]}},
        run_at=datetime.now(UTC),
    )
    run_task({"task_id": task.id})

    response = dash.get(f"/tasks/{task.id}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert task.id in html
    assert 'data-status="scheduled"' in html  # a retry is scheduled
    assert "&quot;order&quot;: 42," in html  # pretty-printed, one key a line
    assert "1 of at most 3" in html
    attempts = html.split('class="table attempts-table"')[1]
    assert ">503<" in attempts
    assert "down for maintenance" in attempts
    assert "retry" in attempts
    assert "HTTP 503" in attempts


def test_it_never_shows_secret_header_values(dash):
    task = make_task(headers={"Authorization": "Bearer s3cret-value", "X-Source": "tests"})
    html = dash.get(f"/tasks/{task.id}/").content.decode()
    assert "s3cret-value" not in html
    assert "[redacted]" in html
    assert "tests" in html


def test_it_answers_404_for_an_unknown_task(dash):
    assert dash.get("/tasks/" + "e" * 32 + "/").status_code == 404
    assert dash.get("/tasks/not-an-id/").status_code == 404


def test_it_cancels_a_scheduled_task(dash, settings):
    task = make_task()
    response = dash.post(f"/tasks/{task.id}/cancel/")
    assert response.status_code == 302
    assert response["Location"] == f"/tasks/{task.id}/"
    assert b"Task cancelled." in dash.get(response["Location"]).content
    assert stored(task.id).status == "cancelled"
    with pytest.raises(scheduler.client().exceptions.ResourceNotFoundException):
        scheduler.client().get_schedule(Name=task.schedule_name, GroupName=settings.SCHEDULE_GROUP)


def test_it_says_why_a_task_cannot_be_cancelled(dash):
    task = make_task()
    commands.task_cancel(task_id=task.id)
    response = dash.post(f"/tasks/{task.id}/cancel/", follow=True)
    assert b"can no longer be cancelled" in response.content
    assert stored(task.id).status == "cancelled"


def test_it_accepts_actions_only_as_posts(dash):
    task = make_task()
    assert dash.get(f"/tasks/{task.id}/cancel/").status_code == 405
    assert stored(task.id).status == "scheduled"


def test_it_runs_a_scheduled_task_now(dash, settings):
    task = make_task(timedelta(days=2))
    response = dash.post(f"/tasks/{task.id}/run-now/", follow=True)
    assert b"runs within seconds" in response.content
    after = stored(task.id)
    assert after.status == "scheduled"
    assert after.due_at < datetime.now(UTC) + timedelta(seconds=5)
    schedule = scheduler.client().get_schedule(
        Name=after.schedule_name, GroupName=settings.SCHEDULE_GROUP
    )
    assert schedule["Name"] != task.schedule_name


def test_it_retries_a_failed_task(dash, httpserver, settings):
    task = fail_task(httpserver, settings)
    assert b">Retry</button>" in dash.get(f"/tasks/{task.id}/").content
    response = dash.post(f"/tasks/{task.id}/retry/", follow=True)
    assert b"fresh round of attempts" in response.content
    after = stored(task.id)
    assert after.status == "scheduled"
    assert after.max_attempts == 2
    assert after.error is None


def test_it_polls_a_task_only_while_it_can_change(dash):
    task = make_task(timedelta(minutes=1))
    assert 'hx-trigger="every 2s"' in dash.get(f"/tasks/{task.id}/").content.decode()
    later = make_task(timedelta(days=1))
    assert 'hx-trigger="every 30s"' in dash.get(f"/tasks/{later.id}/").content.decode()
    commands.task_cancel(task_id=task.id)
    assert "hx-trigger" not in dash.get(f"/tasks/{task.id}/").content.decode()


def test_it_shows_times_in_the_operators_timezone(dash):
    task = make_task()
    dash.cookies["tz"] = "Asia/Tokyo"
    html = dash.get(f"/tasks/{task.id}/").content.decode()
    tokyo = task.run_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert tokyo.strftime("%H:%M:%S JST") in html
    assert "in 1 h" in html or "in 60 min" in html
    dash.cookies["tz"] = "../../etc/passwd"
    assert "UTC" in dash.get(f"/tasks/{task.id}/").content.decode()
