"""End-to-end faults in the local mode: real processes (runlocal and its
endpoint), kill -9, Ctrl-C to the process group, a state folder that cannot
be written; webhooks to a real receiver on 127.0.0.1."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import urllib3

from tests.localrun import LocalRun, start_local

pytestmark = pytest.mark.e2e


class Receiver:
    """Counts the deliveries of each webhook-id."""

    def __init__(self, httpserver) -> None:
        from werkzeug import Response

        self.seen: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

        def record(request):
            with self.lock:
                self.seen[request.headers.get("webhook-id", "")] += 1
            return Response("ok")

        httpserver.expect_request("/hook").respond_with_handler(record)
        self.url = httpserver.url_for("/hook")

    def duplicates(self) -> dict[str, int]:
        with self.lock:
            return {k: n for k, n in self.seen.items() if n > 1}


@pytest.fixture
def receiver(httpserver) -> Receiver:
    return Receiver(httpserver)


@contextlib.contextmanager
def local(data_dir: Path, **env: str):
    run = start_local(data_dir, env=env, new_group=True)
    try:
        yield run
    finally:
        if run.process.poll() is None:
            run.kill_all()


def body(url: str, run_at: datetime) -> dict:
    return {"action": "webhook", "payload": {"url": url, "data": {}}, "runAt": run_at.isoformat()}


def request(run: LocalRun, method: str, path: str, payload: dict | None = None):
    """One try, no retries: what a client sees at that moment."""
    response = urllib3.request(
        method,
        run.url.rstrip("/") + path,
        body=json.dumps(payload).encode() if payload is not None else None,
        headers={"Authorization": f"Bearer {run.api_key}", "Content-Type": "application/json"},
        timeout=15,
        retries=False,
    )
    return response.status, response.headers.get("Content-Type", ""), response.data


def statuses(run: LocalRun, ids: list[str]) -> dict[str, str]:
    return {i: run.api("GET", f"/api/tasks/{i}")[1].get("status", "missing") for i in ids}


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def endpoint_url(run: LocalRun) -> str:
    line = next(line for line in run.output if line.startswith("local AWS on "))
    return line.split()[3]


def scheduled_task_ids(run: LocalRun) -> set[str]:
    """The task ids of the pending schedules, from the endpoint's feed."""
    answer = urllib3.request("GET", endpoint_url(run) + "/_local/schedules", timeout=10)
    return {
        json.loads(s["Target"]["Input"])["task_id"] for s in json.loads(answer.data)["schedules"]
    }


def create_until(run: LocalRun, url: str, stop: threading.Event, clients: int = 4):
    """Create tasks from `clients` threads until `stop`: the acknowledged ids
    (a list that grows) and the threads."""
    acked: list[str] = []
    run_at = datetime.now(UTC) + timedelta(hours=1)

    def client() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                status, _, data = request(run, "POST", "/api/tasks", body(url, run_at))
                if status == 201:
                    acked.append(json.loads(data)["id"])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return acked, threads


def test_it_keeps_every_acknowledged_task_after_kill_9_of_the_group(tmp_path, receiver):
    data_dir = tmp_path / "state"
    with local(data_dir) as run:
        stop = threading.Event()
        acked, clients = create_until(run, receiver.url, stop)
        try:
            wait_for(lambda: len(acked) >= 40, timeout=40)
            os.killpg(run.process.pid, signal.SIGKILL)  # mid-create, every process
            run.kill_all()
        finally:
            stop.set()
        for client in clients:
            client.join(timeout=20)
    assert len(acked) >= 40

    with local(data_dir) as again:
        found = statuses(again, acked)
        assert [i for i, status in found.items() if status != "scheduled"] == []
        assert set(acked) <= scheduled_task_ids(again)  # each with its schedule


def test_it_delivers_nothing_twice_after_kill_9_at_a_crowded_second(tmp_path, receiver):
    data_dir = tmp_path / "state"
    # The production webhook timeout: on a loaded machine the restarted run's
    # burst can keep the receiver from answering within the tests' 2 s, and a
    # timed-out attempt is retried by design (a new attempt, not a duplicate
    # of the crash's making).
    patient = {"WEBHOOK_TIMEOUT_SECONDS": "10"}
    with local(data_dir, **patient) as run:
        run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        ids = [
            run.api("POST", "/api/tasks", body(receiver.url, run_at))[1]["id"] for _ in range(40)
        ]
        time.sleep(max(0.0, run_at.timestamp() - time.time()) + 0.05)
        os.killpg(run.process.pid, signal.SIGKILL)  # as the crowd goes out
        run.kill_all()
    delivered_at_crash = sum(receiver.seen.values())

    with local(data_dir, **patient) as again:
        # Each task ends completed, or running if the crash took its outcome
        # (its claim was durable: the re-fired schedule does not send again).
        def settled():
            found = statuses(again, ids)
            return all(s in ("completed", "running") for s in found.values()) and found

        found = wait_for(settled, timeout=30)
        time.sleep(1.5)  # any duplicate would be on its way by now
        assert receiver.duplicates() == {}, f"{delivered_at_crash} delivered at the crash"
        completed = [i for i, s in found.items() if s == "completed"]
        assert all(receiver.seen[i] == 1 for i in completed)


