"""ConsumedCapacity as DynamoDB computes it, for the local endpoint.

moto answers ReturnConsumedCapacity with a constant (1.0 for any write, 0.5
for a read), whatever the item's size and the table's indexes. The cost
benchmark counts write units from ConsumedCapacity, so the local endpoint
(awsserver.py) recomputes it for single-item writes and reads by
DynamoDB's documented rules:

- an item's size is the sum of its attribute names' and values' sizes (a
  string its UTF-8 bytes, a number about 1 byte per 2 digits plus 1, a list
  or map 3 bytes plus its elements and 1 byte each);
- a write costs 1 unit per KB of the larger of the item before and after on
  the table, and on each global secondary index: an entry added or removed
  1 per KB of it, one whose index key changed 2 (a delete and a put), one
  whose projected attributes changed 1 per KB, one unchanged nothing;
- a read costs 1 unit per 4 KB read (half for an eventually consistent one).

Select=COUNT queries keep moto's figure (their items are not returned).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from decimal import Decimal

WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
READS = {"GetItem", "Query"}
Call = Callable[[str, dict], dict]  # (operation, request body) -> response body


def value_size(value: dict) -> int:
    (kind, data), *_ = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = Decimal(data).normalize().as_tuple().digits
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(data) * 3 // 4  # base64 in the JSON
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in data)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in data)
    return 0


def item_size(item: dict | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _kb(size: int, unit: int = 1024) -> int:
    return max(1, math.ceil(size / unit))


class Schema:
    def __init__(self, table: dict) -> None:
        self.keys = [k["AttributeName"] for k in table["KeySchema"]]
        self.indexes = []
        for index in table.get("GlobalSecondaryIndexes", []):
            keys = [k["AttributeName"] for k in index["KeySchema"]]
            projection = index.get("Projection", {})
            self.indexes.append(
                (
                    keys,
                    projection.get("ProjectionType", "ALL"),
                    projection.get("NonKeyAttributes", []),
                )
            )

    def key_of(self, item: dict) -> dict:
        return {name: item[name] for name in self.keys}


def _entry(item: dict | None, keys: list[str], kind: str, extra: list[str], table_keys: list[str]):
    if not item or not all(k in item for k in keys):
        return None
    if kind == "ALL":
        return item
    wanted = {*keys, *table_keys, *(extra if kind == "INCLUDE" else [])}
    return {k: v for k, v in item.items() if k in wanted}


def write_units(schema: Schema, before: dict | None, after: dict | None) -> float:
    units = _kb(max(item_size(before), item_size(after)))
    for keys, kind, extra in schema.indexes:
        old = _entry(before, keys, kind, extra, schema.keys)
        new = _entry(after, keys, kind, extra, schema.keys)
        if old is None and new is None:
            continue
        if old is None:
            units += _kb(item_size(new))
        elif new is None:
            units += _kb(item_size(old))
        elif any(old[k] != new[k] for k in keys):
            units += _kb(item_size(old)) + _kb(item_size(new))
        elif old != new:
            units += _kb(max(item_size(old), item_size(new)))
    return float(units)


class Meter:
    """Recomputes ConsumedCapacity around one request, given a way to make
    other requests to the same server (inside its lock)."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def wanted(self, operation: str, request: dict) -> bool:
        return operation in WRITES | READS and request.get("ReturnConsumedCapacity") in (
            "TOTAL",
            "INDEXES",
        )

    def _schema(self, table: str, call: Call) -> Schema:
        if table not in self.schemas:
            self.schemas[table] = Schema(call("DescribeTable", {"TableName": table})["Table"])
        return self.schemas[table]

    def before(self, operation: str, request: dict, call: Call) -> tuple[dict | None, dict]:
        if operation not in WRITES:
            return None, {}
        schema = self._schema(request["TableName"], call)
        key = request.get("Key") or schema.key_of(request["Item"])
        current = call(
            "GetItem", {"TableName": request["TableName"], "Key": key, "ConsistentRead": True}
        )
        return current.get("Item"), key

    def units(
        self,
        operation: str,
        request: dict,
        response: dict,
        before: dict | None,
        key: dict,
        call: Call,
    ) -> float | None:
        if operation in WRITES:
            after = call(
                "GetItem", {"TableName": request["TableName"], "Key": key, "ConsistentRead": True}
            ).get("Item")
            return write_units(self._schema(request["TableName"], call), before, after)
        if operation == "Query" and request.get("Select") == "COUNT":
            return None
        items = [response["Item"]] if response.get("Item") else response.get("Items", [])
        read = _kb(sum(item_size(i) for i in items), 4096)
        return read * (1.0 if request.get("ConsistentRead") else 0.5)


def patch(response: dict, request: dict, units: float) -> dict:
    response["ConsumedCapacity"] = {"TableName": request["TableName"], "CapacityUnits": units}
    return response


def dumps(body: dict) -> bytes:
    return json.dumps(body).encode()
