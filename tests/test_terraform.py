"""terraform/ checked without AWS: formatted, clean under checkov, tables
equal to the PynamoDB models, and IAM that grants each role exactly the
calls its code makes (recorded under moto), with no wildcards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase

import botocore.client
import pytest
from django.conf import settings as django_settings
from pynamodb.attributes import TTLAttribute

from tasks import queues, scheduler, selectors
from tasks.executor import ExecutorError, reconcile, run_task
from tasks.models import MODELS, Status, Task
from tasks.services import access, commands, creation, dead_letters, recurring, running
from tasks.services import reconcile as reconcile_service
from tests.terraform_stack import TERRAFORM_DIR, Stack

ROOT = TERRAFORM_DIR.parent
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
ZAPPA_SETTINGS = json.loads((ROOT / "zappa_settings.json").read_text())
# Statements allowed Resource "*", each with the reason AWS leaves no
# narrower resource.
RESOURCE_STAR_JUSTIFIED: dict[tuple[str, str], str] = {
    ("executor", "ListSchedules"): "scheduler:ListSchedules has no resource type in the "
    "Service Authorization Reference; its GroupName parameter scopes what it returns",
}
# Grants used by AWS on the role's behalf, not by the code: Lambda writes
# the logs and sends failed async invocations of the executor to its
# dead-letter queue. Any other grant (a lambda: one included) must be used by
# a recorded call.
USED_BY_AWS_NOT_THE_CODE = ("logs:", "sqs:SendMessage")
# The hop queue's Lambda event source polls with the executor's role.
HOP = "arn:aws:sqs:us-east-1:123456789012:task-scheduler-dev-hop"
EVENT_SOURCE_GRANTS = {
    (action, HOP)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
}


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack(stage="dev")


# --- the tools -------------------------------------------------------------------------


def test_it_formats_the_terraform_canonically():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed (no registry package ships it)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "terraform/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"


def test_it_passes_checkov_with_every_skip_justified():
    if not CHECKOV.exists():
        pytest.fail("checkov is not installed: `make checkov` installs it (`make test` does)")
    result = subprocess.run(
        [str(CHECKOV), "--directory", str(TERRAFORM_DIR), "--framework", "terraform"]
        # --skip-download: no calls to Prisma Cloud (and no network) at all.
        + ["--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 50  # it really read the files
    for check in report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, f"{check['check_id']} on {check['resource']}: no justification"


# --- tables ----------------------------------------------------------------------------


def _hcl_table(stack: Stack, model) -> tuple[str, dict]:
    """The aws_dynamodb_table whose name is the model's, with the stack's prefix."""
    suffix = model.Meta.table_name.removeprefix(f"{django_settings.TABLE_PREFIX}-")
    expected = f"{stack.reference('local.prefix')}-{suffix}"
    for name, body in stack.resources["aws_dynamodb_table"].items():
        if stack.resolve(body["name"]) == expected:
            return name, body
    pytest.fail(f"no aws_dynamodb_table named {expected} for {model.__name__}")


def _model_schema(model) -> dict:
    schema = model._get_schema()

    def keys(key_schema: list[dict]) -> dict:
        return {k["KeyType"]: k["AttributeName"] for k in key_schema}

    ttl = [n for n, a in model.get_attributes().items() if isinstance(a, TTLAttribute)]
    return {
        "keys": keys(schema["key_schema"]),
        "attributes": {
            a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]
        },
        "global_indexes": {
            i["index_name"]: (keys(i["key_schema"]), i["projection"]["ProjectionType"])
            for i in schema["global_secondary_indexes"]
        },
        "local_indexes": sorted(i["index_name"] for i in schema["local_secondary_indexes"]),
        "ttl": ttl[0] if ttl else None,
    }


def _hcl_schema(body: dict) -> dict:
    def keys(block: dict) -> dict:
        found = {"HASH": block["hash_key"]}
        if "range_key" in block:
            found["RANGE"] = block["range_key"]
        return found

    ttl = [t["attribute_name"] for t in body.get("ttl", []) if t.get("enabled", True)]
    return {
        "keys": keys(body),
        "attributes": {a["name"]: a["type"] for a in body.get("attribute", [])},
        "global_indexes": {
            i["name"]: (keys(i), i["projection_type"])
            for i in body.get("global_secondary_index", [])
        },
        "local_indexes": sorted(i["name"] for i in body.get("local_secondary_index", [])),
        "ttl": ttl[0] if ttl else None,
    }


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_it_declares_each_table_as_its_model_does(stack, model):
    _name, body = _hcl_table(stack, model)
    assert _hcl_schema(body) == _model_schema(model)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_it_makes_each_table_on_demand_recoverable_and_encrypted(stack, model):
    _name, body = _hcl_table(stack, model)
    assert body["billing_mode"] == "PAY_PER_REQUEST" == model.Meta.billing_mode
    assert body["point_in_time_recovery"] == [{"enabled": True}]
    assert body["server_side_encryption"] == [{"enabled": True}]
    assert body["deletion_protection_enabled"] == "${local.deletion_protection}"


def test_it_protects_tables_from_deletion_in_prod_only_by_default(stack):
    # The one expression the reader does not evaluate; its meaning is fixed here.
    assert stack.locals["deletion_protection"] == (
        '${var.deletion_protection != null ? var.deletion_protection : var.stage == "prod"}'
    )
    assert stack.variables["deletion_protection"]["default"] is None


# --- IAM, statically ---------------------------------------------------------------------


def _all_documents(stack: Stack) -> dict[str, list[dict]]:
    return {name: stack.policy_document(name) for name in stack.data["aws_iam_policy_document"]}


def test_it_allows_no_wildcard_action_and_no_star_resource(stack):
    for document, statements in _all_documents(stack).items():
        for statement in statements:
            if statement["effect"] != "Allow":
                continue
            where = f"{document}/{statement['sid']}"
            assert not statement["not_actions"] and not statement["not_resources"], where
            for action in statement["actions"]:
                assert "*" not in action, f"{where} allows {action}"
            for resource in statement["resources"]:
                if resource == "*":
                    assert (document, statement["sid"]) in RESOURCE_STAR_JUSTIFIED, where
                # A pattern may only end in a wildcard under a named parent.
                assert "*" not in resource.rstrip("*").rstrip("/:"), f"{where}: {resource}"


def test_it_puts_every_policy_through_a_checked_document(stack):
    # So nothing escapes the test above: no managed policy (their Resource is
    # "*"), no jsonencode'd inline policy.
    for kind in ("aws_iam_role_policy_attachment", "aws_iam_policy", "aws_iam_policy_attachment"):
        assert kind not in stack.resources, kind
    for name, role in stack.resources["aws_iam_role"].items():
        assert "managed_policy_arns" not in role and "inline_policy" not in role, name
        assert stack.trust_document(name) in stack.data["aws_iam_policy_document"]
    for name in stack.resources["aws_iam_role"]:
        assert stack.role_policy_document(name) in stack.data["aws_iam_policy_document"]


def test_it_lets_only_eventbridge_scheduler_of_this_account_and_group_assume_its_role(stack):
    [statement] = stack.policy_document(stack.trust_document("scheduler"))
    assert statement["effect"] == "Allow"
    assert statement["actions"] == ["sts:AssumeRole"]
    assert statement["principals"] == [
        {"type": "Service", "identifiers": ["scheduler.amazonaws.com"]}
    ]
    conditions = {(c["test"], c["variable"]): c["values"] for c in statement["conditions"]}
    assert conditions == {
        ("StringEquals", "aws:SourceAccount"): [stack.account],
        ("ArnEquals", "aws:SourceArn"): [stack.reference("aws_scheduler_schedule_group.tasks.arn")],
    }


def test_it_lets_the_scheduler_role_invoke_only_the_executor_and_feed_its_dlq(stack):
    statements = stack.policy_document(stack.role_policy_document("scheduler"))
    grants = sorted((a, r) for s in statements for a in s["actions"] for r in s["resources"])
    # The function Zappa deploys for the stage "dev_executor" of project
    # "task-scheduler": the name is slugified.
    executor = "arn:aws:lambda:us-east-1:123456789012:function:task-scheduler-dev-executor"
    assert grants == [
        ("lambda:InvokeFunction", executor),
        ("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:task-scheduler-dev-scheduler-dlq"),
    ]
    assert stack.resolve(stack.locals["executor_function_arn"]) == executor


def test_it_lets_only_lambda_assume_the_function_roles(stack):
    def principals(role: str) -> list[str]:
        statements = stack.policy_document(stack.trust_document(role))
        assert all(s["actions"] == ["sts:AssumeRole"] for s in statements)
        return sorted(i for s in statements for p in s["principals"] for i in p["identifiers"])

    assert principals("executor") == ["lambda.amazonaws.com"]
    # The web stages are reached by a function URL, not API Gateway (whose
    # integration would invoke the function with the web role).
    assert principals("web") == ["lambda.amazonaws.com"]
    for stage in ("dev", "prod"):
        assert ZAPPA_SETTINGS[stage]["apigateway_enabled"] is False
        assert ZAPPA_SETTINGS[stage]["function_url_enabled"] is True


# --- IAM against the calls the code makes ------------------------------------------------


class Recorder:
    """Every AWS API call made inside `with recorder.recording():`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self._on = False
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def record(client, operation: str, params: dict):
            if recorder._on:
                recorder.calls.append((client.meta.service_model.signing_name, operation, params))
            return original(client, operation, params)

        self.patched = record

    @contextmanager
    def recording(self) -> Iterator[None]:
        self._on = True
        try:
            yield
        finally:
            self._on = False


