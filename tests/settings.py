"""Test settings: the production settings module, fed a test environment."""

from __future__ import annotations

import os

os.environ.update(
    {
        "DJANGO_SECRET_KEY": "test-secret-key",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "SCHEDULER_TABLE_PREFIX": "test",
        "SCHEDULER_GROUP_NAME": "test-group",
        "WEBHOOK_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

from scheduler_site.settings import *  # noqa: E402,F403