def test_it_answers_503_while_the_endpoint_restarts_and_carries_on(tmp_path, receiver):
    with local(tmp_path / "state") as run:
        soon = datetime.now(UTC) + timedelta(seconds=1)
        _, before = run.api("POST", "/api/tasks", body(receiver.url, soon))
        os.kill(run.children()[0], signal.SIGKILL)

        status, content_type, data = request(run, "GET", f"/api/tasks/{before['id']}")
        if status != 200:  # unless it was back already
            assert (status, content_type) == (503, "application/json"), data
            assert "detail" in json.loads(data)
        wait_for(lambda: request(run, "GET", f"/api/tasks/{before['id']}")[0] == 200)

        run_at = datetime.now(UTC) + timedelta(seconds=1)
        status, task = run.api("POST", "/api/tasks", body(receiver.url, run_at))
        assert status == 201
        wait_for(lambda: statuses(run, [task["id"]])[task["id"]] == "completed")
        assert statuses(run, [before["id"]])[before["id"]] == "completed"
        output = "".join(run.output)
        assert output.count("stopped unexpectedly") == 1
        assert "Traceback" not in output


def test_it_stops_in_order_on_ctrl_c_mid_burst(tmp_path, receiver):
    data_dir = tmp_path / "state"
    with local(data_dir) as run:
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        ids = [
            run.api("POST", "/api/tasks", body(receiver.url, first + timedelta(seconds=i % 3)))[1][
                "id"
            ]
            for i in range(60)
        ]
        time.sleep(max(0.0, first.timestamp() - time.time()) + 1.3)
        started = time.monotonic()
        os.killpg(run.process.pid, signal.SIGINT)  # a terminal's Ctrl-C
        assert run.process.wait(timeout=10) == 0
        took = time.monotonic() - started
        output = "".join(run.output)
    assert took < 5, f"stopping took {took:.1f} s"
    assert "Traceback" not in output
    assert wait_gone(data_dir)

    with local(data_dir) as again:
        delivered = [i for i in ids if receiver.seen[i]]
        assert delivered, "the burst had started"
        assert [s for s in statuses(again, delivered).values() if s != "completed"] == []
        wait_for(lambda: all(s == "completed" for s in statuses(again, ids).values()), 30)
        assert receiver.duplicates() == {}


def test_it_keeps_writes_made_while_the_state_folder_is_unwritable(tmp_path, receiver):
    data_dir = tmp_path / "state"
    with local(data_dir, SCHEDULER_LOCAL_COMPACT_SECONDS="0.5") as run:
        health = endpoint_url(run) + "/_local/health"
        with unwritable(data_dir):
            run_at = datetime.now(UTC) + timedelta(hours=1)
            ids = [
                run.api("POST", "/api/tasks", body(receiver.url, run_at))[1]["id"] for _ in range(5)
            ]
            problem = wait_for(lambda: json.loads(urllib3.request("GET", health).data)["problem"])
            assert "could not save" in problem
            run.kill_all()  # a crash while nothing could be saved
        output = "".join(run.output)
    assert "could not save the local AWS state" in output  # said so, in the log

    with local(data_dir) as again:
        assert set(statuses(again, ids).values()) == {"scheduled"}
        assert json.loads(urllib3.request("GET", endpoint_url(again) + "/_local/health").data)["ok"]


@contextlib.contextmanager
def unwritable(folder: Path):
    """No file can be made in the folder (root ignores modes: an immutable
    attribute then). Files open already can still be written."""
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        if made.returncode:
            pytest.skip(f"cannot make a folder unwritable here: {made.stderr!r}")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)


def wait_gone(data_dir: Path, timeout: float = 5) -> bool:
    """No process started for this data folder is left."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(str(data_dir) in command for command in _command_lines()):
            return True
        time.sleep(0.1)
    return False


def _command_lines() -> list[str]:
    """Live processes' command lines (ps: Linux and macOS alike)."""
    listing = subprocess.run(
        ["ps", "-A", "-ww", "-o", "stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in listing.splitlines() if not line.strip().startswith("Z")]
