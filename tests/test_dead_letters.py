"""Dead letters: listed with task id, reason and age; replayed (the task runs
again under the usual claim) or discarded; through the API and the
dashboard, against moto's SQS in-process; and the local stand-in puts what
it gives up on there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tasks import queues, scheduler
from tasks.executor import ExecutorError, run_task
from tasks.localmode.invokers import invoke_with_retries
from tasks.models import Task
from tasks.services import creation, dead_letters, running
from tests.factories import due_task

QUEUE = "test-dlq"


@pytest.fixture
def dlq(aws, settings) -> str:
    settings.SCHEDULER_DLQ_ARN = f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"
    queues.queue_url.cache_clear()
    url = queues.client().create_queue(QueueName=QUEUE)["QueueUrl"]
    yield url
    queues.queue_url.cache_clear()


def send_lambda_letter(url: str, task_id: str, message: str = "task is stuck") -> str:
    """As Lambda sends a failed asynchronous invocation: the event as body."""
    event = {"command": "tasks.executor.run_task", "task_id": task_id}
    answer = queues.client().send_message(
        QueueUrl=url,
        MessageBody=json.dumps(event),
        MessageAttributes={
            "RequestID": {"DataType": "String", "StringValue": "a1b2"},
            "ErrorCode": {"DataType": "String", "StringValue": "200"},
            "ErrorMessage": {"DataType": "String", "StringValue": message},
        },
    )
    return answer["MessageId"]


def send_scheduler_letter(url: str, task_id: str) -> str:
    """As EventBridge Scheduler sends one it could not deliver."""
    answer = queues.client().send_message(
        QueueUrl=url,
        MessageBody=json.dumps({"command": "tasks.executor.run_task", "task_id": task_id}),
        MessageAttributes={
            "ERROR_CODE": {"DataType": "String", "StringValue": "AWS.Lambda.Throttled"},
            "ERROR_MESSAGE": {"DataType": "String", "StringValue": "Rate exceeded"},
        },
    )
    return answer["MessageId"]


def queued_ids(url: str) -> set[str]:
    return {d.id for d in dead_letters.deadletter_list().items}


def later_task() -> Task:
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook"},
        run_at=datetime.now(UTC) + timedelta(hours=1),
    )
    return task


# --- listing ----------------------------------------------------------------------------


def test_it_lists_dead_letters_with_task_reason_and_age(api, dlq):
    task = later_task()
    first = send_lambda_letter(dlq, task.id, "executor timed out")
    second = send_scheduler_letter(dlq, task.id)

    response = api.get("/api/dead-letters")

    assert response.status_code == 200, response.content
    page = response.json()
    assert (page["queue"], page["approximateTotal"]) == (QUEUE, 2)
    by_id = {item["id"]: item for item in page["items"]}
    assert set(by_id) == {first, second}
    assert by_id[first]["taskId"] == task.id
    assert by_id[first]["reason"] == "200: executor timed out"
    assert by_id[first]["source"] == "executor"
    assert by_id[second]["reason"] == "AWS.Lambda.Throttled: Rate exceeded"
    assert by_id[second]["source"] == "scheduler"
    assert 0 <= by_id[first]["ageSeconds"] < 60
    # Listing hides nothing for long: they are all there again at once.
    assert {i["id"] for i in api.get("/api/dead-letters").json()["items"]} == {first, second}


def test_it_finds_the_task_in_a_wrapped_event_and_keeps_a_letter_without_one(api, dlq):
    event = json.dumps({"command": "tasks.executor.run_task", "task_id": "ab" * 16})
    wrapped = queues.client().send_message(QueueUrl=dlq, MessageBody=json.dumps({"input": event}))[
        "MessageId"
    ]
    anonymous = queues.client().send_message(QueueUrl=dlq, MessageBody="not json")["MessageId"]

    items = {i["id"]: i for i in api.get("/api/dead-letters").json()["items"]}
    assert items[wrapped]["taskId"] == "ab" * 16
    assert (items[anonymous]["taskId"], items[anonymous]["reason"]) == (None, "no reason given")

    response = api.post(f"/api/dead-letters/{anonymous}/replay")
    assert response.status_code == 409
    assert "no task id in this message" in response.json()["detail"]
    assert anonymous in queued_ids(dlq)


def test_it_lists_more_than_one_receive_holds(api, dlq):
    sent = {send_lambda_letter(dlq, "ab" * 16) for _ in range(25)}
    items = api.get("/api/dead-letters").json()["items"]
    assert {i["id"] for i in items} == sent


def test_it_lists_nothing_without_a_queue(api, settings):
    settings.SCHEDULER_DLQ_ARN = ""
    response = api.get("/api/dead-letters")
    assert response.json() == {"items": [], "queue": None, "approximateTotal": 0}
    assert api.post("/api/dead-letters/x/replay").status_code == 404


def test_it_needs_a_key(client, aws):
    assert client.get("/api/dead-letters").status_code == 401
    assert client.post("/api/dead-letters/replay-all").status_code == 401


def test_it_answers_503_when_the_queue_cannot_be_read(api, aws, settings):
    settings.SCHEDULER_DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:no-such-queue"
    queues.queue_url.cache_clear()
    response = api.get("/api/dead-letters")
    assert response.status_code == 503
    assert "the dead-letter queue cannot be read" in response.json()["detail"]


# --- replaying --------------------------------------------------------------------------


def test_a_replay_runs_a_scheduled_task_again_under_the_usual_claim(api, dlq, receiver, settings):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"))
    letter = send_scheduler_letter(dlq, task.id)  # its delivery was given up on

    response = api.post(f"/api/dead-letters/{letter}/replay")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "id": letter,
        "taskId": task.id,
        "result": "run_now",
        "detail": f"task {task.id} runs now",
    }
    moved = Task.get(task.id, consistent_read=True)
    assert moved.schedule_name == f"{task.id}-2"
    schedule = scheduler.client().get_schedule(
        Name=moved.schedule_name, GroupName=settings.SCHEDULE_GROUP
    )
    event = json.loads(schedule["Target"]["Input"])
    assert event["task_id"] == task.id
    assert run_task(event)["result"] == "completed"  # the new schedule fires
    assert run_task(event)["result"] == "skipped"  # and a duplicate does not run it twice
    assert len(receiver.log) == 1
    assert queued_ids(dlq) == set()


def test_a_replay_of_a_running_task_is_refused_and_kept(api, dlq):
    task = due_task("https://example.com/hook")
    assert running.task_claim(task_id=task.id) is not None
    letter = send_lambda_letter(dlq, task.id)

    response = api.post(f"/api/dead-letters/{letter}/replay")
    assert response.status_code == 409
    assert response.json()["detail"].endswith("is running; replay this once it has finished")

    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    Task(id=task.id).update(actions=[Task.lease_expires_at.set(lapsed)])
    response = api.post(f"/api/dead-letters/{letter}/replay")
    assert response.status_code == 409
    assert "outcome unknown: the request may have gone out" in response.json()["detail"]
    assert queued_ids(dlq) == {letter}
    assert Task.get(task.id).status == "running"


def test_a_replay_of_a_finished_or_unknown_task_removes_the_letter(api, dlq):
    task = later_task()
    api.post(f"/api/tasks/{task.id}/cancel")
    cancelled = send_lambda_letter(dlq, task.id)
    unknown = send_lambda_letter(dlq, "cd" * 16)

    first = api.post(f"/api/dead-letters/{cancelled}/replay").json()
    second = api.post(f"/api/dead-letters/{unknown}/replay").json()

    assert (first["result"], first["detail"]) == (
        "removed",
        f"task {task.id} is cancelled: nothing to run",
    )
    assert (second["result"], second["detail"]) == ("removed", f"task {'cd' * 16} does not exist")
    assert queued_ids(dlq) == set()
    assert Task.get(task.id).status == "cancelled"


def test_it_replays_all_and_keeps_the_refused(api, dlq):
    waiting = later_task()
    busy = due_task("https://example.com/hook")
    assert running.task_claim(task_id=busy.id) is not None
    send_lambda_letter(dlq, waiting.id)
    kept = send_lambda_letter(dlq, busy.id)

    response = api.post("/api/dead-letters/replay-all")

    assert response.status_code == 200
    results = {r["taskId"]: r["result"] for r in response.json()["items"]}
    assert results == {waiting.id: "run_now", busy.id: "kept"}
    assert queued_ids(dlq) == {kept}
    assert Task.get(waiting.id).schedule_name == f"{waiting.id}-2"


def test_it_discards_a_dead_letter(api, dlq, client):
    letter = send_lambda_letter(dlq, "ab" * 16)
    other = send_lambda_letter(dlq, "ab" * 16)
    response = client.delete(f"/api/dead-letters/{letter}", headers=api.headers)
    assert response.status_code == 204
    assert queued_ids(dlq) == {other}
    again = client.delete(f"/api/dead-letters/{letter}", headers=api.headers)
    assert again.status_code == 404
    assert again.json() == {"detail": f"dead letter {letter} not found"}


def test_it_documents_the_routes_and_their_statuses(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    codes = {
        (method.upper(), path): {int(c) for c in operation["responses"]}
        for path, operations in paths.items()
        if path.startswith("/api/dead-letters")
        for method, operation in operations.items()
    }
    assert codes == {
        ("GET", "/api/dead-letters"): {200, 401, 503},
        ("POST", "/api/dead-letters/replay-all"): {200, 401, 503},
        ("POST", "/api/dead-letters/{message_id}/replay"): {200, 401, 404, 409, 503},
        ("DELETE", "/api/dead-letters/{message_id}"): {204, 401, 404, 503},
    }


# --- the local stand-in -----------------------------------------------------------------


def test_the_local_stand_in_sends_what_it_gives_up_on_to_the_queue(dlq, settings):
    task = due_task("https://example.com/hook")
    settings.WEBHOOK_SIGNING_SECRET = ""  # every invocation fails: ExecutorError
    event = {"command": "tasks.executor.run_task", "task_id": task.id}

    def invoke(event, context):
        return run_task(event, context)

    invoke_with_retries(invoke, f"{task.id}-1", event, retries=0, timeout=5)

    [letter] = dead_letters.deadletter_list().items
    assert (letter.task_id, letter.source) == (task.id, "local")
    assert letter.reason == "ExecutorError: WEBHOOK_SIGNING_SECRET is not set"
    assert Task.get(task.id).status == "scheduled"  # never claimed
    with pytest.raises(ExecutorError):
        run_task(event)


def test_the_local_endpoint_keeps_its_dead_letters_in_its_state(dlq):
    from moto.sqs.models import sqs_backends

    from tasks.localmode import sqsstate

    letter = send_lambda_letter(dlq, "ab" * 16, "executor timed out")
    [before] = dead_letters.deadletter_list().items
    state = sqsstate.sqs_state()
    backend = sqs_backends["123456789012"]["us-east-1"]
    backend.delete_queue(QUEUE)  # as a new process starts: nothing

    sqsstate.restore_sqs(state)

    [after] = dead_letters.deadletter_list().items
    assert after.id != letter  # a message id is the endpoint's own
    assert (after.task_id, after.reason, after.source) == (
        before.task_id,
        before.reason,
        "executor",
    )
    assert after.sent_at == before.sent_at


# --- the dashboard ----------------------------------------------------------------------


@pytest.fixture
def dash(dash, dlq):
    """conftest's logged-in client, with a dead-letter queue."""
    return dash


