"""The local dead-letter queue: a queue on the local endpoint (moto's SQS)
where the stand-in puts an invocation it gave up on, shaped as Lambda's
dead letters are (the event as the body; ErrorCode and ErrorMessage), so
the dashboard's Dead letters page reads and replays it as on AWS."""

from __future__ import annotations

import json
import logging

from django.conf import settings

from tasks import queues

logger = logging.getLogger("localmode.deadletters")


def ensure_queue() -> None:
    name = settings.SCHEDULER_DLQ_ARN.rsplit(":", 1)[1]
    queues.client().create_queue(QueueName=name)  # returns the queue as it is if it exists


def dead_letter(name: str, event: dict, error: Exception | None) -> None:
    """Send a given-up invocation to the dead-letter queue; never raises."""
    if not settings.SCHEDULER_DLQ_ARN:
        return
    try:
        url = queues.queue_url(settings.SCHEDULER_DLQ_ARN)
        queues.send(
            url,
            body=json.dumps(event),
            attributes={
                "ErrorCode": type(error).__name__ if error else "Error",
                "ErrorMessage": str(error) if error else "retries exhausted",
                "Source": "local",
                "ScheduleName": name,
            },
        )
    except Exception:
        logger.exception("schedule %s: could not send it to the dead-letter queue", name)
