"""Idle benchmark of the local mode: the CPU that runlocal and its endpoint
use while nothing is due, with no schedule pending and with N pending (10,000
by default), and how soon after the ready line a schedule missed while the
local mode was stopped fires. Prints a table.

    python -m bench.idle [-n 10000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.receiver import Receiver
from tasks.localmode.process import LocalRun, start_local

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def idle_cpu(run: LocalRun, seconds: float) -> dict[str, float]:
    """Percent of one core, per process, over `seconds`."""
    pids = {"runlocal": run.process.pid, "endpoint": run.children()[0]}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (cpu_seconds(pid) - before[name]) / seconds * 100 for name, pid in pids.items()}


def endpoint_url(run: LocalRun) -> str:
    return next(line.split()[3] for line in run.output if line.startswith("local AWS on "))


def create_pending(run: LocalRun, url: str, n: int) -> float:
    """n tasks due far ahead, each with its schedule, made by the app's own
    service (as the API would, without the HTTP in front: quicker). Real
    tasks: the reconcile at start deletes schedules that have none."""
    os.environ.update(
        SCHEDULER_LOCAL_MODE="true",
        DJANGO_SETTINGS_MODULE="scheduler_site.settings",
        AWS_ENDPOINT_URL=endpoint_url(run),
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
    )
    import django

    django.setup()
    from tasks.services import creation

    run_at = datetime.now(UTC) + timedelta(days=365)

    def create(i: int) -> None:
        creation.task_create(
            action="webhook", payload={"url": url, "data": {"i": i}}, run_at=run_at
        )

    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(n)))
    return time.time() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=10_000, help="pending schedules")
    parser.add_argument("--seconds", type=float, default=20.0, help="each CPU measurement")
    args = parser.parse_args()
    receiver = Receiver()
    url = receiver.start()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "state"
        run = start_local(data_dir)
        try:
            time.sleep(3)  # past the start's own work
            cpu = idle_cpu(run, args.seconds)
            rows.append(("idle CPU, 0 pending", _cpu(cpu)))
            run_at = datetime.now(UTC) + timedelta(hours=1)
            body = {"action": "webhook", "payload": {"url": url, "data": {}}}
            _, task = run.api("POST", "/api/tasks", {**body, "runAt": run_at.isoformat()})
            took = create_pending(run, url, args.n)
            rows.append((f"creating {args.n} tasks", f"{took:.0f} s (8 threads)"))
            # The one that will be missed: due while the local mode is stopped.
            missed_at = datetime.now(UTC) + timedelta(seconds=2)
            _, missed = run.api("POST", "/api/tasks", {**body, "runAt": missed_at.isoformat()})
            run.stop(signal.SIGTERM)
            time.sleep(max(0.0, missed_at.timestamp() - time.time()) + 1)

            started = time.time()
            run = start_local(data_dir)
            ready = time.time()
            rows.append(("start to ready line", f"{ready - started:.1f} s"))
            arrived = _wait_arrival(receiver, missed["id"], timeout=60)
            rows.append(("missed schedule fired after the ready line", f"{arrived - ready:.2f} s"))
            # The reconcile at start reads every scheduled task once (in the
            # background): the idle figure is taken after it.
            settled = _settle(run, limit=300)
            rows.append(("the start's own work (reconcile) done after", f"{settled - ready:.0f} s"))
            cpu = idle_cpu(run, args.seconds)
            rows.append((f"idle CPU, {args.n + 1} pending", _cpu(cpu)))
        finally:
            run.stop()
            receiver.stop()
    print(f"\nIdle benchmark: the local mode with {args.n} pending schedules\n")
    print("| measure | value |")
    print("| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


def _cpu(cpu: dict[str, float]) -> str:
    total = sum(cpu.values())
    parts = ", ".join(f"{name} {value:.2f} %" for name, value in cpu.items())
    return f"{total:.2f} % of a core ({parts})"


def _settle(run: LocalRun, limit: float) -> float:
    """When both processes have used under 5 % of a core for 2 s."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if sum(idle_cpu(run, 2.0).values()) < 5:
            return time.time()
    return time.time()


def _wait_arrival(receiver: Receiver, task_id: str, timeout: float) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        arrivals, _ = receiver.arrivals()
        if task_id in arrivals:
            return arrivals[task_id]
        time.sleep(0.02)
    raise SystemExit(f"the missed schedule did not fire within {timeout} s")


if __name__ == "__main__":
    sys.exit(main())
