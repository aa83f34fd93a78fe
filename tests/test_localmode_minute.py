"""SCHEDULER_LOCAL_PRECISION=minute: the local stand-in fires each schedule at
a random second of its minute, as EventBridge Scheduler may, and the hop
still delivers each task within a second of its runAt, never early."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import boto3
import pytest
from django.conf import settings as django_settings

from tasks.localmode import precision
from tests.localrun import start_local


def test_it_fires_at_the_second_by_default_and_anywhere_in_the_minute_with_minute(
    monkeypatch,
):
    at = datetime(2030, 1, 2, 3, 4, 0, tzinfo=UTC).timestamp()
    monkeypatch.delenv("SCHEDULER_LOCAL_PRECISION", raising=False)
    assert precision.fire_at(at) == at
    assert precision.banner() is None
    monkeypatch.setenv("SCHEDULER_LOCAL_PRECISION", "minute")
    fired = [precision.fire_at(at, key=f"schedule-{n}") for n in range(200)]
    assert all(at <= f < at + 60 for f in fired)
    assert max(fired) - min(fired) > 30  # spread over the minute
    # One schedule keeps its instant however often it is read again.
    assert precision.fire_at(at, key="schedule-7") == fired[7]
    assert precision.banner().startswith("Precision: minute (")
    monkeypatch.setenv("SCHEDULER_LOCAL_PRECISION", "hour")
    with pytest.raises(ValueError, match="second or minute"):
        precision.mode()


@pytest.mark.e2e
def test_it_delivers_within_a_second_when_schedules_fire_anywhere_in_their_minute(
    tmp_path, httpserver
):
    arrivals: dict[str, float] = {}

    def record(request):
        from werkzeug import Response

        arrivals.setdefault(request.headers["webhook-id"], time.time())
        return Response("ok")

    httpserver.expect_request("/hook", method="POST").respond_with_handler(record)
    stack = start_local(tmp_path / "state", env={"SCHEDULER_LOCAL_PRECISION": "minute"})
    try:
        lines = [line.strip() for line in stack.output]
        banner = [i for i, line in enumerate(lines) if line.startswith("Precision: minute (")]
        ready = [i for i, line in enumerate(lines) if line.startswith("Dashboard: ")]
        assert banner and banner[0] < ready[0]

        now = time.time()
        # Two due soon (straight to the queue), three in the first minute a
        # schedule can be made for (fired in the minute before it, at a
        # random second, then the hop), at various seconds of it.
        minute = math.ceil((now + 70) / 60) * 60
        due = [now + 6.4, now + 11.7, minute + 0.3, minute + 23.8, minute + 51.05]
        ids = []
        for when in due:
            run_at = datetime.fromtimestamp(round(when, 3), UTC)
            status, task = stack.api(
                "POST",
                "/api/tasks",
                {
                    "action": "webhook",
                    "payload": {"url": httpserver.url_for("/hook"), "data": {}},
                    "runAt": run_at.isoformat(timespec="milliseconds"),
                },
            )
            assert status == 201, task
            ids.append(task["id"])
        endpoint = next(line.split()[3] for line in lines if line.startswith("local AWS on "))
        scheduler = boto3.client(
            "scheduler",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        # The subprocess has this process's environment (tests/settings.py).
        group = django_settings.SCHEDULE_GROUP
        schedules = scheduler.list_schedules(GroupName=group)["Schedules"]
        assert sorted(s["Name"].split("-")[0] for s in schedules) == sorted(ids[2:])

        deadline = max(due) + 10
        while time.time() < deadline and len(arrivals) < len(ids):
            time.sleep(0.2)
        lateness = {
            i: arrivals.get(i, math.inf) - round(d, 3) for i, d in zip(ids, due, strict=True)
        }
        assert all(0 <= late <= 1.0 for late in lateness.values()), lateness
        for task_id in ids:
            status, task = stack.api("GET", f"/api/tasks/{task_id}")
            assert task["status"] == "completed"
            assert task["attempts"] == 1
    finally:
        stack.stop()
