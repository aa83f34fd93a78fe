from __future__ import annotations

import pytest
from moto import mock_aws

from tasks import access, scheduler
from tasks.models import MODELS


def _reset_connections() -> None:
    # PynamoDB and our scheduler adapter cache their botocore clients; a new
    # mock needs new clients.
    for model in MODELS:
        model._connection = None
    scheduler.client.cache_clear()


@pytest.fixture
def aws(settings):
    """moto in-process: the tables and the schedule group exist."""
    with mock_aws():
        _reset_connections()
        for model in MODELS:
            model.create_table(wait=True)
        scheduler.client().create_schedule_group(Name=settings.SCHEDULE_GROUP)
        yield
    _reset_connections()


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
