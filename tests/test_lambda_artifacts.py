"""The packages `make lambda` builds, run as Lambda runs them.

Each package is unzipped into a temporary folder and its Zappa handler runs in
a fresh `python -I -S -B` process that sees the package, a stand-in for the
runtime's boto3/botocore, and the standard library (tests/lambda_runtime.py). The
events are the shapes API Gateway and EventBridge Scheduler send; AWS is a
moto server on 127.0.0.1 reached over HTTP; webhooks go to a real HTTP server
on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import boto3
import pytest
from standardwebhooks import Webhook

from tests import lambda_artifacts
from tests.lambda_artifacts import (
    API_HOST,
    SIGNING_SECRET,
    STAGE,
    VENV,
    LambdaProcess,
    PackageError,
    PackageStats,
    built_packages,
    check_extensions,
    check_size,
    create_task_event,
    entry_point,
    function_env,
    header,
    http_event,
    response_body,
    response_json,
    rest_event,
    runtime_dir,
    set_cookies,
    unpack,
)

pytestmark = pytest.mark.e2e

# Module-scoped fixtures shared with the other artifact tests (lambda_artifacts.py).
moto_endpoint = lambda_artifacts.moto_endpoint
receiver = lambda_artifacts.receiver

EVENTS = {"rest-v1": rest_event, "http-v2": http_event}
GROUP = f"task-scheduler-{STAGE}"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def zips() -> tuple[Path, Path]:
    return built_packages()


@pytest.fixture(scope="module")
def packages(zips, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lambda")
    return unpack(zips[0], root / "web"), unpack(zips[1], root / "executor")


@pytest.fixture(scope="module")
def scheduler(moto_endpoint):
    return boto3.client(
        "scheduler",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def web(packages, moto_endpoint, scheduler):
    """One warm web execution environment for the module; the tables are made
    through Zappa's own `manage` route, as `zappa manage dev createtables` would."""
    env = function_env(
        f"task-scheduler-{STAGE}", moto_endpoint, WEBHOOK_ALLOW_PRIVATE_NETWORKS="true"
    )
    with LambdaProcess(packages[0], runtime_dir(), env, entry=entry_point(STAGE)) as process:
        assert process.invoke({"manage": "createtables"}) == {}
        scheduler.create_schedule_group(Name=GROUP)
        yield process


@pytest.fixture(scope="module")
def api_key(web) -> str:
    return web.run(
        "from tasks.services import access\nresult = access.apikey_create(name='artifacts')[1]"
    )


def executor_process(packages, moto_endpoint) -> LambdaProcess:
    env = function_env(
        f"task-scheduler-{STAGE}-executor",
        moto_endpoint,
        WEBHOOK_SIGNING_SECRET=SIGNING_SECRET,
        # The receiver is on 127.0.0.1; production leaves this off.
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
    )
    return LambdaProcess(packages[1], runtime_dir(), env, entry=entry_point(f"{STAGE}_executor"))


@pytest.fixture(scope="module")
def executor(packages, moto_endpoint, web):
    with executor_process(packages, moto_endpoint) as process:
        yield process


def create_task(web, api_key, *, url: str, run_at: datetime, data=None, event=rest_event) -> dict:
    response = web.invoke(
        create_task_event(
            api_key, url=url, run_at=run_at, data=data or {"hello": "lambda"}, event=event
        )
    )
    assert response["statusCode"] == 201, response_body(response)
    return response_json(response)


def get_task(web, api_key, task_id: str, event=rest_event) -> dict:
    response = web.invoke(
        event("GET", f"/api/tasks/{task_id}", headers={"Authorization": f"Bearer {api_key}"})
    )
    assert response["statusCode"] == 200, response_body(response)
    return response_json(response)


def schedule_input(scheduler, task_id: str) -> dict:
    """The Input EventBridge Scheduler will send, read back from the schedule
    the scheduler adapter wrote."""
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"]]
    (name,) = [n for n in names if n.startswith(task_id)]
    schedule = scheduler.get_schedule(Name=name, GroupName=GROUP)
    return json.loads(schedule["Target"]["Input"])


# --- the packages -------------------------------------------------------------------


