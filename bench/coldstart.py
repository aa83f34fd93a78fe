"""Cold start of the built Lambda packages, side by side with Zappa's default.

    python -m bench.coldstart [--runs 7]

Each sample is a fresh `python -I -S -B` process that sees only the unzipped
package (plus the runtime's boto3/botocore), as on Lambda (tests/lambda_runtime.py),
and times `import handler` plus the first event, in that process:
- web: GET /api/tasks/{id} with an API key (REST API event, two DynamoDB reads);
- executor: the exact Input of a due task's schedule (claim, a signed webhook to
  a receiver on 127.0.0.1, the result write);
- floor: the executor package's Zappa handler doing one DynamoDB GetItem and
  nothing of the app (Zappa's raw_command route): what any function that keeps
  its state in DynamoDB pays, and so the least the executor can take;
- baseline: a bare `django-admin startproject` app packaged by plain
  `zappa package` from a virtualenv holding Django and Zappa, first request GET /;
- bare, compiled: the same app with its bytecode compiled as `make lambda`
  compiles ours: what Zappa and Django alone take, the floor under the web function.
Samples are interleaved so that all share the machine's noise; the table
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from bench.receiver import Receiver
from deploy.build_lambda import BUILD, OFFLINE_AWS, entry_point, package_path
from deploy.lambda_package import compile_bytecode
from tests.lambda_runtime import (
    API_HOST,
    STAGE,
    LambdaProcess,
    create_task_event,
    lambda_env,
    rest_event,
    runtime_stand_in_dir,
    unpack,
)

ROOT = Path(__file__).resolve().parent.parent

SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BARE = BUILD / "bench-bare"
BARE_PINS = ["Django==6.1.3", "zappa==0.63.0"]
BARE_ENTRY = "handler.lambda_handler"  # Zappa's own
TARGET_WEB_SECONDS = 0.5
TARGET_WEB_RATIO = 0.4
TARGET_EXECUTOR_SECONDS = 0.3


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
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
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
    env = function_env(f"task-scheduler-{STAGE}", endpoint)
    with LambdaProcess(web_dir, runtime, env, entry=entry_point(STAGE)) as web:
        web.invoke({"manage": "createtables"})
        scheduler.create_schedule_group(Name=group)
        key = web.run(
            "from tasks.services import access\nresult = access.apikey_create(name='bench')[1]"
        )
        events, task_ids = [], []
        for _ in range(runs):
            response = web.invoke(
                create_task_event(
                    key, url=receiver_url, run_at=datetime.now(UTC), data={"bench": True}
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


# Where a cold start goes: a process like a sample's, with the imports the
# handler makes done first, one at a time, each timed; then its init and the event.
_PHASES = r"""
import json, os, sys, time
package, runtime = sys.argv[1], sys.argv[2]
sys.path[:0] = [package, runtime]
os.chdir(package)
channel = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr
phases, event = json.loads(sys.stdin.readline())
times = []
for label, kind, arg in phases:
    wall, cpu = time.perf_counter(), time.process_time()
    if kind == "import":
        for name in arg.split(","):
            __import__(name)
    elif kind == "init":
        __import__("handler").LambdaHandler()
    elif kind == "call":
        __import__("tasks.executor").executor.run_task(event, None)
    else:
        __import__("handler").lambda_handler(event, None)
    times.append([label, time.perf_counter() - wall, time.process_time() - cpu])
