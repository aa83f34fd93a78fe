"""Failed attempts: retried with backoff while attempts are left, failed for good otherwise."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from werkzeug import Response

from tasks import scheduler
from tasks.actions import webhook as webhook_action
from tasks.executor import run_task
from tasks.services import running
from tests.factories import due_task, schedule_names, schedule_of, stored

# --- retries ------------------------------------------------------------------------


def test_it_retries_a_server_error_then_fails_with_the_error(aws, receiver, settings, no_backoff):
    receiver.expect_request("/hook").respond_with_data("down", status=500)
    task = due_task(receiver.url_for("/hook"), max_attempts=3)
    first_schedule = task.schedule_name

    assert run_task({"task_id": task.id})["result"] == "scheduled"
    after_first = stored(task.id)
    assert after_first.status == "scheduled"
    assert after_first.attempts == 1
    assert after_first.error == "HTTP 500"
    # A new one-time schedule for the retry, in the same shape as the first.
    assert after_first.schedule_name == f"{task.id}-2" != first_schedule
    retry_schedule = schedule_of(settings, after_first)
    assert json.loads(retry_schedule["Target"]["Input"])["task_id"] == task.id
    assert retry_schedule["ActionAfterCompletion"] == "DELETE"

    assert run_task({"task_id": task.id})["result"] == "scheduled"
    assert run_task({"task_id": task.id})["result"] == "failed"
    # No attempts left: a further delivery runs nothing.
    assert run_task({"task_id": task.id})["result"] == "skipped"

    failed = stored(task.id)
    assert failed.status == "failed"
    assert failed.attempts == 3
    assert failed.error == "HTTP 500"
    assert [a.outcome for a in failed.attempt_history] == ["retry", "retry", "failure"]
    assert [a.number for a in failed.attempt_history] == [1, 2, 3]
    assert [a.http_status for a in failed.attempt_history] == [500, 500, 500]
    assert all(a.response_excerpt == "down" for a in failed.attempt_history)
    assert len(receiver.log) == 3
    # The same webhook-id on every attempt, so the receiver can deduplicate.
    assert {request.headers["webhook-id"] for request, _ in receiver.log} == {task.id}
    assert schedule_names(settings) == {first_schedule, f"{task.id}-2", f"{task.id}-3"}


def test_it_completes_when_a_retry_succeeds(aws, receiver, no_backoff):
    receiver.expect_ordered_request("/hook").respond_with_data("busy", status=503)
    receiver.expect_ordered_request("/hook").respond_with_data("ok", status=200)
    task = due_task(receiver.url_for("/hook"))
    assert run_task({"task_id": task.id})["result"] == "scheduled"
    assert run_task({"task_id": task.id})["result"] == "completed"
    done = stored(task.id)
    assert done.status == "completed"
    assert done.error is None
    assert [a.outcome for a in done.attempt_history] == ["retry", "success"]
    receiver.check_assertions()


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_it_treats_429_and_5xx_as_retryable(aws, receiver, no_backoff, status):
    receiver.expect_request("/hook").respond_with_data("no", status=status)
    task = due_task(receiver.url_for("/hook"), max_attempts=2)
    assert run_task({"task_id": task.id})["result"] == "scheduled"
    assert stored(task.id).attempt_history[0].outcome == "retry"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 422])
def test_it_fails_at_once_on_other_4xx(aws, receiver, settings, status):
    receiver.expect_request("/hook").respond_with_data("nope", status=status)
    task = due_task(receiver.url_for("/hook"), max_attempts=5)

    assert run_task({"task_id": task.id})["result"] == "failed"

    failed = stored(task.id)
    assert failed.status == "failed"
    assert failed.attempts == 1
    assert failed.error == f"HTTP {status}"
    assert failed.attempt_history[0].outcome == "failure"
    assert failed.attempt_history[0].http_status == status
    assert len(receiver.log) == 1
    assert schedule_names(settings) == {task.schedule_name}


def test_it_waits_with_exponential_backoff_between_attempts(aws, receiver, settings):
    settings.TASK_RETRY_BASE_SECONDS = 100
    receiver.expect_request("/hook").respond_with_data("down", status=500)
    task = due_task(receiver.url_for("/hook"))

    before = datetime.now(UTC)
    run_task({"task_id": task.id})
    after = datetime.now(UTC)
    retry = stored(task.id)
    # First retry: the base delay with jitter, between half of it and all of it.
    assert before + timedelta(seconds=50) <= retry.due_at <= after + timedelta(seconds=100)
    expected = scheduler.at_expression(retry.due_at)
    assert schedule_of(settings, retry)["ScheduleExpression"] == expected
    # The retry is not due yet: an early delivery (a duplicate of the first
    # schedule) runs nothing.
    assert run_task({"task_id": task.id})["result"] == "skipped"
    assert len(receiver.log) == 1
    assert stored(task.id).attempts == 1


def test_its_backoff_doubles_each_attempt_with_jitter_up_to_the_cap(settings):
    settings.TASK_RETRY_BASE_SECONDS = 10
    settings.TASK_RETRY_MAX_SECONDS = 50
    for attempt, (low, high) in {
        1: (5, 10),
        2: (10, 20),
        3: (20, 40),
        4: (25, 50),
        9: (25, 50),
    }.items():
        delays = [running.retry_delay(attempt, None) for _ in range(200)]
        assert all(low <= d <= high for d in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 100  # jitter: not one fixed delay
    assert running.retry_delay(1, retry_after=30) == 30
    assert running.retry_delay(1, retry_after=10**9) == running.RETRY_AFTER_LIMIT_SECONDS


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_it_honours_retry_after(aws, receiver, no_backoff, form):
    wait = 600
    value = (
        str(wait)
        if form == "seconds"
        else format_datetime(datetime.now(UTC) + timedelta(seconds=wait), usegmt=True)
    )
    receiver.expect_request("/hook").respond_with_data(
        "slow down", status=429, headers={"Retry-After": value}
    )
    task = due_task(receiver.url_for("/hook"))
    before = datetime.now(UTC)
    run_task({"task_id": task.id})
    retry = stored(task.id)
    assert retry.status == "scheduled"
    assert retry.due_at >= before + timedelta(seconds=wait - 5)
    assert retry.due_at <= datetime.now(UTC) + timedelta(seconds=wait + 1)


@pytest.fixture
def slow_url(receiver, settings):
    """A receiver that answers only after the webhook timeout (0.5 s) has passed."""
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    release = threading.Event()

    def slow(request):
        release.wait(10)
        return Response("late")

    receiver.expect_request("/slow").respond_with_handler(slow)
    yield receiver.url_for("/slow")
    release.set()


def test_it_retries_a_timeout_and_records_it(aws, slow_url, no_backoff):
    task = due_task(slow_url, max_attempts=1)
    result = run_task({"task_id": task.id})
    assert result["result"] == "failed"
    failed = stored(task.id)
    assert failed.error == "timed out after 0.5 s"
    attempt = failed.attempt_history[0]
    assert attempt.http_status is None
    assert attempt.outcome == "failure"
    assert attempt.duration_ms < 9000


def test_it_retries_a_timeout_while_attempts_are_left(aws, slow_url, no_backoff):
    task = due_task(slow_url, max_attempts=2)
    assert run_task({"task_id": task.id})["result"] == "scheduled"
    assert stored(task.id).attempt_history[0].outcome == "retry"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on leaving: nothing listens


def test_it_retries_a_refused_connection_as_a_connection_error(aws, settings, no_backoff):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    task = due_task(f"http://127.0.0.1:{closed_port()}/hook", max_attempts=2)
    assert run_task({"task_id": task.id})["result"] == "scheduled"
    retry = stored(task.id)
    assert retry.error.startswith("connection failed: failed to connect to 127.0.0.1")
    assert "Connection refused" in retry.error
    assert retry.attempt_history[0].outcome == "retry"


def test_it_does_not_follow_a_redirect(aws, receiver):
    receiver.expect_request("/hook").respond_with_data(
        "", status=302, headers={"Location": receiver.url_for("/elsewhere")}
    )
    receiver.expect_request("/elsewhere").respond_with_data("should not be reached")
    task = due_task(receiver.url_for("/hook"), max_attempts=3)

    assert run_task({"task_id": task.id})["result"] == "failed"

    assert [request.path for request, _ in receiver.log] == ["/hook"]
    failed = stored(task.id)
    assert failed.attempts == 1
    assert failed.attempt_history[0].http_status == 302
    assert "redirect" in failed.error
    assert "not followed" in failed.error


# --- the unexpected ---------------------------------------------------------------------


def test_it_fails_a_task_whose_action_raises_instead_of_leaving_it_running(
    aws, receiver, monkeypatch
):
    def broken(self, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(webhook_action.WebhookAction, "prepare", broken)
    task = due_task(receiver.url_for("/hook"))
    assert run_task({"task_id": task.id})["result"] == "failed"
    failed = stored(task.id)
    assert failed.status == "failed"
    assert failed.error == "internal error: RuntimeError"


def test_it_fails_a_retry_whose_schedule_cannot_be_created(aws, receiver, monkeypatch, no_backoff):
    receiver.expect_request("/hook").respond_with_data("down", status=500)
    task = due_task(receiver.url_for("/hook"))

    def unavailable(**kwargs):
        raise scheduler.SchedulerError("ServiceUnavailable: try later")

    monkeypatch.setattr(scheduler, "schedule_create", unavailable)
    assert run_task({"task_id": task.id})["result"] == "failed"
    # Never `scheduled` without a schedule.
    failed = stored(task.id)
    assert failed.status == "failed"
    assert failed.error.startswith("could not create the schedule")
    assert failed.attempt_history[0].outcome == "retry"
