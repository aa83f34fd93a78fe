"""The hop: schedules fire the minute before the due minute, the executor
hands an early delivery to the SQS queue with DelaySeconds, the queue's
event source invokes run_queued, and a task due soon goes to the queue from
the create path. Under moto (in-process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tasks import scheduler, taskqueue
from tasks.executor import ExecutorError, run_queued, run_task
from tasks.localmode.sqsource import sqs_record
from tasks.models import Status, Task
from tasks.selectors import task_get
from tasks.services import commands, creation


@pytest.fixture
def queue(aws, settings) -> str:
    taskqueue.client.cache_clear()
    url = taskqueue.client().create_queue(QueueName="hop")["QueueUrl"]
    settings.TASK_QUEUE_URL = url
    return url


def messages(url: str) -> list[dict]:
    """Every message, delayed ones included (moto honours DelaySeconds: look
    at its backend rather than wait)."""
    from moto.sqs.models import sqs_backends

    backend = sqs_backends["123456789012"]["us-east-1"]
    queue = backend.queues[url.rsplit("/", 1)[-1]]
    return [
        {"body": json.loads(m.body), "delay": (m.delayed_until - m.sent_timestamp) / 1000}
        for m in queue._messages
    ]


def sqs_event(url: str, *bodies: dict) -> dict:
    arn = "arn:aws:sqs:us-east-1:123456789012:hop"
    records = [
        sqs_record(
            {"MessageId": str(i), "ReceiptHandle": f"r{i}", "Body": json.dumps(body)},
            arn,
            "us-east-1",
        )
        for i, body in enumerate(bodies)
    ]
    return {"Records": records}


def test_it_fires_the_schedule_in_the_minute_before_the_due_minute(settings, queue):
    due = datetime(2027, 5, 1, 12, 30, 41, 500000, tzinfo=UTC)
    assert scheduler.fire_time(due) == datetime(2027, 5, 1, 12, 29, tzinfo=UTC)
    settings.TASK_QUEUE_URL = ""  # no queue: the schedule fires at its second
    assert scheduler.fire_time(due) == due


@pytest.mark.parametrize("lead", [0.75, 1.5, 0.5])
@pytest.mark.parametrize("sent_at_ms", [0, 250, 499, 500, 501, 999])
def test_it_delays_a_message_to_become_visible_in_the_second_before_its_lead(
    settings, lead, sent_at_ms
):
    settings.TASK_HOP_LEAD_SECONDS = lead
    now = datetime(2027, 5, 1, 12, 29, 17, sent_at_ms * 1000, tzinfo=UTC)
    due = datetime(2027, 5, 1, 12, 30, 41, 500000, tzinfo=UTC)
    delay = taskqueue.delay_for(due, now)
    visible = now + timedelta(seconds=delay)
    early = (due - visible).total_seconds()  # negative: late
    assert lead - 1 <= early < lead
    assert taskqueue.delay_for(now, now) == 0
    assert taskqueue.delay_for(now + timedelta(hours=1), now) == 900  # SQS's limit


def test_it_schedules_a_task_due_later_and_queues_one_due_soon(settings, queue):
    later, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook", "data": {}},
        run_at=datetime.now(UTC) + timedelta(minutes=10),
    )
    soon, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook", "data": {}},
        run_at=datetime.now(UTC) + timedelta(seconds=30),
    )
    schedules = scheduler.client().list_schedules(GroupName=settings.SCHEDULE_GROUP)["Schedules"]
    assert [s["Name"] for s in schedules] == [later.schedule_name]
    [message] = messages(queue)
    assert message["body"]["task_id"] == soon.id
    assert 28 <= message["delay"] <= 30.25  # visible at most 1 - TASK_HOP_LEAD_SECONDS after due
    assert task_get(task_id=soon.id).status == Status.SCHEDULED


def test_it_hops_an_early_delivery_and_leaves_the_task_cancellable(settings, queue):
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook", "data": {}},
        run_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    event = json.loads(scheduler.executor_input(task.id, task.due_at))
    assert run_task(event) == {"taskId": task.id, "result": "queued"}
    [message] = messages(queue)
    assert message["body"] == {
        "task_id": task.id,
        "due_at": task.due_at.isoformat(timespec="milliseconds"),
    }
    assert 250 <= message["delay"] <= 300.25  # see TASK_HOP_LEAD_SECONDS
    stored = task_get(task_id=task.id)
    assert (stored.status, stored.attempts) == (Status.SCHEDULED, 0)
    assert commands.task_cancel(task_id=task.id).status == Status.CANCELLED
    # When the message arrives, the task can no longer be claimed.
    arrived = {**message["body"], "due_at": datetime.now(UTC).isoformat()}
    assert run_queued(sqs_event(queue, arrived)) == [{"taskId": task.id, "result": "skipped"}]


def test_it_runs_a_due_task_from_the_queue_once(settings, queue, receiver):
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": receiver.url_for("/hook"), "data": {}},
        run_at=datetime.now(UTC),
    )
    body = {"task_id": task.id, "due_at": task.due_at.isoformat()}
    assert run_queued(sqs_event(queue, body, body)) == [
        {"taskId": task.id, "result": "completed"},
        {"taskId": task.id, "result": "skipped"},  # a duplicate in the same batch
    ]
    assert len(receiver.log) == 1
    assert task_get(task_id=task.id).status == Status.COMPLETED


def test_it_fails_the_batch_when_the_task_is_running_elsewhere(settings, queue):
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook", "data": {}},
        run_at=datetime.now(UTC),
    )
    Task(id=task.id).update(actions=[Task.status.set(Status.RUNNING)])
    # Failing the invocation makes SQS deliver it again later (then the DLQ).
    with pytest.raises(ExecutorError):
        run_queued(sqs_event(queue, {"task_id": task.id, "due_at": task.due_at.isoformat()}))


def test_it_ignores_a_queue_message_that_is_not_json(queue):
    event = sqs_event(queue, {})
    event["Records"][0]["body"] = "not json"
    assert run_queued(event) == []


def test_it_fails_the_invocation_when_the_hop_cannot_be_sent(settings, queue, monkeypatch):
    def refused(**kwargs):
        raise taskqueue.QueueError("AccessDenied: no")

    monkeypatch.setattr(taskqueue, "task_enqueue", refused)
    due = datetime.now(UTC) + timedelta(seconds=90)
    with pytest.raises(ExecutorError, match="could not queue it"):
        run_task({"task_id": "a" * 32, "due_at": due.isoformat()})


def test_it_stores_the_task_failed_when_neither_queue_nor_schedule_takes_it(
    settings, queue, monkeypatch
):
    def refused(**kwargs):
        raise taskqueue.QueueError("AccessDenied: no")

    monkeypatch.setattr(taskqueue, "task_enqueue", refused)
    from tasks.errors import SchedulingFailed

    with pytest.raises(SchedulingFailed):
        creation.task_create(
            action="webhook",
            payload={"url": "https://example.com/hook", "data": {}},
            run_at=datetime.now(UTC) + timedelta(seconds=20),
        )
    [task] = list(Task.scan())
    assert task.status == Status.FAILED
    assert "AccessDenied" in task.error


def test_it_hops_an_early_delivery_in_the_local_mode_as_it_would_on_aws(settings, queue):
    """The local lookahead (the claim window, 15 s) makes the message visible
    earlier, but whether a delivery hops is decided as on AWS: one due in
    10 s hops (and its stand-in times it as on AWS) rather than being held,
    and claimed, in place."""
    settings.TASK_CLAIM_EARLY_SECONDS = 15.0
    taskqueue.set_lookahead(15.0)
    try:
        task, _ = creation.task_create(
            action="webhook",
            payload={"url": "https://example.com/hook", "data": {}},
            run_at=datetime.now(UTC) + timedelta(minutes=5),
        )
        due = datetime.now(UTC) + timedelta(seconds=10)
        event = json.loads(scheduler.executor_input(task.id, due))
        assert run_task(event) == {"taskId": task.id, "result": "queued"}
    finally:
        taskqueue.set_lookahead(0.0)
    [message] = messages(queue)
    assert message["delay"] <= 0  # no DelaySeconds locally (moto: none set); on AWS about 9 s
    stored = task_get(task_id=task.id)
    assert (stored.status, stored.attempts) == (Status.SCHEDULED, 0)


def test_it_does_not_hop_again_a_crowd_member_the_local_stand_in_started_early(settings, queue):
    """The local stand-in starts a crowd's queue deliveries up to the claim
    window (less half a second) before their second: they claim and hold in
    place. A schedule's delivery as early hops, as it would on AWS."""
    from tasks.executor import _hop

    settings.TASK_CLAIM_EARLY_SECONDS = 15.0
    taskqueue.set_lookahead(15.0)
    try:
        due = (datetime.now(UTC) + timedelta(seconds=14)).isoformat()
        assert _hop("t1", due, queued=True) is False
        assert messages(queue) == []
        assert _hop("t2", due) is True
        assert [m["body"]["task_id"] for m in messages(queue)] == ["t2"]
    finally:
        taskqueue.set_lookahead(0.0)
