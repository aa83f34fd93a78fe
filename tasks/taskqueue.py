"""The hop queue adapter: the only user of boto3's 'sqs' client for the hop.

EventBridge Scheduler fires one-time schedules within a minute of their time.
So a task's schedule fires a minute early (tasks/scheduler.py), and the
executor hands the task to this SQS queue with DelaySeconds, so that the
message becomes visible a moment before the task's second; the queue's Lambda
event source then invokes the executor, which holds for at most about a
second and sends. A task due sooner than its schedule could fire goes to the
queue straight from the create path.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import cache

from django.conf import settings

# SQS's limit on DelaySeconds.
MAX_DELAY_SECONDS = 900
# DelaySeconds is whole seconds, so a message sent now becomes visible at
# some instant within one second: the executor aims that second to start
# settings.TASK_HOP_LEAD_SECONDS before the due time (see delay_for). What
# arrives early holds until due, billed; what arrives after is late. The
# default, 0.75 s, makes the message visible between 0.75 s before and
# 0.25 s after due: the hold averages about a quarter of a second, and a
# task is at most about 0.25 s plus the event source's latency late (tens
# of ms on AWS; up to the local stand-in's 100 ms poll). 1.5 s makes it
# never late (p99 ~20 ms locally) for ~0.75 s more of the executor per task
# (about $1.60 per million tasks at 128 MB; docs/benchmarks.md).

# Only the local mode sets it (set_lookahead): its stand-in for the event
# source takes each message this much earlier than DelaySeconds would on
# AWS, and holds it until Lambda's event source would have seen it, unless a
# crowd due at the same second needs to start earlier (localmode/sqsource.py).
_lookahead = 0.0


def set_lookahead(seconds: float) -> None:
    global _lookahead
    _lookahead = seconds


def lookahead() -> float:
    return _lookahead


class QueueError(Exception):
    """The message could not be sent."""


def enabled() -> bool:
    return bool(settings.TASK_QUEUE_URL)


@cache
def client():
    """The boto3 client, made on first use (see tasks.aws.make_client)."""
    from tasks.aws import make_client

    return make_client("sqs")


def delay_for(due: datetime, now: datetime | None = None, lookahead: float | None = None) -> int:
    """Whole seconds of DelaySeconds that make a message sent now visible
    within the second that starts TASK_HOP_LEAD_SECONDS before `due` (0 when
    it is that close already; at most SQS's 900); in the local mode, its
    lookahead earlier still (`lookahead=0.0`: as on AWS)."""
    now = now or datetime.now(UTC)
    early = settings.TASK_HOP_LEAD_SECONDS - 1 + (_lookahead if lookahead is None else lookahead)
    ahead = (due - now).total_seconds() - early
    return max(0, min(MAX_DELAY_SECONDS, math.floor(ahead)))


def message_body(task_id: str, due: datetime) -> str:
    return json.dumps(
        {"task_id": task_id, "due_at": due.astimezone(UTC).isoformat(timespec="milliseconds")}
    )


def task_enqueue(*, task_id: str, due: datetime, delay_seconds: int) -> None:
    """Send the task's hop message; raise QueueError when SQS refuses it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client().send_message(
            QueueUrl=settings.TASK_QUEUE_URL,
            MessageBody=message_body(task_id, due),
            DelaySeconds=delay_seconds,
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise QueueError(f"{error.get('Code', 'Error')}: {error.get('Message', '')}") from exc
    except BotoCoreError as exc:
        raise QueueError(str(exc)) from exc
