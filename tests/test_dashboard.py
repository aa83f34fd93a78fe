"""The dashboard through Django's test client, against moto in-process."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.wsgi import get_wsgi_application
from django.test import Client
from django.urls import set_script_prefix
from werkzeug.test import Client as WerkzeugClient

from tasks import scheduler, selectors
from tasks.executor import run_task
from tasks.models import ApiKey, Operator, Task
from tasks.services import access, commands, creation
from tasks.templatetags.dashboard import relative
from tasks.views import tasks as task_views

PASSWORD = "correct horse battery"


@pytest.fixture
def operator(aws, settings, collected_static):
    # The fastest hasher: tests log in often; what is hashed is irrelevant here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return access.operator_create(username="alice", password=PASSWORD)


def log_in(client: Client, username: str = "alice", password: str = PASSWORD, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


@pytest.fixture
def dash(client, operator):
    """A client with an operator session."""
    response = log_in(client)
    assert response.status_code == 302
    return client


def make_task(run_in: timedelta = timedelta(hours=1), **payload) -> Task:
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook", "data": {"n": 1}, **payload},
        run_at=datetime.now(UTC) + run_in,
    )
    return task


def stored(task_id: str) -> Task:
    return Task.get(task_id, consistent_read=True)


def field_error(html: str, field: str) -> str:
    """The error text shown beside a form field."""
    block = re.search(rf'data-field="{field}".*?</div>', html, re.S)
    assert block, f"no field {field}"
    error = re.search(r'class="field-error"[^>]*>(.*?)</p>', block.group(0), re.S)
    return error.group(1) if error else ""


def form_data(**overrides) -> dict:
    data = {
        "url": "https://example.com/hooks/reminder",
        "method": "POST",
        "headers": "",
        "data": '{"message": "Hello World"}',
        "when": "in",
        "in_minutes": "10",
        "run_at": "",
        "timezone": "UTC",
        "max_attempts": "3",
        "submission": "a" * 32,
        "clone_of": "",
    }
    data.update(overrides)
    return data


def fail_task(httpserver, settings) -> Task:
    """A real failed task: one attempt at a receiver answering 500."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    httpserver.expect_request("/broken").respond_with_data("boom", status=500)
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": httpserver.url_for("/broken")},
        run_at=datetime.now(UTC),
        max_attempts=1,
    )
    assert run_task({"task_id": task.id})["result"] == "failed"
    return stored(task.id)


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


# --- list ------------------------------------------------------------------------------


def test_it_lists_tasks_with_counts_per_status(dash):
    keep, drop = make_task(), make_task()
    commands.task_cancel(task_id=drop.id)

    html = dash.get("/").content.decode()
    assert re.search(r'data-count="all">\s*<span class="count-n">2<', html)
    assert re.search(r'data-count="scheduled">\s*<span class="count-n">1<', html)
    assert re.search(r'data-count="cancelled">\s*<span class="count-n">1<', html)
    assert f'data-task-id="{keep.id}"' in html
    assert f'data-task-id="{drop.id}"' in html

    cancelled = dash.get("/", {"status": "cancelled"}).content.decode()
    assert f'data-task-id="{drop.id}"' in cancelled
    assert f'data-task-id="{keep.id}"' not in cancelled


def test_its_counts_stop_at_the_cap_and_read_no_further(dash, monkeypatch):
    # Counting reads every entry it counts; the list polls its counts, so they
    # stop at selectors.COUNT_CAP (1000; 3 here) and show "3+".
    from pynamodb.connection.base import Connection

    monkeypatch.setattr(selectors, "COUNT_CAP", 3)
    tasks = [make_task() for _ in range(7)]
    commands.task_cancel(task_id=tasks[0].id)  # 6 scheduled, 1 cancelled
    counted: dict[str, int] = {}
    real_query = Connection.query

    def query(self, table_name, hash_key, *args, **kwargs):
        page = real_query(self, table_name, hash_key, *args, **kwargs)
        if kwargs.get("select") == "COUNT":
            counted[hash_key] = counted.get(hash_key, 0) + page["Count"]
        return page

    monkeypatch.setattr(Connection, "query", query)
    html = dash.get("/").content.decode()
    assert re.search(r'data-count="scheduled">\s*<span class="count-n">3\+<', html)
    assert re.search(r'data-count="cancelled">\s*<span class="count-n">1<', html)
    assert re.search(r'data-count="all">\s*<span class="count-n">4\+<', html)
    assert counted["scheduled"] == 4  # the cap and one more, not all 6


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


