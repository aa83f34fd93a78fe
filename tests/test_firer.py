"""The local EventBridge stand-in, against moto's scheduler API."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from tasks import scheduler
from tasks.localmode.firer import Firer, parse_at


def test_it_parses_at_expressions():
    assert (
        parse_at("at(2030-01-02T03:04:05)", "UTC")
        == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    )
    assert (
        parse_at("at(2030-01-02T03:04:05)", "Europe/Paris")
        == datetime(2030, 1, 2, 2, 4, 5, tzinfo=UTC).timestamp()
    )
    with pytest.raises(ValueError):
        parse_at("rate(5 minutes)", "UTC")


@pytest.fixture
def firer(aws, settings):
    calls: list[tuple[dict, float]] = []
    fired = threading.Event()

    def invoke(event, context):
        assert context.get_remaining_time_in_millis() > 0
        calls.append((event, time.time()))
        fired.set()

    firer = Firer(
        client=scheduler.client(), group=settings.SCHEDULE_GROUP, invoke=invoke, poll_interval=0.05
    )
    firer.calls, firer.fired_event = calls, fired
    yield firer
    firer.stop()


def schedule(name: str, seconds: float, task_id: str = "t1") -> datetime:
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    scheduler.schedule_create(name=name, task_id=task_id, when=when)
    return when


def test_it_invokes_with_the_target_input_at_the_second_and_deletes(firer, settings):
    when = schedule("s1", 1.2)
    firer.start()
    assert firer.fired_event.wait(5)
    event, fired_at = firer.calls[0]
    assert event["command"] == "tasks.executor.run_task"
    assert event["task_id"] == "t1"
    assert datetime.fromisoformat(event["due_at"]) == when.replace(
        microsecond=(when.microsecond // 1000) * 1000
    )
    due = parse_at(scheduler.at_expression(when), "UTC")
    lead = firer.lead_base + firer.lead_per_task  # a lone schedule
    assert due - lead - 0.05 <= fired_at <= due + 0.5
    time.sleep(1.5)  # deleted a moment after it fired
    names = [
        s["Name"]
        for s in scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)["Schedules"]
    ]
    assert names == []


def test_it_fires_missed_schedules_at_start(firer):
    firer.client.create_schedule(
        Name="missed",
        GroupName=firer.group,
        ScheduleExpression="at(2020-01-01T00:00:00)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": "arn:aws:lambda:us-east-1:123456789012:function:x",
            "RoleArn": "arn:aws:iam::123456789012:role/r",
            "Input": '{"task_id": "old"}',
        },
    )
    firer.start()
    assert firer.fired_event.wait(5)
    assert firer.calls[0][0] == {"task_id": "old"}


def test_it_does_not_fire_a_deleted_schedule(firer):
    schedule("gone", 1.0)
    firer.start()
    time.sleep(0.3)  # seen once
    scheduler.schedule_delete(name="gone")
    time.sleep(1.5)
    assert firer.calls == []


def test_it_never_leads_past_the_executors_claim_window(firer):
    firer.lead_per_task = 10.0  # as if thousands shared the second
    schedule("crowded", 3)
    firer.poll()
    due = firer.heap[0]
    assert due.at - due.start == pytest.approx(firer.max_lead)
    assert firer.max_lead < 5
