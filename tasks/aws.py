"""One botocore session per thread for every AWS client of the process.

A new botocore session reads and parses botocore's data files again (the
endpoints, the service model: about 90 ms per client on a Lambda cold start).
PynamoDB makes one session per model connection and boto3 one more for the
scheduler client; sharing one saves that on every cold start. One per thread,
because a botocore session must not create clients from two threads at once.
"""

from __future__ import annotations

import threading
from typing import Any

_local = threading.local()


def botocore_session():
    from botocore.session import get_session

    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = get_session()
    return session


def share_with_pynamodb() -> None:
    # PynamoDB's connections get their session from this module-level name.
    import pynamodb.connection.base

    pynamodb.connection.base.get_session = botocore_session


def _causes(exc: BaseException):
    """The exception, then what caused it (PynamoDB keeps botocore's in `.cause`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__


def storage_unreachable(exc: BaseException) -> bool:
    """Whether an exception is, at its root, a connection to DynamoDB or
    the scheduler that failed (the local endpoint restarting, an outage)."""
    from botocore.exceptions import ConnectionError, HTTPClientError

    return any(isinstance(e, ConnectionError | HTTPClientError) for e in _causes(exc))


def storage_refused(exc: BaseException) -> bool:
    """Whether the request surely never reached the store (the connection
    was refused or not made), so that trying again cannot apply it twice."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    return any(isinstance(e, EndpointConnectionError | ConnectTimeoutError) for e in _causes(exc))


def make_client(service: str) -> Any:
    """A boto3 client for `service` on this thread's session, failing fast
    (5 s to connect, 10 s to read, standard retries). Each adapter makes its
    own lazily, so tests and the local mode point it elsewhere through
    AWS_ENDPOINT_URL."""
    import boto3
    from botocore.config import Config
    from django.conf import settings

    return boto3.Session(botocore_session=botocore_session()).client(
        service,
        region_name=settings.AWS_REGION,
        config=Config(
            connect_timeout=5,
            read_timeout=10,
            retries={"mode": "standard"},
            max_pool_connections=settings.AWS_MAX_POOL_CONNECTIONS,
        ),
    )
