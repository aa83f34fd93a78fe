"""Management commands: createtables, createapikey, revokeapikey, listapikeys."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tasks.models import MODELS, ApiKey, Task
from tasks.services import access

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def manage(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    """`python manage.py ...` as a user runs it, with production settings,
    against the local AWS endpoint and the tests' table names."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "SCHEDULER_LOCAL_MODE", "DJANGO_DEBUG")
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "DJANGO_SECRET_KEY": "commands-test",
            "SCHEDULER_TABLE_PREFIX": "test",
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def no_tables(settings):
    from moto import mock_aws

    with mock_aws():
        yield


def test_it_creates_the_tables_and_is_safe_to_run_again(no_tables, settings):
    first = run("createtables")
    assert first.splitlines() == [
        f"{settings.TASKS_TABLE}: created",
        f"{settings.API_KEYS_TABLE}: created",
        f"{settings.OPERATORS_TABLE}: created",
        f"{settings.SCHEDULES_TABLE}: created",
    ]
    assert all(model.exists() for model in MODELS)
    indexes = {
        index["IndexName"]
        for index in Task._get_connection().describe_table()["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "due-due_at-index",
        "listing-created_at-index",
        "schedule_id-occurrence_at-index",
    }
    _record, _raw = access.apikey_create(name="kept")

    second = run("createtables")
    assert second.splitlines() == [
        f"{settings.TASKS_TABLE}: exists",
        f"{settings.API_KEYS_TABLE}: exists",
        f"{settings.OPERATORS_TABLE}: exists",
        f"{settings.SCHEDULES_TABLE}: exists",
    ]
    assert [key.name for key in ApiKey.scan()] == ["kept"]


def test_it_prints_a_new_api_key_as_the_last_line_and_the_key_works(aws, client):
    output = run("createapikey", "billing service")
    key = output.splitlines()[-1]
    assert key.startswith("tsk_")
    response = client.get("/api/tasks", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    [record] = ApiKey.scan()
    assert record.name == "billing service"
    assert key not in str(record.attribute_values)


def test_it_revokes_a_key_so_it_no_longer_authenticates(aws, client):
    key = run("createapikey", "old").splitlines()[-1]
    record = access.apikey_authenticate(raw_key=key)
    output = run("revokeapikey", record.key_id)
    assert output.strip() == f"revoked {record.key_id} (old)"
    response = client.get("/api/tasks", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    assert ApiKey.get(record.key_hash).revoked_at is not None
    assert "revoked" in run("listapikeys")


def test_it_revokes_by_name_or_prefix_and_refuses_an_ambiguous_one(aws):
    _a, key_a = access.apikey_create(name="twin")
    _b, key_b = access.apikey_create(name="twin")
    with pytest.raises(CommandError, match="matches 2 keys"):
        run("revokeapikey", "twin")
    with pytest.raises(CommandError, match="no API key 'nobody'"):
        run("revokeapikey", "nobody")
    run("revokeapikey", key_a[:10])
    assert access.apikey_authenticate(raw_key=key_a) is None
    assert access.apikey_authenticate(raw_key=key_b) is not None


def test_it_refuses_an_empty_key_name(aws):
    with pytest.raises(CommandError, match="1 to 100 characters"):
        run("createapikey", "  ")
    assert list(ApiKey.scan()) == []


def test_it_lists_keys_without_showing_them(aws):
    _record, key = access.apikey_create(name="ci")
    listing = run("listapikeys")
    assert "ci" in listing
    assert key not in listing
    assert key[:10] in listing


@pytest.mark.e2e
def test_its_commands_work_from_the_shell(atomic_aws, client):
    # As a user runs them: separate processes, production settings, over
    # HTTP to the local AWS endpoint; this test's app shares the endpoint.
    for model in MODELS:
        model.delete_table()
    created = manage(atomic_aws, "createtables")
    assert created.returncode == 0, created.stderr
    assert created.stdout.count(": created") == 4
    again = manage(atomic_aws, "createtables")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(": exists") == 4

    made = manage(atomic_aws, "createapikey", "shell user")
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[-1]
    authorization = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/tasks", headers=authorization).status_code == 200

    revoked = manage(atomic_aws, "revokeapikey", "shell user")
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/api/tasks", headers=authorization).status_code == 401

    unknown = manage(atomic_aws, "revokeapikey", "nobody")
    assert unknown.returncode != 0
    assert "no API key 'nobody'" in unknown.stderr
