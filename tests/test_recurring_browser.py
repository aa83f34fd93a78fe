"""The Schedules pages in Chromium (Debian's, driven by Playwright) against
the local mode: the form previews the description and next runs as you
type, and the schedule is created, paused, resumed and deleted."""

from __future__ import annotations

import re

import pytest

from tests.test_dashboard_browser import (  # noqa: F401 (fixtures)
    browser,
    log_in,
    page,
    screenshot,
    stack,
)

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


def test_it_creates_a_schedule_with_a_live_preview_then_pauses_resumes_and_deletes_it(
    page,  # noqa: F811
    stack,  # noqa: F811
):
    log_in(page, stack)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedules").click()
    expect(page.get_by_role("heading", name="No schedules yet")).to_be_visible()
    page.get_by_role("link", name="New schedule").first.click()

    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
    page.get_by_label("Timezone").select_option("Europe/Paris")
    cron = page.get_by_role("textbox", name="Cron")
    cron.fill("0 9 1 * MON")
    preview = page.locator("#schedule-preview")
    expect(preview).to_contain_text("EventBridge Scheduler cannot express")
    cron.fill("0 9 * * MON-FRI")
    expect(preview).to_contain_text("At 09:00, Monday through Friday (Europe/Paris)")
    expect(preview.locator("ol li")).to_have_count(5)
    page.get_by_label("Every so often").check()
    expect(cron).to_be_hidden()
    page.get_by_role("textbox", name="Every").fill("15 minutes")
    expect(preview).to_contain_text("Every 15 minutes (Europe/Paris)")
    page.get_by_label("On a cron schedule").check()
    cron.fill("*/5 * * * *")
    expect(preview).to_contain_text("Every 5 minutes (Europe/Paris)")
    screenshot(page, "schedule-form")
    page.get_by_role("button", name="Create schedule").click()

    expect(page.get_by_role("heading", name="Every 5 minutes (Europe/Paris)")).to_be_visible()
    expect(page.locator('[data-field="next-runs"] li')).to_have_count(5)
    page.get_by_role("button", name="Pause").click()
    expect(page.locator('[data-field="state"]')).to_have_text("paused")
    expect(page.get_by_text("Paused: no runs until it is resumed.")).to_be_visible()
    page.get_by_role("button", name="Resume").click()
    expect(page.locator('[data-field="state"]')).to_have_text("enabled")
    screenshot(page, "schedule-detail")

    page.get_by_role("link", name="Schedules").first.click()
    row = page.locator("tr[data-schedule-id]")
    expect(row).to_contain_text("Every 5 minutes (Europe/Paris)")
    row.get_by_role("link", name=re.compile("Every 5 minutes")).click()
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Delete schedule").click()
    expect(page.get_by_text("Schedule deleted.")).to_be_visible()
    expect(page.locator("tr[data-schedule-id]")).to_have_count(0)
