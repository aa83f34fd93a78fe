"""Who may use the scheduler: API keys (for the API) and operators (for the
dashboard). Keys are stored as their sha256; passwords with Django's hashers."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from django.contrib.auth.hashers import check_password, make_password
from pynamodb.exceptions import DoesNotExist, PutError

from tasks.errors import Conflict, DomainError, Invalid, NotFound
from tasks.models import ApiKey, Operator

KEY_PREFIX = "tsk_"
# Repeated failed logins lock the account for a while.
LOGIN_MAX_FAILURES = 5
LOGIN_LOCK_MINUTES = 15


def _now() -> datetime:
    return datetime.now(UTC)


def _hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


# --- API keys ----------------------------------------------------------------------


def apikey_create(*, name: str) -> tuple[ApiKey, str]:
    """Make a key; returns (record, raw key). The raw key is shown once and
    never stored."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise Invalid.one(["name"], "name must be 1 to 100 characters")
    raw = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        key_hash=_hash_key(raw),
        key_id=secrets.token_hex(6),
        name=name,
        prefix=raw[:10],
        created_at=_now(),
    )
    key.save(condition=ApiKey.key_hash.does_not_exist())
    return key, raw


def apikey_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key for this secret, or None. One GetItem."""
    if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 200:
        return None
    try:
        key = ApiKey.get(_hash_key(raw_key))
    except DoesNotExist:
        return None
    return None if key.revoked_at else key


def apikey_list() -> list[ApiKey]:
    # The keys table is tiny (a handful of keys); a Scan is the right tool.
    return sorted(ApiKey.scan(), key=lambda k: k.created_at, reverse=True)


def apikey_revoke(*, key_id: str) -> ApiKey:
    """Revoke by key id, name or displayed prefix."""
    matches = [k for k in ApiKey.scan() if key_id in (k.key_id, k.name, k.prefix)]
    if not matches:
        raise NotFound(f"no API key {key_id!r}")
    if len(matches) > 1:
        raise Conflict(f"{key_id!r} matches {len(matches)} keys; use the key id")
    key = matches[0]
    if not key.revoked_at:
        key.update(actions=[ApiKey.revoked_at.set(_now())])
    return key


# --- operators ---------------------------------------------------------------------


def operator_create(*, username: str, password: str) -> Operator:
    username = username.strip()
    if not 1 <= len(username) <= 150:
        raise Invalid.one(["username"], "username must be 1 to 150 characters")
    if len(password) < 8:
        raise Invalid.one(["password"], "password must be at least 8 characters")
    operator = Operator(username=username, password_hash=make_password(password), created_at=_now())
    try:
        operator.save(condition=Operator.username.does_not_exist())
    except PutError:
        raise Conflict(f"operator {username!r} already exists") from None
    return operator


def operator_set_password(*, username: str, password: str) -> None:
    if len(password) < 8:
        raise Invalid.one(["password"], "password must be at least 8 characters")
    Operator(username=username).update(
        actions=[
            Operator.password_hash.set(make_password(password)),
            Operator.failed_logins.set(0),
            Operator.locked_until.remove(),
        ],
        condition=Operator.username.exists(),
    )


class LoginLocked(DomainError):
    """The account is locked after too many failed logins."""


def operator_authenticate(*, username: str, password: str) -> Operator | None:
    """The operator if the password is right; counts failures and locks the
    account for LOGIN_LOCK_MINUTES after LOGIN_MAX_FAILURES of them."""
    try:
        operator = Operator.get(username, consistent_read=True)
    except DoesNotExist:
        make_password(password)  # same work as a real check: no user enumeration by timing
        return None
    if operator.locked_until and operator.locked_until > _now():
        make_password(password)  # the same time as any other refusal
        raise LoginLocked("too many failed logins; try again later")
    if check_password(password, operator.password_hash):
        if operator.failed_logins:
            operator.update(actions=[Operator.failed_logins.set(0), Operator.locked_until.remove()])
        return operator
    failures = operator.failed_logins + 1
    actions = [Operator.failed_logins.set(failures)]
    if failures >= LOGIN_MAX_FAILURES:
        actions = [
            Operator.failed_logins.set(0),
            Operator.locked_until.set(_now() + timedelta(minutes=LOGIN_LOCK_MINUTES)),
        ]
    operator.update(actions=actions)
    return None
