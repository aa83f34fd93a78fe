"""Start the local mode (`manage.py runlocal`) as a subprocess, on free ports,
and stop it again: for the end-to-end tests, the benchmark and `make webhook`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

ROOT = Path(__file__).resolve().parent.parent.parent
READY_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalRun:
    """A running `manage.py runlocal` and what it printed when ready."""

    url: str
    username: str
    password: str
    api_key: str
    process: subprocess.Popen
    output: list[str] = field(default_factory=list)

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        import json

        response = urllib3.request(
            method,
            self.url.rstrip("/") + path,
            body=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
            timeout=10,
        )
        return response.status, response.json()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def children(self) -> list[int]:
        """The pids of the processes runlocal started (the AWS endpoint)."""
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in found.split()]

    def kill_all(self) -> None:
        """kill -9 of runlocal and what it started (a crash, not a stop)."""
        pids = [*self.children(), self.process.pid]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for pid in pids[:-1]:
            _wait_gone(pid)


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True
        ).stdout.strip()
        if not state or state.startswith("Z"):  # gone, or dead awaiting its reaper
            return
        time.sleep(0.05)


def start_local(
    data_dir: Path,
    env: dict[str, str] | None = None,
    port: int | None = None,
    args: list[str] | None = None,
    new_group: bool = False,
) -> LocalRun:
    """Start the local mode with its state in data_dir; returns once the three
    ready lines are printed. `new_group`: in a process group of its own, so
    that a signal can go to the whole group as a terminal's Ctrl-C does."""
    environment = {
        **os.environ,
        "SCHEDULER_LOCAL_MODE": "true",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    environment.pop("AWS_ENDPOINT_URL", None)
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runlocal",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            *(args or []),
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0 if new_group else None,
    )
    ready: dict[str, str] = {}
    output: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT
    while len(ready) < 3:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("runlocal exited before it was ready:\n" + "".join(output))
        output.append(line)
        for prefix in ("Dashboard: ", "Login: ", "API key: "):
            if line.startswith(prefix):
                ready[prefix] = line[len(prefix) :].strip()
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("runlocal was not ready in time:\n" + "".join(output))
    # Keep draining its output so it never blocks on a full pipe.
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()
    username, password = ready["Login: "].split(" ", 1)
    return LocalRun(
        url=ready["Dashboard: "],
        username=username,
        password=password,
        api_key=ready["API key: "],
        process=process,
        output=output,
    )
