"""Running a task: the executor's domain operations (claim, perform, record)."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from tasks import models
from tasks.actions import Delivery, DeliveryResult, TransportError, get_action
from tasks.errors import SchedulingFailed
from tasks.models import CLAIM, RECORD, AttemptRecord, Outcome, Status, Task, status_set
from tasks.services.schedules import next_schedule, schedule_or_fail
from tasks.services.store import conditional_update, now

logger = logging.getLogger(__name__)

# A delivery earlier than the claim window (tasks.models.claim_early_seconds,
# TASK_CLAIM_EARLY_SECONDS) before its due time first waits, unclaimed, up to
# MAX_EARLY_WAIT_SECONDS: EventBridge fires one-time schedules with 60-second
# precision, so the wait is at most 60 s less the window, whatever its width.
# The executor's Lambda timeout must exceed the wait.
MAX_EARLY_WAIT_SECONDS = 65
# A claimed delivery opens its connection (and writes its request into it) at
# most this long before its due time: the default claim window.
CONNECT_AHEAD_SECONDS = models.DEFAULT_CLAIM_EARLY_SECONDS
RETRY_AFTER_LIMIT_SECONDS = 86400


class Pacer:
    """Orders deliveries against the recording of outcomes within a process.
    On Lambda a process runs one invocation at a time: nothing to order, so
    this default does nothing. The local mode installs its own (set_pacer)."""

    @contextlib.contextmanager
    def delivering(self, due: float) -> Iterator[None]:
        yield

    def wait_for_due_deliveries(self, limit: float = 1.0) -> None:
        return None


pacer: Pacer = Pacer()


def set_pacer(new: Pacer) -> None:
    global pacer
    pacer = new


def task_claim(*, task_id: str) -> Task | None:
    """Mark a due, scheduled task as running and count the attempt, in one
    conditional write. None when it is not ours to run: unknown, cancelled,
    already running or finished, or a retry not yet due (a late duplicate)."""
    lease = now() + timedelta(seconds=settings.EXECUTOR_LEASE_SECONDS)
    return conditional_update(
        task_id,
        [
            *status_set(Status.RUNNING),
            Task.attempts.add(1),
            Task.lease_expires_at.set(lease),
        ],
        CLAIM.condition(),
    )


@dataclass
class Performed:
    """What one attempt of a task's action came to."""

    started: datetime
    duration_ms: int
    result: DeliveryResult | None = None
    failure: TransportError | None = None


def _perform(task: Task) -> Performed:
    """One attempt of the task's action. Never early: a delivery claimed
    before the task is due (the local stand-in's lead; EventBridge's minute
    precision) connects first, then waits for the due time to send."""
    started, clock = now(), time.monotonic()
    delivery = None
    result = failure = None
    try:
        delivery = get_action(task.action).prepare(
            task_id=task.id, payload=task.payload, attempt=task.attempts, due_at=task.due_at
        )
        with pacer.delivering(task.due_at.timestamp()):
            _hold_until_due(task, delivery)
            started, clock = now(), time.monotonic()
            delivery.send()
        pacer.wait_for_due_deliveries()
        result = delivery.receive()
    except TransportError as exc:
        failure = exc
    except Exception as exc:  # a bug must not leave the task running forever
        logger.exception("task %s: action raised", task.id)
        failure = TransportError(f"internal error: {type(exc).__name__}", permanent=True)
    finally:
        if delivery is not None:
            delivery.close()
    duration_ms = round((time.monotonic() - clock) * 1000)
    return Performed(started, duration_ms, result, failure)


def _hold_until_due(task: Task, delivery: Delivery) -> None:
    if task.due_at <= now():
        return
    window = models.claim_early_seconds()
    # A wider claim window (the local mode's) does not keep the receiver's
    # connection idle longer than the default one would: it is opened at most
    # CONNECT_AHEAD_SECONDS before the due time.
    early = (task.due_at - now()).total_seconds() - CONNECT_AHEAD_SECONDS
    if early > 0:
        time.sleep(min(early, window))
    with contextlib.suppress(TransportError):
        delivery.connect()  # send() connects (and reports) if this failed
    wait = (task.due_at - now()).total_seconds()
    time.sleep(max(0.0, min(wait, window)))


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter; a server's Retry-After wins if longer."""
    base = min(
        settings.TASK_RETRY_MAX_SECONDS, settings.TASK_RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    )
    delay = random.uniform(base / 2, base)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_LIMIT_SECONDS))
    return delay


def task_execute(task: Task) -> Task:
    """Run a claimed task's action once and record the attempt: completed,
    failed, or scheduled again with a new schedule for a retryable failure."""
    performed = _perform(task)
    failure = performed.failure
    error = failure.message if failure else None
    permanent = bool(failure and failure.permanent)
    retry_after = failure.retry_after if failure else None
    source = failure or performed.result
    http_status, excerpt = source.http_status, source.response_excerpt
    started, duration_ms = performed.started, performed.duration_ms

    if error is None:
        status, outcome = Status.COMPLETED, Outcome.SUCCESS
    elif not permanent and task.attempts < task.max_attempts:
        status, outcome = Status.SCHEDULED, Outcome.RETRY
    else:
        status, outcome = Status.FAILED, Outcome.FAILURE
    finished = now()
    attempt = AttemptRecord(
        number=task.attempts,
        started_at=started,
        finished_at=finished,
        outcome=outcome,
        http_status=http_status,
        duration_ms=duration_ms,
        error=error,
        response_excerpt=excerpt,
    )
    updates = [
        *status_set(status),
        Task.attempt_history.set((Task.attempt_history | []).append([attempt])),
        Task.error.set(error) if error else Task.error.remove(),
    ]
    if status == Status.SCHEDULED:
        retry_at = finished + timedelta(seconds=retry_delay(task.attempts, retry_after))
        schedule_updates, schedule_name, seq = next_schedule(task, retry_at)
        updates += schedule_updates
    # Only the executor moves a task out of running, or an operator once its
    # lease has lapsed (long after its Lambda timed out): so this succeeds.
    recorded = conditional_update(task.id, updates, RECORD.condition(), read_back=False)
    if recorded is None:
        logger.error("task %s: no longer running when its attempt finished", task.id)
        return task
    task.status, task.error = status, error
    task.attempt_history = [*(task.attempt_history or []), attempt]
    if status == Status.SCHEDULED:
        task.due_at, task.schedule_name, task.schedule_seq = retry_at, schedule_name, seq
        # A failure to schedule the retry is recorded on the task as failed.
        with contextlib.suppress(SchedulingFailed):
            schedule_or_fail(task)
    logger.info("task %s attempt %s: %s %s", task.id, task.attempts, outcome, error or "")
    return task
