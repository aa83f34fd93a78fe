"""The executor function's entry points: `tasks.executor.run_task`, and
`tasks.executor.reconcile` (a rate schedule's, every 5 minutes).

On AWS, EventBridge Scheduler invokes the executor Lambda with the schedule's
Input, {"command": "tasks.executor.run_task", "task_id": ...}; Zappa's handler
routes the command here. A recurring schedule's Input names the schedule and
the time it fired for instead ({"schedule_id": ..., "scheduled_time": ...}):
the occurrence's task is made first (once, however often it is delivered),
then run as any task. Delivery is at least once: the conditional claim in
services.running.task_claim makes a duplicate a no-op, or, while the task is running,
a failed invocation that Lambda retries (see _run).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from tasks.models import Task

logger = logging.getLogger(__name__)


class ExecutorError(Exception):
    """Raised instead of a TypeError (see run_task)."""


def run_task(event: Any, context: Any = None) -> dict:
    # Zappa calls a command as f(event, context) and, if that raises a
    # TypeError, again as f(event) and then f(): a TypeError escaping from
    # in here would run the task a second time. So none may escape.
    try:
        return _run(event)
    except TypeError as exc:
        logger.exception("executor failed")
        raise ExecutorError(f"executor failed: {exc}") from None


def run_queued(event: Any, context: Any = None) -> list[dict]:
    """The hop queue's event source (SQS) invokes the executor with a batch of
    records ({"Records": [{"eventSource": "aws:sqs", "body": ...}, ...]});
    Zappa's handler routes it here by the queue's ARN (the stage's `events`).
    Each body is {"task_id", "due_at"}. An ExecutorError fails the batch: SQS
    makes the messages visible again after the visibility timeout (Lambda's
    retry), and after maxReceiveCount moves them to the dead-letter queue."""
    try:
        records = event.get("Records") if isinstance(event, dict) else None
        results = []
        for record in records or []:
            try:
                body = json.loads(record.get("body") or "")
            except (AttributeError, ValueError):
                logger.error("executor: a queue message that is not JSON: ignored")
                continue
            results.append(_run(body, queued=True))
        return results
    except TypeError as exc:  # see run_task
        logger.exception("executor failed")
        raise ExecutorError(f"executor failed: {exc}") from None


# A delivery hops through the queue only when that saves at least this long
# in the function; nearer its due time it holds in place.
HOP_MIN_DELAY_SECONDS = 2


def _hop(task_id: str, due_at: Any, *, queued: bool = False) -> bool:
    """Hand an early delivery to the hop queue, delayed to arrive just before
    its due second. False when there is no queue or the task is nearly due."""
    from datetime import datetime

    from tasks import taskqueue
    from tasks.models import DEFAULT_CLAIM_EARLY_SECONDS

    if not taskqueue.enabled():
        return False
    try:
        due = datetime.fromisoformat(due_at)
    except (TypeError, ValueError):
        return False
    if due.tzinfo is None:
        return False
    # The local mode's hop queue shows its messages a lookahead early (the
    # claim window, wider there: tasks/localmode/crowd.py). A schedule's
    # delivery decides whether to hop with at most the default window of it,
    # so that widening the window does not hold in place, claimed early, a
    # lone task that would hop on AWS; a queue's delivery, which the local
    # stand-in may start a crowd's lead early, with all of it, so that it does
    # not hop again. On AWS there is no lookahead: both decide as AWS does.
    lookahead = taskqueue.lookahead()
    if not queued:
        lookahead = min(lookahead, DEFAULT_CLAIM_EARLY_SECONDS)
    if taskqueue.delay_for(due, lookahead=lookahead) < HOP_MIN_DELAY_SECONDS:
        return False
    delay = taskqueue.delay_for(due)
    try:
        taskqueue.task_enqueue(task_id=task_id, due=due, delay_seconds=delay)
    except taskqueue.QueueError as exc:
        # Lambda retries the invocation, then the dead-letter queue: the task
        # is still scheduled and unclaimed.
        raise ExecutorError(f"task {task_id}: could not queue it: {exc}") from exc
    return True


def reconcile(event: Any, context: Any = None) -> dict:
    """Repair what a fault left (services/reconcile.py). The rate schedule
    invokes it with {"command": "tasks.executor.reconcile"}."""
    try:
        from tasks.services.reconcile import tasks_reconcile

        result = tasks_reconcile(recent_only=True)
    except TypeError as exc:  # see run_task: Zappa would call it again
        logger.exception("reconcile failed")
        raise ExecutorError(f"reconcile failed: {exc}") from None
    logger.info("reconcile: %s", result.summary())
    return {
        "repaired": result.repaired,
        "overdue": result.overdue,
        "orphansDeleted": result.orphans_deleted,
        "stuck": [task.id for task in result.stuck],
        "errors": result.errors,
    }


def _run(event: Any, *, queued: bool = False) -> dict:
    from tasks import selectors
    from tasks.services import running

    if isinstance(event, dict) and "schedule_id" in event:
        event = _occurrence_event(event)
        if event is None:
            return {"taskId": None, "result": "ignored"}
    task_id = event.get("task_id") if isinstance(event, dict) else None
    if not isinstance(task_id, str) or not task_id:
        logger.error("executor event without a task_id: ignored")
        return {"taskId": None, "result": "ignored"}
    problem = _signing_secret_problem()
    if problem:
        # Fail the invocation (Lambda retries it, then the DLQ) rather than
        # claim the task and send it unsigned, or fail it for good over a
        # configuration mistake.
        raise ExecutorError(problem)
    if _hop(task_id, event.get("due_at"), queued=queued):
        # Unclaimed, and so still cancellable, until the queue delivers it.
        return {"taskId": task_id, "result": "queued"}
    _wait_until_nearly_due(event.get("due_at"))
    task = running.task_claim(task_id=task_id)
    if task is None:
        holder = selectors.task_get_if_running(task_id=task_id)
        if holder is not None:
            # Another invocation holds the task, or one died holding it. Fail
            # this one: Lambda retries it later, when the task has finished
            # (and it is a no-op), or, if it is still running after Lambda's
            # retries, sends it to the dead-letter queue, whose alarm fetches
            # an operator to cancel or retry the stuck task.
            raise ExecutorError(_running_message(holder))
        logger.info("task %s: not due or not scheduled; delivery ignored", task_id)
        return {"taskId": task_id, "result": "skipped"}
    task = running.task_execute(task)
    return {"taskId": task_id, "result": task.status}


def _occurrence_event(event: dict) -> dict | None:
    """A recurring schedule's delivery as a task's: its occurrence's task
    (made now, or found made by an earlier delivery), due at the time
    EventBridge scheduled it for. None when there is nothing to run."""
    from tasks.services import recurring

    schedule_id = event.get("schedule_id")
    if not isinstance(schedule_id, str) or not schedule_id:
        logger.error("executor event with an empty schedule_id: ignored")
        return None
    problem = _signing_secret_problem()
    if problem:
        raise ExecutorError(problem)  # before making the occurrence (see _run)
    task = recurring.occurrence_create(
        schedule_id=schedule_id, scheduled_time=event.get("scheduled_time")
    )
    if task is None:
        return None
    return {"task_id": task.id, "due_at": task.due_at.isoformat(timespec="milliseconds")}


def _running_message(task: Task) -> str:
    lease = task.lease_expires_at
    if task.is_stuck:
        return (
            f"task {task.id} is stuck running: its executor stopped before recording "
            f"the outcome (lease lapsed {lease.isoformat()}); {task.outcome_message}; "
            "cancel or retry it"
        )
    until = f" until {lease.isoformat()}" if lease else ""
    return f"task {task.id} is running under another invocation{until}; retry later"


def _wait_until_nearly_due(due_at: Any) -> None:
    """Sleep through an early delivery, leaving the task unclaimed (and so
    cancellable) until shortly before it is due; the claim window and the
    hold in task_execute take it from there."""
    from datetime import UTC, datetime

    from tasks.models import claim_early_seconds
    from tasks.services.running import MAX_EARLY_WAIT_SECONDS

    try:
        due = datetime.fromisoformat(due_at)
    except (TypeError, ValueError):
        return  # an old schedule's Input, or none: the claim window decides
    if due.tzinfo is None:
        return
    wait = (due - datetime.now(UTC)).total_seconds() - claim_early_seconds()
    if wait > 0:
        time.sleep(min(wait, MAX_EARLY_WAIT_SECONDS))


def _signing_secret_problem() -> str | None:
    from tasks.actions.webhook import signer

    if not settings.WEBHOOK_SIGNING_SECRET:
        return "WEBHOOK_SIGNING_SECRET is not set"
    try:
        signer(settings.WEBHOOK_SIGNING_SECRET)  # the one deliveries sign with
    except Exception:  # the library raises several types for a bad secret
        return "WEBHOOK_SIGNING_SECRET is not a valid secret (whsec_ and base64)"
    return None
