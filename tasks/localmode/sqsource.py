"""A local stand-in for Lambda's SQS event source on the hop queue.

It polls the queue on the local endpoint (moto's SQS honours DelaySeconds),
and invokes the executor with the event Lambda's event source mapping
delivers, {"Records": [{"eventSource": "aws:sqs", "body": ..., ...}]},
routed as Zappa's handler routes it: by the queue's ARN to the function named
in the stage's `events` (tasks.executor.run_queued). A batch whose invocation
succeeds is deleted; one that fails becomes visible again after the queue's
visibility timeout and is retried, as on AWS.

Crowds: the local mode's messages become visible crowd.hop_lookahead()
(the claim window, TASK_CLAIM_EARLY_SECONDS) earlier than on AWS
(tasks.taskqueue.set_lookahead). The stand-in holds
each one it receives until Lambda's event source would have seen it, less
the time the claims of the tasks due in the same second take here
(localmode/crowd.py, hop_start): a lone task is timed as on AWS, a crowd's
claims are made before its second, and only its requests go out at the
second. Deletes of processed messages wait a moment and go one at a time,
off the busy instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tasks.aws import storage_refused, storage_unreachable
from tasks.localmode import crowd
from tasks.localmode.deadletters import dead_letter
from tasks.localmode.invokers import LambdaContext, NoPacing, started_pool

logger = logging.getLogger("localmode.sqs")

FUNCTION = "tasks.executor.run_queued"
# zappa_settings.json's event source: one message per invocation, no batching
# window (a window would hold due messages back).
BATCH_SIZE = 1
# Lambda polls an SQS event source with five pollers at first (and more as
# the queue fills). One alone, against the local endpoint's one lock, fell
# behind a crowd of 100 messages due at the same second by over 2 s.
POLLERS = 5
# SQS's most per ReceiveMessage; while receives come back full, a poller
# receives again at once.
RECEIVE_MAX = 10
# terraform/queue.tf's redrive policy: after this many receives a failing
# message goes to the dead-letter queue. Between tries the stand-in waits
# RETRY_SECONDS, not the queue's visibility timeout (12 minutes on AWS).
MAX_RECEIVE_COUNT = 3
RETRY_SECONDS = 1
# At stop, a held message due within this long is started rather than
# released: on AWS a message is visible from TASK_HOP_LEAD_SECONDS before
# its due time (0.75 s by default), and the stand-in before the lookahead
# started it then.
STOP_HORIZON_SECONDS = 1.5
# A processed message is deleted this long after its invocation (as the
# firer deletes a fired schedule): off the instant its crowd is due.
DELETE_DELAY_SECONDS = 1.0


@dataclass
class Held:
    """A received message, held until its invocation starts."""

    message: dict
    due: float | None  # its task's due time (epoch seconds), if the body says
    visible: float  # when Lambda's event source would have received it on AWS

    def start(self, crowds: crowd.Crowds) -> float:
        if self.due is None:
            return self.visible
        return crowd.hop_start(self.due, self.visible, crowds[self.due])


def held(message: dict, now: float) -> Held:
    """When a message's invocation may start: its task's due time (from the
    body) and when it would have become visible on AWS (its SentTimestamp
    plus the DelaySeconds it would have been sent with there)."""
    from tasks import taskqueue

    try:
        due = datetime.fromisoformat(json.loads(message["Body"])["due_at"])
        sent = int(message.get("Attributes", {})["SentTimestamp"]) / 1000
    except (KeyError, TypeError, ValueError):
        return Held(message, None, now)  # not ours to time: at once
    if due.tzinfo is None:
        return Held(message, None, now)
    delay = taskqueue.delay_for(due, datetime.fromtimestamp(sent, UTC), lookahead=0.0)
    return Held(message, due.timestamp(), sent + delay)


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
        pacer: Any = None,
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
        # Within the process, deliveries due go out before outcomes are
        # recorded (localmode/sendfirst.py), as for the firer's invocations.
        self.pacer = pacer or NoPacing()
        self.pool = started_pool(workers)
        self.stop_event = threading.Event()
        self.changed = threading.Condition()
        self.held: list[Held] = []  # received, not yet started
        self.crowds = crowd.Crowds()
        self.deletions: queue.Queue = queue.Queue()
        self.threads = [
            threading.Thread(target=self._loop, name=f"sqs-poller-{i}", daemon=True)
            for i in range(POLLERS)
        ]
        self.starter = threading.Thread(target=self._start_loop, name="sqs-starter", daemon=True)
        self.deleter = threading.Thread(target=self._delete_loop, name="sqs-deleter", daemon=True)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        self.starter.start()
        self.deleter.start()

    def stop(self) -> None:
        self.stop_event.set()
        with self.changed:
            self.changed.notify_all()
        for thread in [*self.threads, self.starter]:
            if thread.is_alive():
                thread.join(timeout=5)
        self._release_held()
        self.pool.shutdown(wait=True)
        self.deletions.put(None)
        if self.deleter.is_alive():
            self.deleter.join(timeout=5)
        else:  # never started
            self._delete_rest([])

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                messages = self.client.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=RECEIVE_MAX,
                    MessageSystemAttributeNames=["All"],
                    WaitTimeSeconds=0,
                ).get("Messages", [])
            except Exception as exc:
                if storage_unreachable(exc):  # restarting: the supervisor says so
                    logger.info("the hop queue is not answering; polling again")
                else:
                    logger.exception("could not receive from the hop queue")
                messages = []
            if messages:
                self.on_request("ReceiveMessage")
                self._hold(messages)
            if len(messages) < RECEIVE_MAX:
                # Nothing more waiting: the pollers together poll every
                # poll_interval. Each receive costs the endpoint's one lock
                # time in proportion to the messages in flight (about 8 ms
                # with 1,000), so five pollers each polling that often took
                # 40 % of it while a crowd was being claimed.
                self.stop_event.wait(self.poll_interval * len(self.threads))

    # --- timing the invocations ---------------------------------------------

    def _hold(self, messages: list[dict]) -> None:
        now = time.time()
        with self.changed:
            for message in messages:
                entry = held(message, now)
                if entry.due is not None:
                    self.crowds.add(entry.due)
                self.held.append(entry)
            self.changed.notify_all()

    def _take_startable(self, now: float) -> tuple[list[Held], float]:
        """What may start now (the caller holds self.changed), and when to
        look again. A crowd's lead is counted as it is now: it grows as more
        of the crowd is received."""
        ready, waiting, wake = [], [], now + 1.0
        for entry in self.held:
            start = entry.start(self.crowds)
            if start <= now:
                ready.append(entry)
            else:
                waiting.append(entry)
                wake = min(wake, start)
        self.held = waiting
        if ready:
            self.crowds.trim(now)
        return ready, wake

    def _start_loop(self) -> None:
        while not self.stop_event.is_set():
            with self.changed:
                ready, wake = self._take_startable(time.time())
                if not ready:
                    self.changed.wait(max(0.0, wake - time.time()))
                    continue
            ready.sort(key=lambda entry: entry.due or 0.0)
            self.pacer.expect([entry.due for entry in ready if entry.due is not None])
            for start in range(0, len(ready), BATCH_SIZE):
                self.pool.submit(self._invoke_held, ready[start : start + BATCH_SIZE])

    def _invoke_held(self, entries: list[Held]) -> None:
        due = entries[0].due
        paced = self.pacer.invocation(due) if due is not None else contextlib.nullcontext()
        with paced:
            self._invoke([entry.message for entry in entries])

    def _release_held(self) -> None:
        """At stop: what was received but not started becomes visible again
        at once, for the next start (not after the visibility timeout),
        except what is due within STOP_HORIZON_SECONDS: Lambda's event
        source could have received that already, and it is delivered and
        recorded within the stop's budget, rather than late at the next start."""
        soon = time.time() + STOP_HORIZON_SECONDS
        with self.changed:
            entries = [e for e in self.held if e.due is None or e.due > soon]
            starting = [e for e in self.held if e.due is not None and e.due <= soon]
            self.held = []
        if starting:
            self.pacer.expect([entry.due for entry in starting])
            for entry in starting:
                self.pool.submit(self._invoke_held, [entry])
        for entry in entries:
            try:
                self.client.change_message_visibility(
                    QueueUrl=self.url,
                    ReceiptHandle=entry.message["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
            except Exception as exc:  # it comes back after the visibility timeout
                logger.warning("could not release a held queue message: %s", exc)

    # --- invoking -------------------------------------------------------------

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
        self.deletions.put((time.time() + DELETE_DELAY_SECONDS, messages))

    def _delete_loop(self) -> None:
        """One delete at a time (one DeleteMessageBatch per invocation, as
        Lambda's event source makes), each a moment after its invocation; at
        stop, what is left is deleted at once."""
        while True:
            item = self.deletions.get()
            if item is None:
                return
            when, messages = item
            if self.stop_event.wait(max(0.0, when - time.time())):
                self._delete_rest(messages)
                return
            self._delete(messages)

    def _delete_rest(self, first: list[dict]) -> None:
        """At stop, before the endpoint stops: the rest, ten per request."""
        messages = list(first)
        while (item := self.deletions.get()) is not None:
            messages += item[1]
        for start in range(0, len(messages), RECEIVE_MAX):
            self._delete(messages[start : start + RECEIVE_MAX])

    def _delete(self, messages: list[dict]) -> None:
        try:
            self.client.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            self.on_request("DeleteMessageBatch")
        except Exception as exc:
            # Left in the queue: visible again after the visibility timeout,
            # its invocation then finds the task no longer scheduled.
            if storage_unreachable(exc):
                logger.warning("could not delete processed queue messages: %s", exc)
            else:
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
