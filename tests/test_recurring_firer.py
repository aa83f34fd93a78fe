"""The local stand-in with recurring schedules, against moto's scheduler API:
it fires them with the scheduled time substituted, arms them again, drops
them when paused or deleted, reads them again when changed, and after a
restart fires the most recent missed time once."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from tasks import scheduler
from tasks.localmode import recurrence
from tasks.localmode.firer import RECURRING_EXTRA_LEAD, Firer


@pytest.fixture
def firer(aws, settings):
    calls: list[tuple[dict, float]] = []
    fired = threading.Event()

    def invoke(event, context):
        calls.append((event, time.time()))
        fired.set()

    firer = Firer(
        client=scheduler.client(), group=settings.SCHEDULE_GROUP, invoke=invoke, poll_interval=0.05
    )
    firer.calls, firer.fired_event = calls, fired
    yield firer
    firer.stop()


def soon(seconds: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


def test_it_fires_a_recurring_schedule_with_its_time_and_arms_it_again(firer):
    start = soon(2)
    scheduler.recurring_create(
        name="every-minute", expression="rate(1 minute)", timezone="UTC", start=start
    )
    firer.start()
    assert firer.fired_event.wait(5)
    event, fired_at = firer.calls[0]
    assert event == {
        "command": "tasks.executor.run_task",
        "schedule_id": "every-minute",
        "scheduled_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    lead = firer.lead_base + firer.lead_per_task + RECURRING_EXTRA_LEAD  # a lone schedule
    assert start.timestamp() - lead - 0.05 <= fired_at <= start.timestamp() + 0.5
    time.sleep(0.3)
    armed = firer.armed["every-minute"]
    assert armed.at == (start + timedelta(minutes=1)).timestamp()
    assert armed.event["scheduled_time"] == (start + timedelta(minutes=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    # Not deleted: a recurring schedule stays (no ActionAfterCompletion DELETE).
    assert scheduler.client().get_schedule(Name="every-minute", GroupName=firer.group)


def test_it_drops_a_paused_schedule_and_reads_a_changed_one_again(firer):
    scheduler.recurring_create(name="s", expression="cron(0 9 * * ? *)", timezone="Europe/Paris")
    firer.poll()
    first = firer.armed["s"]
    scheduler.recurring_update(
        name="s", expression="cron(0 10 * * ? *)", timezone="Europe/Paris", enabled=True
    )
    firer.poll()
    changed = firer.armed["s"]
    assert changed is not first and changed.at - first.at == 3600
    scheduler.recurring_update(
        name="s", expression="cron(0 10 * * ? *)", timezone="Europe/Paris", enabled=False
    )
    firer.poll()
    assert "s" not in firer.known and "s" not in firer.armed


def test_it_does_not_fire_a_paused_schedule(firer):
    scheduler.recurring_create(
        name="p", expression="rate(1 minute)", timezone="UTC", start=soon(1.5)
    )
    firer.poll()
    scheduler.recurring_update(name="p", expression="rate(1 minute)", timezone="UTC", enabled=False)
    firer.start()
    time.sleep(2.5)
    assert firer.calls == []


def schedule(
    expression: str, *, changed: datetime, created: datetime | None = None, **extra
) -> dict:
    return {
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": "UTC",
        "CreationDate": created or changed,
        "LastModificationDate": changed,
        "Target": {"Input": json.dumps({"scheduled_time": "<aws.scheduler.scheduled-time>"})},
        **extra,
    }


def test_it_fires_the_most_recent_missed_time_once_then_keeps_the_rhythm():
    now = datetime(2026, 12, 1, 12, 3, 30, tzinfo=UTC)
    created = datetime(2026, 12, 1, 11, 58, 10, tzinfo=UTC)
    every_minute = schedule("cron(* * * * ? *)", changed=created)
    missed = recurrence.first_fire(every_minute, now=now)
    assert missed == datetime(2026, 12, 1, 12, 3, tzinfo=UTC)  # not 11:59 ... 12:02 as well
    assert recurrence.next_fire(every_minute, after=missed) == datetime(
        2026, 12, 1, 12, 4, tzinfo=UTC
    )
    assert recurrence.event(every_minute, missed) == {"scheduled_time": "2026-12-01T12:03:00Z"}


def test_it_fires_nothing_missed_from_before_a_change_or_the_start():
    now = datetime(2026, 12, 1, 12, 3, 30, tzinfo=UTC)
    resumed = schedule("cron(* * * * ? *)", changed=datetime(2026, 12, 1, 12, 3, 10, tzinfo=UTC))
    assert recurrence.first_fire(resumed, now=now) == datetime(2026, 12, 1, 12, 4, tzinfo=UTC)
    later = schedule(
        "rate(5 minutes)",
        changed=datetime(2026, 12, 1, 11, 0, tzinfo=UTC),
        StartDate=datetime(2026, 12, 1, 13, 0, tzinfo=UTC),
    )
    assert recurrence.first_fire(later, now=now) == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)
    ended = schedule(
        "cron(* * * * ? *)",
        changed=datetime(2026, 12, 1, 11, 0, tzinfo=UTC),
        EndDate=datetime(2026, 12, 1, 11, 30, tzinfo=UTC),
    )
    assert recurrence.next_fire(ended, after=now) is None


def test_it_keeps_a_rates_rhythm_from_the_first_whole_minute_after_creation():
    created = datetime(2026, 12, 1, 12, 0, 20, tzinfo=UTC)
    rate = schedule("rate(5 minutes)", changed=created)
    assert recurrence.next_fire(rate, after=created) == datetime(2026, 12, 1, 12, 1, tzinfo=UTC)
    assert recurrence.next_fire(rate, after=datetime(2026, 12, 1, 12, 1, tzinfo=UTC)) == datetime(
        2026, 12, 1, 12, 6, tzinfo=UTC
    )
