"""First-run setup of the local mode: tables, schedule group, a dev operator
and a dev API key, remembered in the data folder so restarts print the same
credentials."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

from tasks import scheduler
from tasks.models import Operator
from tasks.services import access

DEV_USERNAME = "admin"


def ensure_schedule_group() -> None:
    client = scheduler.client()
    try:
        client.get_schedule_group(Name=settings.SCHEDULE_GROUP)
    except client.exceptions.ResourceNotFoundException:
        client.create_schedule_group(Name=settings.SCHEDULE_GROUP)


def ensure_dead_letter_queue() -> None:
    """The local dead-letter queue (moto's SQS on the local endpoint)."""
    from tasks.localmode.deadletters import ensure_queue

    ensure_queue()


def ensure_credentials(data_dir: Path) -> dict:
    """The dev login and API key; created once, then read back."""
    path = data_dir / "credentials.json"
    creds = json.loads(path.read_text()) if path.exists() else {}
    username = creds.get("username", DEV_USERNAME)
    try:
        Operator.get(username)
    except Operator.DoesNotExist:
        creds["username"] = username
        creds["password"] = secrets.token_urlsafe(12)
        access.operator_create(username=username, password=creds["password"])
    key = creds.get("api_key")
    if not key or access.apikey_authenticate(raw_key=key) is None:
        _record, creds["api_key"] = access.apikey_create(name="local development")
    path.write_text(json.dumps(creds, indent=2))
    path.chmod(0o600)
    return creds


def bootstrap(data_dir: Path) -> dict:
    call_command("createtables", verbosity=0)
    ensure_schedule_group()
    ensure_dead_letter_queue()
    return ensure_credentials(data_dir)
