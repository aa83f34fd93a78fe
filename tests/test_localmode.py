"""End-to-end: the local mode as a user runs it (a subprocess), scheduling
through the HTTP API, webhooks arriving at a real receiver on 127.0.0.1."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from tests.localrun import start_local
from tests.processes import command_lines

pytestmark = pytest.mark.e2e

SECRET = "whsec_ZTJlLXRlc3Qtc2lnbmluZy1zZWNyZXQtMTIzNDU2Nzg="


@pytest.fixture
def stack(tmp_path):
    local = start_local(tmp_path / "state", env={"WEBHOOK_SIGNING_SECRET": SECRET})
    yield local
    local.stop()


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def test_it_delivers_a_webhook_at_its_second(stack, httpserver):
    arrivals: list[float] = []

    def record(request):
        from werkzeug import Response

        arrivals.append(time.time())
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(record)
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    status, task = stack.api(
        "POST",
        "/schedule-task",
        {
            "action": "webhook",
            "payload": {"url": httpserver.url_for("/hook"), "data": {"message": "Hello World"}},
            "runAt": iso(run_at),
        },
    )
    assert status == 201, task

    wait_for(lambda: arrivals)
    lateness = arrivals[0] - run_at.timestamp()
    assert 0 <= lateness <= 1.0, f"arrived {lateness:.3f} s after runAt"
    request, _ = httpserver.log[0]
    assert request.get_json() == {"message": "Hello World"}
    Webhook(SECRET).verify(request.get_data(), dict(request.headers))

    detail = wait_for(
        lambda: (
            (d := stack.api("GET", f"/api/tasks/{task['id']}")[1])["status"] == "completed" and d
        )
    )
    assert detail["attempts"] == 1
    assert [a["httpStatus"] for a in detail["attemptHistory"]] == [200]
    assert len(httpserver.log) == 1


def test_it_never_delivers_a_cancelled_task(stack, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    run_at = datetime.now(UTC) + timedelta(seconds=2)
    body = {
        "action": "webhook",
        "payload": {"url": httpserver.url_for("/hook"), "data": {}},
        "runAt": iso(run_at),
    }
    _, cancelled = stack.api("POST", "/api/tasks", body)
    _, kept = stack.api("POST", "/api/tasks", body)
    status, after = stack.api("POST", f"/api/tasks/{cancelled['id']}/cancel")
    assert (status, after["status"]) == (200, "cancelled")

    wait_for(lambda: stack.api("GET", f"/api/tasks/{kept['id']}")[1]["status"] == "completed")
    time.sleep(1)
    assert len(httpserver.log) == 1
    assert stack.api("GET", f"/api/tasks/{cancelled['id']}")[1]["status"] == "cancelled"


def test_it_keeps_tasks_across_a_restart(tmp_path, httpserver):
    httpserver.expect_request("/hook").respond_with_data("ok")
    data_dir = tmp_path / "state"
    first = start_local(data_dir, env={"WEBHOOK_SIGNING_SECRET": SECRET})
    try:
        run_at = datetime.now(UTC) + timedelta(seconds=4)
        status, task = first.api(
            "POST",
            "/api/tasks",
            {
                "action": "webhook",
                "payload": {"url": httpserver.url_for("/hook"), "data": {"n": 1}},
                "runAt": iso(run_at),
            },
        )
        assert status == 201
    finally:
        assert first.stop(signal.SIGTERM) == 0
    assert processes_using(data_dir) == []
    assert httpserver.log == []

    second = start_local(data_dir, env={"WEBHOOK_SIGNING_SECRET": SECRET})
    try:
        assert (second.username, second.password, second.api_key) == (
            first.username,
            first.password,
            first.api_key,
        )
        detail = wait_for(
            lambda: (
                (d := second.api("GET", f"/api/tasks/{task['id']}")[1])["status"] == "completed"
                and d
            )
        )
        assert detail["attempts"] == 1
        assert len(httpserver.log) == 1
        assert httpserver.log[0][0].get_json() == {"n": 1}
    finally:
        assert second.stop(signal.SIGINT) == 0
    assert processes_using(data_dir) == []


def processes_using(data_dir) -> list[str]:
    """Command lines of live processes started for this data folder."""
    return [args for args in command_lines() if str(data_dir) in args]
