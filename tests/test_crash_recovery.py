"""End-to-end: runlocal killed (SIGKILL) between making a task's schedule and
storing the task, at a fault point (SCHEDULER_LOCAL_FAULT), then started
again on the same state: no task is left scheduled without a schedule."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import urllib3
from django.conf import settings

from tests.localrun import start_local

pytestmark = pytest.mark.e2e


def body(seconds: float) -> dict:
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return {
        "action": "webhook",
        "payload": {"url": "https://example.com/hook"},
        "runAt": run_at.isoformat().replace("+00:00", "Z"),
    }


def endpoint_of(output: list[str]) -> str:
    for line in output:
        match = re.match(r"local AWS on (\S+)", line)
        if match:
            return match.group(1)
    raise AssertionError("no endpoint line:\n" + "".join(output))


def test_a_kill_between_schedule_and_task_leaves_no_task_without_a_schedule(tmp_path):
    state = tmp_path / "state"
    local = start_local(state, env={"SCHEDULER_LOCAL_FAULT": "task_create.after_schedule@2"})
    try:
        status, kept = local.api("POST", "/api/tasks", body(3600))
        assert status == 201
        with pytest.raises(urllib3.exceptions.HTTPError):  # the process dies mid-request
            local.api("POST", "/api/tasks", body(3600))
        assert local.process.wait(timeout=30) == -9
    finally:
        local.stop()

    again = start_local(state)
    try:
        # The repair runs beside the firer, from the start.
        deadline = time.monotonic() + 30
        while not any("Reconciled:" in line for line in again.output):
            assert time.monotonic() < deadline, "".join(again.output)
            time.sleep(0.1)
        assert any("1 orphan schedules deleted" in line for line in again.output), again.output
        status, page = again.api("GET", "/api/tasks?status=scheduled&limit=100")
        assert status == 200
        assert [t["id"] for t in page["items"]] == [kept["id"]]
        client = boto3.client(
            "scheduler",
            endpoint_url=endpoint_of(again.output),
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        names = {
            s["Name"] for s in client.list_schedules(GroupName=settings.SCHEDULE_GROUP)["Schedules"]
        }
        # Every scheduled task has its schedule, and nothing else is left.
        assert names == {f"{kept['id']}-1"}
    finally:
        again.stop()
