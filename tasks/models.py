"""PynamoDB models: tasks, API keys and dashboard operators.

Table names come from settings so that each stage has its own tables. No
endpoint is set here: botocore reads AWS_ENDPOINT_URL, so the same models talk
to DynamoDB on AWS and to a local server in tests and the local mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from django.conf import settings
from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from tasks import aws

aws.share_with_pynamodb()


class Status(StrEnum):
    """A task's status. Only the transitions below move a task between them."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """How one attempt ended (AttemptRecord.outcome)."""

    SUCCESS = "success"
    RETRY = "retry"  # failed, another attempt is scheduled
    FAILURE = "failure"  # failed for good
    # The executor died after the claim: recorded when an operator retries or
    # cancels the stuck task. The request may or may not have gone out.
    UNKNOWN = "unknown"


STATUSES = tuple(Status)
# A task's outcome when its executor died after claiming it (Task.outcome).
OUTCOME_UNKNOWN = Outcome.UNKNOWN
# The constant partition of the all-tasks index (see CreatedAtIndex).
LISTING_ALL = "task"
# The constant partition of the due index (see StatusRunAtIndex).
DUE_LISTING = "due"


class _Meta:
    region = settings.AWS_REGION
    billing_mode = "PAY_PER_REQUEST"
    # Fail fast instead of holding a Lambda for PynamoDB's default 60 s.
    connect_timeout_seconds = 5
    read_timeout_seconds = 10
    max_pool_connections = settings.AWS_MAX_POOL_CONNECTIONS


# The indexes carry keys only (KEYS_ONLY): a listing reads its page's items
# with one BatchGetItem. Reads cost a fifth of writes. Both task indexes are
# written once, when the task is stored: their keys (created_at, due_at) do
# not change as a task runs, and an index carries no attribute a status
# change or an attempt rewrites, so claiming and recording an attempt cost
# one write unit each and touch no index. (A status index cost a task five
# more: its entry was moved at the claim and again at the record. Listing by
# status reads the items instead; see selectors.task_list.)


class StatusRunAtIndex(GlobalSecondaryIndex):
    """Every task in the order of its next attempt: "what is due next", and
    what reconcile checks (services/reconcile.py).

    Not sparse: a task keeps its entry for life, so it is written once, at
    create (and moved only when a retry or a reschedule changes due_at).
    A task stored before this carried the key only while scheduled."""

    class Meta:
        index_name = "due-due_at-index"
        projection = KeysOnlyProjection()

    due_listing = UnicodeAttribute(hash_key=True)
    due_at = UTCDateTimeAttribute(range_key=True)


class CreatedAtIndex(GlobalSecondaryIndex):
    """All tasks, newest first.

    One constant partition: DynamoDB allows ~1,000 writes/s per partition,
    far above what one scheduler deployment creates.
    """

    class Meta:
        index_name = "listing-created_at-index"
        projection = KeysOnlyProjection()

    listing = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class ScheduleOccurrenceIndex(GlobalSecondaryIndex):
    """A recurring schedule's occurrences, newest first. Sparse: only
    occurrence tasks have a schedule_id. Keys only, like the others: an
    occurrence's status changes then touch it not at all."""

    class Meta:
        index_name = "schedule_id-occurrence_at-index"
        projection = KeysOnlyProjection()

    schedule_id = UnicodeAttribute(hash_key=True)
    occurrence_at = UTCDateTimeAttribute(range_key=True)


class AttemptRecord(MapAttribute):
    """One attempt of a task, as recorded in its history."""

    number = NumberAttribute()
    started_at = UTCDateTimeAttribute()
    finished_at = UTCDateTimeAttribute()
    outcome = UnicodeAttribute()  # an Outcome
    http_status = NumberAttribute(null=True)
    duration_ms = NumberAttribute()
    error = UnicodeAttribute(null=True)
    response_excerpt = UnicodeAttribute(null=True)