@pytest.fixture
def recorder(aws, monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recorder.patched)
    return recorder


def _permissions(stack: Stack, calls) -> set[tuple[str, str]]:
    """(IAM action, resource ARN) each recorded call needs, on the stack's resources."""
    tables = {
        model.Meta.table_name: stack.reference(
            f"aws_dynamodb_table.{_hcl_table(stack, model)[0]}.arn"
        )
        for model in MODELS
    }
    [group] = [
        stack.resolve(g["name"]) for g in stack.resources["aws_scheduler_schedule_group"].values()
    ]
    schedules = f"arn:aws:scheduler:{stack.region}:{stack.account}:schedule/{group}"
    needed = set()
    for service, operation, params in calls:
        action = f"{service}:{operation}"
        if service == "dynamodb":
            # BatchGetItem names its tables in RequestItems.
            for table in [params["TableName"]] if "TableName" in params else params["RequestItems"]:
                arn = tables[table]
                if "IndexName" in params:
                    arn += f"/index/{params['IndexName']}"
                needed.add((action, arn))
        elif service == "scheduler" and operation == "ListSchedules":
            assert params["GroupName"] == django_settings.SCHEDULE_GROUP
            needed.add((action, "*"))  # see RESOURCE_STAR_JUSTIFIED
        elif service == "scheduler":
            assert params["GroupName"] == django_settings.SCHEDULE_GROUP
            needed.add((action, f"{schedules}/{params['Name']}"))
            if operation in ("CreateSchedule", "UpdateSchedule"):
                assert params["Target"]["RoleArn"] == django_settings.SCHEDULER_ROLE_ARN
                needed.add(("iam:PassRole", stack.reference("aws_iam_role.scheduler.arn")))
        elif service == "sqs":
            name = params.get("QueueName") or params["QueueUrl"].rsplit("/", 1)[1]
            # SQS authorises a batch call with its single action's permission.
            action = action.removesuffix("Batch")
            needed.add((action, f"arn:aws:sqs:{stack.region}:{stack.account}:{name}"))
        else:
            pytest.fail(f"the code called {action}, which no test maps to a resource yet")
    return needed


