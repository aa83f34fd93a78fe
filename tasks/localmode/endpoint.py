"""runlocal's local AWS endpoint process (awsserver.py), supervised: if it
dies, say so once and start it again from its durable state, on the same
port, so every client keeps working; stop it last, and cleanly."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("localmode")

RESTART_TRIES = 20


class EndpointError(Exception):
    """The endpoint would not start."""


class SupervisedEndpoint:
    def __init__(
        self,
        state_file: Path,
        say: Callable[[str], None],
        child_setup: Callable[[], None] | None = None,
    ) -> None:
        self.state_file = state_file
        self.say = say
        self.child_setup = child_setup
        self.port = 0  # the first start picks a free port; restarts reuse it
        self.url = ""
        self.process: subprocess.Popen | None = None
        self.stopping = threading.Event()
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The endpoint process running now."""
        return self.process.pid if self.process else None

    def start(self) -> str:
        """Start it and supervise it; returns its URL."""
        self.process, line = self._spawn()
        self.say(line)
        threading.Thread(target=self._supervise, name="endpoint", daemon=True).start()
        return self.url

    def _spawn(self) -> tuple[subprocess.Popen, str]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tasks.localmode.awsserver",
                "--port",
                str(self.port),
                "--state",
                str(self.state_file),
                "--supervised",
                # Where the kernel has no parent-death signal (macOS).
                "--parent",
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,  # closed by stop(): the endpoint saves and exits
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=self.child_setup,
        )
        line = process.stdout.readline()
        if not line.startswith("local AWS on "):
            process.kill()
            process.wait()
            raise EndpointError(f"the local AWS endpoint did not start: {line!r}")
        self.url = line.split()[3]
        self.port = int(self.url.rsplit(":", 1)[1])
        return process, line.strip()

    def _supervise(self) -> None:
        while True:
            code = self.process.wait()
            if self.stopping.is_set():
                return
            self.say(
                f"The local AWS endpoint stopped unexpectedly (exit code {code}); "
                "restarting it from its saved state..."
            )
            if not self._restart():
                return

    def _restart(self) -> bool:
        for attempt in range(RESTART_TRIES):
            if self.stopping.is_set():
                return False
            try:
                self.process, _ = self._spawn()
            except (EndpointError, OSError) as exc:
                # The port may linger a moment after a kill.
                if attempt == RESTART_TRIES - 1:
                    self.say(f"The local AWS endpoint could not be restarted: {exc}")
                    return False
                time.sleep(0.25)
                continue
            self.restarts += 1
            self.say(f"The local AWS endpoint is back on {self.url}.")
            return True
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Let it save and exit (it stops when its stdin closes)."""
        self.stopping.set()
        process = self.process
        if process is None:
            return
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the local AWS endpoint did not stop in %s s: killed", timeout)
            process.kill()
            process.wait()
