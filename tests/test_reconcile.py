"""No task without a way to fire: the create makes the schedule before the
task, and `reconcile` repairs what a crash left. Crashes are simulated by
raising where the process would die (a BaseException, so nothing catches it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import botocore.client
import pytest
from django.core.management import call_command

from tasks import faults, scheduler
from tasks.executor import reconcile as reconcile_entry
from tasks.executor import run_task
from tasks.models import Status, Task
from tasks.services import commands, creation, running, schedules
from tasks.services.reconcile import tasks_reconcile
from tests.factories import due_task

# A fixed time well ahead, in whole hours.
LATER = (datetime.now(UTC) + timedelta(days=200)).replace(minute=0, second=0, microsecond=0)


class Crash(BaseException):
    """The process dies here."""


def stored_tasks() -> list[Task]:
    return list(Task.scan())


def schedule_names(settings) -> set[str]:
    return {s.name for s in scheduler.schedule_list()}


def orphan_free(settings) -> bool:
    """Every scheduled task has its schedule."""
    names = schedule_names(settings)
    return all(t.schedule_name in names for t in stored_tasks() if t.status == Status.SCHEDULED)


def create(run_at: datetime | None = None, **kwargs) -> Task:
    task, _ = creation.task_create(
        action="webhook",
        payload={"url": "https://example.com/hook"},
        run_at=run_at or datetime.now(UTC) + timedelta(hours=1),
        **kwargs,
    )
    return task


@pytest.fixture
def crash_at(monkeypatch):
    def arm(name: str) -> None:
        def point(reached: str) -> None:
            if reached == name:
                raise Crash(name)

        monkeypatch.setattr(faults, "point", point)

    return arm


# --- creation: schedule first ---------------------------------------------------------


def test_it_makes_the_schedule_before_the_task(aws, monkeypatch, settings):
    order: list[str] = []
    real_create, real_save = scheduler.schedule_create, Task.save
    monkeypatch.setattr(
        scheduler, "schedule_create", lambda **kw: order.append("schedule") or real_create(**kw)
    )
    monkeypatch.setattr(
        Task, "save", lambda self, **kw: order.append("task") or real_save(self, **kw)
    )

    task = create()

    assert order == ["schedule", "task"]
    assert schedule_names(settings) == {f"{task.id}-1"}


def test_a_crash_between_schedule_and_task_leaves_only_an_orphan_schedule(aws, crash_at, settings):
    crash_at("task_create.after_schedule")
    with pytest.raises(Crash):
        create(run_at=datetime.now(UTC))

    assert stored_tasks() == []  # nothing was acknowledged, nothing stored
    [orphan] = schedule_names(settings)
    task_id = orphan.removesuffix("-1")
    # It fires into nothing: the executor skips a task it does not know.
    assert run_task({"task_id": task_id}) == {"taskId": task_id, "result": "skipped"}

    result = tasks_reconcile(grace_seconds=0)
    assert result.orphans_deleted == [orphan]
    assert schedule_names(settings) == set()


def test_a_crash_mid_create_never_leaves_a_task_without_a_schedule(aws, monkeypatch, settings):
    # Whichever call the process dies in, what is stored can fire.
    for victim in ("schedule_create", "save"):
        with monkeypatch.context() as patch:

            def die(*args, victim=victim, **kwargs):
                raise Crash(victim)

            if victim == "save":
                patch.setattr(Task, "save", die)
            else:
                patch.setattr(scheduler, "schedule_create", die)
            with pytest.raises(Crash):
                create()
        assert orphan_free(settings)
    assert stored_tasks() == []


def test_a_failed_put_deletes_the_schedule_it_made(aws, monkeypatch, settings):
    from pynamodb.exceptions import PutError

    def unavailable(self, **kwargs):
        raise PutError("ProvisionedThroughputExceededException")

    monkeypatch.setattr(Task, "save", unavailable)
    with pytest.raises(PutError):
        create()
    assert schedule_names(settings) == set()


def test_a_replayed_idempotency_key_makes_no_second_schedule(aws, monkeypatch, settings):
    first = create(idempotency_key="order-7", run_at=LATER)
    made: list[str] = []
    monkeypatch.setattr(scheduler, "schedule_create", lambda **kw: made.append(kw["name"]))

    again = create(idempotency_key="order-7", run_at=LATER)

    assert again.id == first.id and made == []
    assert schedule_names(settings) == {f"{first.id}-1"}


def test_a_crash_in_run_now_before_the_write_leaves_the_task_as_it_was(aws, monkeypatch, settings):
    task = create()

    def die(*args, **kwargs):
        raise Crash("conditional_update")

    monkeypatch.setattr(schedules, "conditional_update", die)
    with pytest.raises(Crash):
        commands.task_run_now(task_id=task.id)
    monkeypatch.undo()

    unchanged = Task.get(task.id, consistent_read=True)
    assert (unchanged.status, unchanged.schedule_name) == ("scheduled", f"{task.id}-1")
    assert schedule_names(settings) == {f"{task.id}-1", f"{task.id}-2"}
    result = tasks_reconcile(grace_seconds=0)
    assert result.orphans_deleted == [f"{task.id}-2"]
    assert schedule_names(settings) == {f"{task.id}-1"}


# --- reconcile --------------------------------------------------------------------------


def test_it_gives_a_scheduled_task_its_lost_schedule_back(aws, settings):
    task = create(run_at=LATER)
    scheduler.schedule_delete(name=task.schedule_name)  # as the old order's crash left it

    result = tasks_reconcile(grace_seconds=0)

    assert (result.repaired, result.overdue) == ([task.id], [])
    schedule = scheduler.client().get_schedule(
        Name=task.schedule_name, GroupName=settings.SCHEDULE_GROUP
    )
    assert schedule["ScheduleExpression"] == f"at({LATER:%Y-%m-%dT%H:%M:%S})"
    assert orphan_free(settings)


def test_it_runs_an_overdue_task_at_once(aws, settings):
    task = create(run_at=datetime.now(UTC))
    scheduler.schedule_delete(name=task.schedule_name)
    Task(id=task.id).update(actions=[Task.due_at.set(datetime.now(UTC) - timedelta(hours=2))])

    before = datetime.now(UTC)
    result = tasks_reconcile(grace_seconds=0)

    assert result.overdue == [task.id]
    expression = scheduler.client().get_schedule(
        Name=task.schedule_name, GroupName=settings.SCHEDULE_GROUP
    )["ScheduleExpression"]
    fires_at = datetime.fromisoformat(expression[3:-1]).replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= fires_at <= before + timedelta(seconds=5)


def test_it_deletes_a_schedule_its_task_is_no_longer_scheduled_under(aws, settings):
    task = create()
    moved = commands.task_run_now(task_id=task.id)  # now under -2
    done = create()
    commands.task_cancel(task_id=done.id)
    # Left behind, as a failed delete would leave them.
    scheduler.schedule_create(name=f"{task.id}-1", task_id=task.id, when=task.due_at)
    scheduler.schedule_create(name=done.schedule_name, task_id=done.id, when=done.due_at)
    scheduler.client().create_schedule(  # not a task's schedule: not ours to judge
        Name="task-scheduler-reconcile",
        GroupName=settings.SCHEDULE_GROUP,
        ScheduleExpression="rate(5 minutes)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": settings.EXECUTOR_FUNCTION_ARN, "RoleArn": settings.SCHEDULER_ROLE_ARN},
    )

    result = tasks_reconcile(grace_seconds=0)

    assert sorted(result.orphans_deleted) == sorted([f"{task.id}-1", done.schedule_name])
    assert schedule_names(settings) == {moved.schedule_name, "task-scheduler-reconcile"}


def test_it_leaves_work_in_flight_alone_within_its_grace(aws, settings):
    task = create()
    scheduler.schedule_delete(name=task.schedule_name)
    orphan = "ab" * 16 + "-1"
    scheduler.schedule_create(name=orphan, task_id="ab" * 16, when=datetime.now(UTC))

    result = tasks_reconcile()  # the default grace: both are seconds old

    assert (result.repaired, result.orphans_deleted) == ([], [])
    assert schedule_names(settings) == {orphan}


def test_it_lists_stuck_tasks_and_leaves_them_be(aws, settings):
    stuck = due_task("https://example.com/hook")
    busy = due_task("https://example.com/hook")
    for task in (stuck, busy):
        assert running.task_claim(task_id=task.id) is not None
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    Task(id=stuck.id).update(actions=[Task.lease_expires_at.set(lapsed)])

    result = tasks_reconcile(grace_seconds=0)

    assert [t.id for t in result.stuck] == [stuck.id]
    assert Task.get(stuck.id).status == "running"
    assert f"webhook-id {stuck.id}" in result.stuck[0].outcome_message


def test_it_dry_runs(aws, settings):
    task = create()
    scheduler.schedule_delete(name=task.schedule_name)
    result = tasks_reconcile(grace_seconds=0, dry_run=True)
    assert result.repaired == [task.id]
    assert schedule_names(settings) == set()


def test_its_cost_does_not_grow_with_time_only_with_what_is_stored(aws, monkeypatch, settings):
    for _ in range(120):
        create()
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def record(client, operation, params):
        calls.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    result = tasks_reconcile(grace_seconds=0)

    assert result.scheduled_tasks == result.schedules == 120
    # Two pages of schedules, one Query of the due index; it carries keys
    # only (issue 14), so the 120 tasks' fields come in two BatchGetItem
    # calls (100 at most each).
    assert sorted(calls) == [
        "BatchGetItem",
        "BatchGetItem",
        "ListSchedules",
        "ListSchedules",
        "Query",
    ]


def test_the_executor_entry_point_and_the_command_report_it(aws, settings):
    # The rate schedule's pass looks at the tasks due around now (recent_only).
    task = create(run_at=datetime.now(UTC) + timedelta(minutes=5))
    scheduler.schedule_delete(name=task.schedule_name)
    Task(id=task.id).update(actions=[Task.updated_at.set(datetime.now(UTC) - timedelta(days=1))])

    answer = reconcile_entry({"command": "tasks.executor.reconcile"}, None)
    assert answer == {
        "repaired": [task.id],
        "overdue": [],
        "orphansDeleted": [],
        "stuck": [],
        "errors": [],
    }

    scheduler.schedule_delete(name=task.schedule_name)
    out = StringIO()
    call_command("reconcile", "--grace", "0", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"task {task.id}: schedule again, at its due time"
    assert lines[-1].startswith("1 scheduled tasks, 0 schedules: 1 schedules made again")
    assert orphan_free(settings)


def test_at_local_start_what_came_before_is_settled_and_what_came_after_in_flight(aws, settings):
    before = create(run_at=datetime.now(UTC))  # due now: on AWS it could be firing
    scheduler.schedule_delete(name=before.schedule_name)
    orphan = "ab" * 16 + "-1"
    scheduler.schedule_create(name=orphan, task_id="ab" * 16, when=LATER)
    started = datetime.now(UTC)
    after = create()  # made by the new run, e.g. between its schedule and its put
    scheduler.schedule_delete(name=after.schedule_name)

    result = tasks_reconcile(settled_before=started)

    assert (result.repaired, result.orphans_deleted) == ([before.id], [orphan])
    assert schedule_names(settings) == {before.schedule_name}


def test_the_local_mode_repairs_in_the_background_and_says_so(aws, settings):
    import threading

    from tasks.localmode.recovery import reconcile_in_background

    task = create()
    scheduler.schedule_delete(name=task.schedule_name)
    said: list[str] = []
    done = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        done.set()

    reconcile_in_background(settled_before=datetime.now(UTC), say=say)
    assert done.wait(10)
    assert said[0].startswith("Reconciled: 1 scheduled tasks, 0 schedules: 1 schedules made again")
    assert orphan_free(settings)


def test_a_crash_between_a_retrys_record_and_its_schedule_is_repaired(
    aws, receiver, monkeypatch, settings, no_backoff
):
    # The executor's retry path records first (the other order would leave
    # the task stuck running, which only an operator can clear): reconcile
    # gives the recorded retry its schedule.
    receiver.expect_request("/hook").respond_with_data("down", status=503)
    task = due_task(receiver.url_for("/hook"))

    def die(**kwargs):
        raise Crash("schedule_create")

    monkeypatch.setattr(scheduler, "schedule_create", die)
    with pytest.raises(Crash):
        run_task({"task_id": task.id})
    monkeypatch.undo()
    retry = Task.get(task.id, consistent_read=True)
    assert (retry.status, retry.schedule_name) == ("scheduled", f"{task.id}-2")
    assert not orphan_free(settings)

    result = tasks_reconcile(grace_seconds=0)

    assert result.repaired == [task.id]
    assert orphan_free(settings)


# --- the rate schedule's pass: only what is due around now ------------------------------


def test_the_recent_pass_reads_only_tasks_due_around_now_that_lack_a_schedule(
    aws, monkeypatch, settings
):
    # Its cost follows the tasks passing through, not what is stored: a task
    # due later than its window is not read, one in it that has its schedule
    # only once, for the orphan check of the schedules made since the last
    # runs.
    soon_lost = create(run_at=datetime.now(UTC) + timedelta(minutes=5))
    far_lost = create(run_at=LATER)
    for task in (soon_lost, far_lost):
        scheduler.schedule_delete(name=task.schedule_name)
    scheduled = [create(run_at=datetime.now(UTC) + timedelta(minutes=6)) for _ in range(5)]
    stuck = due_task("https://example.com/hook")
    scheduler.schedule_delete(name=stuck.schedule_name)  # as it fired (moto's never do)
    running.task_claim(task_id=stuck.id)
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    Task(id=stuck.id).update(actions=[Task.lease_expires_at.set(lapsed)])
    read: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def record(client, operation, params):
        if operation == "BatchGetItem":
            for table in params["RequestItems"].values():
                read.extend(key["id"]["S"] for key in table["Keys"])
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    result = tasks_reconcile(grace_seconds=0, recent_only=True)

    assert result.repaired == [soon_lost.id]
    assert [t.id for t in result.stuck] == [stuck.id]
    assert far_lost.id not in read
    assert read.count(soon_lost.id) == read.count(stuck.id) == 1
    assert all(read.count(task.id) == 1 for task in scheduled)
    # The full pass (manage.py reconcile) sees the one due in 200 days too.
    assert tasks_reconcile(grace_seconds=0).repaired == [far_lost.id]


def test_the_recent_pass_deletes_orphans_made_since_its_last_runs(aws, settings):
    orphan = "cd" * 16 + "-1"  # a create that died between its schedule and its put
    scheduler.schedule_create(name=orphan, task_id="cd" * 16, when=LATER)
    kept = create(run_at=LATER)  # its schedule is checked, and kept

    result = tasks_reconcile(grace_seconds=0, recent_only=True)

    assert result.orphans_deleted == [orphan]
    assert schedule_names(settings) == {kept.schedule_name}