def _allowed(statements: list[dict], action: str, arn: str) -> bool:
    def matches(s: dict) -> bool:
        return any(fnmatchcase(action, a) for a in s["actions"]) and any(
            fnmatchcase(arn, r) for r in s["resources"]
        )

    allow = any(s["effect"] == "Allow" and matches(s) for s in statements)
    return allow and not any(s["effect"] == "Deny" and matches(s) for s in statements)


def _assert_exactly(stack: Stack, role: str, calls) -> None:
    statements = stack.policy_document(stack.role_policy_document(role))
    needed = _permissions(stack, calls)
    missing = sorted(p for p in needed if not _allowed(statements, *p))
    assert not missing, f"the {role} role lacks {missing}"
    unused = [
        (action, resource)
        for s in statements
        for action in s["actions"]
        if not action.startswith(USED_BY_AWS_NOT_THE_CODE)
        for resource in s["resources"]
        if (action, resource) not in EVENT_SOURCE_GRANTS
        if not any(fnmatchcase(a, action) and fnmatchcase(r, resource) for a, r in needed)
    ]
    assert not unused, f"the {role} role grants what its code never calls: {unused}"


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def _webhook(url: str = "https://example.com/hook") -> dict:
    return {"action": "webhook", "payload": {"url": url, "data": {"n": 1}}}