def test_it_builds_both_packages_lean_and_with_bytecode_lambda_can_use(zips):
    for path in zips:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            unzipped = sum(i.file_size for i in archive.infolist())
            settings = archive.read("zappa_settings.py").decode()
            pyc = archive.read("tasks/__pycache__/executor.cpython-313.pyc")
        assert unzipped < 100 * MIB
        tops = {n.split("/")[0] for n in names}
        # The runtime has boto3/botocore; test tools and the CLI's deps never ship.
        assert not tops & {"boto3", "botocore", "moto", "pytest", "troposphere", "pip", "tests"}
        assert {"handler.py", "django", "tasks", "scheduler_site", "zappa"} <= tops
        assert "staticfiles/staticfiles.json" in names
        # Flags word of the .pyc header: 0b01 = hash-based, source not checked.
        assert int.from_bytes(pyc[4:8], "little") == 0b01
        assert "SECRET" not in settings  # secrets are set on the function, never baked in
    web_settings = zipfile.ZipFile(zips[0]).read("zappa_settings.py").decode()
    executor_settings = zipfile.ZipFile(zips[1]).read("zappa_settings.py").decode()
    assert f"API_STAGE='{STAGE}'" in web_settings
    assert "DJANGO_SETTINGS='scheduler_site.settings'" in web_settings
    assert f"API_STAGE='{STAGE}_executor'" in executor_settings
    # The executor needs Django's settings, not its WSGI application (cold start).
    assert "DJANGO_SETTINGS=None" in executor_settings
    assert "'DJANGO_SETTINGS_MODULE': 'scheduler_site.settings'" in executor_settings


def test_it_refuses_an_extension_that_needs_a_newer_glibc_or_another_cpu(zips, tmp_path):
    # A real extension from the build virtualenv (pydantic-core's).
    (extension,) = (VENV / "lib" / "python3.13" / "site-packages" / "pydantic_core").glob("*.so")
    copy = tmp_path / "pkg" / extension.name
    copy.parent.mkdir()
    shutil.copy(extension, copy)
    assert check_extensions(tmp_path) == [copy]  # fine on Amazon Linux 2023's glibc 2.34
    with pytest.raises(
        PackageError,
        match=rf"pkg/{re.escape(extension.name)}: needs GLIBC_2\.\d+, the runtime has 2\.1",
    ):
        check_extensions(tmp_path, max_glibc=(2, 1))
    with pytest.raises(PackageError, match="built for EM_X86_64, Lambda runs EM_AARCH64"):
        check_extensions(tmp_path, architecture="arm64")


def test_it_refuses_a_package_over_the_size_limit(tmp_path):
    package = PackageStats(tmp_path / "big.zip", 40 * MIB, 100 * MIB + 1, 5000)
    with pytest.raises(
        PackageError, match=r"big.zip is 100.0 MiB unzipped; the limit is 100.0 MiB"
    ):
        check_size(package)
    check_size(PackageStats(tmp_path / "ok.zip", 40 * MIB, 100 * MIB, 5000))


# --- the web function ---------------------------------------------------------------


@pytest.mark.parametrize("kind", EVENTS)
def test_it_serves_the_openapi_schema_with_the_stage_prefix(web, kind):
    response = web.invoke(EVENTS[kind]("GET", "/api/openapi.json"))
    assert response["statusCode"] == 200
    assert header(response, "Content-Type").startswith("application/json")
    schema = response_json(response)
    assert schema["info"]["title"] == "Task Scheduler API"
    # Django saw SCRIPT_NAME=/dev, so the documented paths are the public ones.
    assert f"/{STAGE}/api/tasks" in schema["paths"]


@pytest.mark.parametrize("kind", EVENTS)
def test_it_creates_a_task_with_an_api_key_and_reads_it_back(web, api_key, scheduler, kind):
    event = EVENTS[kind]
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    created = create_task(web, api_key, url="https://example.com/hook", run_at=run_at, event=event)
    assert created["status"] == "scheduled"

    fetched = get_task(web, api_key, created["id"], event=event)
    assert fetched["id"] == created["id"]
    assert fetched["status"] == "scheduled"
    assert fetched["payload"]["url"] == "https://example.com/hook"
    assert fetched["attemptHistory"] == []

    # Stored state: one schedule that will invoke the executor function.
    schedule = schedule_input(scheduler, created["id"])
    assert schedule["command"] == "tasks.executor.run_task"  # Zappa's command route
    assert schedule["task_id"] == created["id"]
    assert datetime.fromisoformat(schedule["due_at"]) == run_at


