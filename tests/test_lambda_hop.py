"""The hop through SQS and the function URL front door, in the packages
`make lambda` builds, run as Lambda runs them (tests/lambda_runtime.py).

The web function answers Lambda function URL events (no stage prefix); a
task due within a minute or two goes to the hop queue; the executor gets the
event Lambda's SQS event source delivers (Records with eventSource aws:sqs),
routed by Zappa's handler through the stage's `events` to
tasks.executor.run_queued, by the queue's name (the package cannot know the
account in the ARN). AWS is a moto server on 127.0.0.1; the webhook goes to a
real HTTP server on 127.0.0.1. Peak memory of each function is measured.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from standardwebhooks import Webhook

from tasks.localmode.sqsource import sqs_record
from tests import lambda_artifacts
from tests.lambda_artifacts import (
    SIGNING_SECRET,
    STAGE,
    LambdaProcess,
    built_packages,
    entry_point,
    header,
    lambda_env,
    response_body,
    response_json,
    runtime_dir,
    unpack,
)

pytestmark = pytest.mark.e2e

# Module-scoped fixtures shared with the other artifact tests (lambda_artifacts.py).
moto_endpoint = lambda_artifacts.moto_endpoint
receiver = lambda_artifacts.receiver

URL_HOST = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
QUEUE = f"task-scheduler-{STAGE}-hop"
GROUP = f"task-scheduler-{STAGE}"
ZAPPA_SETTINGS = json.loads((Path(__file__).parent.parent / "zappa_settings.json").read_text())


def url_event(method: str, path: str, *, headers: dict | None = None, body=None) -> dict:
    """A Lambda function URL event (payload v2): no stage in the path."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    cookies = headers.pop("cookie", "")
    headers = {"host": URL_HOST, "x-forwarded-proto": "https", "x-forwarded-port": "443", **headers}
    path, _, query = path.partition("?")
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        **({"cookies": cookies.split("; ")} if cookies else {}),
        "requestContext": {
            "accountId": "anonymous",
            "apiId": URL_HOST.split(".")[0],
            "domainName": URL_HOST,
            "domainPrefix": URL_HOST.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "hop-tests",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "body": json.dumps(body) if body is not None and not isinstance(body, str) else body,
        "isBase64Encoded": False,
    }


def env(function: str, endpoint: str, queue_url: str, **extra: str) -> dict[str, str]:
    return lambda_env(
        function,
        AWS_ENDPOINT_URL=endpoint,
        DJANGO_SECRET_KEY="hop-tests-secret-key-" + "x" * 30,
        DJANGO_ALLOWED_HOSTS=".lambda-url.us-east-1.on.aws",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://*.lambda-url.us-east-1.on.aws",
        CORS_ALLOWED_ORIGINS="https://app.example.com",
        EXECUTOR_FUNCTION_ARN=f"arn:aws:lambda:us-east-1:123456789012:function:{GROUP}-executor",
        SCHEDULER_ROLE_ARN=f"arn:aws:iam::123456789012:role/{GROUP}-scheduler",
        TASK_QUEUE_URL=queue_url,
        WEBHOOK_SIGNING_SECRET=SIGNING_SECRET,
        **extra,
    )


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> tuple[Path, Path]:
    web, executor = built_packages()
    root = tmp_path_factory.mktemp("lambda-hop")
    return unpack(web, root / "web"), unpack(executor, root / "executor")


def client(service: str, endpoint: str):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def sqs(moto_endpoint):
    return client("sqs", moto_endpoint)


@pytest.fixture(scope="module")
def queue(sqs) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return url, arn["QueueArn"]


@pytest.fixture(scope="module")
def web(packages, moto_endpoint, queue):
    variables = env(GROUP, moto_endpoint, queue[0], WEBHOOK_ALLOW_PRIVATE_NETWORKS="true")
    with LambdaProcess(packages[0], runtime_dir(), variables, entry=entry_point(STAGE)) as process:
        assert process.invoke({"manage": "createtables"}) == {}
        client("scheduler", moto_endpoint).create_schedule_group(Name=GROUP)
        yield process


