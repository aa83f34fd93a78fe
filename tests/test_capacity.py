"""The local endpoint's ConsumedCapacity, computed as DynamoDB does
(tasks/localmode/capacity.py), and the task's write units it measures."""

from __future__ import annotations

from tasks.localmode.capacity import Schema, item_size, write_units

TABLE = {
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by-status",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
        {
            "IndexName": "due",
            "KeySchema": [{"AttributeName": "due", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
        {
            "IndexName": "all",
            "KeySchema": [{"AttributeName": "listing", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "ALL"},
        },
    ],
}


def item(**attrs: str) -> dict:
    return {name: {"S": value} for name, value in attrs.items()}


def test_it_sizes_items_as_dynamodb_does():
    assert item_size(item(id="abc")) == 2 + 3
    assert item_size({"n": {"N": "12345"}}) == 1 + 4
    assert item_size({"l": {"L": [{"S": "ab"}, {"BOOL": True}]}}) == 1 + 3 + (2 + 1) + (1 + 1)
    assert item_size(None) == 0


def test_it_charges_each_index_a_write_touches():
    schema = Schema(TABLE)
    base = item(id="t", status="scheduled", due="due", listing="task", other="x")
    # A put: the table and every index the item has a key for.
    assert write_units(schema, None, base) == 4
    # The claim: the status key changes (a delete and a put), it leaves the
    # sparse index (a delete), and the ALL index sees a projected change.
    claimed = {k: v for k, v in base.items() if k != "due"} | item(status="running")
    assert write_units(schema, base, claimed) == 1 + 2 + 1 + 1
    # A change to an attribute no keys-only index carries costs them nothing.
    assert write_units(schema, claimed, claimed | item(other="y")) == 1 + 1
    # Size: 1 unit per started KB, of the larger of before and after.
    big = claimed | item(other="x" * 1500)
    assert write_units(Schema({"KeySchema": TABLE["KeySchema"]}), claimed, big) == 2
