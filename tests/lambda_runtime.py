"""Run a built Lambda package's handler here, the way the Lambda runtime does.

Test support, used by the artifact tests and bench/coldstart.py. A package is
unzipped as Lambda unzips it (entries keep their zip dates, which is what makes
ordinary .pyc files stale there) and its entry point (the function's Handler setting:
Zappa's `handler.lambda_handler` unless the stage says otherwise) runs in a fresh
`python -I -S -B` process: no site-packages, no PYTHONPATH, no bytecode
written (/var/task is read-only on Lambda). That process sees the package and
a stand-in for the runtime's own boto3/botocore (they are left out of the
package), and nothing else but the standard library.

The process reads one JSON request a line on stdin and answers one JSON line
on its own channel (the handler's prints go to stderr):
  {"event": {...}}   -> {"result": ..., "seconds": ..., "cpu_seconds": ...}
  {"exec": "code"}   -> {"result": <the code's `result` variable>}  (test setup,
                        run after the handler has set itself up)
An exception becomes {"error": "TypeName", "message": ..., "traceback": ...}.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

# The API Gateway stage and host the events below come from.
STAGE = "dev"
API_HOST = "abc123defg.execute-api.us-east-1.amazonaws.com"

# What the python3.13 Lambda runtime has on its path besides the standard
# library: boto3, botocore and their dependencies.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3")

_RUNNER = r"""
import json, os, sys, time, traceback
package, runtime, entry = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:0] = [package, runtime]
os.chdir(package)
channel = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr

class Context:
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:" + function_name
    def __init__(self):
        self.aws_request_id = os.urandom(16).hex()
        self._deadline = time.monotonic() + 30
    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)

started, cpu = time.perf_counter(), time.process_time()
import importlib
module_name, function_name = entry.rsplit(".", 1)
entry_function = getattr(importlib.import_module(module_name), function_name)
ready = {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu}
channel.write(json.dumps(ready) + "\n")
namespace = {}
for line in sys.stdin:
    request = json.loads(line)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        if "event" in request:
            reply = {"result": entry_function(request["event"], Context())}
        else:
            import handler
            handler.LambdaHandler()  # set up as the first event would (settings, Django)
            namespace.pop("result", None)
            exec(request["exec"], namespace)
            reply = {"result": namespace.get("result")}
    except Exception as exc:
        reply = {"error": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
    reply["seconds"] = time.perf_counter() - started
    reply["cpu_seconds"] = time.process_time() - cpu
    channel.write(json.dumps(reply, default=str) + "\n")
"""


class InvocationError(Exception):
    def __init__(self, reply: dict[str, Any]):
        super().__init__(f"{reply['error']}: {reply['message']}\n{reply.get('traceback', '')}")
        self.reply = reply


def unpack(zip_path: Path, destination: Path) -> Path:
    """Unzip like Lambda: each file keeps its entry's date (Zappa's 1980)."""
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            target = Path(archive.extract(info, destination))
            if not info.is_dir():
                target.chmod((info.external_attr >> 16) & 0o777 or 0o644)
                stamp = time.mktime((*info.date_time, 0, 0, -1))
                os.utime(target, (stamp, stamp))
    return destination


def runtime_stand_in_dir() -> Path:
    """build/lambda-runtime: the Lambda runtime's boto3/botocore, as the build
    virtualenv pins them."""
    from deploy.build_lambda import BUILD, VENV

    stamp = VENV / ".requirements-sha256"
    version = stamp.read_text() if stamp.exists() else ""
    return runtime_stand_in(
        VENV / "lib" / "python3.13" / "site-packages", BUILD / "lambda-runtime", version
    )


def runtime_stand_in(site_packages: Path, destination: Path, version: str = "") -> Path:
    """A folder with only the modules the Lambda runtime provides, copied from
    a virtualenv with the same pins, and compiled (the runtime's are). Made
    again when `version` (the virtualenv's requirements) changes."""
    marker = destination / ".complete"
    if marker.exists() and marker.read_text() == version:
        return destination
    shutil.rmtree(destination, ignore_errors=True)
    destination.mkdir(parents=True)
    for name in RUNTIME_MODULES:
        source = site_packages / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, destination / name)
    compileall.compile_dir(destination, quiet=1)
    marker.write_text(version)
    return destination


class LambdaProcess:
    """One Lambda execution environment: a fresh interpreter with the package."""

    def __init__(
        self,
        package: Path,
        runtime: Path,
        env: dict[str, str],
        *,
        entry: str = "handler.lambda_handler",
        python: str | None = None,
    ):
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [
                *(python or sys.executable, "-I", "-S", "-B", "-c", _RUNNER),
                *(str(package), str(runtime), entry),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get("LAMBDA_STDERR") else subprocess.DEVNULL,
            env=env,
            text=True,
            cwd=package,
        )
        ready = self._read()
        self.import_seconds: float = ready["seconds"]
        self.import_cpu_seconds: float = ready["cpu_seconds"]

    def _read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            code = self.process.wait(timeout=10)
            raise RuntimeError(f"the Lambda process exited ({code}) before answering")
        return json.loads(line)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        return self._read()

    def invoke(self, event: dict[str, Any]) -> Any:
        """The handler's return value; raises InvocationError when it raised."""
        reply = self.request({"event": event})
        if "error" in reply:
            raise InvocationError(reply)
        return reply["result"]

    def run(self, code: str) -> Any:
        reply = self.request({"exec": code})
        if "error" in reply:
            raise InvocationError(reply)
        return reply["result"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # type: ignore[union-attr]
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LambdaProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lambda_env(function_name: str, **extra: str) -> dict[str, str]:
    """The environment Lambda gives a function (the parts the code can see),
    plus the function's configured variables."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }
    env.update(extra)
    return env


# --- events as API Gateway sends them ------------------------------------------------


def rest_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API (payload v1) proxy event, as Zappa's API receives it."""
    headers = {
        "Host": API_HOST,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "X-Forwarded-For": "203.0.113.7",
        "User-Agent": "artifact-tests",
        **(headers or {}),
    }
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "stage": STAGE,
            "accountId": "123456789012",
            "apiId": API_HOST.split(".")[0],
            "domainName": API_HOST,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "artifact-tests"},
        },
        "body": _body(body),
        "isBase64Encoded": False,
    }


def _body(body: Any) -> str | None:
    if body is None or isinstance(body, str):
        return body  # None, or already encoded (a form)
    return json.dumps(body)


def http_event(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: Any = None,
    query: str = "",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event on the `dev` stage: rawPath
    carries the stage, header names are lower case."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    cookies = headers.pop("cookie", "")
    headers = {
        "host": API_HOST,
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "x-forwarded-for": "203.0.113.7",
        "user-agent": "artifact-tests",
        **headers,
    }
    raw_path = f"/{STAGE}{path}"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_HOST.split(".")[0],
            "domainName": API_HOST,
            "domainPrefix": API_HOST.split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "artifact-tests",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": STAGE,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        # HTTP API sends cookies apart from the headers.
        **({"cookies": cookies.split("; ")} if cookies else {}),
        "body": _body(body),
        "isBase64Encoded": False,
    }


def create_task_event(
    api_key: str, *, url: str, run_at: datetime, data: Any, event: Callable = rest_event
) -> dict[str, Any]:
    """POST /api/tasks with an API key: a webhook task to `url` at `run_at`."""
    return event(
        "POST",
        "/api/tasks",
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        body={
            "action": "webhook",
            "payload": {"url": url, "data": data},
            "runAt": run_at.isoformat().replace("+00:00", "Z"),
        },
    )
