"""The dashboard's recovery tools through Django's test client, against moto
in-process: the Reschedule form, and a task whose outcome is unknown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tasks import scheduler
from tasks.models import Task
from tasks.services import creation, running


def make_task(run_in: timedelta = timedelta(hours=1)) -> Task:
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook"},
        run_at=datetime.now(UTC) + run_in,
    )
    return task


def stored(task_id: str) -> Task:
    return Task.get(task_id, consistent_read=True)


def flash_of(dash, task_id: str) -> str:
    """The one-time messages the task's page shows, all of them."""
    import re

    page = dash.get(f"/tasks/{task_id}/").content.decode()
    return " ".join(re.findall(r'class="flash[^"]*"[^>]*>(.*?)</div>', page, re.S))


# --- reschedule -------------------------------------------------------------------------


def test_it_offers_a_reschedule_form_for_a_scheduled_task_only(dash):
    task = make_task()
    page = dash.get(f"/tasks/{task.id}/").content.decode()
    assert f'action="/tasks/{task.id}/reschedule/"' in page
    assert 'name="run_at"' in page and 'type="datetime-local"' in page

    dash.post(f"/tasks/{task.id}/cancel/")
    page = dash.get(f"/tasks/{task.id}/").content.decode()
    assert "/reschedule/" not in page


def test_it_reschedules_in_the_chosen_timezone(dash, settings):
    task = make_task()
    local = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0, tzinfo=None)

    response = dash.post(
        f"/tasks/{task.id}/reschedule/",
        {"run_at": local.isoformat(), "timezone": "Europe/Berlin"},
    )

    assert response.status_code == 302 and response.url == f"/tasks/{task.id}/"
    moved = stored(task.id)
    from zoneinfo import ZoneInfo

    expected = local.replace(tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    assert moved.run_at == moved.due_at == expected
    assert moved.schedule_name == f"{task.id}-2"
    assert {s.name for s in scheduler.schedule_list()} == {f"{task.id}-2"}
    assert "Task rescheduled." in flash_of(dash, task.id)


def test_it_says_why_a_new_time_is_refused(dash):
    task = make_task()
    response = dash.post(
        f"/tasks/{task.id}/reschedule/", {"run_at": "2000-01-01T00:00", "timezone": "UTC"}
    )
    assert response.status_code == 302
    assert "RunAt is in the past" in flash_of(dash, task.id)
    assert stored(task.id).schedule_name == f"{task.id}-1"


def test_it_says_why_a_task_cannot_be_rescheduled(dash):
    task = make_task()
    dash.post(f"/tasks/{task.id}/cancel/")
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    dash.post(f"/tasks/{task.id}/reschedule/", {"run_at": later, "timezone": "UTC"})
    assert "only a scheduled task can be rescheduled" in flash_of(dash, task.id)


def test_it_answers_404_when_rescheduling_an_unknown_task(dash):
    response = dash.post("/tasks/" + "ab" * 16 + "/reschedule/", {"run_at": "", "timezone": "UTC"})
    assert response.status_code == 404


# --- outcome unknown --------------------------------------------------------------------


def test_it_shows_a_stuck_task_as_outcome_unknown_distinct_from_a_waiting_one(dash):
    stuck = make_task(timedelta(0))
    waiting = make_task(timedelta(0))
    assert running.task_claim(task_id=stuck.id) is not None
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    Task(id=stuck.id).update(actions=[Task.lease_expires_at.set(lapsed)])

    page = dash.get(f"/tasks/{stuck.id}/").content.decode()
    assert 'data-outcome="unknown"' in page
    assert "the request may have gone out" in page
    assert f'<span class="mono">{stuck.id}</span> lets the receiver deduplicate' in page
    # What an operator can do about it: retry or cancel.
    assert f"/tasks/{stuck.id}/retry/" in page and f"/tasks/{stuck.id}/cancel/" in page

    assert 'data-outcome="unknown"' not in dash.get(f"/tasks/{waiting.id}/").content.decode()
    listing = dash.get("/").content.decode()
    row = listing[listing.index(f'id="task-{stuck.id}"') :]
    assert 'data-outcome="unknown"' in row[: row.index("</tr>")]
    row = listing[listing.index(f'id="task-{waiting.id}"') :]
    assert 'data-outcome="unknown"' not in row[: row.index("</tr>")]
