"""The dashboard's task list: status filters, orders, pages, polls and times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tasks.services import commands
from tasks.templatetags.dashboard import relative
from tasks.views import tasks as task_views
from tests.factories import make_task

# --- list ------------------------------------------------------------------------------


def test_it_lists_tasks_with_a_filter_per_status(dash):
    keep, drop = make_task(), make_task()
    commands.task_cancel(task_id=drop.id)

    html = dash.get("/").content.decode()
    assert re.search(r'data-filter="all" aria-current="true"', html)
    for status in ("scheduled", "running", "completed", "failed", "cancelled"):
        assert re.search(rf'href="/\?status={status}"[^>]*data-filter="{status}"', html)
    assert f'data-task-id="{keep.id}"' in html
    assert f'data-task-id="{drop.id}"' in html

    cancelled = dash.get("/", {"status": "cancelled"}).content.decode()
    assert f'data-task-id="{drop.id}"' in cancelled
    assert f'data-task-id="{keep.id}"' not in cancelled


def test_it_counts_nothing_so_a_poll_reads_only_its_page(dash, monkeypatch):
    # Counting per status would read every task (the indexes carry no status;
    # tasks/models.py): the list, which polls, reads one page and no more.
    from pynamodb.connection.base import Connection

    for _ in range(30):
        make_task()
    queried: list[dict] = []
    real_query = Connection.query

    def query(self, table_name, hash_key, *args, **kwargs):
        page = real_query(self, table_name, hash_key, *args, **kwargs)
        queried.append(page)
        return page

    monkeypatch.setattr(Connection, "query", query)
    html = dash.get("/").content.decode()
    assert html.count('data-task-id="') == task_views.PAGE_SIZE
    assert len(queried) == 1
    assert queried[0]["Count"] == task_views.PAGE_SIZE + 1
    assert "count-n" not in html


def test_it_orders_by_next_due(dash):
    late = make_task(timedelta(hours=5))
    soon = make_task(timedelta(minutes=30))
    middle = make_task(timedelta(hours=2))
    html = dash.get("/", {"order": "due"}).content.decode()
    ids = re.findall(r'data-task-id="([0-9a-f]{32})"', html)
    assert ids == [soon.id, middle.id, late.id]
    newest = re.findall(r'data-task-id="([0-9a-f]{32})"', dash.get("/").content.decode())
    assert newest == [middle.id, soon.id, late.id]


def test_it_pages_through_tasks_with_a_cursor(dash, monkeypatch):
    monkeypatch.setattr(task_views, "PAGE_SIZE", 2)
    made = [make_task() for _ in range(3)]
    first = dash.get("/").content.decode()
    first_ids = re.findall(r'data-task-id="([0-9a-f]{32})"', first)
    assert len(first_ids) == 2
    next_url = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = dash.get(next_url).content.decode()
    second_ids = re.findall(r'data-task-id="([0-9a-f]{32})"', second)
    assert sorted(first_ids + second_ids) == sorted(t.id for t in made)
    assert 'rel="next"' not in second
    assert "First page" in second


def test_it_starts_over_when_a_cursor_is_not_valid(dash):
    response = dash.get("/", {"cursor": "not-a-cursor"})
    assert response.status_code == 302
    assert b"no longer valid" in dash.get(response["Location"]).content


def test_it_shows_an_empty_state(dash):
    html = dash.get("/").content.decode()
    assert "No tasks yet" in html
    assert "No failed tasks" in dash.get("/", {"status": "failed"}).content.decode()


def test_it_answers_a_poll_with_the_live_part_only(dash):
    task = make_task()
    response = dash.get("/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.startswith('<div id="live"')
    assert "<html" not in html
    assert f'data-task-id="{task.id}"' in html
    assert "HX-Request" in response["Vary"]


def test_it_goes_to_a_task_by_id(dash):
    task = make_task()
    response = dash.get("/tasks/go/", {"id": f"  {task.id.upper()} "})
    assert response.status_code == 302
    assert response["Location"] == f"/tasks/{task.id}/"
    missing = dash.get("/tasks/go/", {"id": "f" * 32})
    assert missing["Location"] == "/"
    assert b"No task has the id" in dash.get("/").content


def test_it_keeps_a_message_for_the_page_when_a_poll_comes_first(dash):
    task = make_task()
    dash.post(f"/tasks/{task.id}/cancel/")
    dash.get(f"/tasks/{task.id}/", headers={"HX-Request": "true"})
    assert b"Task cancelled." in dash.get(f"/tasks/{task.id}/").content


@pytest.mark.parametrize(
    ("offset", "shown"),
    [
        (0, "now"),
        (30, "in a few seconds"),
        (-30, "seconds ago"),
        (5 * 60, "in 5 min"),
        (-89 * 60, "89 min ago"),
        (3 * 3600, "in 3 h"),
        (-35 * 3600, "35 h ago"),
        (3 * 86400, "in 3 d"),
    ],
)
def test_it_says_how_far_away_a_time_is(offset, shown):
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert relative(now + timedelta(seconds=offset), now) == shown