channel.write(json.dumps(times))
"""

ZAPPA_IMPORTS = [
    ("asyncio (Zappa's handler)", "import", "asyncio"),
    ("Werkzeug (Zappa's handler)", "import", "werkzeug.wrappers"),
    ("botocore (PynamoDB's; the runtime's copy)", "import", "botocore.session"),
    ("boto3 on top (Zappa's utilities)", "import", "boto3"),
    ("the rest of Zappa's handler", "import", "handler"),
]
APP_IMPORTS = (
    "the app: settings, PynamoDB, the action",
    "import",
    "tasks.services.running,tasks.actions.webhook",
)
EXECUTOR_EVENT = "first event: claim, webhook, result"
PHASES = {
    "web": [
        *ZAPPA_IMPORTS,
        ("Django's request handling modules", "import", "django.core.wsgi"),
        ("Zappa's init: Django setup, apps, middleware", "init", ""),
        ("first event: URLconf, the API, two GetItem", "event", ""),
    ],
    "executor": [
        *ZAPPA_IMPORTS,
        ("Zappa's init (settings only)", "init", ""),
        APP_IMPORTS,
        (EXECUTOR_EVENT, "event", ""),
    ],
    # For comparison: the same work without Zappa's handler in front.
    "executor, run_task called directly": [
        ("botocore (PynamoDB's; the runtime's copy)", "import", "botocore.session"),
        APP_IMPORTS,
        (EXECUTOR_EVENT, "call", ""),
    ],
}


def phases(package: Path, runtime: Path, env: dict[str, str], name: str, event: dict) -> list:
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", _PHASES, str(package), str(runtime)],
        input=json.dumps([PHASES[name], event]) + "\n",
        capture_output=True,
        text=True,
        cwd=package,
        env=env,
        check=True,
    )
    return json.loads(result.stdout)


def report_phases(breakdown: dict[str, list[list]]) -> None:
    print()
    print("Where it goes (each step's median; the handler's imports first, one at a time):")
    for name, runs in breakdown.items():
        print()
        print(f"| {name} | CPU | wall |")
        print("|---|---:|---:|")
        for i, (label, *_rest) in enumerate(runs[0]):
            wall = statistics.median(r[i][1] for r in runs)
            cpu = statistics.median(r[i][2] for r in runs)
            print(f"| {label} | {cpu:.3f} s | {wall:.3f} s |")
        total_cpu = statistics.median(sum(step[2] for step in r) for r in runs)
        total_wall = statistics.median(sum(step[1] for step in r) for r in runs)
        print(f"| total | {total_cpu:.3f} s | {total_wall:.3f} s |")


def cold_start(
    package: Path, runtime: Path, env: dict[str, str], event: dict, check, entry: str
) -> tuple[float, float]:
    """(wall, CPU) seconds of importing the entry point plus the first event."""
    with LambdaProcess(package, runtime, env, entry=entry) as process:
        reply = process.request({"event": event})
        if "error" in reply:
            raise RuntimeError(f"{package.name}: {reply['error']}: {reply['message']}")
        check(reply["result"])
        return (
            process.import_seconds + reply["seconds"],
            process.import_cpu_seconds + reply["cpu_seconds"],
        )


def sizes(path: Path) -> tuple[float, float]:
    with zipfile.ZipFile(path) as archive:
        unzipped = sum(i.file_size for i in archive.infolist())
    return path.stat().st_size / 1024 / 1024, unzipped / 1024 / 1024


class Kind(NamedTuple):
    """One kind of sample: its package (a key of the zips), where it is
    unpacked, its environment, the event of run N, its result's check, and
    the entry point Lambda calls."""

    package: str
    unpacked: Path
    env: dict[str, str]
    event: Callable[[int], dict]
    check: Callable[[dict], None]
    entry: str


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
    runtime = runtime_stand_in_dir()

    receiver = Receiver()
    receiver_url = receiver.start()
    server, endpoint = start_moto()
    with tempfile.TemporaryDirectory(prefix="coldstart-") as tmp:
        dirs = {name: unpack(path, Path(tmp) / name) for name, path in zips.items()}
        # The bare app again, its bytecode compiled as `make lambda` compiles
        # ours: what Zappa and Django alone cost, the floor under the web function.
        dirs["bare, compiled"] = Path(tmp) / "bare-compiled"
        shutil.copytree(dirs["baseline"], dirs["bare, compiled"])
        compile_bytecode(dirs["bare, compiled"])
        key, task_id, executor_events = prepare_state(
            dirs["web"], runtime, endpoint, receiver_url, 3 * args.runs
        )
        web_env = function_env(f"task-scheduler-{STAGE}", endpoint)
        executor_env = function_env(
            f"task-scheduler-{STAGE}-executor", endpoint, WEBHOOK_SIGNING_SECRET=SIGNING_SECRET
        )
        web_event = rest_event(
            "GET", f"/api/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"}
        )
        bare_env = lambda_env("bare-bare", DJANGO_SETTINGS_MODULE="bare.settings")

        def ok_200(result: dict) -> None:
            assert result["statusCode"] == 200, result.get("body", "")[:300]

        def completed(result: dict) -> None:
            assert result["result"] == "completed", result

        web_entry, executor_entry = entry_point(STAGE), entry_point(f"{STAGE}_executor")
        bare_event = rest_event("GET", "/")
        kinds = {
            "web": Kind("web", dirs["web"], web_env, lambda n: web_event, ok_200, web_entry),
            "executor": Kind(
                "executor",
                dirs["executor"],
                executor_env,
                lambda n: executor_events[n],
                completed,
                executor_entry,
            ),
            "floor": Kind(
                "executor",
                dirs["executor"],
                executor_env,
                lambda n: {"raw_command": FLOOR_COMMAND},
                lambda result: None,
                executor_entry,
            ),
            **{
                name: Kind(
                    "baseline", dirs[name], bare_env, lambda n: bare_event, ok_200, BARE_ENTRY
                )
                for name in ("baseline", "bare, compiled")
            },
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
        load_before = os.getloadavg()[0]
        for run in range(args.runs):
            for name, k in kinds.items():
                samples[name].append(
                    cold_start(k.unpacked, runtime, k.env, k.event(run), k.check, k.entry)
                )
            print(
                f"run {run + 1}/{args.runs}: "
                + ", ".join(f"{k} {v[-1][0]:.3f} s" for k, v in samples.items()),
                flush=True,
            )
        load_after = os.getloadavg()[0]
        direct = "executor, run_task called directly"
        direct_env = {**executor_env, "DJANGO_SETTINGS_MODULE": "scheduler_site.settings"}
        breakdown: dict[str, list] = {"web": [], "executor": [], direct: []}
        for run in range(args.runs):
            breakdown["web"].append(phases(dirs["web"], runtime, web_env, "web", web_event))
            event = executor_events[args.runs + run]
            breakdown["executor"].append(
                phases(dirs["executor"], runtime, executor_env, "executor", event)
            )
            event = executor_events[2 * args.runs + run]
            breakdown[direct].append(phases(dirs["executor"], runtime, direct_env, direct, event))
    server.stop()
    report(
        {name: zips[k.package] for name, k in kinds.items()},
        samples,
        args.runs,
        (load_before, load_after),
    )
    report_phases(breakdown)
    return check_targets(samples)


# The least a function that keeps its state in DynamoDB does, through Zappa's
# handler (its raw_command route), with none of the app: one read.
FLOOR_COMMAND = (
    "import botocore.session\n"
    "client = botocore.session.get_session().create_client('dynamodb')\n"
    f"client.get_item(TableName='task-scheduler-{STAGE}-tasks', Key={{'id': {{'S': '0' * 32}}}})"
)

FIRST_EVENTS = {
    "web": "GET /api/tasks/{id} (API key)",
    "executor": "its schedule's Input: claim, signed webhook, result",
    "floor": "Zappa's handler, one DynamoDB GetItem, none of the app",
    "baseline": "GET / (bare startproject, plain `zappa package`)",
    "bare, compiled": "GET / (the same, with unchecked-hash bytecode as ours)",
}


def report(zips: dict[str, Path], samples: dict, runs: int, load: tuple[float, float]) -> None:
    print()
    print(
        f"Cold start: `import handler` + first event in a fresh process, median of {runs} "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} before, {load[1]:.1f} after)"
    )
    print()
    print("| package | zipped | unzipped | first event | median | min | max | CPU (median) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for name, path in zips.items():
        zipped, unzipped = sizes(path)
        wall = [w for w, _ in samples[name]]
        cpu = [c for _, c in samples[name]]
        print(
            f"| {name} (`{path.name}`) | {zipped:.1f} MiB | {unzipped:.1f} MiB | "
            f"{FIRST_EVENTS[name]} | {statistics.median(wall):.3f} s | {min(wall):.3f} s | "
            f"{max(wall):.3f} s | {statistics.median(cpu):.3f} s |"
        )


def check_targets(samples: dict) -> int:
    web, executor, floor, baseline, bare = (
        statistics.median(w for w, _ in samples[k])
        for k in ("web", "executor", "floor", "baseline", "bare, compiled")
    )
    print()
    print(
        "floors, medians of this run's samples: the executor's (Zappa's handler and one "
        f"DynamoDB read) {floor:.3f} s; Zappa and Django's alone (the bare app compiled as "
        f"ours) {bare:.3f} s"
    )
    checks = [
        (f"web <= {TARGET_WEB_SECONDS} s", web <= TARGET_WEB_SECONDS, f"{web:.3f} s"),
        (
            f"web <= {TARGET_WEB_RATIO}x baseline",
            web / baseline <= TARGET_WEB_RATIO,
            f"{web / baseline:.2f}x",
        ),
        (
            f"executor <= {TARGET_EXECUTOR_SECONDS} s",
            executor <= TARGET_EXECUTOR_SECONDS,
            f"{executor:.3f} s",
        ),
    ]
    for label, met, value in checks:
        print(f"{'met   ' if met else 'MISSED'} {label}: {value}")
    return 0 if all(met for _, met, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
