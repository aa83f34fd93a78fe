"""The local mode's durability parts, in-process: the journal's records, the
schedule feed, the firer on a feed-like source, and the 503 while the task
store cannot be reached."""

from __future__ import annotations

import json
import threading
import time

import pytest
from botocore.exceptions import EndpointConnectionError
from pynamodb.exceptions import GetError

from tasks.localmode.feed import ScheduleFeed
from tasks.localmode.firer import Firer, next_fire
from tasks.localmode.journal import Journal, encode, read_records


def test_it_replays_journal_records_up_to_a_torn_one(tmp_path):
    journal = Journal(tmp_path / "aws.pickle", generation=1)
    for n in range(3):
        journal.wait_durable(journal.append({"n": n}))
    journal.close()
    path = tmp_path / "aws.pickle.journal.1"
    with path.open("ab") as out:
        out.write(encode({"n": 3})[:-2])  # a crash mid-write
    assert [r["n"] for r in read_records(path)] == [0, 1, 2]


def test_it_group_commits_from_many_threads(tmp_path):
    journal = Journal(tmp_path / "aws.pickle", generation=1)
    lock = threading.Lock()

    def write(n: int) -> None:
        with lock:
            number = journal.append({"n": n})
        journal.wait_durable(number)
        assert journal.synced >= number

    threads = [threading.Thread(target=write, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert journal.synced == journal.written == 20


def schedule_request(name: str) -> tuple[dict, bytes]:
    return {"PATH_INFO": f"/schedules/{name}", "QUERY_STRING": ""}, b'{"GroupName": "g"}'


def test_it_serves_the_changes_after_a_position_and_resets_another_epoch():
    feed = ScheduleFeed()
    feed.observe(*schedule_request("a"))
    feed.observe(*schedule_request("b"))
    answer = feed.since(feed.epoch, 1, wait=0)
    assert [(c["seq"], c["name"], c["group"]) for c in answer["changes"]] == [(2, "b", "g")]
    assert feed.since("another", 1, wait=0)["reset"] is True


def test_it_holds_a_long_poll_until_a_change():
    feed = ScheduleFeed()
    threading.Timer(0.2, lambda: feed.observe(*schedule_request("late"))).start()
    started = time.monotonic()
    answer = feed.since(feed.epoch, 0, wait=5)
    assert 0.1 < time.monotonic() - started < 2
    assert [c["name"] for c in answer["changes"]] == ["late"]


def definition(name: str, at: str, input_: dict | None = None, after: str = "DELETE") -> dict:
    return {
        "Name": name,
        "GroupName": "g",
        "ScheduleExpression": f"at({at})",
        "ScheduleExpressionTimezone": "UTC",
        "State": "ENABLED",
        "ActionAfterCompletion": after,
        "Target": {"Input": json.dumps(input_ or {"task_id": name}), "RetryPolicy": {}},
    }


def test_it_says_when_a_one_time_schedule_next_fires():
    due = definition("a", "2030-01-01T00:00:00")
    at = next_fire(due)
    assert at == pytest.approx(1893456000.0)
    assert next_fire(due, after=at) is None


class FakeSource:
    def __init__(self, definitions: list[dict]) -> None:
        self.definitions = definitions
        self.pending: list = []

    def read_all(self) -> list[dict]:
        return list(self.definitions)

    def changes(self):
        time.sleep(0.05)
        found, self.pending = self.pending, []
        return found

    def close(self) -> None:
        return None


class FakeClient:
    class exceptions:  # noqa: N801 - as boto3 names it
        ResourceNotFoundException = KeyError

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete_schedule(self, Name: str, GroupName: str) -> None:  # noqa: N803
        self.deleted.append(Name)


def test_it_fires_what_the_source_gives_once_and_skips_what_was_deleted():
    calls: list[dict] = []
    source = FakeSource(
        [
            definition("missed", "2020-01-01T00:00:00", after="NONE"),
            definition("gone", "2020-01-01T00:00:01"),
        ]
    )
    source.definitions.pop()  # deleted before the first read
    client = FakeClient()
    firer = Firer(
        client=client, group="g", source=source, invoke=lambda e, c: calls.append(e), workers=2
    )
    firer.start()
    try:
        deadline = time.monotonic() + 5
        while not calls and time.monotonic() < deadline:
            time.sleep(0.02)
        firer.synced.clear()  # as if the feed lost track: everything read again
        time.sleep(0.3)
    finally:
        firer.stop()
    assert calls == [{"task_id": "missed"}]  # once, though read twice
    assert client.deleted == []  # ActionAfterCompletion NONE: it stays


def test_it_answers_503_json_when_the_store_cannot_be_reached(client, api_key, monkeypatch):
    from tasks import selectors

    def unreachable(**kwargs):
        cause = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        raise GetError("Failed to get item", cause) from cause

    monkeypatch.setattr(selectors, "task_get", unreachable)
    response = client.get("/api/tasks/abc", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert "unreachable" in response.json()["detail"]


def test_it_shows_a_banner_when_the_local_state_is_not_saved(monkeypatch, settings):
    from tasks import context_processors
    from tasks.localmode import health

    settings.LOCAL_MODE = True
    monkeypatch.setattr(health, "_ask", lambda: "The local state is not being saved: disk full.")
    monkeypatch.setattr(health, "_cached", (0.0, None))
    assert "not being saved" in context_processors.local_health(None)["local_problem"]
    settings.LOCAL_MODE = False
    assert context_processors.local_health(None) == {}
