"""Cost benchmark: what a one-shot webhook task costs on AWS, from counted
calls and measured durations, under EventBridge's minute precision.

N tasks, due at random instants spread over a minute or so, are created
through the API of the local mode started with SCHEDULER_LOCAL_PRECISION=minute
(each schedule fires at a random second of its minute, as EventBridge may).
The local mode's meter (tasks/localmode/callcount.py) logs every billable
event from the first create to the last result: API requests (the web
function's invocations), Scheduler invocations (the stand-in's), executor
invocations with their durations, SQS requests (the app's sends, the event
source's receives and deletes) and DynamoDB's ConsumedCapacity (every call
asks for it; the local endpoint computes it as DynamoDB does,
localmode/capacity.py). They are priced from bench/prices.py. Then K tasks
whose webhook is refused are retried once, for the cost of a retried
attempt. Then R recurring schedules (`rate: "1 minute"`) are made and left
to fire until each has had at least two occurrences delivered; the events
metered between the last create and the first delete are priced per
occurrence (the creates are priced apart: they are not per occurrence). An
occurrence is not hopped through the queue: EventBridge fires a recurring
schedule at or after its time, which is the occurrence's due time, so the
executor makes the occurrence's task and runs it in the same invocation.
The last line reads `cost: $X.XX per million tasks, p99 lateness N ms` (the
one-shot figure).

    python -m bench.cost [-n 200] [-k 10] [-r 5]
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import prices
from bench.dispatch import percentile
from bench.receiver import Receiver
from tasks.localmode.process import free_port, start_local

ROOT = Path(__file__).resolve().parent.parent

# The schedule path: a task due more than about two minutes ahead gets a
# schedule for the minute before its due minute (closer ones go straight to
# the queue, which is cheaper: this measures the dearer path).
FIRST_DUE = 130
SPREAD = 60
RETRY_BASE_SECONDS = 100


def stage_memory(stage: str) -> tuple[int, int, str]:
    config = json.loads((ROOT / "zappa_settings.json").read_text())
    web, executor = config[stage], config[f"{stage}_executor"]
    front = "function_url" if web.get("function_url_enabled") else "rest_api"
    if not web.get("function_url_enabled") and web.get("apigateway_version") == "v2":
        front = "http_api"
    return web["memory_size"], executor.get("memory_size", web["memory_size"]), front


def read_meter(path: Path, start: int = 0) -> list[tuple[float, str, str, float]]:
    lines = path.read_text().splitlines()[start:] if path.exists() else []
    return [(float(t), kind, name, float(v)) for t, kind, name, v in (ln.split() for ln in lines)]


def price(
    events: list, n: int, stage: str, web: tuple[str, ...] = ("web:POST:/api/tasks",)
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-task counts and per-million dollars, by item; of the web
    function's invocations only those named in `web` count."""
    web_mb, exec_mb, front = stage_memory(stage)
    per_million = prices.PER_MILLION
    count: collections.Counter = collections.Counter()
    dollars: collections.Counter = collections.Counter()
    for _t, kind, name, value in events:
        if kind == "lambda":
            is_web = name.startswith("web:")
            if is_web and name not in web:
                continue  # not part of what is measured (none are made meanwhile)
            label = "web" if is_web else "executor"
            count[f"lambda {label} invocations"] += 1
            count[f"lambda {label} seconds"] += value
            count["lambda requests"] += 1
            memory = web_mb if is_web else exec_mb
            dollars[f"Lambda duration, {label} ({memory} MB)"] += (
                prices.lambda_duration_cost(value, memory) * 1e6
            )
            dollars["Lambda requests"] += per_million["lambda.request"]
            if is_web:
                count["front door requests"] += 1
                dollars[f"front door ({front})"] += per_million[f"front.{front}"]
        elif kind == "call" and name.startswith("sqs."):
            count[name] += 1
            dollars["SQS requests"] += per_million["sqs.request"]
        elif kind == "call":
            count[name] += 1
        elif kind == "wcu":
            count["DynamoDB WRU"] += value
            dollars["DynamoDB writes"] += value * per_million["dynamodb.wru"]
        elif kind == "rcu":
            count["DynamoDB RRU"] += value
            dollars["DynamoDB reads"] += value * per_million["dynamodb.rru"]
        elif kind == "scheduler":
            count["Scheduler invocations"] += 1
            dollars["EventBridge Scheduler"] += per_million["scheduler.invocation"]
    return (
        {k: v / n for k, v in sorted(count.items())},
        {k: v / n for k, v in sorted(dollars.items())},
    )


