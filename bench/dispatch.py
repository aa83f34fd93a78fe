"""Dispatch benchmark of the local mode: N webhook tasks due in the same
second. Prints lateness percentiles (webhook received minus runAt), tasks per
second, and the AWS API calls per task lifecycle counted at the client.

    python -m bench.dispatch [-n 200]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.receiver import Receiver
from tasks.localmode.process import start_local


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=200, help="tasks due in the same second")
    parser.add_argument("--threads", type=int, default=None, help="runlocal's invocation pool")
    args = parser.parse_args()
    n = args.n

    receiver = Receiver()
    url = receiver.start()
    with tempfile.TemporaryDirectory() as tmp:
        call_log = Path(tmp) / "calls.log"
        stack = start_local(
            Path(tmp) / "state",
            env={"SCHEDULER_LOCAL_CALL_LOG": str(call_log)},
            args=[] if args.threads is None else ["--threads", str(args.threads)],
        )
        try:
            return run(stack, receiver, url, n, call_log)
        finally:
            stack.stop()
            receiver.stop()
            warnings = [line for line in stack.output if "WARNING" in line or "ERROR" in line]
            if warnings:
                print(f"\n{len(warnings)} warnings from the local mode, the first:")
                first = stack.output.index(warnings[0])
                print("".join(stack.output[first : first + 30]))


def run(stack, receiver: Receiver, url: str, n: int, call_log: Path) -> int:
    # Leave time to create them all first (creates go through the API, at
    # 25 to 40 a second on a 2-core machine), and to claim them in the lead;
    # at most 55 s, so that every task takes the same path (due within a
    # minute or so: straight to the hop queue, as tasks/services/schedules.py
    # decides).
    ahead = max(8, min(55, n // 15))
    run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ahead)
    body = {
        "action": "webhook",
        "payload": {"url": url, "data": {"n": 0}},
        "runAt": run_at.isoformat(),
    }
    calls_before = _lines(call_log)
    created_at = time.time()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: stack.api("POST", "/api/tasks", body), range(n)))
    create_seconds = time.time() - created_at
    ids = [task["id"] for status, task in results if status == 201]
    if len(ids) != n or time.time() >= run_at.timestamp():
        print(f"setup failed: {len(ids)}/{n} created, creating took {create_seconds:.1f} s")
        return 1

    # Each lifecycle ends with its final status write: the claim and the
    # result are two UpdateItems per task.
    deadline = run_at.timestamp() + 120
    while time.time() < deadline:
        calls = [line.split() for line in _lines(call_log)[len(calls_before) :]]
        if sum(op == "UpdateItem" for _, _, op in calls) >= 2 * n:
            break
        time.sleep(0.05)
    all_done = max(float(t) for t, _, op in calls if op == "UpdateItem")
    completed = _count_completed(stack)

    arrivals, received = receiver.arrivals()
    lateness = [(arrivals[i] - run_at.timestamp()) * 1000 for i in ids if i in arrivals]
    per_op = collections.Counter(f"{service}.{op}" for _, service, op in calls)
    print(f"\nDispatch benchmark: {n} webhook tasks due at the same second (local mode)\n")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| delivered | {len(lateness)}/{n} (receiver saw {received} requests) |")
    print(f"| completed (API) | {completed}/{n} |")
    for p in (50, 95, 99):
        print(f"| p{p} lateness | {percentile(lateness, p):.0f} ms |")
    print(f"| max lateness | {max(lateness):.0f} ms |")
    print(f"| slowest 5 | {', '.join(f'{x:.0f}' for x in sorted(lateness)[-5:])} ms |")
    print(f"| min lateness | {min(lateness):.0f} ms |")
    print(
        f"| throughput | {n / max(all_done - run_at.timestamp(), 1e-9):.0f} tasks/s (runAt to all completed) |"
    )
    print(f"| creates | {n / create_seconds:.0f} tasks/s through the API (8 clients) |")
    updates = sorted(float(t) for t, _, op in calls if op == "UpdateItem")
    early = sum(t < run_at.timestamp() for t in updates)
    print(f"| UpdateItems before runAt | {early} (claims made during the stand-in's lead) |")
    print(f"| AWS calls per task | {len(calls) / n:.2f} |")
    for op, count in sorted(per_op.items()):
        print(f"| - {op} | {count / n:.2f} |")
    # 100 ms up to 200 at once; 1 s for a crowd of 1,000.
    target_ms = 100 if n <= 200 else 1000
    ok = (
        len(lateness) == n
        and completed == n
        and received == n
        and percentile(lateness, 99) <= target_ms
        and len(calls) / n <= 5
    )
    met = "met" if ok else "NOT met"
    print(f"\ntargets (p99 <= {target_ms} ms, <= 5 calls/task, each delivered once): {met}")
    return 0 if ok else 1


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _count_completed(stack) -> int:
    count, cursor = 0, None
    while True:
        query = "/api/tasks?status=completed&limit=100" + (f"&cursor={cursor}" if cursor else "")
        _, page = stack.api("GET", query)
        count += len(page["items"])
        cursor = page["nextCursor"]
        if not cursor:
            return count


if __name__ == "__main__":
    sys.exit(main())