class Task(Model):
    class Meta(_Meta):
        table_name = settings.TASKS_TABLE

    id = UnicodeAttribute(hash_key=True)
    action = UnicodeAttribute()
    payload = JSONAttribute()
    run_at = UTCDateTimeAttribute()
    # When the next attempt is due: runAt at first, later the retry time. The
    # executor only claims a task whose attempt is due, so a late duplicate
    # delivery of an earlier schedule cannot run a retry early.
    due_at = UTCDateTimeAttribute()
    status = UnicodeAttribute()
    attempts = NumberAttribute(default=0)
    max_attempts = NumberAttribute()
    error = UnicodeAttribute(null=True)
    # Each schedule made for the task gets a new name (task id + sequence).
    schedule_name = UnicodeAttribute(null=True)
    schedule_seq = NumberAttribute(default=0)
    attempt_history = ListAttribute(of=AttemptRecord, default=list)
    listing = UnicodeAttribute(default=LISTING_ALL)
    # DUE_LISTING: the due index's partition key (absent on a finished task
    # stored before that index was kept for life).
    due_listing = UnicodeAttribute(null=True)
    # While running: when the claim lapses. The executor's Lambda has timed out
    # by then, so a task still running is stuck (its executor died) and an
    # operator may cancel or retry it.
    lease_expires_at = UTCDateTimeAttribute(null=True)
    # sha256 of the create request when it carried an Idempotency-Key.
    request_fingerprint = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute(null=True)
    # On an occurrence of a recurring schedule: the schedule, and the time
    # EventBridge scheduled it for (the task's id derives from both).
    schedule_id = UnicodeAttribute(null=True)
    occurrence_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    @property
    def is_stuck(self) -> bool:
        """Running, but its executor's claim has lapsed: the executor died."""
        return (
            self.status == Status.RUNNING
            and self.lease_expires_at is not None
            and self.lease_expires_at < datetime.now(UTC)
        )

    @property
    def outcome(self) -> str | None:
        """ "unknown" for a stuck task: its executor died after the claim, so
        the request may or may not have gone out. None otherwise."""
        return OUTCOME_UNKNOWN if self.is_stuck else None

    @property
    def outcome_message(self) -> str | None:
        if not self.is_stuck:
            return None
        # The webhook-id header is the task id on every attempt
        # (tasks/actions/webhook.py).
        return (
            "outcome unknown: the request may have gone out; "
            f"webhook-id {self.id} lets the receiver deduplicate"
        )

    @property
    def commands(self) -> set[str]:
        """The operator commands its state allows now (the dashboard's buttons)."""
        return {t.name for t in OPERATOR_COMMANDS if t.allows(self)}

    status_run_at_index = StatusRunAtIndex()
    created_at_index = CreatedAtIndex()
    schedule_occurrence_index = ScheduleOccurrenceIndex()


class ApiKey(Model):
    """An API key, stored by the sha256 of the key: the key itself is never kept."""

    class Meta(_Meta):
        table_name = settings.API_KEYS_TABLE

    key_hash = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute()
    name = UnicodeAttribute()
    prefix = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    revoked_at = UTCDateTimeAttribute(null=True)


class Operator(Model):
    """A dashboard login; the password is hashed with Django's hashers."""

    class Meta(_Meta):
        table_name = settings.OPERATORS_TABLE

    username = UnicodeAttribute(hash_key=True)
    password_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    failed_logins = NumberAttribute(default=0)
    locked_until = UTCDateTimeAttribute(null=True)


class ScheduleState(StrEnum):
    """A recurring schedule's state (EventBridge's ENABLED / DISABLED)."""

    ENABLED = "enabled"
    PAUSED = "paused"


# The constant partition of the all-schedules index.
LISTING_SCHEDULES = "schedule"


class ScheduleListingIndex(GlobalSecondaryIndex):
    """All recurring schedules, newest first (one constant partition)."""

    class Meta:
        index_name = "listing-created_at-index"
        projection = AllProjection()

    listing = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class Schedule(Model):
    """A recurring schedule: one EventBridge recurring schedule (named by the
    id) makes an occurrence task at each time it fires."""

    class Meta(_Meta):
        table_name = settings.SCHEDULES_TABLE

    id = UnicodeAttribute(hash_key=True)
    action = UnicodeAttribute()
    payload = JSONAttribute()
    cron = UnicodeAttribute(null=True)  # the user's 5-field form, or
    rate = UnicodeAttribute(null=True)  # "5 minutes"
    expression = UnicodeAttribute()  # the EventBridge form: cron(...) or rate(...)
    timezone = UnicodeAttribute()
    state = UnicodeAttribute()  # a ScheduleState
    max_attempts = NumberAttribute()
    start_at = UTCDateTimeAttribute(null=True)
    end_at = UTCDateTimeAttribute(null=True)
    description = UnicodeAttribute(null=True)
    # Bumped by every change: a change applies only to the version it read.
    version = NumberAttribute(default=1)
    listing = UnicodeAttribute(default=LISTING_SCHEDULES)
    created_by = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    listing_index = ScheduleListingIndex()


