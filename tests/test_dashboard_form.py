"""The dashboard's New task form: parsing, the service's rules beside each field, clones."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tasks import scheduler
from tasks.models import Task
from tests.factories import field_error, form_data, make_task, stored

# --- create ---------------------------------------------------------------------------


def test_it_schedules_a_task_from_the_form(dash, settings):
    before = datetime.now(UTC)
    response = dash.post(
        "/tasks/new/",
        form_data(headers="X-Source: dashboard\n\nX-Trace: 1", method="PUT", max_attempts="5"),
    )
    assert response.status_code == 302
    task_id = response["Location"].split("/")[2]
    task = stored(task_id)
    assert task.status == "scheduled"
    assert task.payload == {
        "url": "https://example.com/hooks/reminder",
        "method": "PUT",
        "headers": {"X-Source": "dashboard", "X-Trace": "1"},
        "data": {"message": "Hello World"},
    }
    assert task.max_attempts == 5
    assert task.created_by == "operator:alice"
    assert (
        before + timedelta(minutes=10) <= task.run_at <= datetime.now(UTC) + timedelta(minutes=10)
    )
    scheduler.client().get_schedule(Name=task.schedule_name, GroupName=settings.SCHEDULE_GROUP)
    assert b"Task scheduled." in dash.get(response["Location"]).content


def test_it_reads_the_run_time_in_the_chosen_timezone(dash):
    local = (datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(days=1)).replace(
        microsecond=0, tzinfo=None
    )
    response = dash.post(
        "/tasks/new/",
        form_data(when="at", run_at=local.isoformat(timespec="minutes"), timezone="Asia/Tokyo"),
    )
    assert response.status_code == 302
    task = stored(response["Location"].split("/")[2])
    expected = local.replace(second=0, tzinfo=ZoneInfo("Asia/Tokyo")).astimezone(UTC)
    assert task.run_at == expected


def _dst_gap(zone: ZoneInfo) -> datetime:
    """A wall-clock time in the coming year that does not exist in zone."""
    moment = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    for _ in range(366 * 24):
        moment += timedelta(hours=1)
        wall = moment.astimezone(zone).replace(tzinfo=None) + timedelta(hours=1)
        if wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
            return wall
    raise AssertionError("no DST change found")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"url": "ftp://example.com/x"}, "url", "url must start with http:// or https://"),
        ({"data": '{"a": 1,}'}, "data", "not valid JSON"),
        ({"headers": "Content-Type: text/plain"}, "headers", "is set by the scheduler"),
        ({"headers": "no colon here"}, "headers", "line 1: write it as"),
        ({"max_attempts": "99"}, "max_attempts", "maxAttempts must be between 1 and 10"),
        ({"in_minutes": str(400 * 24 * 60)}, "in_minutes", "days ahead"),
        ({"when": "at", "run_at": "2020-01-01T10:00"}, "run_at", "runAt is in the past"),
        ({"when": "at", "run_at": ""}, "run_at", "Pick a date and time."),
    ],
)
def test_it_shows_an_invalid_field_beside_it(dash, overrides, field, message):
    response = dash.post("/tasks/new/", form_data(**overrides))
    assert response.status_code in (400, 422)
    assert message in field_error(response.content.decode(), field)
    assert list(Task.scan()) == []


def test_it_refuses_a_time_that_the_clocks_skip(dash):
    gap = _dst_gap(ZoneInfo("America/New_York"))
    response = dash.post(
        "/tasks/new/",
        form_data(when="at", run_at=gap.isoformat(timespec="minutes"), timezone="America/New_York"),
    )
    assert "does not exist in America/New_York" in field_error(response.content.decode(), "run_at")
    assert list(Task.scan()) == []


def test_it_keeps_what_was_typed_when_a_field_is_invalid(dash):
    response = dash.post("/tasks/new/", form_data(url="ftp://example.com/x", data='{"keep": true}'))
    html = response.content.decode()
    assert 'value="ftp://example.com/x"' in html
    assert "{&quot;keep&quot;: true}" in html


def test_it_creates_one_task_when_the_form_is_sent_twice(dash):
    first = dash.post("/tasks/new/", form_data())
    second = dash.post("/tasks/new/", form_data())  # "in 10 minutes" is now a bit later
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert len(list(Task.scan())) == 1
    assert b"already sent" in dash.get(second["Location"]).content


def test_it_offers_a_fresh_form_each_time(dash):
    keys = {
        re.search(
            r'name="submission" value="([0-9a-f]+)"', dash.get("/tasks/new/").content.decode()
        ).group(1)
        for _ in range(2)
    }
    assert len(keys) == 2


def test_it_clones_a_task_keeping_its_secret_headers_secret(dash):
    source = make_task(headers={"Authorization": "Bearer s3cret-value", "X-Source": "tests"})
    page = dash.get(f"/tasks/new/?clone={source.id}").content.decode()
    assert "s3cret-value" not in page
    assert "Authorization: [redacted]" in page
    assert f'name="clone_of" value="{source.id}"' in page

    response = dash.post(
        "/tasks/new/",
        form_data(
            headers="Authorization: [redacted]\nX-Source: clone",
            clone_of=source.id,
            submission="b" * 32,
        ),
    )
    clone = stored(response["Location"].split("/")[2])
    assert clone.id != source.id
    assert clone.payload["headers"] == {"Authorization": "Bearer s3cret-value", "X-Source": "clone"}


def test_it_shows_every_invalid_field_at_once(dash):
    response = dash.post("/tasks/new/", form_data(url="ftp://example.com/x", data="{bad"))
    html = response.content.decode()
    assert "not valid JSON" in field_error(html, "data")
    assert "url must start with http:// or https://" in field_error(html, "url")
    assert list(Task.scan()) == []
