from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings
from moto import mock_aws

from tasks import queues, scheduler
from tasks.models import MODELS
from tasks.services import access
from tests.factories import PASSWORD, log_in


def _reset_connections() -> None:
    # PynamoDB and our scheduler adapter cache their botocore clients; a new
    # mock needs new clients.
    for model in MODELS:
        model._connection = None
    scheduler.client.cache_clear()
    queues.client.cache_clear()
    queues.queue_url.cache_clear()


@pytest.fixture
def aws(settings):
    """moto in-process: the tables and the schedule group exist.

    botocore clients are kept from test to test: moto intercepts every client
    and starts each mock empty, and a new client costs ~0.5 s. Whatever points
    the clients elsewhere (a local server) calls _reset_connections() before
    and after."""
    with mock_aws():
        for model in MODELS:
            model.create_table(wait=True)
        scheduler.client().create_schedule_group(Name=settings.SCHEDULE_GROUP)
        yield


@pytest.fixture
def api_key(aws) -> str:
    _key, raw = access.apikey_create(name="tests")
    return raw


@pytest.fixture
def api(client, api_key):
    """Django's test client with the API key set."""

    class Api:
        headers = {"Authorization": f"Bearer {api_key}"}

        def post(self, path, body=None, **headers):
            return client.post(
                path, body, content_type="application/json", headers={**self.headers, **headers}
            )

        def get(self, path, **params):
            return client.get(path, params, headers=self.headers)

    return Api()


@pytest.fixture(scope="session")
def _collected_static(tmp_path_factory):
    """collectstatic into a temporary STATIC_ROOT, once: production settings
    serve static files from a manifest, which collectstatic writes."""
    root = tmp_path_factory.mktemp("staticfiles")
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", "--noinput", verbosity=0)
    return root


@pytest.fixture
def collected_static(_collected_static, settings):
    settings.STATIC_ROOT = _collected_static
    return _collected_static


@pytest.fixture(scope="session")
def httpserver_listen_address():
    """pytest-httpserver's receivers bind 127.0.0.1 only, on a free port."""
    return ("127.0.0.1", 0)


@pytest.fixture
def receiver(httpserver, settings):
    """A real HTTP server on 127.0.0.1 that webhooks may reach: the SSRF guard
    allows loopback only when private networks are allowed (local development)."""
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    return httpserver


@pytest.fixture(scope="session")
def aws_server():
    """The local AWS endpoint (tasks/localmode/awsserver.py) as a subprocess on
    127.0.0.1: moto's server handling one request at a time, so that each
    DynamoDB operation is atomic as on AWS (moto alone is not)."""
    from tasks.localmode.process import free_port

    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tasks.localmode.awsserver", "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first_line = process.stdout.readline()
    if not first_line.startswith("local AWS on"):
        process.kill()
        raise RuntimeError(f"the local AWS endpoint did not start: {first_line}")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def atomic_aws(aws_server, settings, monkeypatch):
    """Like `aws`, but against the local AWS endpoint over HTTP: for tests
    that race conditional writes."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_server)
    _reset_connections()
    for model in MODELS:
        if model.exists():
            model.delete_table()
        model.create_table(wait=True)
    client = scheduler.client()
    for group in client.list_schedule_groups()["ScheduleGroups"]:
        if group["Name"] == settings.SCHEDULE_GROUP:
            client.delete_schedule_group(Name=group["Name"])
    client.create_schedule_group(Name=settings.SCHEDULE_GROUP)
    yield aws_server
    _reset_connections()


@pytest.fixture
def no_backoff(settings):
    """Retries due at once, so a test can deliver the next attempt."""
    settings.TASK_RETRY_BASE_SECONDS = 0
    settings.TASK_RETRY_MAX_SECONDS = 0


@pytest.fixture
def operator(aws, settings, collected_static):
    # The fastest hasher: tests log in often; what is hashed is irrelevant here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return access.operator_create(username="alice", password=PASSWORD)


@pytest.fixture
def dash(client, operator):
    """A client with an operator session."""
    response = log_in(client)
    assert response.status_code == 302
    return client
