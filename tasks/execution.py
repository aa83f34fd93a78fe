"""Running a task: the executor's domain operations (claim, deliver, record)."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from tasks.actions import Delivery, Outcome, TransportError, get_action
from tasks.errors import SchedulingFailed
from tasks.models import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_RUNNING,
    STATUS_SCHEDULED,
    Attempt,
    Task,
)
from tasks.services import conditional_update, next_schedule, now, schedule_or_fail

logger = logging.getLogger(__name__)

# How early before its due time a delivery may claim a task (it then holds the
# delivery until due). A delivery earlier than this first waits, unclaimed,
# up to MAX_EARLY_WAIT_SECONDS: EventBridge fires one-time schedules with
# 60-second precision. The executor's Lambda timeout must exceed the wait.
CLAIM_EARLY_SECONDS = 5
MAX_EARLY_WAIT_SECONDS = 65
RETRY_AFTER_LIMIT_SECONDS = 86400


class SendFirst:
    """Within one process, deliveries that are due go out before outcomes
    are recorded.

    On Lambda a process runs one invocation at a time, so this never waits.
    The local mode runs a crowd of invocations in each process; recording an
    outcome (CPU, and a write the local endpoint must serve) would otherwise
    compete with the next delivery that is due at the same second."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: list[float] = []

    @contextlib.contextmanager
    def delivering(self, due: float) -> Iterator[None]:
        with self._changed:
            self._due.append(due)
        try:
            yield
        finally:
            with self._changed:
                self._due.remove(due)
                # Wake the waiters once, when the last due delivery is out
                # (waking them at every one would cost more than it saves).
                if not self._some_due():
                    self._changed.notify_all()

    def wait_for_due_deliveries(self, limit: float = 1.0) -> None:
        deadline = time.monotonic() + limit
        with self._changed:
            while self._some_due():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    def _some_due(self) -> bool:
        soon = time.time() + 0.01
        return any(due <= soon for due in self._due)


SEND_FIRST = SendFirst()


def task_claim(*, task_id: str) -> Task | None:
    """Mark a due, scheduled task as running and count the attempt, in one
    conditional write. None when it is not ours to run: unknown, cancelled,
    already running or finished, or a retry not yet due (a late duplicate)."""
    current = now()
    return conditional_update(
        task_id,
        [
            Task.status.set(STATUS_RUNNING),
            Task.attempts.add(1),
            Task.lease_expires_at.set(current + timedelta(seconds=settings.EXECUTOR_LEASE_SECONDS)),
        ],
        (Task.status == STATUS_SCHEDULED)
        & (Task.due_at <= current + timedelta(seconds=CLAIM_EARLY_SECONDS)),
    )


def task_running(*, task_id: str) -> Task | None:
    """The task if it is running (its status and lease only); else None.
    Read only when a claim failed, to tell a task being (or stuck) running
    from one that is finished, cancelled or not yet due."""
    try:
        task = Task.get(
            task_id, consistent_read=True, attributes_to_get=["id", "status", "lease_expires_at"]
        )
    except Task.DoesNotExist:
        return None
    return task if task.status == STATUS_RUNNING else None


@dataclass
class _Attempted:
    started: datetime
    duration_ms: int
    outcome: Outcome | None = None
    failure: TransportError | None = None


def _attempt(task: Task) -> _Attempted:
    """One attempt of the task's action. Never early: a delivery claimed
    before the task is due (the local stand-in's lead; EventBridge's minute
    precision) connects first, then waits for the due time to send."""
    started, clock = now(), time.monotonic()
    delivery = None
    outcome = failure = None
    try:
        delivery = get_action(task.action).prepare(
            task_id=task.id, payload=task.payload, attempt=task.attempts, due_at=task.due_at
        )
        with SEND_FIRST.delivering(task.due_at.timestamp()):
            _hold_until_due(task, delivery)
            started, clock = now(), time.monotonic()
            delivery.send()
        SEND_FIRST.wait_for_due_deliveries()
        outcome = delivery.receive()
    except TransportError as exc:
        failure = exc
    except Exception as exc:  # a bug must not leave the task running forever
        logger.exception("task %s: action raised", task.id)
        failure = TransportError(f"internal error: {type(exc).__name__}", permanent=True)
    finally:
        if delivery is not None:
            delivery.close()
    duration_ms = round((time.monotonic() - clock) * 1000)
    return _Attempted(started, duration_ms, outcome, failure)


def _hold_until_due(task: Task, delivery: Delivery) -> None:
    if task.due_at <= now():
        return
    with contextlib.suppress(TransportError):
        delivery.connect()  # send() connects (and reports) if this failed
    wait = (task.due_at - now()).total_seconds()
    time.sleep(max(0.0, min(wait, CLAIM_EARLY_SECONDS)))


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
    result = _attempt(task)
    failure = result.failure
    error = failure.message if failure else None
    permanent = bool(failure and failure.permanent)
    retry_after = failure.retry_after if failure else None
    source = failure or result.outcome
    http_status, excerpt = source.http_status, source.response_excerpt
    started, duration_ms = result.started, result.duration_ms

    if error is None:
        status, outcome_name = STATUS_COMPLETED, "success"
    elif not permanent and task.attempts < task.max_attempts:
        status, outcome_name = STATUS_SCHEDULED, "retry"
    else:
        status, outcome_name = STATUS_FAILED, "failure"
    finished = now()
    attempt = Attempt(
        number=task.attempts,
        started_at=started,
        finished_at=finished,
        outcome=outcome_name,
        http_status=http_status,
        duration_ms=duration_ms,
        error=error,
        response_excerpt=excerpt,
    )
    actions = [
        Task.status.set(status),
        Task.attempt_history.set((Task.attempt_history | []).append([attempt])),
        Task.error.set(error) if error else Task.error.remove(),
    ]
    if status == STATUS_SCHEDULED:
        retry_at = finished + timedelta(seconds=retry_delay(task.attempts, retry_after))
        schedule_actions, schedule_name, seq = next_schedule(task, retry_at)
        actions += schedule_actions
    # Only the executor moves a task out of running, or an operator once its
    # lease has lapsed (long after its Lambda timed out): so this succeeds.
    recorded = conditional_update(task.id, actions, Task.status == STATUS_RUNNING, read_back=False)
    if recorded is None:
        logger.error("task %s: no longer running when its attempt finished", task.id)
        return task
    task.status, task.error = status, error
    task.attempt_history = [*(task.attempt_history or []), attempt]
    if status == STATUS_SCHEDULED:
        task.due_at, task.schedule_name, task.schedule_seq = retry_at, schedule_name, seq
        # A failure to schedule the retry is recorded on the task as failed.
        with contextlib.suppress(SchedulingFailed):
            schedule_or_fail(task)
    logger.info("task %s attempt %s: %s %s", task.id, task.attempts, outcome_name, error or "")
    return task
