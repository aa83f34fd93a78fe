"""Opaque list cursors: DynamoDB's LastEvaluatedKey, tied to its index and
signed, so that a client can neither forge one nor bring one from elsewhere."""

from __future__ import annotations

from django.core import signing

from tasks.errors import InvalidCursor

_SALT = "tasks.cursor"

# index -> (its partition key attribute, every attribute of its keys)
_KEYS = {
    "due-due_at-index": ("due_listing", {"id", "due_listing", "due_at"}),
    "listing-created_at-index": ("listing", {"id", "listing", "created_at"}),
    "schedule_id-occurrence_at-index": ("schedule_id", {"id", "schedule_id", "occurrence_at"}),
}


def key_of(item, index_name: str) -> dict:
    """The index key of a listed item, as DynamoDB's LastEvaluatedKey gives
    it: the place to start the next page after."""
    return {
        attr: {"S": getattr(type(item), attr).serialize(getattr(item, attr))}
        for attr in sorted(_KEYS[index_name][1])
    }


def encode_cursor(key: dict, index_name: str, status: str | None = None) -> str:
    """A cursor signed with the SECRET_KEY (django.core.signing): one the
    server did not make, or made under another key, is refused. It names the
    listing: the index (the order) and the status filter."""
    data = {"i": index_name, "k": key, **({"f": status} if status else {})}
    return signing.dumps(data, salt=_SALT, compress=True)


def decode_cursor(cursor: str, index_name: str, hash_value: str, status: str | None = None) -> dict:
    """The key a cursor carries; InvalidCursor unless this server signed it
    and it was made for the same listing (status filter and order)."""
    try:
        data = signing.loads(cursor, salt=_SALT)
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        raise InvalidCursor("invalid cursor") from None
    if not isinstance(data, dict) or data.get("i") != index_name:
        raise InvalidCursor("cursor does not belong to this listing")
    if data.get("f") != status:
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
