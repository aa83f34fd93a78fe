"""Settings come from the environment only, with safe production defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOW = """
import json
from scheduler_site import settings as s
print(json.dumps({
    "DEBUG": s.DEBUG, "DATABASES": s.DATABASES, "TASKS_TABLE": s.TASKS_TABLE,
    "API_KEYS_TABLE": s.API_KEYS_TABLE, "SCHEDULE_GROUP": s.SCHEDULE_GROUP,
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": s.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
    "WEBHOOK_TIMEOUT_SECONDS": s.WEBHOOK_TIMEOUT_SECONDS,
    "WEBHOOK_SIGNING_SECRET": s.WEBHOOK_SIGNING_SECRET,
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "TASK_MAX_PAYLOAD_BYTES": s.TASK_MAX_PAYLOAD_BYTES,
}))
"""


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the production settings module in a fresh process whose
    environment holds only `env` (and what Python needs to run)."""
    base = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_for(**env: str) -> dict:
    result = load_settings(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_it_has_safe_production_defaults():
    values = settings_for(DJANGO_SECRET_KEY="k")
    assert values["DEBUG"] is False
    assert values["WEBHOOK_ALLOW_PRIVATE_NETWORKS"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["WEBHOOK_TIMEOUT_SECONDS"] == 10.0
    # No fixed signing secret in production: the executor refuses to run
    # without one.
    assert values["WEBHOOK_SIGNING_SECRET"] == ""
    # No SQL database: a Lambda has no disk to keep one on.
    assert values["DATABASES"] == {}
    assert values["TASK_MAX_PAYLOAD_BYTES"] < 400_000


def test_it_requires_a_secret_key_in_production():
    result = load_settings()
    assert result.returncode != 0
    assert "environment variable DJANGO_SECRET_KEY is required" in result.stderr


def test_it_names_tables_and_the_schedule_group_per_stage():
    values = settings_for(
        DJANGO_SECRET_KEY="k", SCHEDULER_TABLE_PREFIX="scheduler-prod", SCHEDULER_GROUP_NAME="prod"
    )
    assert values["TASKS_TABLE"] == "scheduler-prod-tasks"
    assert values["API_KEYS_TABLE"] == "scheduler-prod-api-keys"
    assert values["SCHEDULE_GROUP"] == "prod"
    values = settings_for(DJANGO_SECRET_KEY="k", TASKS_TABLE="custom-tasks")
    assert values["TASKS_TABLE"] == "custom-tasks"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_DEBUG", "maybe", "DJANGO_DEBUG must be true or false, not 'maybe'"),
        ("TASK_MAX_PAYLOAD_BYTES", "lots", "TASK_MAX_PAYLOAD_BYTES must be an integer"),
        ("TASK_MAX_PAYLOAD_BYTES", "10", "TASK_MAX_PAYLOAD_BYTES must be at least 1024"),
        ("WEBHOOK_TIMEOUT_SECONDS", "0", "WEBHOOK_TIMEOUT_SECONDS must be at least 0.1"),
        ("TASK_CLAIM_EARLY_SECONDS", "31", "TASK_CLAIM_EARLY_SECONDS must be at most 30, not 31"),
    ],
)
def test_it_fails_loudly_on_a_bad_value(name, value, message):
    result = load_settings(DJANGO_SECRET_KEY="k", **{name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_it_turns_debug_on_only_when_asked():
    assert settings_for(DJANGO_SECRET_KEY="k", DJANGO_DEBUG="true")["DEBUG"] is True
    assert settings_for(DJANGO_SECRET_KEY="k", DJANGO_DEBUG="0")["DEBUG"] is False


@pytest.mark.parametrize("env", [{"SCHEDULER_LOCAL_MODE": "true"}, {"DJANGO_DEBUG": "true"}])
def test_it_serves_static_files_without_collectstatic_in_the_local_mode(env):
    # `make run` never runs collectstatic: /api/docs must still find its assets.
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'scheduler_site.settings'; "
        "django.setup(); from django.templatetags.static import static; "
        "print(static('ninja/swagger-ui.css'))"
    )
    base = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/static/ninja/swagger-ui.css"
