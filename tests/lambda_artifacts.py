"""Shared by the artifact tests: the built packages, a moto server over HTTP,
a webhook receiver, and Lambda-shaped events (API Gateway REST v1, HTTP API
v2). The fixtures are module-scoped, as the functions they serve are: a
module assigns them to names of its own (which overrides conftest's per-test
receiver)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer
from pytest_httpserver import HTTPServer

from deploy.build_lambda import VENV, entry_point, package_path
from deploy.lambda_package import PackageError, PackageStats, check_extensions, check_size
from tests.lambda_runtime import (
    API_HOST,
    STAGE,
    LambdaProcess,
    create_task_event,
    http_event,
    lambda_env,
    rest_event,
    runtime_stand_in_dir,
    unpack,
)

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "API_HOST",
    "STAGE",
    "VENV",
    "create_task_event",
    "http_event",
    "rest_event",
    "LambdaProcess",
    "PackageError",
    "PackageStats",
    "check_extensions",
    "check_size",
    "entry_point",
    "lambda_env",
    "unpack",
]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server over HTTP on 127.0.0.1, for the functions' AWS calls."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[HTTPServer]:
    """A webhook receiver on 127.0.0.1 for the whole module."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# What `make lambda` reads to build; a package older than any of these is rebuilt.
SOURCES = [
    "scheduler_site",
    "tasks",
    "deploy",
    "zappa_settings.json",
    "requirements.txt",
    "manage.py",
]


def _newest_source() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        newest = max([newest, *(p.stat().st_mtime for p in files if "__pycache__" not in p.parts)])
    return newest


def built_packages(stage: str = STAGE) -> tuple[Path, Path]:
    """(web zip, executor zip), built by `make lambda`'s script when missing or
    older than the sources."""
    web, executor = package_path(stage), package_path(f"{stage}_executor")
    newest = _newest_source()
    if not all(p.exists() and p.stat().st_mtime >= newest for p in (web, executor)):
        subprocess.run(
            [sys.executable, "-m", "deploy.build_lambda", "--stage", stage],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return web, executor


def runtime_dir() -> Path:
    """The stand-in for the Lambda runtime's boto3/botocore (see tests/lambda_runtime.py)."""
    return runtime_stand_in_dir()


def function_env(function_name: str, endpoint: str, **extra: str) -> dict[str, str]:
    """What `make deploy` configures on the functions, pointed at moto."""
    return lambda_env(
        function_name,
        AWS_ENDPOINT_URL=endpoint,
        DJANGO_SECRET_KEY="artifact-tests-secret-key-" + "x" * 30,
        # make deploy's defaults (deploy/zappa_stage.py) until a domain is set
        DJANGO_ALLOWED_HOSTS=".execute-api.us-east-1.amazonaws.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://*.execute-api.us-east-1.amazonaws.com",
        EXECUTOR_FUNCTION_ARN=f"arn:aws:lambda:us-east-1:123456789012:function:task-scheduler-{STAGE}-executor",
        SCHEDULER_ROLE_ARN=f"arn:aws:iam::123456789012:role/task-scheduler-{STAGE}-scheduler",
        **extra,
    )


def set_cookies(response: dict[str, Any]) -> dict[str, str]:
    """name -> value of the cookies a response sets (v2: `cookies`; v1: the
    multi-value headers, since one header dict keeps one Set-Cookie)."""
    lines = response.get("cookies") or (response.get("multiValueHeaders") or {}).get(
        "Set-Cookie", []
    )
    return dict(line.split(";", 1)[0].split("=", 1) for line in lines)


def response_body(response: dict[str, Any]) -> bytes:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode()


def response_json(response: dict[str, Any]) -> Any:
    return json.loads(response_body(response))


def header(response: dict[str, Any], name: str) -> str | None:
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None