# --- API keys ---------------------------------------------------------------------------


def test_it_creates_an_api_key_and_shows_it_once(dash, client):
    response = dash.post("/keys/", {"name": "billing service"})
    assert response.status_code == 201
    raw = re.search(r'<code id="new-key">(tsk_[^<]+)</code>', response.content.decode()).group(1)
    assert "no-store" in response["Cache-Control"]
    key = access.apikey_authenticate(raw_key=raw)
    assert key is not None and key.name == "billing service"
    assert ApiKey.get(key.key_hash).prefix == raw[:10]

    listing = dash.get("/keys/").content.decode()
    assert "billing service" in listing
    assert raw not in listing
    api = Client()
    assert api.get("/api/tasks", headers={"Authorization": f"Bearer {raw}"}).status_code == 200


def test_it_revokes_an_api_key(dash):
    key, raw = access.apikey_create(name="old integration")
    response = dash.post(f"/keys/{key.key_id}/revoke/", follow=True)
    assert "revoked" in response.content.decode()
    assert ApiKey.get(key.key_hash).revoked_at is not None
    api = Client()
    assert api.get("/api/tasks", headers={"Authorization": f"Bearer {raw}"}).status_code == 401


def test_it_refuses_a_key_without_a_name(dash):
    response = dash.post("/keys/", {"name": "   "})
    assert response.status_code == 400
    assert "This field is required." in field_error(response.content.decode(), "name")
    assert list(ApiKey.scan()) == []


def test_it_revokes_only_by_exact_key_id(dash):
    key, _raw = access.apikey_create(name="shared name")
    dash.post("/keys/shared name/revoke/")
    assert ApiKey.get(key.key_hash).revoked_at is None


# --- static files under the API Gateway stage prefix -----------------------------------


class Stage:
    """The real WSGI handler, called as API Gateway + Zappa call it: the stage
    name in SCRIPT_NAME, the rest in PATH_INFO (werkzeug builds the environ)."""

    def __init__(self, prefix: str = "/dev") -> None:
        # As in a fresh Lambda: the app (and whitenoise) loads outside any request.
        set_script_prefix("/")
        self.client = WerkzeugClient(get_wsgi_application())
        self.base = f"http://127.0.0.1{prefix}/"

    def get(self, path: str):
        return self.client.get(path, base_url=self.base)

    def post(self, path: str, data: dict):
        return self.client.post(path, data=data, base_url=self.base)

    def log_in(self, next_url: str = ""):
        page = self.get("/login/").get_data(as_text=True)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
        return self.post("/login/" + (f"?next={next_url}" if next_url else ""), form)


@pytest.fixture
def stage(operator):
    yield Stage()
    set_script_prefix("/")  # the prefix is process state; other tests expect none


def test_it_links_and_serves_static_files_under_the_stage_prefix(stage):
    page = stage.get("/login/").get_data(as_text=True)
    assert 'action="/dev/login/"' in page
    for name in ("dashboard.css", "dashboard.js", "vendor/htmx.min.js"):
        stem, ext = name.rsplit(".", 1)
        # Hashed names (collectstatic's manifest, as in production), under /dev.
        url = re.search(rf'"/dev(/static/tasks/{stem}\.[0-9a-f]{{12}}\.{ext})"', page).group(1)
        response = stage.get(url)
        assert response.status_code == 200
        assert "immutable" in response.headers["Cache-Control"]
    css = re.search(r'"/dev(/static/tasks/dashboard\.[0-9a-f]{12}\.css)"', page).group(1)
    assert "--scheduled" in stage.get(css).get_data(as_text=True)


def test_it_works_under_the_stage_prefix(stage):
    response = stage.get("/keys/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dev/login/?next=%2Fdev%2Fkeys%2F"
    login = stage.log_in(next_url="%2Fdev%2Fkeys%2F")
    assert login.headers["Location"] == "/dev/keys/"
    keys = stage.get("/keys/").get_data(as_text=True)
    assert 'action="/dev/keys/"' in keys
    assert 'action="/dev/logout/"' in keys
    assert 'href="/dev/tasks/new/"' in keys


def test_it_shows_every_invalid_field_at_once(dash):
    response = dash.post("/tasks/new/", form_data(url="ftp://example.com/x", data="{bad"))
    html = response.content.decode()
    assert "not valid JSON" in field_error(html, "data")
    assert "url must start with http:// or https://" in field_error(html, "url")
    assert list(Task.scan()) == []


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