MODELS = (Task, ApiKey, Operator, Schedule)


def status_set(status: Status) -> list:
    """The updates that give a task a status. A scheduled task also gets the
    due index's key (a no-op for the index when it has it already: only a
    task stored before that index was kept for life lacks it)."""
    if status == Status.SCHEDULED:
        return [Task.status.set(status), Task.due_listing.set(DUE_LISTING)]
    return [Task.status.set(status)]


# --- Transitions: each rule stated once -----------------------------------------
# The services apply a transition as a conditional write (its `condition`), so
# a concurrent change makes it fail instead of overwriting; the dashboard asks
# the same rule (`allows`) which buttons to show.


# The claim window on AWS, TASK_CLAIM_EARLY_SECONDS' default there; what a
# wider window (the local mode's) leaves as it is on AWS is measured by it:
# how early a claimed delivery connects (services/running.py), how far ahead a
# schedule's delivery looks when it decides to hop (executor.py).
DEFAULT_CLAIM_EARLY_SECONDS = 5.0


def claim_early_seconds() -> float:
    """How early before its due time a delivery may claim a task (it then
    holds the delivery until due; see services/running.py): the setting
    TASK_CLAIM_EARLY_SECONDS, 5 s by default, wider in the local mode."""
    return settings.TASK_CLAIM_EARLY_SECONDS


@dataclass(frozen=True)
class Transition:
    name: str
    sources: tuple[Status, ...]
    target: Status | None  # None: the status stays (the task is rescheduled)
    or_stuck: bool = False  # also from a running task whose claim has lapsed
    must_be_due: bool = False  # only once the task's next attempt is (nearly) due

    def allows(self, task: Task) -> bool:
        if self.must_be_due and task.due_at > _claim_horizon():
            return False
        return task.status in self.sources or (self.or_stuck and task.is_stuck)

    def condition(self):
        """The PynamoDB condition under which the stored task may take it."""
        first, *others = self.sources
        condition = Task.status.is_in(*self.sources) if others else Task.status == first
        if self.or_stuck:
            stuck = (Task.status == Status.RUNNING) & (Task.lease_expires_at < datetime.now(UTC))
            condition = condition | stuck
        if self.must_be_due:
            condition = condition & (Task.due_at <= _claim_horizon())
        return condition


def _claim_horizon() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=claim_early_seconds())


CLAIM = Transition("claim", (Status.SCHEDULED,), Status.RUNNING, must_be_due=True)
RECORD = Transition("record", (Status.RUNNING,), None)  # to completed, failed or scheduled
CANCEL = Transition("cancel", (Status.SCHEDULED,), Status.CANCELLED, or_stuck=True)
RUN_NOW = Transition("run_now", (Status.SCHEDULED,), Status.SCHEDULED)
RETRY = Transition("retry", (Status.FAILED,), Status.SCHEDULED, or_stuck=True)
# A new runAt for a task that has not run yet (or waits for a retry).
RESCHEDULE = Transition("reschedule", (Status.SCHEDULED,), Status.SCHEDULED)
OPERATOR_COMMANDS = (CANCEL, RUN_NOW, RETRY, RESCHEDULE)
# A create retried after a 503: the stored task never ran (attempts == 0).
RESUBMIT = Transition("resubmit", (Status.FAILED,), Status.SCHEDULED)


@dataclass(frozen=True)
class ScheduleTransition:
    name: str
    source: ScheduleState
    target: ScheduleState

    def allows(self, schedule: Schedule) -> bool:
        return schedule.state == self.source

    def condition(self):
        return Schedule.state == self.source


PAUSE = ScheduleTransition("pause", ScheduleState.ENABLED, ScheduleState.PAUSED)
RESUME = ScheduleTransition("resume", ScheduleState.PAUSED, ScheduleState.ENABLED)