@pytest.fixture(scope="module")
def executor(packages, moto_endpoint, queue, web):
    variables = env(
        f"{GROUP}-executor", moto_endpoint, queue[0], WEBHOOK_ALLOW_PRIVATE_NETWORKS="true"
    )
    entry = entry_point(f"{STAGE}_executor")
    with LambdaProcess(packages[1], runtime_dir(), variables, entry=entry) as process:
        yield process


@pytest.fixture(scope="module")
def api_key(web) -> str:
    return web.run(
        "from tasks.services import access\nresult = access.apikey_create(name='hop')[1]"
    )


def create(web, api_key: str, url: str, run_at: datetime) -> dict:
    response = web.invoke(
        url_event(
            "POST",
            "/api/tasks",
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            body={
                "action": "webhook",
                "payload": {"url": url, "data": {"hop": True}},
                "runAt": run_at.isoformat(timespec="milliseconds"),
            },
        )
    )
    assert response["statusCode"] == 201, response_body(response)
    return response_json(response)


def receive(sqs, queue_url: str, timeout: float = 10.0) -> dict:
    """The next message, as the event source receives it (delays honoured)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MessageSystemAttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
        if messages:
            return messages[0]
    raise AssertionError("no message in the hop queue")


def peak_rss_mib(process: LambdaProcess) -> float:
    """The function's peak resident memory: /proc's VmHWM, the high-water
    mark of the running program. Not getrusage's ru_maxrss: Linux carries
    that over from before exec, so a process started from pytest reports
    pytest's own peak (124 to 201 MiB, depending on what ran before)."""
    code = "result = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')]"
    [line] = process.run(code)
    return int(line.split()[1]) / 1024


def test_it_runs_a_task_through_the_hop_queue_with_the_sqs_event_shape(
    web, executor, api_key, sqs, queue, receiver
):
    receiver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    run_at = datetime.now(UTC) + timedelta(seconds=4)
    task = create(web, api_key, receiver.url_for("/hook"), run_at)
    assert task["status"] == "scheduled"

    # Due within a minute: straight to the queue, delayed, no schedule.
    message = receive(sqs, queue[0])
    assert json.loads(message["Body"]) == {
        "task_id": task["id"],
        "due_at": datetime.fromisoformat(task["runAt"]).isoformat(timespec="milliseconds"),
    }
    # Visible within the second that starts TASK_HOP_LEAD_SECONDS (0.75 s)
    # before the due time: at most 0.25 s after it (and a poll's latency).
    assert time.time() < run_at.timestamp() + 0.25 + 0.5
    # The queue's ARN names moto's account; the package's settings a
    # placeholder one: Zappa's handler finds run_queued by the queue's name.
    event = {"Records": [sqs_record(message, queue[1], "us-east-1")]}
    assert event["Records"][0]["eventSource"] == "aws:sqs"
    assert executor.invoke(event) == [{"taskId": task["id"], "result": "completed"}]

    [(request, _response)] = receiver.log
    Webhook(SIGNING_SECRET).verify(request.get_data(), dict(request.headers))
    assert request.headers["webhook-id"] == task["id"]
    stored = executor.run(
        f"from tasks.selectors import task_get\nresult = task_get(task_id='{task['id']}').status"
    )
    assert stored == "completed"
    # A duplicate delivery (SQS is at least once) changes nothing.
    assert executor.invoke(event) == [{"taskId": task["id"], "result": "skipped"}]
    assert len(receiver.log) == 1