@pytest.fixture
def hop_queue(aws, settings) -> str:
    """The hop queue, named as Terraform names it."""
    from tasks import taskqueue

    taskqueue.client.cache_clear()
    url = taskqueue.client().create_queue(QueueName="task-scheduler-dev-hop")["QueueUrl"]
    settings.TASK_QUEUE_URL = url
    return url


def test_it_grants_the_web_role_exactly_what_the_api_and_dashboard_call(
    stack, recorder, settings, hop_queue
):
    password = "correct horse battery"
    dlq = stack.reference("aws_sqs_queue.scheduler_dlq.arn")
    settings.SCHEDULER_DLQ_ARN = dlq
    queues.queue_url.cache_clear()
    url = queues.client().create_queue(QueueName=dlq.rsplit(":", 1)[1])["QueueUrl"]
    for _ in range(3):
        queues.client().send_message(QueueUrl=url, MessageBody='{"task_id": "%s"}' % ("ab" * 16))
    with recorder.recording():
        # A task due within a minute or so goes to the hop queue directly.
        creation.task_create(**_webhook(), run_at=datetime.now(UTC) + timedelta(seconds=30))
        # API: every request authenticates its key; create (twice with one
        # Idempotency-Key), read, list in each order, cancel.
        key, raw = access.apikey_create(name="dashboard-made")
        access.apikey_authenticate(raw_key=raw)
        run_at = _later()
        task, _ = creation.task_create(**_webhook(), run_at=run_at, idempotency_key="k")
        again, created = creation.task_create(**_webhook(), run_at=run_at, idempotency_key="k")
        selectors.task_get(task_id=task.id)
        selectors.task_list()
        selectors.task_list(status="scheduled")
        selectors.task_list(order="due")
        # Dashboard: run now, cancel, retry, logins, keys.
        commands.task_run_now(task_id=task.id)
        commands.task_cancel(task_id=task.id)
        access.apikey_list()
        access.apikey_revoke(key_id=key.key_id)
        access.operator_create(username="ops", password=password)
        access.operator_authenticate(username="ops", password="wrong password")
    failed, _ = creation.task_create(**_webhook(), run_at=_later())
    Task(id=failed.id).update(actions=[Task.status.set(Status.FAILED)])
    with recorder.recording():
        commands.task_retry(task_id=failed.id)
        # Dead letters: list, replay one, discard one, replay the rest.
        letters = dead_letters.deadletter_list().items
        dead_letters.deadletter_replay(message_id=letters[0].id)
        dead_letters.deadletter_discard(message_id=letters[1].id)
        dead_letters.deadletter_replay_all()
        # Recurring schedules: create, read, list, change, pause, resume,
        # list the occurrences, delete.
        schedule = recurring.schedule_create(**_webhook(), cron="0 9 * * MON-FRI")
        selectors.schedule_get(schedule_id=schedule.id)
        selectors.schedule_list()
        recurring.schedule_update(schedule_id=schedule.id, changes={"rate": "5 minutes"})
        recurring.schedule_pause(schedule_id=schedule.id)
        recurring.schedule_resume(schedule_id=schedule.id)
        selectors.task_list(schedule_id=schedule.id)
        selectors.schedule_last_occurrences(schedule_ids=[schedule.id])
        recurring.schedule_delete(schedule_id=schedule.id)
    queues.queue_url.cache_clear()

    assert (again.id, created) == (task.id, False)
    assert selectors.task_get(task_id=task.id).status == "cancelled"
    assert selectors.task_get(task_id=failed.id).status == "scheduled"
    _assert_exactly(stack, "web", recorder.calls)


