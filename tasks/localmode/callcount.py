"""Count the AWS API calls this process makes, at the client (botocore's
before-call event), for the dispatch benchmark. Off unless
SCHEDULER_LOCAL_CALL_LOG names a file: each call appends one line,
`<epoch seconds> <service> <operation>`.

The cost benchmark's meter (install_meter, SCHEDULER_LOCAL_METER_LOG) writes
`<epoch seconds> <kind> <name> <value>` lines: every call (`call
dynamodb.PutItem 1`), the read and write units DynamoDB reports for it
(`rcu`/`wcu`: each DynamoDB call asks for ReturnConsumedCapacity=TOTAL),
Lambda invocations and their durations (`lambda executor 0.123`) and the
SQS requests the stand-in for Lambda's event source makes (`call sqs.* 1`)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

_lock = threading.Lock()
_meter: Any = None

READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


def install(path: str) -> None:
    """Hook every botocore client created from now on."""
    log = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def on_call(model: Any, **kwargs: Any) -> None:
        line = f"{time.time():.6f} {model.service_model.service_name} {model.name}\n"
        with _lock:
            log.write(line)

    _hook_clients(lambda events: events.register("before-call.*.*", on_call))


def _hook_clients(register: Callable[[Any], None]) -> None:
    from botocore.session import Session

    original = Session.create_client

    def create_client(self: Session, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        register(client.meta.events)
        return client

    create_client.original = original
    Session.create_client = create_client


@contextlib.contextmanager
def uncounted() -> Iterator[None]:
    """Clients made inside are neither counted nor metered (their calls are
    ones EventBridge or Lambda's event source make themselves on AWS)."""
    from botocore.session import Session

    hooked = plain = Session.create_client
    while hasattr(plain, "original"):
        plain = plain.original
    Session.create_client = plain
    try:
        yield
    finally:
        Session.create_client = hooked


def record(kind: str, name: str, value: float = 1.0) -> None:
    """One meter line (nothing unless install_meter ran)."""
    if _meter is None:
        return
    with _lock:
        _meter.write(f"{time.time():.6f} {kind} {name} {value:.6f}\n")


def install_meter(path: str) -> None:
    global _meter
    _meter = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def on_call(model: Any, **kwargs: Any) -> None:
        record("call", f"{model.service_model.service_name}.{model.name}")

    def ask_capacity(params: dict, model: Any, **kwargs: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def on_result(http_response: Any, parsed: dict, model: Any, **kwargs: Any) -> None:
        consumed = parsed.get("ConsumedCapacity")
        if not consumed:
            return
        units = sum(c.get("CapacityUnits", 0.0) for c in _as_list(consumed))
        record("rcu" if model.name in READS else "wcu", model.name, units)

    def register(events: Any) -> None:
        events.register("before-call.*.*", on_call)
        events.register("provide-client-params.dynamodb.*", ask_capacity)
        events.register("after-call.dynamodb.*", on_result)

    _hook_clients(register)


def _as_list(consumed: Any) -> list[dict]:
    return consumed if isinstance(consumed, list) else [consumed]


def timed(function: Callable[[dict, Any], Any], name: str) -> Callable[[dict, Any], Any]:
    """An invoke function that meters each invocation and its duration."""

    def invoke(event: dict, context: Any) -> Any:
        start = time.monotonic()
        try:
            return function(event, context)
        finally:
            record("lambda", name, time.monotonic() - start)

    return invoke


def timed_wsgi(app: Any) -> Any:
    """The web function's invocations (one per request) and their durations."""

    def metered(environ: dict, start_response: Any) -> Any:
        start = time.monotonic()
        try:
            return list(app(environ, start_response))
        finally:
            name = f"web:{environ.get('REQUEST_METHOD')}:{environ.get('PATH_INFO')}"
            record("lambda", name, time.monotonic() - start)

    return metered
