"""`make run` as a user runs it, stopped the ways a user (or a supervisor) stops
it: every process it started is gone within seconds.

make passes SIGTERM on to its recipe, and Ctrl-C reaches the whole process
group, but a SIGINT sent to make's PID alone stays with make (runlocal's
--stop-with-parent covers it: tasks/localmode/lifeline.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tasks.localmode.process import free_port
from tests.processes import alive, descendants

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 120  # `make run` checks its set-up first
STOP_TIMEOUT = 5


def start_make_run(data_dir: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    environment = {
        name: value
        for name, value in os.environ.items()
        # Not the outer make's (make test) nor the test settings.
        if not name.startswith(("MAKE", "MFLAGS"))
        and name not in ("DJANGO_SETTINGS_MODULE", "AWS_ENDPOINT_URL")
    }
    environment["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}", f"DATA_DIR={data_dir}"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + READY_TIMEOUT
    while not any(line.startswith("API key: ") for line in output):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("make run was not ready:\n" + "".join(output))
        time.sleep(0.1)
    return process, output


def signal_group(process: subprocess.Popen, signum: int) -> None:
    os.killpg(process.pid, signum)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not found")
@pytest.mark.parametrize(
    "stop",
    [
        pytest.param(lambda make: make.send_signal(signal.SIGINT), id="SIGINT to make"),
        pytest.param(lambda make: make.send_signal(signal.SIGTERM), id="SIGTERM to make"),
        pytest.param(lambda make: signal_group(make, signal.SIGINT), id="Ctrl-C"),
        pytest.param(lambda make: make.send_signal(signal.SIGKILL), id="SIGKILL to make"),
    ],
)
def test_it_stops_every_process_it_started(stop, tmp_path):
    make, output = start_make_run(tmp_path / "local", free_port())
    started = {make.pid}
    try:
        started = descendants(make.pid)
        # make, runlocal (exec'd by the recipe's shell), the AWS endpoint.
        assert len(started) >= 3, "".join(output)
        stop(make)
        deadline = time.monotonic() + STOP_TIMEOUT
        while alive(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive(started) == set(), "".join(output)
        assert make.wait(timeout=1) != 0
    finally:
        for pid in alive(started):
            os.kill(pid, signal.SIGKILL)
        make.kill()
        make.wait()
