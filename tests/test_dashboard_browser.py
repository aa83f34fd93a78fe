"""The dashboard in Chromium (driven by Playwright) against the local
mode as a user runs it: a subprocess with its AWS endpoint and schedule firing,
webhooks arriving at a real receiver on 127.0.0.1.

Which Chromium: tests/chromium.py (`make test` installs one when it can; without
one these tests skip, with one line saying how to install it). Screenshots land
in test-artifacts/ (git-ignored)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import chromium
from tests.localrun import start_local

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

CHROMIUM = chromium.find()
if CHROMIUM is None:
    if os.environ.get("REQUIRE_BROWSER"):  # CI: a missing browser is a failure
        pytest.fail(chromium.missing(), pytrace=False)
    pytest.skip(chromium.missing(), allow_module_level=True)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Long enough for a schedule to fire and a poll to bring the news.
LIVE_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    local = start_local(tmp_path_factory.mktemp("dashboard-local"))
    yield local
    local.stop()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile; fails the test on a script error or a
    Content-Security-Policy violation."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin", locale="en-GB"
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    tab.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield tab
    context.close()
    assert problems == []


def log_in(page, stack, password: str | None = None) -> None:
    page.goto(stack.url + "login/")
    page.get_by_label("Username").fill(stack.username)
    page.get_by_label("Password").fill(password or stack.password)
    page.get_by_role("button", name="Log in").click()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def schedule(stack, url: str, seconds: float) -> dict:
    run_at = datetime.now(UTC) + timedelta(seconds=seconds)
    status, task = stack.api(
        "POST",
        "/api/tasks",
        {
            "action": "webhook",
            "payload": {"url": url, "data": {"from": "browser test"}},
            "runAt": run_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        },
    )
    assert status == 201, task
    return task


def test_it_logs_in(page, stack):
    log_in(page, stack)
    expect(page).to_have_url(stack.url)
    expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
    expect(page.locator(".who")).to_have_text(stack.username)


def test_it_refuses_a_wrong_password(page, stack):
    log_in(page, stack, password="not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password.")
    expect(page).to_have_url(re.compile(r"/login/$"))
    page.goto(stack.url)
    expect(page).to_have_url(re.compile(r"/login/"))


def test_it_sends_a_visitor_without_a_session_to_the_login_page(page, stack):
    page.goto(stack.url + "keys/")
    expect(page).to_have_url(stack.url + "login/?next=%2Fkeys%2F")
    log_in_here = page.get_by_label("Username")
    log_in_here.fill(stack.username)
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(stack.url + "keys/")


def test_it_schedules_a_webhook_from_the_form_and_shows_it_complete(page, stack, httpserver):
    httpserver.expect_request("/hooks/reminder", method="PUT").respond_with_data(
        '{"received": true}', content_type="application/json"
    )
    log_in(page, stack)
    page.get_by_role("link", name="New task").first.click()
    page.get_by_label("URL").fill(httpserver.url_for("/hooks/reminder"))
    page.get_by_label("Method").select_option("PUT")
    page.get_by_label("JSON data").fill('{"message": "Hello World"}')
    page.get_by_label("Minutes from now").fill("0")
    page.get_by_role("button", name="Schedule task").click()

    expect(page.locator(".flash")).to_have_text("Task scheduled.")
    task_id = page.url.rstrip("/").rsplit("/", 1)[1]
    # A mark on this very document: if it is still there at the end, the
    # status changed without a page load.
    page.evaluate("window.sameDocument = true")
    expect(page.locator(".detail-head [data-status]")).to_have_attribute(
        "data-status", "completed", timeout=LIVE_TIMEOUT_MS
    )
    assert page.evaluate("window.sameDocument") is True

    attempt = page.locator(".attempts-table tbody tr")
    expect(attempt).to_have_count(1)
    expect(attempt.locator("td[data-label=HTTP]")).to_have_text("200")
    expect(attempt.locator("td[data-label=Outcome]")).to_have_text("success")
    expect(attempt.locator("td[data-label=Response]")).to_contain_text('{"received": true}')
    request, _ = httpserver.log[0]
    assert request.get_json() == {"message": "Hello World"}
    assert stack.api("GET", f"/api/tasks/{task_id}")[1]["status"] == "completed"
    screenshot(page, "task-detail")


def test_it_updates_the_list_without_reloading(page, stack, httpserver):
    httpserver.expect_request("/hooks/list").respond_with_data("ok")
    log_in(page, stack)
    task = schedule(stack, httpserver.url_for("/hooks/list"), seconds=4)
    page.reload()
    row = page.locator(f'[data-task-id="{task["id"]}"]')
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "scheduled")
    page.evaluate("window.sameDocument = true")
    expect(row.locator("[data-status]")).to_have_attribute(
        "data-status", "completed", timeout=LIVE_TIMEOUT_MS
    )
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "task-list")


def test_it_cancels_a_task_after_asking(page, stack):
    task = schedule(stack, "https://example.com/never", seconds=3600)
    log_in(page, stack)
    page.goto(stack.url + f"tasks/{task['id']}/")
    page.get_by_role("button", name="Cancel…").click()
    dialog = page.locator("#confirm-cancel")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Cancel this task?")
    dialog.get_by_role("button", name="Cancel task").click()

    expect(page.locator(".flash")).to_have_text("Task cancelled.")
    expect(page.locator(".detail-head [data-status]")).to_have_attribute("data-status", "cancelled")
    assert stack.api("GET", f"/api/tasks/{task['id']}")[1]["status"] == "cancelled"


def test_it_keeps_a_task_when_the_cancel_is_not_confirmed(page, stack):
    task = schedule(stack, "https://example.com/kept", seconds=3600)
    log_in(page, stack)
    page.goto(stack.url + f"tasks/{task['id']}/")
    page.get_by_role("button", name="Cancel…").click()
    page.locator("#confirm-cancel").get_by_role("button", name="Keep it").click()
    expect(page.locator("#confirm-cancel")).to_be_hidden()
    assert stack.api("GET", f"/api/tasks/{task['id']}")[1]["status"] == "scheduled"


def test_it_shows_a_validation_error_beside_its_field(page, stack):
    before = stack.api("GET", "/api/tasks?limit=100")[1]["items"]
    log_in(page, stack)
    page.goto(stack.url + "tasks/new/")
    page.get_by_label("URL").fill("ftp://example.com/file")
    page.get_by_role("button", name="Schedule task").click()

    error = page.locator('[data-field="url"] .field-error')
    expect(error).to_have_text("url must start with http:// or https://")
    expect(page.get_by_label("URL")).to_have_value("ftp://example.com/file")
    expect(page.locator(".field-error")).to_have_count(1)
    assert stack.api("GET", "/api/tasks?limit=100")[1]["items"] == before


def test_it_fits_a_phone_screen(browser, stack):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    try:
        schedule(stack, "https://example.com/phone", seconds=600)
        log_in(page, stack)
        for path in ("", "tasks/new/", "keys/"):
            page.goto(stack.url + path)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow == 0, f"/{path} is wider than the screen by {overflow}px"
        page.goto(stack.url)
        screenshot(page, "task-list-phone")
    finally:
        context.close()


def test_it_creates_an_api_key_that_the_api_accepts(page, stack):
    log_in(page, stack)
    page.goto(stack.url + "keys/")
    page.get_by_label("Name").fill("browser test")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("tsk_")
    stack_with_key = type(stack)(**{**stack.__dict__, "api_key": key})
    assert stack_with_key.api("GET", "/api/tasks")[0] == 200
    page.goto(stack.url + "keys/")
    expect(page.locator("#new-key")).to_have_count(0)  # shown once only
    expect(page.locator("tr", has_text="browser test")).to_contain_text(key[:10])


def test_it_retries_a_failed_task(page, stack, httpserver):
    answers = iter([("down", 500), ("back", 200)])

    def receiver(request):
        from werkzeug import Response

        body, status = next(answers)
        return Response(body, status=status)

    httpserver.expect_request("/hooks/flaky").respond_with_handler(receiver)
    run_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    status, task = stack.api(
        "POST",
        "/api/tasks",
        {
            "action": "webhook",
            "payload": {"url": httpserver.url_for("/hooks/flaky")},
            "runAt": run_at,
            "maxAttempts": 1,
        },
    )
    assert status == 201, task
    log_in(page, stack)
    page.goto(stack.url + f"tasks/{task['id']}/")
    expect(page.locator(".detail-head [data-status]")).to_have_attribute(
        "data-status", "failed", timeout=LIVE_TIMEOUT_MS
    )
    expect(page.locator(".callout")).to_contain_text("HTTP 500")

    page.get_by_role("button", name="Retry").click()
    expect(page.locator(".flash")).to_contain_text("fresh round of attempts")
    expect(page.locator(".detail-head [data-status]")).to_have_attribute(
        "data-status", "completed", timeout=LIVE_TIMEOUT_MS
    )
    rows = page.locator(".attempts-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td[data-label=HTTP]")).to_have_text("200")  # newest first
    expect(rows.nth(1).locator("td[data-label=HTTP]")).to_have_text("500")
    assert len(httpserver.log) == 2
