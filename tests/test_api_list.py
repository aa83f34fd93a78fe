"""Listing tasks through the JSON API: pages, filters, orders and cursors."""

from __future__ import annotations

import base64
import json

import pytest
from pynamodb.connection.base import Connection

from tests.factories import create_via_api, future

# --- list ---------------------------------------------------------------------------


def _all_pages(api, **params) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get("/api/tasks", **query)
        assert response.status_code == 200, response.content
        page = response.json()
        assert set(page) == {"items", "nextCursor"}
        assert len(page["items"]) <= int(params.get("limit", 20))
        assert page["items"] or pages == 0, "a cursor led to an empty page"
        ids += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            return ids, pages
        assert pages < 20


def test_it_lists_tasks_newest_first_page_by_page(api):
    ids = create_via_api(api, 5)
    listed, pages = _all_pages(api, limit=2)
    assert listed == list(reversed(ids))
    assert pages == 3


@pytest.fixture
def dynamodb_paging(monkeypatch):
    """Queries answer as DynamoDB does: a Query that stops at its Limit
    carries a LastEvaluatedKey even when nothing comes after (moto leaves it
    out then), so a client that trusts it makes one more, empty, page."""
    from tasks.services.cursors import _KEYS

    real = Connection.query

    def like_dynamodb(self, *args, **kwargs):
        data = real(self, *args, **kwargs)
        items, limit = data.get("Items", []), kwargs.get("limit")
        if limit and len(items) == limit and "LastEvaluatedKey" not in data:
            attrs = _KEYS[kwargs["index_name"]][1]
            data["LastEvaluatedKey"] = {a: items[-1][a] for a in attrs}
        return data

    monkeypatch.setattr(Connection, "query", like_dynamodb)


def test_it_ends_on_a_full_page_when_the_count_is_a_multiple_of_the_limit(api, dynamodb_paging):
    ids = create_via_api(api, 4)
    listed, pages = _all_pages(api, limit=2)
    assert listed == list(reversed(ids))
    assert pages == 2
    listed, pages = _all_pages(api, order="due", limit=4)
    assert sorted(listed) == sorted(ids)
    assert pages == 1


def test_it_lists_one_status_only(api):
    keep = create_via_api(api, 3)
    cancelled = keep.pop(1)
    assert api.post(f"/api/tasks/{cancelled}/cancel").status_code == 200

    page = api.get("/api/tasks", status="cancelled").json()
    assert [item["id"] for item in page["items"]] == [cancelled]
    assert page["items"][0]["status"] == "cancelled"
    scheduled, _pages = _all_pages(api, status="scheduled", limit=1)
    assert scheduled == list(reversed(keep))


def test_a_status_page_reads_a_bounded_number_of_tasks_and_reads_on_by_its_cursor(api, monkeypatch):
    # The indexes carry no status: a status page reads items in the index's
    # order, at most FILTER_READ_BUDGET of them (3 here), and a page short of
    # its limit carries a cursor to read on from. Following the cursors gives
    # every task of the status once, newest first.
    from tasks import selectors

    monkeypatch.setattr(selectors, "FILTER_READ_BUDGET", 3)
    ids = create_via_api(api, 8)
    cancelled = [ids[0], ids[4], ids[5]]
    for task_id in cancelled:
        assert api.post(f"/api/tasks/{task_id}/cancel").status_code == 200
    read: list[int] = []
    real_batch_get = selectors.Task.batch_get

    def batch_get(ids, **kwargs):
        ids = list(ids)
        read.append(len(ids))
        return real_batch_get(ids, **kwargs)

    monkeypatch.setattr(selectors.Task, "batch_get", batch_get)
    listed, cursor, pages = [], None, 0
    while True:
        query = {"status": "cancelled", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/tasks", **query).json()
        assert len(page["items"]) <= 2
        assert all(item["status"] == "cancelled" for item in page["items"])
        listed += [item["id"] for item in page["items"]]
        pages, cursor = pages + 1, page["nextCursor"]
        if cursor is None:
            break
    assert listed == list(reversed(cancelled))
    assert max(read) <= 3 and sum(read) <= 8 + pages


def test_it_lists_due_tasks_in_runat_order(api):
    later = create_via_api(api, 1, runAt=future(7200))
    sooner = create_via_api(api, 1, runAt=future(600))
    middle = create_via_api(api, 1, runAt=future(3600))
    listed, pages = _all_pages(api, order="due", limit=2)
    assert listed == sooner + middle + later
    assert pages == 2


def test_it_lists_with_a_query_never_a_scan(api, monkeypatch):
    ids = create_via_api(api, 2)

    def no_scan(*args, **kwargs):
        raise AssertionError("listing must not Scan")

    monkeypatch.setattr(Connection, "scan", no_scan)
    for params in ({}, {"status": "scheduled"}, {"order": "due"}, {"limit": 1}):
        listed, _pages = _all_pages(api, **params)
        assert sorted(listed) == sorted(ids)


def test_it_returns_an_empty_page_when_there_are_no_tasks(api):
    response = api.get("/api/tasks")
    assert response.status_code == 200
    assert response.json() == {"items": [], "nextCursor": None}


@pytest.mark.parametrize("cursor", ["not-a-cursor", "e30", "eyJpIjoieCIsImsiOnt9fQ", "%%%"])
def test_it_refuses_a_malformed_cursor(api, cursor):
    create_via_api(api, 1)
    response = api.get("/api/tasks", cursor=cursor)
    assert response.status_code == 400
    assert response.json()["detail"]


def _cursor(index: str, key: dict) -> str:
    raw = json.dumps({"i": index, "k": key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "key",
    [
        # DynamoDB answers a ValidationException (a 500) for an empty key value.
        {"id": {"S": ""}, "listing": {"S": "task"}, "created_at": {"S": ""}},
        {"id": {"N": "1"}, "listing": {"S": "task"}, "created_at": {"S": "x"}},
        {"id": {"S": "x"}, "listing": {"S": "task"}},
        {"id": {"S": "x" * 400}, "listing": {"S": "task"}, "created_at": {"S": "x"}},
        ["not", "a", "key"],
    ],
    ids=["empty values", "wrong type", "missing attribute", "too long", "not an object"],
)
def test_it_refuses_a_forged_cursor(api, key):
    create_via_api(api, 1)
    response = api.get("/api/tasks", cursor=_cursor("listing-created_at-index", key))
    assert response.status_code == 400
    assert response.json() == {"detail": "invalid cursor"}


def test_it_refuses_a_cursor_from_another_listing(api):
    create_via_api(api, 3)
    cursor = api.get("/api/tasks", limit=1).json()["nextCursor"]
    assert cursor
    for params in ({"status": "scheduled"}, {"order": "due"}):
        response = api.get("/api/tasks", cursor=cursor, **params)
        assert response.status_code == 400
        assert response.json() == {"detail": "cursor does not belong to this listing"}
    status_cursor = api.get("/api/tasks", status="scheduled", limit=1).json()["nextCursor"]
    response = api.get("/api/tasks", cursor=status_cursor, status="failed")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"status": "done"}, {"order": "oldest"}],
)
def test_it_refuses_bad_list_parameters(api, params):
    response = api.get("/api/tasks", **params)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", next(iter(params))]
