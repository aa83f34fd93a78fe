"""The EventBridge Scheduler adapter, read back from moto with get_schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError

from tasks import scheduler
from tasks.models import Task
from tests.factories import future, task_body


def get_schedule(settings, name: str) -> dict:
    return scheduler.client().get_schedule(Name=name, GroupName=settings.SCHEDULE_GROUP)


@pytest.fixture
def sent_params():
    """The parameters of every CreateSchedule call, as sent to the service."""
    calls: list[dict] = []

    def record(params, **kwargs):
        calls.append(dict(params))

    events = scheduler.client().meta.events
    events.register("provide-client-params.scheduler.CreateSchedule", record)
    yield calls
    events.unregister("provide-client-params.scheduler.CreateSchedule", record)


def test_it_creates_a_one_time_schedule_that_invokes_the_executor(aws, settings):
    when = datetime(2027, 5, 1, 12, 30, 0, tzinfo=UTC)
    scheduler.schedule_create(name="t1-1", task_id="t1", when=when)

    schedule = get_schedule(settings, "t1-1")
    assert schedule["GroupName"] == settings.SCHEDULE_GROUP == "test-group"
    assert schedule["ScheduleExpression"] == "at(2027-05-01T12:30:00)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["State"] == "ENABLED"
    target = schedule["Target"]
    assert target["Arn"] == settings.EXECUTOR_FUNCTION_ARN
    assert target["RoleArn"] == settings.SCHEDULER_ROLE_ARN
    assert json.loads(target["Input"]) == {
        "command": "tasks.executor.run_task",
        "task_id": "t1",
        "due_at": "2027-05-01T12:30:00.000+00:00",
    }
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    assert "DeadLetterConfig" not in target


def test_it_uses_the_configured_function_role_retries_and_dead_letter_queue(aws, settings):
    settings.EXECUTOR_FUNCTION_ARN = "arn:aws:lambda:eu-west-1:111122223333:function:prod-exec"
    settings.SCHEDULER_ROLE_ARN = "arn:aws:iam::111122223333:role/prod-scheduler"
    settings.SCHEDULER_DLQ_ARN = "arn:aws:sqs:eu-west-1:111122223333:prod-dlq"
    settings.SCHEDULER_MAX_RETRY_ATTEMPTS = 5
    settings.SCHEDULER_MAX_EVENT_AGE_SECONDS = 600
    scheduler.schedule_create(name="t2-1", task_id="t2", when=datetime.now(UTC))

    target = get_schedule(settings, "t2-1")["Target"]
    assert target["Arn"] == "arn:aws:lambda:eu-west-1:111122223333:function:prod-exec"
    assert target["RoleArn"] == "arn:aws:iam::111122223333:role/prod-scheduler"
    assert target["DeadLetterConfig"] == {"Arn": "arn:aws:sqs:eu-west-1:111122223333:prod-dlq"}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 600}


def test_it_schedules_a_created_task_at_its_runat(api, settings):
    run_at = future(7200)
    response = api.post("/api/tasks", task_body(runAt=run_at))
    task_id = response.json()["id"]
    stored = Task.get(task_id)
    assert stored.schedule_name == f"{task_id}-1"
    schedule = get_schedule(settings, stored.schedule_name)
    expected = datetime.fromisoformat(run_at).strftime("at(%Y-%m-%dT%H:%M:%S)")
    assert schedule["ScheduleExpression"] == expected
    assert json.loads(schedule["Target"]["Input"])["task_id"] == task_id


def test_it_sends_a_client_token_so_a_retried_create_is_idempotent(aws, settings, sent_params):
    when = datetime.now(UTC) + timedelta(hours=1)
    scheduler.schedule_create(name="t3-1", task_id="t3", when=when)
    # The same create again (a retry after a lost answer) is no error, and
    # leaves one schedule.
    scheduler.schedule_create(name="t3-1", task_id="t3", when=when)
    assert [call["ClientToken"] for call in sent_params] == ["t3-1", "t3-1"]
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)["Schedules"]
    assert [s["Name"] for s in schedules] == ["t3-1"]


@pytest.mark.parametrize(
    ("when", "expression"),
    [
        (datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC), "at(2027-01-01T00:00:00)"),
        # Rounded up, never down: a schedule must not fire before the task is due.
        (datetime(2027, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "at(2027-01-01T00:00:01)"),
        (datetime(2027, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), "at(2028-01-01T00:00:00)"),
        # Written in UTC whatever the offset it was given with.
        (
            datetime(2027, 6, 1, 9, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            "at(2027-06-01T07:00:00)",
        ),
    ],
)
def test_it_writes_at_expressions_in_utc_rounded_up(when, expression):
    assert scheduler.at_expression(when) == expression


def test_it_deletes_a_schedule_and_accepts_one_already_gone(aws, settings):
    scheduler.schedule_create(name="t4-1", task_id="t4", when=datetime.now(UTC))
    scheduler.schedule_delete(name="t4-1")
    with pytest.raises(ClientError) as raised:
        get_schedule(settings, "t4-1")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    scheduler.schedule_delete(name="t4-1")
    scheduler.schedule_delete(name="never-made")


def test_it_reports_other_failures_as_scheduler_errors(aws, monkeypatch):
    def denied(**kwargs):
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "Op"
        )

    monkeypatch.setattr(scheduler.client(), "create_schedule", denied)
    monkeypatch.setattr(scheduler.client(), "delete_schedule", denied)
    with pytest.raises(scheduler.SchedulerError, match="AccessDeniedException: not allowed"):
        scheduler.schedule_create(name="t5-1", task_id="t5", when=datetime.now(UTC))
    with pytest.raises(scheduler.SchedulerError, match="AccessDeniedException"):
        scheduler.schedule_delete(name="t5-1")