def test_it_hops_an_early_schedule_delivery_to_the_queue_unclaimed(
    web, executor, api_key, sqs, queue, receiver
):
    # Far enough ahead for a schedule: the minute before the due minute.
    run_at = (datetime.now(UTC) + timedelta(minutes=10)).replace(second=37, microsecond=0)
    task = create(web, api_key, "https://example.com/hook", run_at)
    scheduler = client("scheduler", sqs.meta.endpoint_url)
    [summary] = [
        s
        for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"]
        if s["Name"].startswith(task["id"])
    ]
    schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=GROUP)
    fire = run_at.replace(second=0) - timedelta(minutes=1)
    assert schedule["ScheduleExpression"] == f"at({fire:%Y-%m-%dT%H:%M:%S})"
    payload = json.loads(schedule["Target"]["Input"])
    assert datetime.fromisoformat(payload["due_at"]) == run_at

    # EventBridge fires it (here: now, whatever second): the executor sends it
    # on with a delay and leaves the task scheduled, so still cancellable.
    assert executor.invoke(payload) == {"taskId": task["id"], "result": "queued"}
    status = executor.run(
        f"from tasks.selectors import task_get\nresult = task_get(task_id='{task['id']}').status"
    )
    assert status == "scheduled"
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue[0], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessagesDelayed"]) >= 1


def test_it_serves_the_dashboard_and_static_files_at_a_function_url_without_a_prefix(web, packages):
    response = web.invoke(url_event("GET", "/"))
    assert response["statusCode"] == 302
    assert header(response, "Location").startswith("/login/")
    page = web.invoke(url_event("GET", "/login/"))
    assert page["statusCode"] == 200
    html = response_body(page).decode()
    assert 'action="/login/"' in html
    urls = sorted(set(re.findall(r'(?:src|href)="(/static/[^"]+)"', html)))
    assert len(urls) >= 3
    for url in urls:
        asset = web.invoke(url_event("GET", url))
        assert asset["statusCode"] == 200, url
        relative = url.removeprefix("/static/")
        assert response_body(asset) == (packages[0] / "staticfiles" / relative).read_bytes()
    schema = response_json(web.invoke(url_event("GET", "/api/openapi.json")))
    assert "/api/tasks" in schema["paths"]


def test_it_answers_a_cors_preflight_for_an_allowed_origin_at_the_function_url(web):
    preflight = url_event(
        "OPTIONS",
        "/api/tasks",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    response = web.invoke(preflight)
    assert response["statusCode"] == 200
    assert header(response, "Access-Control-Allow-Origin") == "https://app.example.com"
    preflight["headers"]["origin"] = "https://evil.example"
    assert header(web.invoke(preflight), "Access-Control-Allow-Origin") is None


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/api/schedules/abc"),
        ("PATCH", "/api/schedules/abc"),
        ("DELETE", "/api/dead-letters/abc"),
    ],
)
def test_it_allows_delete_and_patch_in_a_preflight_at_the_function_url(web, method, path):
    """The function URL leaves preflights to the app (its own cors is off)."""
    preflight = url_event(
        "OPTIONS",
        path,
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    response = web.invoke(preflight)
    assert response["statusCode"] == 200
    assert header(response, "Access-Control-Allow-Origin") == "https://app.example.com"
    allowed = {m.strip() for m in header(response, "Access-Control-Allow-Methods").split(",")}
    assert method in allowed


def test_it_fits_each_function_in_its_configured_memory(web, executor):
    """Peak RSS after the invocations above (the module's tests run first):
    the configured memory_size leaves room above it."""
    web_mib, executor_mib = peak_rss_mib(web), peak_rss_mib(executor)
    print(f"\npeak RSS: web {web_mib:.0f} MiB, executor {executor_mib:.0f} MiB")
    web_memory = ZAPPA_SETTINGS[STAGE]["memory_size"]
    executor_memory = ZAPPA_SETTINGS[f"{STAGE}_executor"]["memory_size"]
    assert web_mib < 0.8 * web_memory
    assert executor_mib < 0.8 * executor_memory
