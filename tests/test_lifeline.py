"""The local mode's processes stop with the one that started them, where Linux's
parent-death signal is there and where it is not (macOS): tasks/localmode/lifeline.py."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.localmode import lifeline
from tasks.management.commands.runlocal import _child_setup
from tests.processes import alive

ROOT = Path(__file__).resolve().parent.parent


def no_libc(*args, **kwargs):
    raise OSError("no libc here")


@pytest.fixture(params=["no libc", "not Linux"])
def without_pdeathsig(request, monkeypatch):
    if request.param == "no libc":
        monkeypatch.setattr(ctypes, "CDLL", no_libc)
    else:
        monkeypatch.setattr(sys, "platform", "darwin")
    return request.param


def test_it_starts_a_child_without_the_parent_death_signal(without_pdeathsig):
    assert lifeline.die_with_parent() is False
    child = subprocess.run(
        [sys.executable, "-c", "print('started')"],
        preexec_fn=_child_setup,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (child.returncode, child.stdout) == (0, "started\n")


# runlocal's start of the AWS endpoint, in a process that has no parent-death
# signal to give its child (as on macOS), and then dies without a word.
RUNLOCAL = """
import ctypes, sys, time
from pathlib import Path

import django
django.setup()
from tasks.management.commands.runlocal import Command

if sys.argv[2] == "no libc":
    def no_libc(*args, **kwargs):
        raise OSError("no libc here")
    ctypes.CDLL = no_libc
else:
    sys.platform = "darwin"
endpoint = Command()._start_aws(Path(sys.argv[1]))
print(endpoint.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.e2e
def test_it_stops_the_aws_endpoint_with_its_parent_without_the_signal(tmp_path):
    for how in ("no libc", "not Linux"):
        runlocal = subprocess.Popen(
            [sys.executable, "-c", RUNLOCAL, str(tmp_path / how), how],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        endpoint = set()
        try:
            endpoint = {int(runlocal.stdout.readline())}  # it answered: it started
            assert alive(endpoint) == endpoint
            runlocal.kill()
            runlocal.wait()
            deadline = time.monotonic() + 5
            while alive(endpoint) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert alive(endpoint) == set(), how
            assert (tmp_path / how / "aws.pickle").exists()  # it stopped cleanly
        finally:
            for pid in alive(endpoint):
                os.kill(pid, signal.SIGKILL)
            runlocal.kill()
            runlocal.wait()


# make's way with SIGINT: back to the default action, wait for the children,
# then die of it. The child never hears of it.
LIKE_MAKE = """
import os, signal, subprocess, sys

def fatal(signum, frame):
    signal.signal(signum, signal.SIG_DFL)
    os.waitpid(child.pid, 0)
    os.kill(os.getpid(), signum)

signal.signal(signal.SIGINT, fatal)
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]])
os.waitpid(child.pid, 0)
"""

WATCHING = """
import os, threading
from tasks.localmode import lifeline

stopped = threading.Event()
lifeline.watch_parent(os.getppid(), stopped.set, signals=True)
print("watching", flush=True)
print("stopped" if stopped.wait(10) else "still running", flush=True)
"""


def test_it_stops_when_its_parent_got_a_signal_it_does_not_pass_on():
    parent = subprocess.Popen(
        [sys.executable, "-c", LIKE_MAKE, WATCHING],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout.readline() == "watching\n"
        time.sleep(0.5)  # the watch has read the parent's handlers
        parent.send_signal(signal.SIGINT)
        assert parent.stdout.readline() == "stopped\n"
        assert parent.wait(timeout=5) == -signal.SIGINT
    finally:
        parent.kill()
        parent.wait()


def test_it_reads_which_signals_a_process_catches():
    caught = lifeline.caught_signals(os.getpid())
    assert caught is not None
    assert caught & (1 << (signal.SIGINT - 1))  # Python's KeyboardInterrupt