def test_the_dashboard_lists_replays_and_discards(dash, dlq):
    task = later_task()
    replayed = send_lambda_letter(dlq, task.id, "executor timed out")
    discarded = send_lambda_letter(dlq, "ab" * 16)

    page = dash.get("/dead-letters/").content.decode()
    assert f'data-dead-letter="{replayed}"' in page and f'data-dead-letter="{discarded}"' in page
    assert "200: executor timed out" in page
    assert f'href="/tasks/{task.id}/"' in page
    assert 'href="/dead-letters/" aria-current="page"' in page

    response = dash.post(f"/dead-letters/{replayed}/replay/")
    assert response.status_code == 302 and response.url == "/dead-letters/"
    assert f"Replayed: task {task.id} runs now." in dash.get("/dead-letters/").content.decode()
    dash.post(f"/dead-letters/{discarded}/discard/")
    page = dash.get("/dead-letters/").content.decode()
    assert "Dead letter discarded." in page and "No dead letters" in page


def test_the_dashboard_replays_all(dash, dlq):
    task = later_task()
    send_lambda_letter(dlq, task.id)
    send_lambda_letter(dlq, "ab" * 16)
    dash.post("/dead-letters/replay-all/")
    page = dash.get("/dead-letters/").content.decode()
    assert "Replayed 2 dead letters: 1 runs now, 1 removed." in page


