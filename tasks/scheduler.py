"""EventBridge Scheduler adapter: the only user of boto3's 'scheduler' client.

One one-time schedule per task attempt, in the configured group. The schedule
invokes the executor function with the task id; after it fires, EventBridge
deletes it (ActionAfterCompletion DELETE). One recurring schedule per
recurring schedule (see recurring_create); schedule_delete deletes either.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from django.conf import settings

logger = logging.getLogger(__name__)

EXECUTOR_COMMAND = "tasks.executor.run_task"


class SchedulerError(Exception):
    """The schedule could not be created or deleted."""


@cache
def client():
    """The boto3 client, made on first use (see tasks.aws.make_client)."""
    from tasks.aws import make_client

    return make_client("scheduler")


def at_expression(when: datetime) -> str:
    """`at(...)` in UTC, rounded up to the next whole second so a schedule
    never fires before the task is due."""
    when = when.astimezone(UTC)
    seconds = math.ceil(when.timestamp())
    return f"at({datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S})"


def fire_time(due: datetime) -> datetime:
    """When the schedule of an attempt due at `due` is set to fire.

    With the hop queue: the minute before the due minute, so that EventBridge,
    which fires within the minute of the schedule's time, always fires
    before the task is due; the executor then hops through SQS to the second
    (tasks/taskqueue.py). Without it: the due time itself."""
    if not settings.TASK_QUEUE_URL:
        return due
    return due.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


def executor_input(task_id: str, due: datetime) -> str:
    """The schedule's Input. `due_at` lets the executor wait, unclaimed, for
    a task that EventBridge delivers early: it fires one-time schedules with
    60-second precision, so a task due at 12:00:30 may arrive at 12:00:00."""
    return json.dumps(
        {
            "command": EXECUTOR_COMMAND,
            "task_id": task_id,
            "due_at": due.astimezone(UTC).isoformat(timespec="milliseconds"),
        }
    )


def schedule_create(*, name: str, task_id: str, when: datetime) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    target: dict = {
        "Arn": settings.EXECUTOR_FUNCTION_ARN,
        "RoleArn": settings.SCHEDULER_ROLE_ARN,
        "Input": executor_input(task_id, when),
        "RetryPolicy": {
            "MaximumRetryAttempts": settings.SCHEDULER_MAX_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": settings.SCHEDULER_MAX_EVENT_AGE_SECONDS,
        },
    }
    if settings.SCHEDULER_DLQ_ARN:
        target["DeadLetterConfig"] = {"Arn": settings.SCHEDULER_DLQ_ARN}
    try:
        client().create_schedule(
            Name=name,
            GroupName=settings.SCHEDULE_GROUP,
            ScheduleExpression=at_expression(fire_time(when)),
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            State="ENABLED",
            Target=target,
            # The schedule name is unique per task attempt, so a retried create
            # of the same schedule is idempotent.
            ClientToken=name,
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConflictException":
            return  # already created by an earlier try of this same request
        raise SchedulerError(_describe(exc)) from exc
    except BotoCoreError as exc:
        raise SchedulerError(str(exc)) from exc


def schedule_delete(*, name: str) -> None:
    """Delete a schedule; one that is already gone (fired, or never made) is fine."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client().delete_schedule(Name=name, GroupName=settings.SCHEDULE_GROUP)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return
        raise SchedulerError(_describe(exc)) from exc
    except BotoCoreError as exc:
        raise SchedulerError(str(exc)) from exc


@dataclass(frozen=True)
class ScheduleSummary:
    name: str
    created_at: datetime | None


def schedule_list() -> list[ScheduleSummary]:
    """Every schedule in the group: one ListSchedules call per 100."""
    from botocore.exceptions import BotoCoreError, ClientError

    found: list[ScheduleSummary] = []
    kwargs: dict = {"GroupName": settings.SCHEDULE_GROUP, "MaxResults": 100}
    try:
        while True:
            page = client().list_schedules(**kwargs)
            found += [ScheduleSummary(s["Name"], s.get("CreationDate")) for s in page["Schedules"]]
            if not page.get("NextToken"):
                return found
            kwargs["NextToken"] = page["NextToken"]
    except ClientError as exc:
        raise SchedulerError(_describe(exc)) from exc
    except BotoCoreError as exc:
        raise SchedulerError(str(exc)) from exc