@pytest.mark.parametrize("kind", EVENTS)
def test_it_refuses_a_host_it_does_not_serve(web, kind):
    response = web.invoke(
        EVENTS[kind]("GET", "/api/openapi.json", headers={"Host": "evil.example"})
    )
    assert response["statusCode"] == 400


@pytest.mark.parametrize("kind", EVENTS)
def test_it_refuses_the_api_without_a_key(web, kind):
    response = web.invoke(EVENTS[kind]("GET", "/api/tasks/01J0000000000000000000000"))
    assert response["statusCode"] == 401


@pytest.mark.parametrize("kind", EVENTS)
def test_it_serves_the_api_docs_with_links_and_assets_under_the_stage(web, packages, kind):
    response = web.invoke(EVENTS[kind]("GET", "/api/docs"))
    assert response["statusCode"] == 200
    html = response_body(response).decode()
    assert f'"/{STAGE}/api/openapi.json"' in html  # swagger's settings
    # Third-party {% static %} tags too (scheduler_site/storage.py).
    assert len(assert_static_urls_resolve(web, packages, EVENTS[kind], html)) >= 2


def assert_static_urls_resolve(web, packages, event, html: str) -> list[str]:
    """Every /dev/static/... URL in the page: a hashed name, served through the
    same handler, byte for byte."""
    urls = sorted(set(re.findall(rf'(?:src|href)="(/{STAGE}/static/[^"]+)"', html)))
    manifest = json.loads((packages[0] / "staticfiles" / "staticfiles.json").read_text())
    for url in urls:
        relative = url.removeprefix(f"/{STAGE}/static/")
        assert relative in manifest["paths"].values()  # a hashed, cacheable name
        # The event builders add the stage where API Gateway puts it.
        asset = web.invoke(event("GET", url.removeprefix(f"/{STAGE}")))
        assert asset["statusCode"] == 200, url
        assert response_body(asset) == (packages[0] / "staticfiles" / relative).read_bytes()
        assert "immutable" in header(asset, "Cache-Control")
    return urls


@pytest.mark.parametrize("kind", EVENTS)
def test_it_logs_in_to_the_dashboard_with_links_and_assets_under_the_stage(web, packages, kind):
    event = EVENTS[kind]
    password = "correct horse battery staple"
    web.run(
        "from tasks.services import access\n"
        f"access.operator_create(username='ops-{kind}', password='{password}')"
    )
    # Not logged in: sent to the login page, under the stage.
    response = web.invoke(event("GET", "/"))
    assert response["statusCode"] == 302
    assert header(response, "Location").startswith(f"/{STAGE}/login/")

    page = web.invoke(event("GET", "/login/"))
    assert page["statusCode"] == 200
    html = response_body(page).decode()
    assert f'action="/{STAGE}/login/"' in html
    assert len(assert_static_urls_resolve(web, packages, event, html)) >= 3
    cookies = set_cookies(page)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    form = urlencode(
        {"csrfmiddlewaretoken": token, "username": f"ops-{kind}", "password": password, "next": ""}
    )
    response = web.invoke(
        event(
            "POST",
            "/login/",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": f"https://{API_HOST}",
                "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            },
            body=form,
        )
    )
    assert response["statusCode"] == 302, response_body(response)[:500]
    assert header(response, "Location") == f"/{STAGE}/"
    cookies |= set_cookies(response)
    assert "sessionid" in cookies

    listing = web.invoke(
        event("GET", "/", headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())})
    )
    assert listing["statusCode"] == 200
    html = response_body(listing).decode()
    assert f'href="/{STAGE}/tasks/new/"' in html
    assert_static_urls_resolve(web, packages, event, html)


def test_it_serves_static_files_compressed_when_the_client_accepts_gzip(web, packages):
    manifest = json.loads((packages[0] / "staticfiles" / "staticfiles.json").read_text())
    css = manifest["paths"]["ninja/swagger-ui.css"]
    response = web.invoke(rest_event("GET", f"/static/{css}", headers={"Accept-Encoding": "gzip"}))
    assert response["statusCode"] == 200
    assert header(response, "Content-Encoding") == "gzip"
    assert response["isBase64Encoded"] is True  # API Gateway's binary support
    expected = (packages[0] / "staticfiles" / css).read_bytes()
    assert gzip.decompress(response_body(response)) == expected


# --- the executor function ----------------------------------------------------------


