"""End-to-end: recurring schedules on the local mode as a user runs it (a
subprocess), webhooks arriving at a receiver on 127.0.0.1.

A per-minute cron has to wait for minute boundaries: the main test watches
two of them (at most ~2 minutes), with four schedules side by side."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import urllib3
from standardwebhooks import Webhook

from tests.localrun import start_local

pytestmark = pytest.mark.e2e

SECRET = "whsec_ZTJlLXRlc3Qtc2lnbmluZy1zZWNyZXQtMTIzNDU2Nzg="
ENV = {"WEBHOOK_SIGNING_SECRET": SECRET}
# Schedules must be made (and paused) before the first watched minute.
SETUP_SECONDS = 8


class Receiver:
    """Arrival times, ids and signatures per path."""

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.arrivals: dict[str, list[tuple[float, str]]] = defaultdict(list)

        def record(request):
            from werkzeug import Response

            Webhook(SECRET).verify(request.get_data(), dict(request.headers))
            self.arrivals[request.path].append((time.time(), request.headers["webhook-id"]))
            return Response("ok")

        httpserver.expect_request(path_or_none(), method="POST").respond_with_handler(record)

    def url(self, path: str) -> str:
        return self.server.url_for(path)


def path_or_none():
    import re

    return re.compile("/.*")


def create(local, path: str, receiver: Receiver, **fields) -> dict:
    body = {
        "action": "webhook",
        "payload": {"url": receiver.url(path), "data": {"path": path}},
        **fields,
    }
    status, schedule = local.api("POST", "/api/schedules", body)
    assert status == 201, schedule
    return schedule


def delete(local, schedule_id: str) -> int:
    response = urllib3.request(
        "DELETE",
        f"{local.url.rstrip('/')}/api/schedules/{schedule_id}",
        headers={"Authorization": f"Bearer {local.api_key}"},
        timeout=10,
    )
    return response.status


def sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.time()))


def test_it_delivers_each_minute_and_pauses_resumes_and_deletes(tmp_path, httpserver):
    receiver = Receiver(httpserver)
    local = start_local(tmp_path / "state", env=ENV)
    try:
        now = time.time()
        minute_one = (int(now) // 60 + 1) * 60
        if minute_one - now < SETUP_SECONDS:
            # Too close to make the schedules before it: make them after it,
            # so that the first minute they fire at is the next one.
            sleep_until(minute_one + 0.5)
            minute_one += 60
        minute_two = minute_one + 60
        every_minute = {"cron": "* * * * *"}
        steady = create(local, "/steady", receiver, **every_minute)
        paused = create(local, "/paused", receiver, **every_minute)
        deleted = create(local, "/deleted", receiver, **every_minute)
        assert local.api("POST", f"/api/schedules/{paused['id']}/pause", {})[0] == 200

        sleep_until(minute_one + 2)
        assert local.api("POST", f"/api/schedules/{paused['id']}/resume", {})[0] == 200
        assert delete(local, deleted["id"]) == 204
        sleep_until(minute_two + 2)
    finally:
        local.stop()

    def lateness(path: str) -> list[float]:
        """Seconds after the whole minute each webhook arrived."""
        return [round(at - round(at / 60) * 60, 3) for at, _id in receiver.arrivals[path]]

    print("lateness (s):", {path: lateness(path) for path in receiver.arrivals})
    # Every minute, one signed webhook each, within 1 s of the minute.
    assert len(receiver.arrivals["/steady"]) == 2, dict(receiver.arrivals)
    assert all(0 <= late <= 1.0 for late in lateness("/steady")), lateness("/steady")
    minutes = [round(at / 60) * 60 for at, _id in receiver.arrivals["/steady"]]
    assert minutes == [minute_one, minute_two]
    ids = [webhook_id for _at, webhook_id in receiver.arrivals["/steady"]]
    assert len(set(ids)) == 2
    # Paused before the first minute: nothing then; resumed: the second.
    assert len(receiver.arrivals["/paused"]) == 1
    assert abs(receiver.arrivals["/paused"][0][0] - minute_two) <= 1.0
    # Delivered at the first minute, deleted before the second.
    assert len(receiver.arrivals["/deleted"]) == 1
    assert abs(receiver.arrivals["/deleted"][0][0] - minute_one) <= 1.0
    assert steady["expression"] == "cron(* * * * ? *)"


def test_it_survives_a_restart_and_runs_a_missed_time_once_late(tmp_path, httpserver):
    receiver = Receiver(httpserver)
    state = tmp_path / "state"
    local = start_local(state, env=ENV)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    schedule = create(
        local,
        "/missed",
        receiver,
        rate="1 minute",
        startAt=start.isoformat().replace("+00:00", "Z"),
    )
    local.stop()  # down across the schedule's first time
    sleep_until(start.timestamp() + 1.5)
    assert receiver.arrivals["/missed"] == []

    local = start_local(state, env=ENV)
    try:
        deadline = time.time() + 15
        while not receiver.arrivals["/missed"] and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        status, kept = local.api("GET", f"/api/schedules/{schedule['id']}")
        _status, occurrences = local.api("GET", f"/api/tasks?scheduleId={schedule['id']}")
    finally:
        local.stop()
    # Restarted once more: the same time is not delivered again.
    local = start_local(state, env=ENV)
    try:
        time.sleep(2.0)
    finally:
        local.stop()

    assert status == 200 and kept["state"] == "enabled"
    assert kept["nextRunAt"] == (start + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    [(arrived, webhook_id)] = receiver.arrivals["/missed"]
    assert arrived > start.timestamp() + 1.5  # late, once
    [task] = occurrences["items"]
    assert task["id"] == webhook_id and task["status"] == "completed"
    assert task["occurrenceAt"] == start.isoformat().replace("+00:00", "Z")
    assert json.dumps(task)  # plain JSON
