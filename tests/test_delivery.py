"""The executor delivers a due task: signed, as the task says, within its timeouts, never early."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from werkzeug import Response

from tasks.executor import run_task
from tasks.models import Task
from tasks.services import commands, creation
from tests.factories import due_task, stored

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


def run_against(server: DripServer, **task_fields) -> tuple[Task, dict, float]:
    """Deliver a due task to the server; the task, the result and the time taken."""
    try:
        task = due_task(server.url, **task_fields)
        started = time.monotonic()
        result = run_task({"task_id": task.id})
        return task, result, time.monotonic() - started
    finally:
        server.close()


def test_it_stops_reading_a_slow_response_body_at_the_timeout(aws, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    task, result, elapsed = run_against(DripServer())
    # The whole body would take 200 s. The answer was a 200: delivered.
    assert elapsed < 30
    assert result["result"] == "completed"
    attempt = stored(task.id).attempt_history[0]
    assert attempt.http_status == 200
    assert attempt.response_excerpt and set(attempt.response_excerpt) == {"x"}


def test_it_stops_waiting_for_slow_response_headers_at_the_timeout(aws, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    task, result, elapsed = run_against(DripServer(headers=True), max_attempts=1)
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
def short_claim_window(settings):
    settings.TASK_CLAIM_EARLY_SECONDS = 0.5


def early_event(task) -> dict:
    return {
        "command": "tasks.executor.run_task",
        "task_id": task.id,
        "due_at": task.due_at.isoformat(),
    }


def test_it_holds_an_early_delivery_until_the_task_is_due(aws, receiver, settings):
    arrivals: list[float] = []

    def record(request):

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


def test_it_connects_a_delivery_claimed_early_at_most_5_s_before_due(settings, monkeypatch):
    """With a wider claim window (the local mode's 15 s), a delivery claimed
    12 s early still leaves the receiver's connection idle no longer than
    the default window would: it connects 5 s before due, and sends at due."""
    from types import SimpleNamespace

    from tasks.services import running

    settings.TASK_CLAIM_EARLY_SECONDS = 15.0
    clock = [datetime(2027, 5, 1, 12, 0, tzinfo=UTC)]
    due = clock[0] + timedelta(seconds=12)
    steps: list[tuple] = []

    def sleep(seconds: float) -> None:
        clock[0] += timedelta(seconds=seconds)
        steps.append(("sleep", seconds))

    class Delivery:
        def connect(self) -> None:
            steps.append(("connect", (due - clock[0]).total_seconds()))

    monkeypatch.setattr(running, "now", lambda: clock[0])
    monkeypatch.setattr(running, "time", SimpleNamespace(sleep=sleep))
    running._hold_until_due(Task(id="t", due_at=due), Delivery())
    assert steps == [("sleep", 7.0), ("connect", running.CONNECT_AHEAD_SECONDS), ("sleep", 5.0)]
    assert clock[0] == due  # never sooner
