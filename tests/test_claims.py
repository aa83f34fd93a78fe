"""Claims: a delivery runs a task at most once; duplicates, races and stuck tasks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from tasks.errors import Conflict
from tasks.executor import ExecutorError, run_task
from tasks.models import Task
from tasks.services import commands, creation, running
from tests.factories import due_task, schedule_of, stored

# --- deliveries that must change nothing -------------------------------------------------


@pytest.mark.parametrize("status", ["running", "completed", "failed", "cancelled"])
def test_it_ignores_a_delivery_for_a_task_that_is_not_scheduled(aws, receiver, status):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"))
    Task(id=task.id).update(actions=[Task.status.set(status)])
    before = stored(task.id).attribute_values

    if status == "running":  # the invocation fails, for a retry (see "stuck tasks")
        with pytest.raises(ExecutorError, match="running under another invocation"):
            run_task({"task_id": task.id})
    else:
        assert run_task({"task_id": task.id}) == {"taskId": task.id, "result": "skipped"}

    assert receiver.log == []
    assert stored(task.id).attribute_values == before


def test_it_ignores_a_delivery_before_the_task_is_due(aws, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": receiver.url_for("/hook")},
        run_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert run_task({"task_id": task.id})["result"] == "skipped"
    assert receiver.log == []
    assert stored(task.id).status == "scheduled"
    assert stored(task.id).attempts == 0


def test_it_claims_a_task_a_little_early_but_delivers_it_when_due(aws, receiver):
    # EventBridge and the executor's clocks may differ by a little: a delivery
    # up to 5 s early is taken, and the webhook waits for its time.
    receiver.expect_request("/hook").respond_with_data("ok")
    run_at = datetime.now(UTC) + timedelta(seconds=2)
    task, _ = creation.task_create(
        action="webhook", payload={"url": receiver.url_for("/hook")}, run_at=run_at
    )
    assert run_task({"task_id": task.id})["result"] == "completed"
    started = stored(task.id).attempt_history[0].started_at
    assert started >= run_at
    assert len(receiver.log) == 1


@pytest.mark.parametrize(
    "event",
    [
        {"task_id": "0123456789abcdef0123456789abcdef"},
        {"task_id": ""},
        {"task_id": 42},
        {},
        None,
        "a string",
    ],
)
def test_it_ignores_an_event_for_no_known_task(aws, event):
    result = run_task(event, None)
    assert result["result"] in ("skipped", "ignored")
    assert list(Task.scan()) == []


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "WEBHOOK_SIGNING_SECRET is not set"),
        ("whsec_", "WEBHOOK_SIGNING_SECRET is not a valid secret"),
        ("not-base64!!", "WEBHOOK_SIGNING_SECRET is not a valid secret"),
    ],
)
def test_it_refuses_to_run_without_a_usable_signing_secret(
    aws, receiver, settings, secret, message
):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"))
    settings.WEBHOOK_SIGNING_SECRET = secret
    # The invocation fails (Lambda retries it, then the dead-letter
    # queue) and the task is left untouched for a later try.
    with pytest.raises(ExecutorError, match=f"^{message}"):
        run_task({"task_id": task.id})
    assert receiver.log == []
    assert stored(task.id).status == "scheduled"
    assert stored(task.id).attempts == 0


# --- races, against the atomic local AWS endpoint -----------------------------------------


def test_it_calls_the_webhook_once_when_a_task_is_delivered_20_times_at_once(atomic_aws, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = due_task(receiver.url_for("/hook"))
    deliveries = 20
    start = threading.Barrier(deliveries)
    results: list[str] = []

    def deliver() -> None:
        start.wait()
        try:
            result = run_task({"command": "tasks.executor.run_task", "task_id": task.id})
        except ExecutorError as exc:  # found it running: Lambda retries it later
            assert "running under another invocation" in str(exc)
            results.append("failed while it ran")
        else:
            results.append(result["result"])

    threads = [threading.Thread(target=deliver) for _ in range(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == deliveries
    assert results.count("completed") == 1
    assert set(results) - {"completed"} <= {"skipped", "failed while it ran"}
    assert len(receiver.log) == 1
    done = stored(task.id)
    assert done.status == "completed"
    assert done.attempts == 1
    assert len(done.attempt_history) == 1


def race_cancel_and_run(task_id: str) -> dict[str, str]:
    """Start a delivery and a cancel of one task at the same instant."""
    start = threading.Barrier(2)
    results: dict[str, str] = {}

    def run() -> None:
        start.wait()
        results["run"] = run_task({"task_id": task_id})["result"]

    def cancel() -> None:
        start.wait()
        try:
            results["cancel"] = commands.task_cancel(task_id=task_id).status
        except Conflict as exc:
            results["cancel"] = exc.message

    threads = [threading.Thread(target=run), threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_it_leaves_one_consistent_outcome_when_cancel_races_a_run(atomic_aws, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    for _round in range(8):
        task = due_task(receiver.url_for("/hook"))
        results = race_cancel_and_run(task.id)

        final = stored(task.id)
        calls = [r for r, _ in receiver.log if r.headers["webhook-id"] == task.id]
        if results["cancel"] == "cancelled":
            # The cancel won: nothing ran, nothing was called.
            assert results["run"] == "skipped"
            assert (final.status, final.attempts, calls) == ("cancelled", 0, [])
        else:
            # The run won: the webhook was called once; the cancel was refused.
            assert results["run"] == "completed"
            assert results["cancel"] in (
                "task is running and can no longer be cancelled",
                "task is completed and can no longer be cancelled",
            )
            assert (final.status, final.attempts, len(calls)) == ("completed", 1, 1)


# --- stuck tasks ------------------------------------------------------------------------
# An executor that dies mid-delivery (its Lambda timed out or crashed) leaves
# the task running. Once the claim's lease has lapsed, an operator may cancel
# or retry it; before, it is still being worked on and both are refused.


def claimed(url: str, *, lease_seconds: float) -> Task:
    task = due_task(url)
    assert running.task_claim(task_id=task.id) is not None
    Task(id=task.id).update(
        actions=[Task.lease_expires_at.set(datetime.now(UTC) + timedelta(seconds=lease_seconds))]
    )
    return stored(task.id)


def test_it_sets_a_lease_when_it_claims(aws, settings):
    task = due_task("https://example.com/hook")
    before = datetime.now(UTC)
    assert running.task_claim(task_id=task.id) is not None
    lease = stored(task.id).lease_expires_at
    assert lease >= before + timedelta(seconds=settings.EXECUTOR_LEASE_SECONDS - 1)
    assert not stored(task.id).is_stuck


def test_it_refuses_to_cancel_or_retry_a_task_still_running(aws):
    task = claimed("https://example.com/hook", lease_seconds=60)
    with pytest.raises(Conflict):
        commands.task_cancel(task_id=task.id)
    with pytest.raises(Conflict):
        commands.task_retry(task_id=task.id)
    assert stored(task.id).status == "running"


def test_it_cancels_a_stuck_task(aws):
    task = claimed("https://example.com/hook", lease_seconds=-1)
    assert task.is_stuck
    assert commands.task_cancel(task_id=task.id).status == "cancelled"
    assert stored(task.id).status == "cancelled"


def test_a_delivery_that_finds_its_task_running_fails_and_changes_nothing(aws, receiver):
    # Another invocation holds it (a duplicate delivery): fail, so that Lambda
    # retries this one later, when the task is finished.
    task = claimed(receiver.url_for("/hook"), lease_seconds=60)
    with pytest.raises(ExecutorError, match="running under another invocation until .*retry later"):
        run_task({"task_id": task.id})
    after = stored(task.id)
    assert (after.status, after.attempts, after.lease_expires_at) == (
        "running",
        task.attempts,
        task.lease_expires_at,
    )
    assert receiver.log == []
    # Finished meanwhile: Lambda's retry is a no-op.
    Task(id=task.id).update(actions=[Task.status.set("completed")])
    assert run_task({"task_id": task.id})["result"] == "skipped"


def test_a_delivery_that_finds_its_task_stuck_fails_for_an_operator(aws, receiver):
    # Its executor died holding it: every retry fails too, and after Lambda's
    # retries the invocation lands in the dead-letter queue, whose alarm fires.
    task = claimed(receiver.url_for("/hook"), lease_seconds=-1)
    with pytest.raises(ExecutorError, match="stuck running.*cancel or retry it"):
        run_task({"task_id": task.id})
    assert stored(task.id).status == "running"
    assert receiver.log == []


def test_it_retries_a_stuck_task_and_delivers_it(aws, receiver, settings):
    receiver.expect_request("/hook").respond_with_data("ok")
    task = claimed(receiver.url_for("/hook"), lease_seconds=-1)
    retried = commands.task_retry(task_id=task.id)
    assert retried.status == "scheduled"
    assert schedule_of(settings, retried)["Name"] == retried.schedule_name
    assert run_task({"task_id": task.id})["result"] == "completed"
    assert len(receiver.log) == 1


# --- the claim window (TASK_CLAIM_EARLY_SECONDS) -----------------------------------------


@pytest.mark.parametrize("window", [5.0, 15.0])
def test_it_claims_within_the_claim_window_and_not_before(aws, settings, window):
    settings.TASK_CLAIM_EARLY_SECONDS = window
    now = datetime.now(UTC)

    def task_due_in(seconds: float) -> Task:
        task, _ = creation.task_create(
            action="webhook",
            payload={"url": "https://example.com/hook"},
            run_at=now + timedelta(seconds=seconds),
        )
        return task

    inside, before = task_due_in(window - 0.5), task_due_in(window + 1)
    assert running.task_claim(task_id=before.id) is None
    assert (stored(before.id).status, stored(before.id).attempts) == ("scheduled", 0)
    assert running.task_claim(task_id=inside.id) is not None
    assert (stored(inside.id).status, stored(inside.id).attempts) == ("running", 1)


def test_its_claim_window_is_5_s_and_15_s_in_the_local_mode():
    import os
    import subprocess
    import sys
    from pathlib import Path

    def window(**env: str) -> subprocess.CompletedProcess:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TASK_CLAIM")}
        environment.pop("SCHEDULER_LOCAL_MODE", None)
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "from scheduler_site import settings; print(settings.TASK_CLAIM_EARLY_SECONDS)",
            ],
            env={**environment, "DJANGO_SECRET_KEY": "x", **env},
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert window().stdout.strip() == "5.0"  # AWS: unchanged
    assert window(SCHEDULER_LOCAL_MODE="true").stdout.strip() == "15.0"
    assert window(SCHEDULER_LOCAL_MODE="true", TASK_CLAIM_EARLY_SECONDS="8").stdout.strip() == "8.0"
    refused = window(TASK_CLAIM_EARLY_SECONDS="31")
    assert refused.returncode != 0
    assert "TASK_CLAIM_EARLY_SECONDS must be at most 30" in refused.stderr
