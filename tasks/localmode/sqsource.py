"""A local stand-in for Lambda's SQS event source on the hop queue.

It polls the queue on the local endpoint (moto's SQS honours DelaySeconds),
and invokes the executor with the event Lambda's event source mapping
delivers, {"Records": [{"eventSource": "aws:sqs", "body": ..., ...}]},
routed as Zappa's handler routes it: by the queue's ARN to the function named
in the stage's `events` (tasks.executor.run_queued). A batch whose invocation
succeeds is deleted; one that fails becomes visible again after the queue's
visibility timeout and is retried, as on AWS.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tasks.aws import storage_refused, storage_unreachable
from tasks.localmode.deadletters import dead_letter
from tasks.localmode.invokers import LambdaContext, started_pool

logger = logging.getLogger("localmode.sqs")

FUNCTION = "tasks.executor.run_queued"
# zappa_settings.json's event source: one message per invocation, no batching
# window (a window would hold due messages back).
BATCH_SIZE = 1
# Lambda polls an SQS event source with five pollers at first (and more as
# the queue fills). One alone, against the local endpoint's one lock, fell
# behind a crowd of 100 messages due at the same second by over 2 s.
POLLERS = 5
# terraform/queue.tf's redrive policy: after this many receives a failing
# message goes to the dead-letter queue. Between tries the stand-in waits
# RETRY_SECONDS, not the queue's visibility timeout (12 minutes on AWS).
MAX_RECEIVE_COUNT = 3
RETRY_SECONDS = 1


def ensure_queue(client: Any, name: str, visibility_timeout: int) -> tuple[str, str]:
    """The queue's URL and ARN, creating it if needed."""
    try:
        # Restored from the state file (without its attributes), or made now.
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
    except client.exceptions.QueueDoesNotExist:
        url = client.create_queue(QueueName=name)["QueueUrl"]
    client.set_queue_attributes(
        QueueUrl=url, Attributes={"VisibilityTimeout": str(visibility_timeout)}
    )
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def sqs_record(message: dict, arn: str, region: str) -> dict:
    """One record of Lambda's SQS event, from a ReceiveMessage message."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", ""),
            "SenderId": attributes.get("SenderId", ""),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", ""
            ),
        },
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def invoke_mapped(event: dict, context: Any, mapping: dict[str, str]) -> Any:
    """Route an SQS event as Zappa's handler does: by the first record's ARN."""
    whole = mapping[event["Records"][0]["eventSourceARN"]]
    module_name, _, function_name = whole.rpartition(".")
    return getattr(importlib.import_module(module_name), function_name)(event, context)


class QueueSource:
    def __init__(
        self,
        *,
        client: Any,
        url: str,
        arn: str,
        region: str,
        invoke: Callable[[dict, Any], Any] | None = None,
        workers: int = 64,
        timeout: float = 120.0,
        poll_interval: float = 0.1,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.url, self.arn, self.region = url, arn, region
        mapping = {arn: FUNCTION}
        self.invoke = invoke or (lambda event, context: invoke_mapped(event, context, mapping))
        self.timeout = timeout
        # Short polls (each poller every poll_interval while the queue is
        # empty): the local endpoint serves one request at a time, so a long
        # poll would block it. On AWS the event source long-polls.
        self.poll_interval = poll_interval
        # Billed requests (a receive that got messages, a delete): for the
        # cost bench. Empty polls are left out: on AWS they are a fixed
        # monthly cost of the event source, not a cost per task.
        self.on_request = on_request or (lambda operation: None)
        self.pool = started_pool(workers)
        self.stop_event = threading.Event()
        self.threads = [
            threading.Thread(target=self._loop, name=f"sqs-poller-{i}", daemon=True)
            for i in range(POLLERS)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(timeout=5)
        self.pool.shutdown(wait=True)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                messages = self.client.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=10,
                    MessageSystemAttributeNames=["All"],
                    WaitTimeSeconds=0,
                ).get("Messages", [])
            except Exception as exc:
                if storage_unreachable(exc):  # restarting: the supervisor says so
                    logger.info("the hop queue is not answering; polling again")
                else:
                    logger.exception("could not receive from the hop queue")
                messages = []
            if not messages:
                self.stop_event.wait(self.poll_interval)
                continue
            self.on_request("ReceiveMessage")
            for start in range(0, len(messages), BATCH_SIZE):
                self.pool.submit(self._invoke, messages[start : start + BATCH_SIZE])

    def _invoke(self, messages: list[dict]) -> None:
        event = {"Records": [sqs_record(m, self.arn, self.region) for m in messages]}
        logger.debug("invoking %s with %s records at %.3f", FUNCTION, len(messages), time.time())
        while True:
            try:
                self.invoke(event, LambdaContext(f"local-executor:{self.arn}", self.timeout))
                break
            except Exception as exc:
                # A refused connection to the local endpoint (restarting) is
                # the stand-in's own failure, not the task's: tried again
                # until it answers, not counted as a receive (as the firer does).
                if storage_refused(exc) and not self.stop_event.wait(0.5):
                    continue
                if storage_unreachable(exc):
                    logger.warning(
                        "invocation for %s queue messages failed: %s", len(messages), exc
                    )
                else:
                    logger.exception("invocation for %s queue messages failed", len(messages))
                self._failed(messages, exc)
                return
        try:
            self.client.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            self.on_request("DeleteMessageBatch")
        except Exception:
            logger.exception("could not delete processed queue messages")

    def _failed(self, messages: list[dict], error: Exception) -> None:
        """Redrive: to the dead-letter queue after MAX_RECEIVE_COUNT receives;
        else visible again soon, for another try."""
        for message in messages:
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            try:
                if receives >= MAX_RECEIVE_COUNT:
                    dead_letter(f"hop:{message['MessageId']}", json.loads(message["Body"]), error)
                    self.client.delete_message(
                        QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"]
                    )
                else:
                    self.client.change_message_visibility(
                        QueueUrl=self.url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=RETRY_SECONDS,
                    )
            except Exception:
                logger.exception("could not redrive a failed queue message")