def create(stack, url: str, due: list[datetime], max_attempts: int = 1) -> list[str]:
    def one(when: datetime) -> str:
        body = {
            "action": "webhook",
            "payload": {"url": url, "data": {"at": when.isoformat()}},
            "runAt": when.isoformat(timespec="milliseconds"),
            "maxAttempts": max_attempts,
        }
        status, task = stack.api("POST", "/api/tasks", body)
        if status != 201:
            raise RuntimeError(f"create failed: {status} {task}")
        return task["id"]

    # One at a time: the local endpoint serves one request at a time, so
    # concurrent creates would bill each web invocation for the others'
    # waits, which DynamoDB and Scheduler on AWS do not impose.
    return [one(when) for when in due]


def _ms(when: datetime) -> datetime:
    """runAt goes to the API in milliseconds: lateness is measured from that."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def wait_for(predicate, deadline: float) -> bool:
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def dynamodb(stack):
    """A client of the local endpoint, from this process: the table is read
    directly, not through the API, whose own reads would be metered as part
    of the tasks' cost (the meter is in the local mode's process)."""
    import boto3

    endpoint = next(line.split()[3] for line in stack.output if line.startswith("local AWS on "))
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def statuses(stack, ids: list[str], client=None) -> collections.Counter:
    client = client or dynamodb(stack)
    found: collections.Counter = collections.Counter()
    for task_id in ids:
        item = client.get_item(TableName="task-scheduler-local-tasks", Key={"id": {"S": task_id}})
        found[item.get("Item", {}).get("status", {}).get("S", "missing")] += 1
    return found


def finished(stack, ids: list[str]) -> bool:
    found = statuses(stack, ids)
    return found["completed"] + found["failed"] == len(ids)


def table(title: str, counts: dict, dollars: dict, unit: str = "task") -> float:
    print(f"\n{title}\n")
    print(f"| item | per {unit} |")
    print("| --- | ---: |")
    for name, value in counts.items():
        print(f"| {name} | {value:.3f} |")
    print(f"\n| cost item | $ per million {unit}s |")
    print("| --- | ---: |")
    for name, value in dollars.items():
        print(f"| {name} | {value:.2f} |")
    total = sum(dollars.values())
    print(f"| **total** | **{total:.2f}** |")
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200, help="one-shot tasks")
    parser.add_argument("-k", type=int, default=10, help="tasks retried once (0: none)")
    parser.add_argument(
        "-r", type=int, default=5, help="recurring schedules, 1 minute apart (0: none)"
    )
    parser.add_argument("--stage", default="dev", help="zappa_settings.json stage (memory)")
    parser.add_argument(
        "--hop-lead",
        type=float,
        default=None,
        help="TASK_HOP_LEAD_SECONDS (default: the setting's, 0.75)",
    )
    args = parser.parse_args()
    receiver = Receiver()
    url = receiver.start()
    with tempfile.TemporaryDirectory() as tmp:
        meter = Path(tmp) / "meter.log"
        stack = start_local(
            Path(tmp) / "state",
            env={
                "SCHEDULER_LOCAL_PRECISION": "minute",
                "SCHEDULER_LOCAL_METER_LOG": str(meter),
                "TASK_RETRY_BASE_SECONDS": str(RETRY_BASE_SECONDS),
                "LOG_LEVEL": "WARNING",
                **({"TASK_HOP_LEAD_SECONDS": str(args.hop_lead)} if args.hop_lead else {}),
            },
        )
        try:
            return run(stack, receiver, url, meter, args)
        finally:
            stack.stop()
            receiver.stop()


def run(stack, receiver: Receiver, url: str, meter: Path, args) -> int:
    banner = [line.strip() for line in stack.output if line.startswith("Precision:")]
    print(banner[0] if banner else "Precision: second (no minute emulation!)")
    lead = f"{args.hop_lead} s" if args.hop_lead else "the default"
    print(f"Hop lead (TASK_HOP_LEAD_SECONDS): {lead}")
    n, start_line = args.n, len(read_meter(meter))
    base = datetime.now(UTC) + timedelta(seconds=FIRST_DUE)
    due = [_ms(base + timedelta(seconds=random.uniform(0, SPREAD))) for _ in range(n)]
    ids = create(stack, url, due)
    ok = wait_for(
        lambda: len(receiver.arrivals()[0].keys() & set(ids)) == n, max(due).timestamp() + 30
    )
    time.sleep(2)  # the last results are written
    events = read_meter(meter, start_line)
    arrivals, received = receiver.arrivals()
    lateness = [
        (arrivals[i] - d.timestamp()) * 1000 for i, d in zip(ids, due, strict=True) if i in arrivals
    ]
    counts, dollars = price(events, n, args.stage)
    done = finished(stack, ids)
    print(f"\nCost benchmark, {prices.REGION} prices of {prices.DATE} (bench/prices.py)")
    print(f"{n} one-shot webhook tasks due over {SPREAD} s, {FIRST_DUE} s ahead and on")
    print(f"delivered {len(lateness)}/{n} (receiver saw {received} requests), all finished: {done}")
    for p in (50, 95, 99):
        print(f"lateness p{p}: {percentile(lateness, p):.0f} ms")
    print(
        f"lateness min / max: {min(lateness):.0f} / {max(lateness):.0f} ms (never early: {min(lateness) >= 0})"
    )
    total = table("Per one-shot task", counts, dollars)
    if args.k:
        retried(stack, meter, args)
    recurred = recurring(stack, receiver, url, meter, args) if args.r else True
    p99 = percentile(lateness, 99)
    met = ok and done and p99 <= 1000 and total <= 7 and min(lateness) >= 0
    print(
        f"\ntargets (p99 <= 1000 ms, <= $7 per million, none early): {'met' if met else 'NOT met'}"
    )
    if not recurred:
        print("recurring schedules: NOT measured (too few occurrences in time)")
    print(f"cost: ${total:.2f} per million tasks, p99 lateness {p99:.0f} ms")
    return 0 if met and recurred else 1


def retried(stack, meter: Path, args) -> None:
    """K tasks whose webhook is refused (a closed port), retried once."""
    k, start_line = args.k, len(read_meter(meter))
    refused = f"http://127.0.0.1:{free_port()}/refused"
    base = datetime.now(UTC) + timedelta(seconds=FIRST_DUE)
    due = [base + timedelta(seconds=random.uniform(0, 10)) for _ in range(k)]
    ids = create(stack, refused, due, max_attempts=2)
    wait_for(lambda: finished(stack, ids), max(due).timestamp() + RETRY_BASE_SECONDS + 90)
    events = read_meter(meter, start_line)
    counts, dollars = price(events, k, args.stage)
    table(f"Per task retried once ({k} tasks, both attempts refused)", counts, dollars)


# A recurring schedule fires at whole minutes: two occurrences each take at
# most three minute boundaries from the last create, and a little more.
RECURRING_WAIT_SECONDS = 200


def recurring(stack, receiver: Receiver, url: str, meter: Path, args) -> bool:
    """R schedules of `rate: 1 minute`, left to fire until each has had two
    occurrences delivered, then deleted. The events metered in between are
    the occurrences' (the creates and deletes are outside that window: no
    occurrence falls due within a couple of seconds of either). False when
    the occurrences did not all come in time."""
    r, before = args.r, len(read_meter(meter))
    received_before = receiver.arrivals()[1]
    body = {"action": "webhook", "payload": {"url": url, "data": {"bench": "recurring"}}}
    schedule_ids = []
    for _ in range(r):
        status, schedule = stack.api("POST", "/api/schedules", {**body, "rate": "1 minute"})
        if status != 201:
            raise RuntimeError(f"schedule create failed: {status} {schedule}")
        schedule_ids.append(schedule["id"])
    created = len(read_meter(meter))
    client = dynamodb(stack)

    def delivered() -> dict[str, list[tuple[str, datetime]]]:
        """Each schedule's occurrences that completed and reached the receiver."""
        arrivals = receiver.arrivals()[0]
        found = {}
        for schedule_id in schedule_ids:
            found[schedule_id] = [
                (task_id, at)
                for task_id, at in occurrences(client, schedule_id)
                if task_id in arrivals and statuses(stack, [task_id], client)["completed"]
            ]
        return found

    ok = wait_for(
        lambda: all(len(v) >= 2 for v in delivered().values()),
        time.time() + RECURRING_WAIT_SECONDS,
    )
    time.sleep(2)  # the last results are written
    done = delivered()
    end = len(read_meter(meter))
    every = [o for schedule_id in schedule_ids for o in occurrences(client, schedule_id)]
    for schedule_id in schedule_ids:
        status = delete(stack, f"/api/schedules/{schedule_id}")
        if status != 204:
            print(f"could not delete schedule {schedule_id}: {status}")
    lines = read_meter(meter)
    n = sum(len(v) for v in done.values())
    arrivals, received = receiver.arrivals()
    lateness = [(arrivals[i] - at.timestamp()) * 1000 for v in done.values() for i, at in v]
    print(f"\n{r} recurring schedules (rate 1 minute), each until 2 occurrences were delivered")
    print(
        f"occurrences delivered and completed: {n} (made: {len(every)}; webhook requests: "
        f"{received - received_before}; all in time: {ok}); lateness from the scheduled "
        "time p50 / max: "
        f"{percentile(lateness, 50) if lateness else 0:.0f} / {max(lateness, default=0):.0f} ms"
    )
    if n:
        counts, dollars = price(lines[created:end], n, args.stage, web=())
        table("Per occurrence of a recurring schedule", counts, dollars, unit="occurrence")
    counts, dollars = price(lines[before:created], r, args.stage, web=("web:POST:/api/schedules",))
    table(
        f"Per schedule create (POST /api/schedules, {r} made; not per occurrence)",
        counts,
        dollars,
        unit="schedule create",
    )
    return ok and n == len(every)


def occurrences(client, schedule_id: str) -> list[tuple[str, datetime]]:
    """(task id, scheduled time) of each occurrence made (the keys-only index)."""
    items = client.query(
        TableName="task-scheduler-local-tasks",
        IndexName="schedule_id-occurrence_at-index",
        KeyConditionExpression="schedule_id = :s",
        ExpressionAttributeValues={":s": {"S": schedule_id}},
    )["Items"]
    return [(i["id"]["S"], datetime.fromisoformat(i["occurrence_at"]["S"])) for i in items]


def delete(stack, path: str) -> int:
    """DELETE through the API (LocalRun.api expects a JSON answer; a 204 has none)."""
    import urllib3

    response = urllib3.request(
        "DELETE",
        stack.url.rstrip("/") + path,
        headers={"Authorization": f"Bearer {stack.api_key}"},
        timeout=10,
    )
    return response.status


if __name__ == "__main__":
    sys.exit(main())
