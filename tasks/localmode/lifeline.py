"""The local mode's processes never outlive the one that started them.

- The AWS endpoint, a child of runlocal, gets SIGTERM from the kernel when
  runlocal dies, where the kernel offers that (Linux's PR_SET_PDEATHSIG, set by
  `die_with_parent` between fork and exec); everywhere it also watches its
  parent (`watch_parent`), which is what it has on macOS.
- runlocal under `make run` watches make. make passes SIGTERM on to its recipe,
  but not SIGINT, SIGHUP or SIGQUIT: it expects the terminal to have sent those
  to the whole process group, and waits for the recipe to end. Sent to make's
  PID alone (`kill -INT`, a supervisor), SIGINT would stop nothing; what shows
  is that make no longer catches it (make resets its handler before it waits).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
FATAL_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)
INTERVAL = 0.25  # seconds between looks at the parent


def die_with_parent() -> bool:
    """In a child between fork and exec: SIGTERM when the parent dies. False
    where the kernel does not offer that (not Linux, or no libc to ask)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc, already loaded
    except (OSError, AttributeError):
        return False
    return prctl(PR_SET_PDEATHSIG, signal.SIGTERM) == 0


def watch_parent(parent: int, stop: Callable[[], None], *, signals: bool = False) -> None:
    """Call stop(), once, from a daemon thread, when `parent` is no longer this
    process's parent (it died); with signals, also when it stops catching a
    fatal signal it caught at the start (make, once it got one)."""
    watched = _mask(FATAL_SIGNALS) & (caught_signals(parent) or 0) if signals else 0

    def watch() -> None:
        while True:
            time.sleep(INTERVAL)
            if os.getppid() != parent:
                break
            caught = caught_signals(parent) if watched else None
            if caught is not None and watched & ~caught:
                break
        stop()

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def caught_signals(pid: int) -> int | None:
    """The signals `pid` has a handler for, as a bit mask (bit n-1 for signal
    n), or None when that cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as status:  # Linux
            for line in status:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None  # Linux, and pid is gone
    except OSError:
        return None
    try:  # macOS and the BSDs: ps has the mask too
        out = subprocess.run(
            ["ps", "-o", "caught=", "-p", str(pid)], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return int(out, 16)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _mask(signums: tuple[int, ...]) -> int:
    return sum(1 << (signum - 1) for signum in signums)
