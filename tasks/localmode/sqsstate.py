"""The local endpoint's SQS queues (the local dead-letter queue) in its
state file. moto's queues hold a threading.Condition and cannot be pickled
as they are: their messages are kept as plain data (body, attributes, sent
time). No Django here: the endpoint runs without it."""

from __future__ import annotations


def sqs_state() -> dict:
    from moto.sqs.models import sqs_backends

    state: dict = {}
    for account, regions in sqs_backends.items():
        for region, backend in regions.items():
            state[(account, region)] = {
                # delayed_until: a hop message keeps its DelaySeconds.
                name: [
                    (m.body, m.message_attributes, m.sent_timestamp, m.delayed_until)
                    for m in queue._messages
                ]
                for name, queue in backend.queues.items()
            }
    return state


def restore_sqs(state: dict) -> None:
    from moto.sqs.models import sqs_backends

    for (account, region), queues in state.items():
        backend = sqs_backends[account][region]
        for name, messages in queues.items():
            backend.create_queue(name)
            for body, attributes, sent, *delayed in messages:
                message = backend.send_message(name, body, message_attributes=attributes)
                message.sent_timestamp = sent
                if delayed:
                    message.delayed_until = delayed[0]
