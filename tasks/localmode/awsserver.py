"""A local DynamoDB + EventBridge Scheduler (+ SQS) endpoint: moto's server,
made atomic and durable.

- Atomic: moto has no per-request lock, so two conditional writes arriving at
  once could both pass their condition. DynamoDB applies each single-item
  operation atomically; this server does the same by handling one request at
  a time.
- Durable: each mutating request that succeeded is appended to a journal and
  fsync'd before its answer is sent (journal.py), so an answered write
  survives kill -9. The journal is compacted into a snapshot (`--state`) in
  the background; at start the snapshot is loaded and the journal replayed.
  A snapshot that cannot be written is retried and reported: in the log and
  at `GET /_local/health`, which the dashboard reads.
- A change feed of the schedules (feed.py) for the local firer.
- DynamoDB's ConsumedCapacity as DynamoDB computes it (capacity.py), for the
  cost bench; moto's own answer is a constant.

Run it as `python -m tasks.localmode.awsserver --port 4566 --state .local/aws.pickle`.
With `--supervised` (runlocal) it ignores SIGINT/SIGTERM and stops, saving,
when its standard input closes: its parent decides when, after the tasks
that write to it have finished.
`--parent PID`: stop when that process, the one starting it, is gone.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from tasks.localmode import snapshots
from tasks.localmode.feed import ScheduleFeed
from tasks.localmode.journal import Journal, read_records

logger = logging.getLogger("localmode.aws")

READ_ONLY_TARGETS = (
    "DynamoDB_20120810.GetItem",
    "DynamoDB_20120810.Query",
    "DynamoDB_20120810.Scan",
    "DynamoDB_20120810.DescribeTable",
    "DynamoDB_20120810.ListTables",
    "DynamoDB_20120810.BatchGetItem",
    "AmazonSQS.GetQueueUrl",
    "AmazonSQS.GetQueueAttributes",
    "AmazonSQS.ListQueues",
)


def _is_mutation(environ: dict) -> bool:
    if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        return False
    return environ.get("HTTP_X_AMZ_TARGET", "") not in READ_ONLY_TARGETS


def _replay_environ(record: dict) -> dict:
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(method=record["environ"]["REQUEST_METHOD"]).get_environ()
    environ.update(record["environ"])
    environ["wsgi.input"] = io.BytesIO(record["body"])
    return environ


class AtomicDurableApp:
    """WSGI middleware: one request at a time; mutations journaled before
    they are answered; the private /_local/ paths."""

    def __init__(self, app: Any, state_file: Path | None) -> None:
        from tasks.localmode.capacity import Meter

        self.app = app
        self.meter = Meter()
        self.lock = threading.Lock()
        self.state_file = state_file
        self.feed = ScheduleFeed()
        self.journal: Journal | None = None
        self.saver = snapshots.Saver(self) if state_file else None

    # --- requests -------------------------------------------------------------

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/_local/"):
            return self._private(environ, start_response)
        body = self._read_body(environ)
        answer: list = []

        def capture(status: str, headers: list, exc_info: Any = None) -> None:
            answer[:] = [status, headers]

        with self.lock:
            if environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB):
                content = metered(self.app, self.meter, environ, capture)
            else:
                content = _run(self.app, environ, capture)
            ok = answer[0].startswith("2")
            number = self._journal(environ, body) if ok and _is_mutation(environ) else 0
            if ok and _is_mutation(environ):
                self.feed.observe(environ, body)
        if number is None or (number and not self._durable(number)):
            return self._failure(start_response)
        start_response(*answer)
        return [content]

    @staticmethod
    def _read_body(environ: dict) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def _journal(self, environ: dict, body: bytes) -> int | None:
        """0 when there is no journal; None when the write failed."""
        if self.journal is None:
            return 0
        # What a replay needs: moto routes on the raw URI, Host, Authorization.
        kept = {k: v for k, v in environ.items() if isinstance(v, str) and "." not in k}
        try:
            return self.journal.append({"environ": kept, "body": body})
        except OSError as exc:
            self.saver.journal_failed(exc)
            return None

    def _durable(self, number: int) -> bool:
        try:
            self.journal.wait_durable(number)
            return True
        except OSError as exc:
            self.saver.journal_failed(exc)
            return False

    @staticmethod
    def _failure(start_response: Any) -> list[bytes]:
        # Applied in memory but not known to be on disk: the caller is told
        # it failed (its outcome is unknown, as after a timeout on AWS); the
        # saver snapshots the memory as soon as it can.
        start_response("500 Internal Server Error", [("Content-Type", "application/json")])
        message = "the local endpoint could not write its journal"
        return [json.dumps({"__type": "InternalFailure", "message": message}).encode()]

    def _private(self, environ: dict, start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == "/_local/health":
            answer = self.saver.health() if self.saver else {"ok": True, "problem": None}
        elif path == "/_local/schedules" and "since" in query:
            wait = min(float(query.get("wait", "0")), 30.0)
            answer = self.feed.since(query.get("epoch", ""), int(query["since"]), wait)
        elif path == "/_local/schedules":
            answer = self.feed.everything(self.lock)
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"detail": "Not Found"}']
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]

    # --- state ------------------------------------------------------------------

    def load(self) -> bool:
        """The snapshot, then the journal on top; then a new journal."""
        if not self.state_file:
            return False
        generation, loaded = snapshots.load(self.state_file)
        replayed = 0
        for _, path in snapshots.journals_after(self.state_file, generation):
            for record in read_records(path):
                result = self.app(_replay_environ(record), lambda *a, **k: None)
                b"".join(result)
                replayed += 1
        self.journal = Journal(self.state_file, snapshots.next_generation(self.state_file))
        if replayed:
            logger.warning("replayed %s journaled writes on top of the snapshot", replayed)
            self.saver.wanted = True
        return loaded or replayed > 0


def _cache_moto_modules() -> None:
    """moto lists its own package folder (a stat per service, ~150) on every
    request to find the backend; the list never changes while it runs."""
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


DYNAMODB = "DynamoDB_20120810."


def _run(app: Any, environ: dict, start_response: Any) -> bytes:
    result = app(environ, start_response)
    body = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return body


def metered(app: Any, meter: Any, environ: dict, start_response: Any) -> bytes:
    """A DynamoDB request; its ConsumedCapacity recomputed when asked for."""
    import zlib

    from tasks.localmode import capacity

    raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.input"] = io.BytesIO(raw)
    operation = environ["HTTP_X_AMZ_TARGET"].removeprefix(DYNAMODB)
    try:
        request = json.loads(raw or b"{}")
    except ValueError:
        request = {}
    if not meter.wanted(operation, request):
        return _run(app, environ, start_response)

    def call(name: str, body: dict) -> dict:
        if name == "GetItem":
            found = _stored_item(environ, body["TableName"], body["Key"])
            if found is not None:
                return found
        data = json.dumps(body).encode()
        inner = {
            **environ,
            "HTTP_X_AMZ_TARGET": DYNAMODB + name,
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data),
        }
        return json.loads(_run(app, inner, lambda *a, **k: None) or b"{}")

    before, key = meter.before(operation, request, call)
    answer: list = []
    body = _run(app, environ, lambda status, headers, *rest: answer.append((status, headers)))
    status, headers = answer[0]
    if status.startswith("200"):
        response = json.loads(body)
        units = meter.units(operation, request, response, before, key, call)
        if units is not None:
            body = json.dumps(capacity.patch(response, request, units)).encode()
    fixed = {"content-length": str(len(body)), "x-amz-crc32": str(zlib.crc32(body))}
    headers = [(k, fixed.get(k.lower(), v)) for k, v in headers]
    start_response(status, headers)
    return body


def _dynamodb_backend(environ: dict) -> Any:
    """moto's DynamoDB backend for the request's account and region, as moto
    picks it (the region in the signature, the account from the key)."""
    from moto.core.responses import BaseResponse
    from moto.dynamodb.models import dynamodb_backends
    from moto.iam.models import get_account_id_from

    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if "AWS4" not in authorization:
        raise LookupError("no signature to read the region from")
    region = authorization.split(",")[0].split("/")[2]
    match = BaseResponse.access_key_regex.search(authorization)
    account = (
        os.environ.get("MOTO_ACCOUNT_ID")
        or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
        or get_account_id_from(match.group(1) if match else "AKIAEXAMPLE")
    )
    return dynamodb_backends[account][region]


def _stored_item(environ: dict, table: str, key: dict) -> dict | None:
    """GetItem's answer ({"Item": ...} or {}) read from moto's memory, or None
    when it cannot be (then the meter asks moto through its HTTP layer). The
    meter reads each written item before and after the write: through moto's
    request parsing and response serializer that tripled the cost of every
    write under the lock (a claim: 16 ms instead of 8); read here, it costs
    tens of microseconds."""
    try:
        item = _dynamodb_backend(environ).get_item(table, key)
    except Exception:  # anything unusual: moto's own path answers it
        return None
    # A round trip through JSON, as the HTTP answer would make it (and a copy).
    return json.loads(json.dumps(item.to_json("Item"), default=_json_bytes)) if item else {}


def _json_bytes(value: Any) -> str:
    import base64

    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value).__name__)


def _fast_sqs_clock() -> None:
    """moto's SQS asks the time (through datetime, about 5 us) for every
    message of the queue, many times per ReceiveMessage: with 200 messages in
    the hop queue a receive took 67 ms, all of it under this server's one
    lock, and a crowd of tasks due at the same second waited for it. The same
    clock, read directly: 5x faster."""
    import time

    import moto.sqs.models as sqs

    millis, seconds = sqs.unix_time_millis, sqs.unix_time
    sqs.unix_time_millis = lambda dt=None: time.time() * 1000 if dt is None else millis(dt)
    sqs.unix_time = lambda dt=None: time.time() if dt is None else seconds(dt)


def _fast_sqs_retention() -> None:
    """moto checks each message it receives against the queue's retention
    period by computing every attribute of the queue, among them three counts
    that each walk all its messages: with 1,000 messages in the hop queue a
    receive of 10 held this server's one lock for 70 ms, and a crowd's
    receives took it for seconds. The same check, reading the one attribute."""
    import moto.sqs.models as sqs

    check = sqs.SQSBackend.is_message_valid_based_on_retention_period
    if hasattr(check, "original"):
        return  # installed already

    def valid(self: Any, queue_name: str, message: Any) -> bool:
        retention = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if not isinstance(retention, int):
            return check(self, queue_name, message)
        return retention + message.sent_timestamp / 1000 > sqs.unix_time()

    valid.original = check
    sqs.SQSBackend.is_message_valid_based_on_retention_period = valid


ITEM_OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem"})


def _plain(value: Any) -> bool:
    """JSON as it stands: what moto's serializer would write unchanged."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return isinstance(value, str | bool | int | float)