def test_it_runs_a_task_from_the_input_its_schedule_carries(
    web, api_key, executor, scheduler, receiver
):
    receiver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    task = create_task(
        web, api_key, url=receiver.url_for("/hook"), run_at=datetime.now(UTC), data={"n": 1}
    )
    event = schedule_input(scheduler, task["id"])

    result = executor.invoke(event)

    assert result == {"taskId": task["id"], "result": "completed"}
    assert len(receiver.log) == 1
    request, _response = receiver.log[0]
    assert json.loads(request.get_data()) == {"n": 1}
    Webhook(SIGNING_SECRET).verify(request.get_data(), dict(request.headers))
    stored = get_task(web, api_key, task["id"], event=http_event)
    assert stored["status"] == "completed"
    assert stored["attempts"] == 1
    assert stored["attemptHistory"][0]["httpStatus"] == 200

    # EventBridge delivers at least once: a duplicate changes nothing.
    assert executor.invoke(event) == {"taskId": task["id"], "result": "skipped"}
    assert len(receiver.log) == 1
    receiver.clear()


def test_it_schedules_a_retry_from_the_executor_when_the_webhook_fails(
    web, api_key, executor, scheduler, receiver
):
    receiver.expect_oneshot_request("/flaky", method="POST").respond_with_data("busy", status=503)
    task = create_task(web, api_key, url=receiver.url_for("/flaky"), run_at=datetime.now(UTC))
    first = schedule_input(scheduler, task["id"])
    names_before = {s["Name"] for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"]}

    assert executor.invoke(first) == {"taskId": task["id"], "result": "scheduled"}

    stored = get_task(web, api_key, task["id"])
    assert stored["status"] == "scheduled"
    assert stored["attempts"] == 1
    assert stored["attemptHistory"][0]["httpStatus"] == 503
    # The executor made the retry's schedule itself (boto3 from the runtime).
    new = {s["Name"] for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"]} - names_before
    assert [n for n in new if n.startswith(task["id"])], new
    receiver.clear()


PROBE = """
import sys, types
probe = types.ModuleType("artifact_probe")
probe.calls = 0
def run(event, context=None):
    probe.calls += 1
    raise TypeError("a bug inside the function")
probe.run = run
sys.modules["artifact_probe"] = probe
"""


def test_it_shows_why_zappa_commands_must_not_raise_type_error(packages, moto_endpoint):
    """Zappa's command route retries f(event, context) as f(event) (then f()) on
    a TypeError, whatever raised it: a function shaped like run_task that raises
    one runs twice."""
    with executor_process(packages, moto_endpoint) as process:
        process.run(PROBE)
        reply = process.request({"event": {"command": "artifact_probe.run"}})
        assert reply.get("error") == "RuntimeError", reply
        assert process.run("import artifact_probe\nresult = artifact_probe.calls") == 2


FAIL_WHILE_RECORDING = """
import builtins
from tasks.services import running
calls = {"claim": 0, "record": 0}
real_claim, real_update = running.task_claim, running.conditional_update
def task_claim(**kwargs):
    calls["claim"] += 1
    return real_claim(**kwargs)
def conditional_update(*args, read_back=True, **kwargs):
    if read_back:
        return real_update(*args, read_back=read_back, **kwargs)
    calls["record"] += 1  # the write that records the attempt
    raise TypeError("a bug while recording the attempt")
running.task_claim, running.conditional_update = task_claim, conditional_update
builtins.artifact_calls = calls
"""


def test_it_never_runs_a_task_twice_when_the_executor_raises_type_error(
    web, api_key, packages, moto_endpoint, scheduler, receiver
):
    receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    task = create_task(web, api_key, url=receiver.url_for("/hook"), run_at=datetime.now(UTC))
    event = schedule_input(scheduler, task["id"])

    with executor_process(packages, moto_endpoint) as process:
        process.run(FAIL_WHILE_RECORDING)
        reply = process.request({"event": event})
        calls = process.run("result = artifact_calls")

    # The invocation fails (so Lambda retries it, then the dead-letter
    # queue gets it) instead of Zappa calling run_task again.
    assert reply.get("error") == "ExecutorError", reply
    assert calls == {"claim": 1, "record": 1}
    assert len(receiver.log) == 1
    stored = get_task(web, api_key, task["id"])
    assert stored["status"] == "running"
    assert stored["attempts"] == 1
    receiver.clear()