def test_it_grants_the_executor_role_exactly_what_running_a_task_calls(
    stack, recorder, httpserver, settings, monkeypatch, hop_queue
):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    httpserver.expect_request("/ok").respond_with_data("ok")
    httpserver.expect_request("/down").respond_with_data("down", status=503)
    now = datetime.now(UTC)
    ok, _ = creation.task_create(**_webhook(httpserver.url_for("/ok")), run_at=now)
    down, _ = creation.task_create(**_webhook(httpserver.url_for("/down")), run_at=now)
    unlucky, _ = creation.task_create(**_webhook(httpserver.url_for("/down")), run_at=now)
    busy, _ = creation.task_create(**_webhook(httpserver.url_for("/ok")), run_at=now)
    assert running.task_claim(task_id=busy.id) is not None  # another invocation runs it
    every_minute = recurring.schedule_create(
        **_webhook(httpserver.url_for("/ok")), cron="* * * * *"
    )
    occurrence = {
        "command": "tasks.executor.run_task",
        "schedule_id": every_minute.id,
        "scheduled_time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }

    settings.TASK_RETRY_BASE_SECONDS = 600  # a retry far enough ahead for a schedule
    early = {"task_id": ok.id, "due_at": (now + timedelta(seconds=100)).isoformat()}
    with recorder.recording():
        assert run_task(early)["result"] == "queued"  # the hop: an SQS message
        assert run_task({"task_id": ok.id})["result"] == "completed"
        assert run_task({"task_id": ok.id})["result"] == "skipped"  # a duplicate delivery
        assert run_task({"task_id": down.id})["result"] == "scheduled"  # a retry, a new schedule
        with pytest.raises(ExecutorError):  # found running: read, then failed for a retry
            run_task({"task_id": busy.id})
        # A recurring schedule's occurrence: read the schedule, put the task, run it.
        assert run_task(occurrence)["result"] == "completed"

    def unavailable(**kwargs):
        raise scheduler.SchedulerError("ThrottlingException: slow down")

    def queue_unavailable(**kwargs):
        raise taskqueue.QueueError("ThrottlingException: slow down")

    from tasks import taskqueue

    real_create = scheduler.schedule_create
    monkeypatch.setattr(scheduler, "schedule_create", unavailable)
    monkeypatch.setattr(taskqueue, "task_enqueue", queue_unavailable)  # a retry due soon
    with recorder.recording():  # the retry cannot be scheduled: recorded as failed
        assert run_task({"task_id": unlucky.id})["result"] == "failed"
    monkeypatch.setattr(scheduler, "schedule_create", real_create)
    monkeypatch.setattr(reconcile_service, "GRACE_SECONDS", 0)  # all of it is seconds old

    # Reconcile, every 5 minutes: a lost schedule made again, an orphan
    # deleted (after a consistent read of its task), the stuck listed.
    soon = datetime.now(UTC) + timedelta(minutes=5)  # in the rate schedule's window
    lost, _ = creation.task_create(**_webhook(), run_at=soon)
    scheduler.schedule_delete(name=lost.schedule_name)
    scheduler.schedule_create(name=f"{ok.id}-1", task_id=ok.id, when=_later())
    with recorder.recording():
        repaired = reconcile({"command": "tasks.executor.reconcile"})
    # (Under moto nothing fires: the schedules of the tasks run above are left too.)
    assert repaired["repaired"] == [lost.id] and f"{ok.id}-1" in repaired["orphansDeleted"]

    stored = {t.id: selectors.task_get(task_id=t.id).status for t in (ok, down, unlucky)}
    assert stored == {ok.id: "completed", down.id: "scheduled", unlucky.id: "failed"}
    _assert_exactly(stack, "executor", recorder.calls)


def test_it_scopes_what_aws_does_with_the_function_roles_to_their_own_function(stack):
    account = f"us-east-1:{stack.account}"
    for role, function in (
        ("web", "task-scheduler-dev"),
        ("executor", "task-scheduler-dev-executor"),
    ):
        statements = stack.policy_document(stack.role_policy_document(role))
        grants = {
            (a, r)
            for s in statements
            for a in s["actions"]
            if a.startswith(USED_BY_AWS_NOT_THE_CODE)
            for r in s["resources"]
        }
        log_streams = f"arn:aws:logs:{account}:log-group:/aws/lambda/{function}:*"
        expected = {("logs:CreateLogStream", log_streams), ("logs:PutLogEvents", log_streams)}
        hop = f"arn:aws:sqs:{account}:task-scheduler-dev-hop"
        if role == "web":  # the direct path of a task due within a minute or two
            expected |= {("sqs:SendMessage", hop)}
        else:  # Lambda sends what the executor failed to its dead-letter queue
            expected |= {
                ("sqs:SendMessage", f"arn:aws:sqs:{account}:task-scheduler-dev-scheduler-dlq")
            }
            expected |= {("sqs:SendMessage", hop)}  # the hop
        if role == "executor":  # the hop queue's event source, with this role
            statements_grants = {
                (a, r) for s in statements for a in s["actions"] for r in s["resources"]
            }
            assert statements_grants >= EVENT_SOURCE_GRANTS
        assert grants == expected, role
