"""Count the AWS API calls this process makes, at the client (botocore's
before-call event), for the dispatch benchmark. Off unless
SCHEDULER_LOCAL_CALL_LOG names a file: each call appends one line,
`<epoch seconds> <service> <operation>`."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()


def install(path: str) -> None:
    """Hook every botocore client created from now on."""
    from botocore.session import Session

    log = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    original = Session.create_client

    def on_call(model: Any, **kwargs: Any) -> None:
        line = f"{time.time():.6f} {model.service_model.service_name} {model.name}\n"
        with _lock:
            log.write(line)

    def create_client(self: Session, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register("before-call.*.*", on_call)
        return client

    create_client.original = original
    Session.create_client = create_client


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Clients made inside are not counted (their calls are ones
    EventBridge makes itself on AWS)."""
    from botocore.session import Session

    hooked = Session.create_client
    Session.create_client = getattr(hooked, "original", hooked)
    try:
        yield
    finally:
        Session.create_client = hooked
