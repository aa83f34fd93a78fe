"""Cold start of the built Lambda packages, side by side with Zappa's default.

    python bench/coldstart.py [--runs 7]

Each sample is a fresh `python -I -S -B` process that sees only the unzipped
package (plus the runtime's boto3/botocore), as on Lambda (deploy/invoke.py),
and times `import handler` plus the first event, in that process:
- web: GET /api/tasks/{id} with an API key (REST API event, two DynamoDB reads);
- executor: the exact Input of a due task's schedule (claim, a signed webhook to
  a receiver on 127.0.0.1, the result write);
- baseline: a bare `django-admin startproject` app packaged by plain
  `zappa package` from a virtualenv holding Django and Zappa, first request GET /.
Samples are interleaved so that the three share the machine's noise; the table
gives the median of --runs (default 7). AWS is a moto server on 127.0.0.1.
Targets: web <= 0.5 s and <= 0.4x the baseline; executor <= 0.3 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "deploy")]

from build_lambda import BUILD, OFFLINE_AWS, VENV, package_path  # noqa: E402
from invoke import LambdaProcess, lambda_env, runtime_stand_in, unpack  # noqa: E402

from bench.receiver import Receiver  # noqa: E402

STAGE = "dev"
API_HOST = "abc123defg.execute-api.us-east-1.amazonaws.com"
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BARE = BUILD / "bench-bare"
BARE_PINS = ["Django==6.1.3", "zappa==0.63.0"]
TARGET_WEB_SECONDS = 0.5
TARGET_WEB_RATIO = 0.4
TARGET_EXECUTOR_SECONDS = 0.3


def rest_event(
    method: str, path: str, headers: dict | None = None, body: dict | None = None
) -> dict:
    headers = {"Host": API_HOST, "X-Forwarded-Proto": "https", **(headers or {})}
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {"stage": STAGE, "path": f"/{STAGE}{path}", "httpMethod": method},
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


# --- the baseline: Zappa as it ships ----------------------------------------------------


def bare_package() -> Path:
    """build/bench-bare.zip: `django-admin startproject bare`, `zappa package`d
    from a virtualenv with Django and Zappa (and so Zappa's dependencies)."""
    output = BUILD / "bench-bare.zip"
    venv = BARE / ".venv"  # the usual name; Zappa leaves it out of the project copy
    stamp = hashlib.sha256(" ".join(BARE_PINS).encode()).hexdigest()
    if output.exists() and (BARE / ".stamp").exists() and (BARE / ".stamp").read_text() == stamp:
        return output
    print("building the baseline package (once)", flush=True)
    shutil.rmtree(BARE, ignore_errors=True)
    (BARE / "app").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, *BARE_PINS], check=True)
    app = BARE / "app"
    subprocess.run(
        [str(venv / "bin" / "django-admin"), "startproject", "bare", str(app)], check=True
    )
    # The one edit a deployment needs: API Gateway's host.
    with (app / "bare" / "settings.py").open("a") as f:
        f.write('\nALLOWED_HOSTS = [".amazonaws.com"]\n')
    settings = {
        "bare": {
            "project_name": "bare",
            "runtime": "python3.13",
            "django_settings": "bare.settings",
            "s3_bucket": "bench-bare",
            # Zappa's manylinux lookup would query the package index per package.
            "use_precompiled_packages": False,
        }
    }
    (app / "zappa_settings.json").write_text(json.dumps(settings, indent=4))
    env = {**os.environ, "VIRTUAL_ENV": str(venv), **OFFLINE_AWS}
    env.pop("AWS_PROFILE", None)
    subprocess.run(
        [str(venv / "bin" / "zappa"), "package", "bare", "-o", str(output)],
        cwd=app,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (BARE / ".stamp").write_text(stamp)
    return output


# --- AWS and the app's state ------------------------------------------------------------


def start_moto() -> tuple[object, str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def function_env(name: str, endpoint: str, **extra: str) -> dict[str, str]:
    return lambda_env(
        name,
        AWS_ENDPOINT_URL=endpoint,
        DJANGO_SECRET_KEY="bench-secret-key-" + "x" * 40,
        DJANGO_ALLOWED_HOSTS=API_HOST,
        EXECUTOR_FUNCTION_ARN=f"arn:aws:lambda:us-east-1:123456789012:function:task-scheduler-{STAGE}-executor",
        SCHEDULER_ROLE_ARN=f"arn:aws:iam::123456789012:role/task-scheduler-{STAGE}-scheduler",
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",  # the receiver is on 127.0.0.1
        **extra,
    )


def prepare_state(web_dir: Path, runtime: Path, endpoint: str, receiver_url: str, runs: int):
    """Tables, schedule group, an API key, and one due task per executor run;
    returns (API key, a task id to read, the executor events)."""
    import boto3

    scheduler = boto3.client(
        "scheduler",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    group = f"task-scheduler-{STAGE}"
    with LambdaProcess(web_dir, runtime, function_env(f"task-scheduler-{STAGE}", endpoint)) as web:
        web.invoke({"manage": "createtables"})
        scheduler.create_schedule_group(Name=group)
        key = web.run("from tasks import access\nresult = access.apikey_create(name='bench')[1]")
        events, task_ids = [], []
        for _ in range(runs):
            response = web.invoke(
                rest_event(
                    "POST",
                    "/api/tasks",
                    {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                    {
                        "action": "webhook",
                        "payload": {"url": receiver_url, "data": {"bench": True}},
                        "runAt": datetime.now(UTC).isoformat(),
                    },
                )
            )
            assert response["statusCode"] == 201, response
            task_ids.append(json.loads(response["body"])["id"])
    for task_id in task_ids:
        names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
        (name,) = [n for n in names if n.startswith(task_id)]
        schedule = scheduler.get_schedule(Name=name, GroupName=group)
        events.append(json.loads(schedule["Target"]["Input"]))
    return key, task_ids[0], events


# --- measuring ---------------------------------------------------------------------------


def cold_start(package: Path, runtime: Path, env: dict[str, str], event: dict, check) -> float:
    with LambdaProcess(package, runtime, env) as process:
        reply = process.request({"event": event})
        if "error" in reply:
            raise RuntimeError(f"{package.name}: {reply['error']}: {reply['message']}")
        check(reply["result"])
        return process.import_seconds + reply["seconds"]


def sizes(path: Path) -> tuple[float, float]:
    with zipfile.ZipFile(path) as archive:
        unzipped = sum(i.file_size for i in archive.infolist())
    return path.stat().st_size / 1024 / 1024, unzipped / 1024 / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    zips = {
        "web": package_path(STAGE),
        "executor": package_path(f"{STAGE}_executor"),
    }
    missing = [str(p) for p in zips.values() if not p.exists()]
    if missing:
        print(f"missing {', '.join(missing)}: run make lambda", file=sys.stderr)
        return 2
    zips["baseline"] = bare_package()
    runtime = runtime_stand_in(
        VENV / "lib" / "python3.13" / "site-packages", BUILD / "lambda-runtime"
    )

    receiver = Receiver()
    receiver_url = receiver.start()
    server, endpoint = start_moto()
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        dirs = {name: unpack(path, Path(tmp) / name) for name, path in zips.items()}
        key, task_id, executor_events = prepare_state(
            dirs["web"], runtime, endpoint, receiver_url, args.runs
        )
        web_env = function_env(f"task-scheduler-{STAGE}", endpoint)
        executor_env = function_env(
            f"task-scheduler-{STAGE}-executor", endpoint, WEBHOOK_SIGNING_SECRET=SIGNING_SECRET
        )
        web_event = rest_event("GET", f"/api/tasks/{task_id}", {"Authorization": f"Bearer {key}"})
        bare_env = lambda_env("bare-bare", DJANGO_SETTINGS_MODULE="bare.settings")

        def ok_200(result: dict) -> None:
            assert result["statusCode"] == 200, result.get("body", "")[:300]

        def completed(result: dict) -> None:
            assert result["result"] == "completed", result

        samples: dict[str, list[float]] = {"web": [], "executor": [], "baseline": []}
        for run in range(args.runs):
            samples["web"].append(cold_start(dirs["web"], runtime, web_env, web_event, ok_200))
            samples["executor"].append(
                cold_start(dirs["executor"], runtime, executor_env, executor_events[run], completed)
            )
            samples["baseline"].append(
                cold_start(dirs["baseline"], runtime, bare_env, rest_event("GET", "/"), ok_200)
            )
            print(
                f"run {run + 1}/{args.runs}: "
                + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in samples.items()),
                flush=True,
            )
    server.stop()

    medians = {name: statistics.median(values) for name, values in samples.items()}
    print()
    print(
        f"Cold start: import + first event in a fresh process, median of {args.runs} ({time.strftime('%Y-%m-%d')})"
    )
    print()
    print("| package | zipped | unzipped | first event | median | min | max |")
    print("|---|---:|---:|---|---:|---:|---:|")
    firsts = {
        "web": "GET /api/tasks/{id} (API key)",
        "executor": "schedule Input: task runs, webhook sent",
        "baseline": "GET / (bare startproject, plain `zappa package`)",
    }
    for name, path in zips.items():
        zipped, unzipped = sizes(path)
        values = samples[name]
        print(
            f"| {name} ({path.name}) | {zipped:.1f} MiB | {unzipped:.1f} MiB | {firsts[name]} "
            f"| {medians[name]:.3f} s | {min(values):.3f} s | {max(values):.3f} s |"
        )
    ratio = medians["web"] / medians["baseline"]
    checks = [
        (
            f"web <= {TARGET_WEB_SECONDS} s",
            medians["web"] <= TARGET_WEB_SECONDS,
            f"{medians['web']:.3f} s",
        ),
        (f"web <= {TARGET_WEB_RATIO}x baseline", ratio <= TARGET_WEB_RATIO, f"{ratio:.2f}x"),
        (
            f"executor <= {TARGET_EXECUTOR_SECONDS} s",
            medians["executor"] <= TARGET_EXECUTOR_SECONDS,
            f"{medians['executor']:.3f} s",
        ),
    ]
    print()
    for label, met, value in checks:
        print(f"{'met ' if met else 'MISSED'} {label}: {value}")
    return 0 if all(met for _, met, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
