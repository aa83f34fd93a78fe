"""The dashboard's Schedules pages through Django's test client, against moto."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tasks.executor import run_task
from tasks.models import Schedule
from tasks.services import access, recurring
from tests.factories import iso

PASSWORD = "correct horse battery"


@pytest.fixture
def dash(client, aws, settings, collected_static):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    access.operator_create(username="alice", password=PASSWORD)
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    return client


def form(**overrides) -> dict:
    data = {
        "url": "https://example.com/hook",
        "method": "POST",
        "headers": "",
        "data": '{"n": 1}',
        "kind": "cron",
        "cron": "0 9 * * MON-FRI",
        "rate": "",
        "timezone": "Europe/Paris",
        "max_attempts": "3",
        "description": "Morning report",
    }
    data.update(overrides)
    return data


def make(**fields) -> Schedule:
    values = {
        "action": "webhook",
        "payload": {"url": "https://example.com/hook", "data": {"n": 1}},
        "cron": "0 9 * * MON-FRI",
        "timezone": "Europe/Paris",
    }
    values.update(fields)
    return recurring.schedule_create(**values)


def field_error(html: str, field: str) -> str:
    block = re.search(rf'data-field="{field}".*?</div>', html, re.S)
    assert block, f"no field {field}"
    error = re.search(r'class="field-error"[^>]*>(.*?)</p>', block.group(0), re.S)
    return error.group(1) if error else ""


def test_it_links_the_schedules_page_from_the_nav(dash):
    html = dash.get("/").content.decode()
    assert 'href="/schedules/"' in html


def test_it_lists_schedules_in_words_with_state_next_run_and_last_outcome(dash):
    schedule = make()
    paused = make(rate="5 minutes", cron=None, timezone="UTC")
    recurring.schedule_pause(schedule_id=paused.id)
    run_task(
        {
            "schedule_id": schedule.id,
            "scheduled_time": iso(datetime.now(UTC).replace(microsecond=0)),
        }
    )  # example.com does not resolve here: a retry, so the occurrence is scheduled
    html = dash.get("/schedules/").content.decode()
    row = re.search(rf'data-schedule-id="{schedule.id}".*?</tr>', html, re.S).group(0)
    assert "At 09:00, Monday through Friday (Europe/Paris)" in row
    assert 'data-status="enabled"' in row
    assert "<time" in re.search(r'data-field="next-run".*?</td>', row, re.S).group(0)
    assert 'data-status="scheduled"' in re.search(r'data-field="last".*?</td>', row, re.S).group(0)
    other = re.search(rf'data-schedule-id="{paused.id}".*?</tr>', html, re.S).group(0)
    assert "Every 5 minutes (UTC)" in other and 'data-status="paused"' in other
    assert "none yet" in other


def test_it_creates_a_schedule_from_the_form(dash):
    response = dash.post("/schedules/new/", form())
    assert response.status_code == 302
    [schedule] = list(Schedule.scan())
    assert response["Location"] == f"/schedules/{schedule.id}/"
    assert (schedule.cron, schedule.timezone, schedule.description) == (
        "0 9 * * MON-FRI",
        "Europe/Paris",
        "Morning report",
    )
    assert schedule.payload["data"] == {"n": 1}
    assert schedule.created_by == "operator:alice"


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"cron": "0 9 1 * MON"}, "cron", "EventBridge Scheduler cannot express"),
        ({"cron": "not cron"}, "cron", "2 fields"),
        ({"kind": "rate", "rate": "30 seconds"}, "rate", "at least 1 minute"),
        ({"url": "ftp://x"}, "url", "http"),
        ({"data": "{oops"}, "data", "not valid JSON"),
    ],
)
def test_it_shows_each_problem_beside_its_field(dash, overrides, field, words):
    response = dash.post("/schedules/new/", form(**overrides))
    assert response.status_code in (400, 422)
    assert words in field_error(response.content.decode(), field)
    assert list(Schedule.scan()) == []


def test_it_previews_the_description_and_next_five_runs_as_you_type(dash):
    response = dash.get(
        "/schedules/preview/", {"kind": "cron", "cron": "30 8 * * *", "timezone": "UTC"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "At 08:30 (UTC)" in html and "cron(30 8 * * ? *)" in html
    assert html.count("<li>") == 5
    bad = dash.get(
        "/schedules/preview/", {"kind": "cron", "cron": "0 9 1 * MON", "timezone": "UTC"}
    )
    assert "two schedules" in bad.content.decode()
    rate = dash.get("/schedules/preview/", {"kind": "rate", "rate": "2 hours", "timezone": "UTC"})
    assert "Every 2 hours (UTC)" in rate.content.decode()


def test_it_edits_a_schedule(dash):
    schedule = make(payload={"url": "https://example.com/hook", "headers": {"X-Token": "s3cret"}})
    page = dash.get(f"/schedules/{schedule.id}/edit/").content.decode()
    assert "0 9 * * MON-FRI" in page and "s3cret" not in page
    response = dash.post(
        f"/schedules/{schedule.id}/edit/",
        form(kind="rate", rate="10 minutes", headers="X-Token: [redacted]"),
    )
    assert response.status_code == 302
    stored = Schedule.get(schedule.id)
    assert (stored.cron, stored.rate, stored.expression) == (None, "10 minutes", "rate(10 minutes)")
    assert stored.payload["headers"] == {"X-Token": "s3cret"}  # the secret kept


def test_it_pauses_resumes_and_deletes_from_the_schedule_page(dash):
    schedule = make()
    page = dash.get(f"/schedules/{schedule.id}/").content.decode()
    assert "Pause" in page and "Resume" not in page
    assert dash.post(f"/schedules/{schedule.id}/pause/").status_code == 302
    assert Schedule.get(schedule.id).state == "paused"
    page = dash.get(f"/schedules/{schedule.id}/").content.decode()
    assert "Resume" in page and "Paused: no runs" in page
    dash.post(f"/schedules/{schedule.id}/pause/")  # again: refused, said so
    assert "Cannot pause" in dash.get(f"/schedules/{schedule.id}/").content.decode()
    assert dash.post(f"/schedules/{schedule.id}/resume/").status_code == 302
    assert Schedule.get(schedule.id).state == "enabled"
    response = dash.post(f"/schedules/{schedule.id}/delete/")
    assert response["Location"] == "/schedules/"
    assert dash.get(f"/schedules/{schedule.id}/").status_code == 404


def test_it_shows_a_schedules_occurrences_and_links_tasks_to_their_schedule(dash):
    schedule = make()
    result = run_task(
        {
            "schedule_id": schedule.id,
            "scheduled_time": iso(datetime.now(UTC).replace(microsecond=0)),
        }
    )
    page = dash.get(f"/schedules/{schedule.id}/").content.decode()
    assert f'data-task-id="{result["taskId"]}"' in page
    task_page = dash.get(f"/tasks/{result['taskId']}/").content.decode()
    assert f'href="/schedules/{schedule.id}/"' in task_page


def test_it_needs_a_login(client, aws):
    assert client.get("/schedules/").status_code == 302
    assert client.get("/schedules/preview/").status_code == 302
