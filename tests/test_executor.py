"""The executor, tasks.executor.run_task, against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks import Webhook
from werkzeug import Response

from tasks import models, scheduler
from tasks.actions import webhook as webhook_action
from tasks.errors import Conflict
from tasks.executor import ExecutorError, run_task
from tasks.models import Task
from tasks.services import commands, creation, running
from tests.factories import due_task


def stored(task_id: str) -> Task:
    return Task.get(task_id, consistent_read=True)


def schedule_of(settings, task: Task) -> dict:
    return scheduler.client().get_schedule(
        Name=task.schedule_name, GroupName=settings.SCHEDULE_GROUP
    )


def schedule_names(settings) -> set[str]:
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)
    return {s["Name"] for s in schedules["Schedules"]}


@pytest.fixture
def no_backoff(settings):
    """Retries due at once, so a test can deliver the next attempt."""
    settings.TASK_RETRY_BASE_SECONDS = 0
    settings.TASK_RETRY_MAX_SECONDS = 0


# --- success ------------------------------------------------------------------------


def test_it_delivers_a_due_webhook_signed_and_records_it(aws, receiver, settings):
    receiver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"), data={"message": "Hello World", "n": 1})

    result = run_task({"command": "tasks.executor.run_task", "task_id": task.id}, None)

    assert result == {"taskId": task.id, "result": "completed"}
    [(request, _response)] = receiver.log
    assert json.loads(request.get_data()) == {"message": "Hello World", "n": 1}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("django-task-scheduler/")
    assert request.headers["webhook-id"] == task.id
    # The receiver's check, per the Standard Webhooks spec.
    verified = Webhook(settings.WEBHOOK_SIGNING_SECRET).verify(
        request.get_data(), dict(request.headers)
    )
    assert verified == {"message": "Hello World", "n": 1}

    done = stored(task.id)
    assert done.status == "completed"
    assert done.attempts == 1
    assert done.error is None
    [attempt] = done.attempt_history
    assert attempt.number == 1
    assert attempt.outcome == "success"
    assert attempt.http_status == 200
    assert attempt.response_excerpt == "ok"
    assert attempt.error is None
    assert attempt.started_at <= attempt.finished_at


def test_its_signature_does_not_verify_with_another_secret_or_a_changed_body(
    aws, receiver, settings
):
    receiver.expect_oneshot_request("/hook").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"))
    run_task({"task_id": task.id})
    [(request, _response)] = receiver.log
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(request.get_data(), dict(request.headers))
    with pytest.raises(WebhookVerificationError):
        Webhook(settings.WEBHOOK_SIGNING_SECRET).verify(b'{"forged":1}', dict(request.headers))


def test_it_sends_the_method_and_headers_the_task_names(aws, receiver):
    receiver.expect_oneshot_request("/items/7", method="PUT").respond_with_data("", status=204)
    task = due_task(
        receiver.url_for("/items/7"),
        data=[1, 2, 3],
        payload_extra={"method": "PUT", "headers": {"X-Team": "ops", "Authorization": "Bearer t"}},
    )
    assert run_task({"task_id": task.id})["result"] == "completed"
    [(request, _response)] = receiver.log
    assert request.method == "PUT"
    assert request.headers["X-Team"] == "ops"
    assert request.headers["Authorization"] == "Bearer t"
    assert json.loads(request.get_data()) == [1, 2, 3]
    attempt = stored(task.id).attempt_history[0]
    assert attempt.http_status == 204
    assert attempt.response_excerpt is None


def test_it_keeps_only_a_short_excerpt_of_the_response(aws, receiver):
    receiver.expect_oneshot_request("/hook").respond_with_data("é" * 5000, status=200)
    task = due_task(receiver.url_for("/hook"))
    run_task({"task_id": task.id})
    assert stored(task.id).attempt_history[0].response_excerpt == "é" * 500


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


# --- deliveries that must change nothing -------------------------------------------------


@pytest.mark.parametrize("status", ["running", "completed", "failed", "cancelled"])
def test_it_ignores_a_delivery_for_a_task_that_is_not_scheduled(aws, receiver, status):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"))
    Task(id=task.id).update(actions=[Task.status.set(status)])
    before = stored(task.id).attribute_values

    if status == "running":  # the invocation fails, for a retry (see "stuck tasks")
        with pytest.raises(ExecutorError, match="running under another invocation"):
            run_task({"task_id": task.id})
    else:
        assert run_task({"task_id": task.id}) == {"taskId": task.id, "result": "skipped"}

    assert receiver.log == []
    assert stored(task.id).attribute_values == before


def test_it_ignores_a_delivery_before_the_task_is_due(aws, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": receiver.url_for("/hook")},
        run_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert run_task({"task_id": task.id})["result"] == "skipped"
    assert receiver.log == []
    assert stored(task.id).status == "scheduled"
    assert stored(task.id).attempts == 0


def test_it_claims_a_task_a_little_early_but_delivers_it_when_due(aws, receiver):
    # EventBridge and the executor's clocks may differ by a little: a delivery
    # up to 5 s early is taken, and the webhook waits for its time.
    receiver.expect_request("/hook").respond_with_data("ok")
    run_at = datetime.now(UTC) + timedelta(seconds=2)
    task, _ = creation.task_create(
        action="webhook", payload={"url": receiver.url_for("/hook")}, run_at=run_at
    )
    assert run_task({"task_id": task.id})["result"] == "completed"
    started = stored(task.id).attempt_history[0].started_at
    assert started >= run_at
    assert len(receiver.log) == 1


@pytest.mark.parametrize(
    "event",
    [
        {"task_id": "0123456789abcdef0123456789abcdef"},
        {"task_id": ""},
        {"task_id": 42},
        {},
        None,
        "a string",
    ],
)
def test_it_ignores_an_event_for_no_known_task(aws, event):
    result = run_task(event, None)
    assert result["result"] in ("skipped", "ignored")
    assert list(Task.scan()) == []


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "WEBHOOK_SIGNING_SECRET is not set"),
        ("whsec_", "WEBHOOK_SIGNING_SECRET is not a valid secret"),
        ("not-base64!!", "WEBHOOK_SIGNING_SECRET is not a valid secret"),
    ],
)
def test_it_refuses_to_run_without_a_usable_signing_secret(
    aws, receiver, settings, secret, message
):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"))
    settings.WEBHOOK_SIGNING_SECRET = secret
    # The invocation fails (Lambda retries it, then the dead-letter
    # queue) and the task is left untouched for a later try.
    with pytest.raises(ExecutorError, match=f"^{message}"):
        run_task({"task_id": task.id})
    assert receiver.log == []
    assert stored(task.id).status == "scheduled"
    assert stored(task.id).attempts == 0


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


# --- races, against the atomic local AWS endpoint -----------------------------------------


def test_it_calls_the_webhook_once_when_a_task_is_delivered_20_times_at_once(atomic_aws, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"))
    deliveries = 20
    start = threading.Barrier(deliveries)
    results: list[str] = []

    def deliver() -> None:
        start.wait()
        try:
            result = run_task({"command": "tasks.executor.run_task", "task_id": task.id})
        except ExecutorError as exc:  # found it running: Lambda retries it later
            assert "running under another invocation" in str(exc)
            results.append("failed while it ran")
        else:
            results.append(result["result"])

    threads = [threading.Thread(target=deliver) for _ in range(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == deliveries
    assert results.count("completed") == 1
    assert set(results) - {"completed"} <= {"skipped", "failed while it ran"}
    assert len(receiver.log) == 1
    done = stored(task.id)
    assert done.status == "completed"
    assert done.attempts == 1
    assert len(done.attempt_history) == 1


def race_cancel_and_run(task_id: str) -> dict[str, str]:
    """Start a delivery and a cancel of one task at the same instant."""
    start = threading.Barrier(2)
    results: dict[str, str] = {}

    def run() -> None:
        start.wait()
        results["run"] = run_task({"task_id": task_id})["result"]

    def cancel() -> None:
        start.wait()
        try:
            results["cancel"] = commands.task_cancel(task_id=task_id).status
        except Conflict as exc:
            results["cancel"] = exc.message

    threads = [threading.Thread(target=run), threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_it_leaves_one_consistent_outcome_when_cancel_races_a_run(atomic_aws, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    for _round in range(8):
        task = due_task(receiver.url_for("/hook"))
        results = race_cancel_and_run(task.id)

        final = stored(task.id)
        calls = [r for r, _ in receiver.log if r.headers["webhook-id"] == task.id]
        if results["cancel"] == "cancelled":
            # The cancel won: nothing ran, nothing was called.
            assert results["run"] == "skipped"
            assert (final.status, final.attempts, calls) == ("cancelled", 0, [])
        else:
            # The run won: the webhook was called once; the cancel was refused.
            assert results["run"] == "completed"
            assert results["cancel"] in (
                "task is running and can no longer be cancelled",
                "task is completed and can no longer be cancelled",
            )
            assert (final.status, final.attempts, len(calls)) == ("completed", 1, 1)


class DripServer:
    """A receiver on 127.0.0.1 that answers 200 at once, then sends its body
    one byte at a time: a slow body must not hold the executor past its
    timeout."""

    def __init__(self, interval: float = 0.2, length: int = 1000, headers: bool = False) -> None:
        self.interval, self.length, self.drip_headers = interval, length, headers
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            if self.drip_headers:
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            else:
                conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.length}\r\n\r\n".encode())
            for _ in range(self.length):
                if self.stop.wait(self.interval):
                    return
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_it_stops_reading_a_slow_response_body_at_the_timeout(aws, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    server = DripServer()
    try:
        task = due_task(server.url)
        started = time.monotonic()
        result = run_task({"task_id": task.id})
        elapsed = time.monotonic() - started
    finally:
        server.close()
    # The whole body would take 200 s. The answer was a 200: delivered.
    assert elapsed < 30
    assert result["result"] == "completed"
    attempt = stored(task.id).attempt_history[0]
    assert attempt.http_status == 200
    assert attempt.response_excerpt and set(attempt.response_excerpt) == {"x"}


def test_it_stops_waiting_for_slow_response_headers_at_the_timeout(aws, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    server = DripServer(headers=True)
    try:
        task = due_task(server.url, max_attempts=1)
        started = time.monotonic()
        result = run_task({"task_id": task.id})
        elapsed = time.monotonic() - started
    finally:
        server.close()
    # The headers would take 200 s: a timeout, like a server that never answers.
    assert elapsed < 30
    assert result["result"] == "failed"
    assert stored(task.id).error == "timed out after 1 s"


def test_it_logs_no_secrets(api, api_key, receiver, settings, caplog, no_backoff):
    caplog.set_level(logging.INFO)
    receiver.expect_ordered_request("/hook").respond_with_data("down", status=500)
    receiver.expect_ordered_request("/hook").respond_with_data("ok")
    body = {
        "action": "webhook",
        "payload": {
            "url": receiver.url_for("/hook"),
            "data": {"n": 1},
            "headers": {"Authorization": "Bearer receiver-secret-123"},
        },
        "runAt": datetime.now(UTC).isoformat(),
    }
    task_id = api.post("/api/tasks", body).json()["id"]
    assert run_task({"task_id": task_id})["result"] == "scheduled"
    assert run_task({"task_id": task_id})["result"] == "completed"
    assert api.get(f"/api/tasks/{task_id}").status_code == 200

    assert caplog.records  # the run was logged ...
    logged = caplog.text
    for secret in (api_key, "receiver-secret-123", settings.WEBHOOK_SIGNING_SECRET):
        assert secret not in logged  # ... without a secret
    signing_key = settings.WEBHOOK_SIGNING_SECRET.removeprefix("whsec_")
    assert signing_key not in logged


# --- early deliveries ---------------------------------------------------------------
# EventBridge fires one-time schedules with 60-second precision: a delivery
# may come before the task is due. It must neither be lost nor send early.


@pytest.fixture
def short_claim_window(monkeypatch):
    monkeypatch.setattr(models, "CLAIM_EARLY_SECONDS", 0.5)


def early_event(task) -> dict:
    return {
        "command": "tasks.executor.run_task",
        "task_id": task.id,
        "due_at": task.due_at.isoformat(),
    }


def test_it_holds_an_early_delivery_until_the_task_is_due(aws, receiver, settings):
    arrivals: list[float] = []

    def record(request):
        from werkzeug import Response

        arrivals.append(time.time())
        return Response("ok")

    receiver.expect_request("/hook").respond_with_handler(record)
    due = datetime.now(UTC) + timedelta(seconds=2)
    task, _ = creation.task_create(
        action="webhook", payload={"url": receiver.url_for("/hook")}, run_at=due
    )
    assert run_task(early_event(task))["result"] == "completed"
    assert arrivals and arrivals[0] >= due.timestamp()
    assert Task.get(task.id).attempt_history[0].started_at >= due
    # Prepared while it waited, but signed as of its sending.
    [(request, _response)] = receiver.log
    assert int(request.headers["webhook-timestamp"]) == int(due.timestamp())
    Webhook(settings.WEBHOOK_SIGNING_SECRET).verify(request.get_data(), dict(request.headers))


def test_it_leaves_a_very_early_delivery_unclaimed_and_cancellable_while_it_waits(
    aws, receiver, settings, short_claim_window
):
    receiver.expect_request("/hook").respond_with_data("ok")
    due = datetime.now(UTC) + timedelta(seconds=2)
    task, _ = creation.task_create(
        action="webhook", payload={"url": receiver.url_for("/hook")}, run_at=due
    )
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(run_task(early_event(task))))
    worker.start()
    time.sleep(0.5)
    # Waiting, not claimed: the task can still be cancelled.
    assert Task.get(task.id).status == "scheduled"
    assert commands.task_cancel(task_id=task.id).status == "cancelled"
    worker.join(10)
    assert result["result"] == "skipped"
    assert receiver.log == []


# --- stuck tasks ------------------------------------------------------------------------
# An executor that dies mid-delivery (its Lambda timed out or crashed) leaves
# the task running. Once the claim's lease has lapsed, an operator may cancel
# or retry it; before, it is still being worked on and both are refused.


def claimed(url: str, *, lease_seconds: float) -> Task:
    task = due_task(url)
    assert running.task_claim(task_id=task.id) is not None
    Task(id=task.id).update(
        actions=[Task.lease_expires_at.set(datetime.now(UTC) + timedelta(seconds=lease_seconds))]
    )
    return stored(task.id)


def test_it_sets_a_lease_when_it_claims(aws, settings):
    task = due_task("https://example.com/hook")
    before = datetime.now(UTC)
    assert running.task_claim(task_id=task.id) is not None
    lease = stored(task.id).lease_expires_at
    assert lease >= before + timedelta(seconds=settings.EXECUTOR_LEASE_SECONDS - 1)
    assert not stored(task.id).is_stuck


def test_it_refuses_to_cancel_or_retry_a_task_still_running(aws):
    task = claimed("https://example.com/hook", lease_seconds=60)
    with pytest.raises(Conflict):
        commands.task_cancel(task_id=task.id)
    with pytest.raises(Conflict):
        commands.task_retry(task_id=task.id)
    assert stored(task.id).status == "running"


def test_it_cancels_a_stuck_task(aws):
    task = claimed("https://example.com/hook", lease_seconds=-1)
    assert task.is_stuck
    assert commands.task_cancel(task_id=task.id).status == "cancelled"
    assert stored(task.id).status == "cancelled"


def test_a_delivery_that_finds_its_task_running_fails_and_changes_nothing(aws, receiver):
    # Another invocation holds it (a duplicate delivery): fail, so that Lambda
    # retries this one later, when the task is finished.
    task = claimed(receiver.url_for("/hook"), lease_seconds=60)
    with pytest.raises(ExecutorError, match="running under another invocation until .*retry later"):
        run_task({"task_id": task.id})
    after = stored(task.id)
    assert (after.status, after.attempts, after.lease_expires_at) == (
        "running",
        task.attempts,
        task.lease_expires_at,
    )
    assert receiver.log == []
    # Finished meanwhile: Lambda's retry is a no-op.
    Task(id=task.id).update(actions=[Task.status.set("completed")])
    assert run_task({"task_id": task.id})["result"] == "skipped"


def test_a_delivery_that_finds_its_task_stuck_fails_for_an_operator(aws, receiver):
    # Its executor died holding it: every retry fails too, and after Lambda's
    # retries the invocation lands in the dead-letter queue, whose alarm fires.
    task = claimed(receiver.url_for("/hook"), lease_seconds=-1)
    with pytest.raises(ExecutorError, match="stuck running.*cancel or retry it"):
        run_task({"task_id": task.id})
    assert stored(task.id).status == "running"
    assert receiver.log == []


def test_it_retries_a_stuck_task_and_delivers_it(aws, receiver, settings):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = claimed(receiver.url_for("/hook"), lease_seconds=-1)
    retried = commands.task_retry(task_id=task.id)
    assert retried.status == "scheduled"
    assert schedule_of(settings, retried)["Name"] == retried.schedule_name
    assert run_task({"task_id": task.id})["result"] == "completed"
    assert len(receiver.log) == 1