def _fast_item_answers() -> None:
    """moto serializes each DynamoDB answer by walking botocore's shape model
    with several name lookups per attribute (about 4 ms for a task item,
    under this server's one lock, for every claim and outcome). An item
    operation's answer is already in DynamoDB's JSON shape: written as it
    stands, unless it holds something moto's serializer would transform
    (bytes, None), which still goes through it."""
    from moto.dynamodb.responses import DynamoResult

    serialize = DynamoResult.execute_result
    if hasattr(serialize, "serialize"):
        return  # installed already

    def execute_result(self: Any, context: Any) -> Any:
        result = self.result
        if (
            context.operation_model.name in ITEM_OPERATIONS
            and isinstance(result, dict)
            and _plain(result)
        ):
            # What the operation's output shape names (moto adds keys of its own).
            members = context.operation_model.output_shape.members
            answer = {k: v for k, v in result.items() if k in members}
            version = context.service_model.metadata.get("jsonVersion", "1.0")
            headers = {"Content-Type": f"application/x-amz-json-{version}"}
            return 200, headers, json.dumps(answer)
        return serialize(self, context)

    execute_result.serialize = serialize
    DynamoResult.execute_result = execute_result


class FastUpdates:
    """WSGI middleware in front of moto: an UpdateItem in the subset that
    fastupdate.py knows is applied there (under the caller's lock), the
    rest goes to moto. The journal's replay goes through it too."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ.get("HTTP_X_AMZ_TARGET") == DYNAMODB + "UpdateItem":
            answer = self._fast(environ)
            if answer is not None:
                body = json.dumps(answer).encode()
                start_response("200 OK", _answer_headers(body))
                return [body]
        return self.app(environ, start_response)

    @staticmethod
    def _fast(environ: dict) -> dict | None:
        from tasks.localmode import fastupdate

        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(raw)  # for moto, if it answers
        try:
            request = json.loads(raw)
            backend = _dynamodb_backend(environ)
        except (ValueError, LookupError):
            return None
        return fastupdate.update_item(backend, request) if isinstance(request, dict) else None


def _answer_headers(body: bytes) -> list[tuple[str, str]]:
    import uuid
    import zlib

    return [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("server", "amazon.com"),
        ("x-amzn-requestid", uuid.uuid4().hex),
        ("x-amz-crc32", str(zlib.crc32(body))),
        ("Content-Length", str(len(body))),
    ]


def make_app(state_file: Path | None) -> AtomicDurableApp:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    _cache_moto_modules()
    _fast_sqs_clock()
    _fast_sqs_retention()
    _fast_item_answers()
    moto = DomainDispatcherApplication(create_backend_app)
    return AtomicDurableApp(FastUpdates(moto), state_file)


def serve(
    host: str,
    port: int,
    state_file: Path | None,
    supervised: bool = False,
    parent: int | None = None,
) -> None:
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    app = make_app(state_file)
    loaded = app.load()
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    server.daemon_threads = True
    if app.saver:
        threading.Thread(target=app.saver.run, name="saver", daemon=True).start()

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    if supervised:
        # The group's Ctrl-C is for the parent, which stops this last.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop()), daemon=True).start()
    else:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if parent:
        from tasks.localmode.lifeline import watch_parent

        watch_parent(parent, stop)
    print(
        f"local AWS on http://{host}:{server.server_port} "
        f"({'state loaded from ' + str(state_file) if loaded else 'empty'})",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        if app.saver:
            app.saver.final()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--state", type=Path, default=None, help="state file (none: in memory)")
    parser.add_argument("--supervised", action="store_true", help="stop when stdin closes")
    parser.add_argument("--parent", type=int, default=None, help="stop when this process is gone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "local")
    if args.state:
        args.state.parent.mkdir(parents=True, exist_ok=True)
    serve(args.host, args.port, args.state, supervised=args.supervised, parent=args.parent)
    sys.exit(0)


if __name__ == "__main__":
    main()
