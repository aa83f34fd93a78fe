"""Shared by the artifact tests: the built packages, a moto server over HTTP,
and Lambda-shaped events (API Gateway REST v1, HTTP API v2)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "deploy"))

from build_lambda import VENV, entry_point, package_path, runtime_stand_in_dir  # noqa: E402
from invoke import LambdaProcess, lambda_env, unpack  # noqa: E402
from lambda_package import PackageError, PackageStats, check_extensions, check_size  # noqa: E402

__all__ = [
    "VENV",
    "LambdaProcess",
    "PackageError",
    "PackageStats",
    "check_extensions",
    "check_size",
    "entry_point",
    "lambda_env",
    "unpack",
]

STAGE = "dev"
API_HOST = "abc123defg.execute-api.us-east-1.amazonaws.com"
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
            [sys.executable, str(ROOT / "deploy" / "build_lambda.py"), "--stage", stage],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return web, executor


def runtime_dir() -> Path:
    """The stand-in for the Lambda runtime's boto3/botocore (see deploy/invoke.py)."""
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
