"""Opaque list cursors: DynamoDB's LastEvaluatedKey, tied to its index."""

from __future__ import annotations

import base64
import binascii
import json

from tasks.errors import InvalidCursor

# index -> (its partition key attribute, every attribute of its keys)
_KEYS = {
    "due-due_at-index": ("due_listing", {"id", "due_listing", "due_at"}),
    "status-created_at-index": ("status", {"id", "status", "created_at"}),
    "listing-created_at-index": ("listing", {"id", "listing", "created_at"}),
}


def key_of(item, index_name: str) -> dict:
    """The index key of a listed item, as DynamoDB's LastEvaluatedKey gives
    it: the place to start the next page after."""
    return {
        attr: {"S": getattr(type(item), attr).serialize(getattr(item, attr))}
        for attr in sorted(_KEYS[index_name][1])
    }


def encode_cursor(key: dict, index_name: str) -> str:
    raw = json.dumps({"i": index_name, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, index_name: str, hash_value: str) -> dict:
    """The key a cursor carries; InvalidCursor unless it is well formed and
    was made for the same listing (status filter and order)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("invalid cursor") from None
    if not isinstance(data, dict) or data.get("i") != index_name:
        raise InvalidCursor("cursor does not belong to this listing")
    key = data.get("k")
    hash_attr, attrs = _KEYS[index_name]
    valid = (
        isinstance(key, dict)
        and set(key) == attrs
        and all(
            isinstance(v, dict)
            and list(v) == ["S"]
            and isinstance(v["S"], str)
            and 0 < len(v["S"]) < 300  # DynamoDB refuses empty key values
            for v in key.values()
        )
    )
    if not valid:
        raise InvalidCursor("invalid cursor")
    if key[hash_attr]["S"] != hash_value:
        raise InvalidCursor("cursor does not belong to this listing")
    return key
