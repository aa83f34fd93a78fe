"""createtables makes the schedules table, and adds the occurrences index to
a tasks table made before it existed (a local mode's saved state)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from moto import mock_aws

from tasks.models import Task

INDEX = "schedule_id-occurrence_at-index"


@pytest.fixture
def no_tables(settings):
    with mock_aws():
        yield


def indexes() -> set[str]:
    table = Task._get_connection().describe_table()
    return {index["IndexName"] for index in table["GlobalSecondaryIndexes"]}


def test_it_adds_the_occurrences_index_to_an_older_tasks_table(no_tables, settings):
    Task.create_table(wait=True)
    Task._get_connection().connection.dispatch(
        "UpdateTable",
        {
            "TableName": settings.TASKS_TABLE,
            "GlobalSecondaryIndexUpdates": [{"Delete": {"IndexName": INDEX}}],
        },
    )
    assert INDEX not in indexes()
    output = StringIO()
    call_command("createtables", stdout=output)
    assert output.getvalue().splitlines() == [
        f"{settings.TASKS_TABLE}: exists, added {INDEX}",
        f"{settings.API_KEYS_TABLE}: created",
        f"{settings.OPERATORS_TABLE}: created",
        f"{settings.SCHEDULES_TABLE}: created",
    ]
    assert INDEX in indexes()
    assert list(Task.schedule_occurrence_index.query("any")) == []
