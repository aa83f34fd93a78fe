"""SQS adapter: the only user of boto3's 'sqs' client. The dead-letter
queue(s) are read (receive, hide, release), emptied (delete) and, by the
local stand-in only, written (send)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache


class QueueError(Exception):
    """The queue could not be reached or refused the call."""


@dataclass(frozen=True)
class Message:
    id: str
    receipt: str  # valid until the message is received again
    body: str
    attributes: dict[str, str]  # SQS's own (SentTimestamp, ApproximateReceiveCount)
    message_attributes: dict[str, str]  # the sender's (the reason it was sent)

    @property
    def sent_at(self) -> datetime | None:
        stamp = self.attributes.get("SentTimestamp")
        return datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp else None

    @property
    def receive_count(self) -> int:
        return int(self.attributes.get("ApproximateReceiveCount", "0"))

    def json_body(self) -> dict:
        try:
            body = json.loads(self.body)
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}


@cache
def client():
    """The boto3 client, made on first use (see tasks.aws.make_client)."""
    from tasks.aws import make_client

    return make_client("sqs")


def _calling():
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _describe(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    if error:
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return str(exc)


@cache
def queue_url(arn: str) -> str:
    """The URL of the queue with this ARN (one GetQueueUrl per process)."""
    _arn, _partition, _sqs, _region, account, name = arn.split(":", 5)
    try:
        return client().get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    except _calling() as exc:
        raise QueueError(f"queue {name}: {_describe(exc)}") from exc


def receive(url: str, *, hide_seconds: int, max_messages: int = 10) -> list[Message]:
    """Up to 10 messages, each hidden from other receivers for hide_seconds."""
    try:
        page = client().receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max_messages,
            VisibilityTimeout=hide_seconds,
            WaitTimeSeconds=0,
            AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            MessageAttributeNames=["All"],
        )
    except _calling() as exc:
        raise QueueError(_describe(exc)) from exc
    return [
        Message(
            id=m["MessageId"],
            receipt=m["ReceiptHandle"],
            body=m.get("Body", ""),
            attributes=m.get("Attributes", {}),
            message_attributes={
                k: v.get("StringValue", "") for k, v in m.get("MessageAttributes", {}).items()
            },
        )
        for m in page.get("Messages", [])
    ]


def release(url: str, messages: list[Message]) -> None:
    """Make received messages visible again at once (10 per call)."""
    for start in range(0, len(messages), 10):
        batch = messages[start : start + 10]
        entries = [
            {"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": 0}
            for i, m in enumerate(batch)
        ]
        try:
            client().change_message_visibility_batch(QueueUrl=url, Entries=entries)
        except _calling() as exc:
            raise QueueError(_describe(exc)) from exc


def delete(url: str, message: Message) -> None:
    try:
        client().delete_message(QueueUrl=url, ReceiptHandle=message.receipt)
    except _calling() as exc:
        raise QueueError(_describe(exc)) from exc


def approximate_count(url: str) -> int:
    try:
        attributes = client().get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    except _calling() as exc:
        raise QueueError(_describe(exc)) from exc
    return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
        attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
    )


def send(url: str, *, body: str, attributes: dict[str, str]) -> None:
    """Put a message on a queue (the local stand-in's dead letters)."""
    try:
        client().send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={
                k: {"DataType": "String", "StringValue": v[:1000] or "-"}
                for k, v in attributes.items()
            },
        )
    except _calling() as exc:
        raise QueueError(_describe(exc)) from exc