# --- end to end: the local mode ---------------------------------------------------------


@pytest.mark.e2e
def test_the_local_mode_puts_what_it_gives_up_on_in_its_queue_and_replays_it(tmp_path):
    import time

    from tests.factories import future
    from tests.localrun import start_local

    # An invalid secret: the executor fails every invocation (ExecutorError).
    env = {"WEBHOOK_SIGNING_SECRET": "whsec_!!!", "SCHEDULER_MAX_RETRY_ATTEMPTS": "0"}
    local = start_local(tmp_path / "state", env=env)
    try:
        body = {
            "action": "webhook",
            "payload": {"url": "https://example.com/hook"},
            "runAt": future(0),
        }
        status, task = local.api("POST", "/api/tasks", body)
        assert status == 201

        def letters() -> list[dict]:
            status, page = local.api("GET", "/api/dead-letters")
            assert status == 200
            return page["items"]

        deadline = time.monotonic() + 20
        while not letters() and time.monotonic() < deadline:
            time.sleep(0.2)
        [letter] = letters()
        assert (letter["taskId"], letter["source"]) == (task["id"], "local")
        assert "WEBHOOK_SIGNING_SECRET is not a valid secret" in letter["reason"]

        status, replayed = local.api("POST", f"/api/dead-letters/{letter['id']}/replay")
        assert (status, replayed["result"]) == (200, "run_now")
        # It ran again (and, the secret still wrong, failed again).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ids = [item["id"] for item in letters()]
            if ids and letter["id"] not in ids:
                break
            time.sleep(0.2)
        [again] = letters()
        assert again["id"] != letter["id"] and again["taskId"] == task["id"]
    finally:
        local.stop()

    # Kept in the state folder, as everything else: still there after a restart.
    local = start_local(tmp_path / "state", env=env)
    try:
        # (The task, scheduled without its fired schedule, is repaired at start
        # and fails again meanwhile: a second letter may join it.)
        kept = [(item["taskId"], item["reason"]) for item in letters()]
        assert (again["taskId"], again["reason"]) in kept
    finally:
        local.stop()