def _describe(exc) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()


# --- recurring schedules ---------------------------------------------------------------
# One EventBridge recurring schedule per recurring schedule, named by its id.
# It invokes the same executor entry point; the Input names the schedule and
# carries EventBridge's <aws.scheduler.scheduled-time>, from which the
# executor makes the occurrence's task.


def recurring_input(schedule_id: str) -> str:
    from tasks.recurrence import SCHEDULED_TIME

    return json.dumps(
        {
            "command": EXECUTOR_COMMAND,
            "schedule_id": schedule_id,
            "scheduled_time": SCHEDULED_TIME,
        }
    )


def _recurring_definition(
    *,
    name: str,
    expression: str,
    timezone: str,
    enabled: bool,
    start: datetime | None,
    end: datetime | None,
) -> dict:
    """The whole definition: UpdateSchedule replaces every field, so create
    and update send the same."""
    target: dict = {
        "Arn": settings.EXECUTOR_FUNCTION_ARN,
        "RoleArn": settings.SCHEDULER_ROLE_ARN,
        "Input": recurring_input(name),
        "RetryPolicy": {
            "MaximumRetryAttempts": settings.SCHEDULER_MAX_RETRY_ATTEMPTS,
            "MaximumEventAgeInSeconds": settings.SCHEDULER_MAX_EVENT_AGE_SECONDS,
        },
    }
    if settings.SCHEDULER_DLQ_ARN:
        target["DeadLetterConfig"] = {"Arn": settings.SCHEDULER_DLQ_ARN}
    definition: dict = {
        "Name": name,
        "GroupName": settings.SCHEDULE_GROUP,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED" if enabled else "DISABLED",
        "Target": target,
    }
    # EventBridge refuses a StartDate more than 5 minutes ago: one that has
    # passed changes nothing, so an update leaves it out.
    if start is not None and start > datetime.now(UTC):
        definition["StartDate"] = start
    if end is not None:
        definition["EndDate"] = end
    return definition


def recurring_create(
    *,
    name: str,
    expression: str,
    timezone: str,
    enabled: bool = True,
    start: datetime | None = None,
    end: datetime | None = None,
) -> None:
    """Create the recurring schedule; one that exists already (a retried
    request) is given this definition instead."""
    definition = _recurring_definition(
        name=name, expression=expression, timezone=timezone, enabled=enabled, start=start, end=end
    )
    if _call("create_schedule", definition, ClientToken=name) == "ConflictException":
        _call("update_schedule", definition)


def recurring_update(
    *,
    name: str,
    expression: str,
    timezone: str,
    enabled: bool,
    start: datetime | None = None,
    end: datetime | None = None,
) -> None:
    """Replace the recurring schedule's whole definition (pause and resume
    are its State); one that is missing is created again."""
    definition = _recurring_definition(
        name=name, expression=expression, timezone=timezone, enabled=enabled, start=start, end=end
    )
    if _call("update_schedule", definition) == "ResourceNotFoundException":
        _call("create_schedule", definition, ClientToken=name)


def _call(operation: str, definition: dict, **extra) -> str | None:
    """Call the operation; None when done, the error code for the one
    expected error (a create that conflicts, an update of a missing
    schedule), SchedulerError for any other."""
    from botocore.exceptions import BotoCoreError, ClientError

    expected = {
        "create_schedule": "ConflictException",
        "update_schedule": "ResourceNotFoundException",
    }
    try:
        getattr(client(), operation)(**definition, **extra)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == expected[operation]:
            return code
        raise SchedulerError(_describe(exc)) from exc
    except BotoCoreError as exc:
        raise SchedulerError(str(exc)) from exc
    return None
