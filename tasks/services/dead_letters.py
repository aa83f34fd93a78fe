"""Dead letters: executor invocations that were given up on, read from the
dead-letter queue (SCHEDULER_DLQ_ARN; on AWS both EventBridge Scheduler and
the executor's Lambda send there, in the local mode the stand-in does),
replayed or discarded by an operator. A message that names no task is only
ever discarded.

A replay runs the task again under the usual claim: a `scheduled` task is
moved to now (as Run now does) and fires again; a finished or unknown one
has nothing to run, so its message is just removed; a `running` one is
refused (409, the message kept): while its executor lives it will record
the outcome, and once it is stuck only an operator can tell whether the
request went out (retry or cancel the task itself).

SQS has no random access: listing receives the messages (hidden for a
moment) and releases them again; acting on one receives until it is found.
Both stop after MAX_MESSAGES.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from tasks import queues
from tasks.errors import Conflict, NotFound, Unavailable
from tasks.models import Status, Task
from tasks.services import commands
from tasks.services.store import now

logger = logging.getLogger(__name__)

MAX_MESSAGES = 100
TASK_ID_IN_TEXT = re.compile(r'task_id\\?"\s*:\s*\\?"([0-9a-f]{32})')
# Received messages stay hidden this long unless released (a crash between
# receiving and releasing hides them no longer than this).
HIDE_SECONDS = 30


@dataclass(frozen=True)
class DeadLetter:
    id: str
    task_id: str | None
    reason: str
    source: str  # "scheduler", "executor" or "local"
    sent_at: datetime | None
    receive_count: int

    @property
    def age_seconds(self) -> int | None:
        return int((now() - self.sent_at).total_seconds()) if self.sent_at else None


@dataclass(frozen=True)
class DeadLetterPage:
    items: list[DeadLetter]
    queue: str | None  # the queue's name; None when none is configured
    approximate_total: int


@dataclass(frozen=True)
class Replayed:
    id: str
    task_id: str | None
    result: str  # "run_now", "removed" or "kept"
    detail: str


def _url() -> str | None:
    arn = settings.SCHEDULER_DLQ_ARN
    return _call(queues.queue_url, arn) if arn else None


def _call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except queues.QueueError as exc:
        raise Unavailable(f"the dead-letter queue cannot be read: {exc}") from exc


def dead_letter_of(message: queues.Message) -> DeadLetter:
    """What a message says, whoever sent it: EventBridge Scheduler (its
    dead-letter event: ERROR_CODE, ERROR_MESSAGE), Lambda (ErrorCode,
    ErrorMessage; the body is the event) or the local stand-in (the same as
    Lambda, and Source local)."""
    attrs = message.message_attributes
    task_id = message.json_body().get("task_id")
    if not isinstance(task_id, str):
        # The event wrapped in another document, or JSON in a string.
        found = TASK_ID_IN_TEXT.search(message.body)
        task_id = found.group(1) if found else None
    code = attrs.get("ERROR_CODE") or attrs.get("ErrorCode") or ""
    text = attrs.get("ERROR_MESSAGE") or attrs.get("ErrorMessage") or ""
    reason = ": ".join(part for part in (code, text) if part) or "no reason given"
    if attrs.get("Source") == "local":
        source = "local"
    elif "ERROR_CODE" in attrs or "ERROR_MESSAGE" in attrs:
        source = "scheduler"
    else:
        source = "executor"
    return DeadLetter(
        id=message.id,
        task_id=task_id if isinstance(task_id, str) else None,
        reason=reason,
        source=source,
        sent_at=message.sent_at,
        receive_count=message.receive_count,
    )


def _receive_all(url: str) -> list[queues.Message]:
    """Every message up to MAX_MESSAGES, each once, all hidden meanwhile."""
    found: dict[str, queues.Message] = {}
    while len(found) < MAX_MESSAGES:
        batch = _call(queues.receive, url, hide_seconds=HIDE_SECONDS)
        new = [m for m in batch if m.id not in found]
        if not new:
            break
        found.update((m.id, m) for m in new)
    return list(found.values())


def deadletter_list() -> DeadLetterPage:
    """The messages in the dead-letter queue, oldest first."""
    url = _url()
    if url is None:
        return DeadLetterPage(items=[], queue=None, approximate_total=0)
    messages = _receive_all(url)
    _call(queues.release, url, messages)
    total = _call(queues.approximate_count, url)
    items = sorted((dead_letter_of(m) for m in messages), key=lambda d: d.sent_at or now())
    return DeadLetterPage(
        items=items,
        queue=settings.SCHEDULER_DLQ_ARN.rsplit(":", 1)[1],
        approximate_total=max(total, len(items)),
    )


def _take(message_id: str) -> tuple[str, queues.Message]:
    """The message, received (hidden from others); the rest released."""
    url = _url()
    if url is None:
        raise NotFound(f"dead letter {message_id} not found: no dead-letter queue is configured")
    messages = _receive_all(url)
    wanted = [m for m in messages if m.id == message_id]
    _call(queues.release, url, [m for m in messages if m.id != message_id])
    if not wanted:
        raise NotFound(f"dead letter {message_id} not found")
    return url, wanted[0]


def deadletter_discard(*, message_id: str) -> None:
    url, message = _take(message_id)
    _call(queues.delete, url, message)


def deadletter_replay(*, message_id: str) -> Replayed:
    url, message = _take(message_id)
    try:
        replayed = _replay(message)
    except Exception:
        _call(queues.release, url, [message])
        raise
    _call(queues.delete, url, message)
    return replayed


def deadletter_replay_all() -> list[Replayed]:
    """Replay every message; the refused ones (running tasks) stay."""
    url = _url()
    if url is None:
        return []
    results = []
    for message in _receive_all(url):
        try:
            results.append(_replay(message))
        except (Conflict, Unavailable) as exc:
            _call(queues.release, url, [message])
            letter = dead_letter_of(message)
            results.append(Replayed(message.id, letter.task_id, "kept", exc.message))
            continue
        _call(queues.delete, url, message)
    return results


def _replay(message: queues.Message) -> Replayed:
    """Conflict when the task is running; otherwise what was done."""
    letter = dead_letter_of(message)
    task_id = letter.task_id
    if task_id is None:
        raise Conflict("no task id in this message: nothing to replay; discard it once read")
    try:
        task = Task.get(task_id, consistent_read=True)
    except (Task.DoesNotExist, ValueError):
        return Replayed(message.id, task_id, "removed", f"task {task_id} does not exist")
    if task.status == Status.SCHEDULED:
        commands.task_run_now(task_id=task_id)
        logger.info("dead letter %s: task %s runs now", message.id, task_id)
        return Replayed(message.id, task_id, "run_now", f"task {task_id} runs now")
    if task.status == Status.RUNNING:
        if task.is_stuck:
            raise Conflict(f"task {task_id}: {task.outcome_message}; retry or cancel the task")
        raise Conflict(f"task {task_id} is running; replay this once it has finished")
    return Replayed(
        message.id, task_id, "removed", f"task {task_id} is {task.status}: nothing to run"
    )
