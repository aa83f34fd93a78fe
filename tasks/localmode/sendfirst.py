"""The local mode's delivery pacer (injected into services.running by runlocal)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class SendFirst:  # a tasks.services.running.Pacer
    """Within one process, deliveries that are due go out before outcomes
    are recorded.

    On Lambda a process runs one invocation at a time, so this never waits.
    The local mode runs a crowd of invocations in each process; recording an
    outcome (CPU, and a write the local endpoint must serve) would otherwise
    compete with the next delivery that is due at the same second."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: list[float] = []

    @contextlib.contextmanager
    def delivering(self, due: float) -> Iterator[None]:
        with self._changed:
            self._due.append(due)
        try:
            yield
        finally:
            with self._changed:
                self._due.remove(due)
                # Wake the waiters once, when the last due delivery is out
                # (waking them at every one would cost more than it saves).
                if not self._some_due():
                    self._changed.notify_all()

    def wait_for_due_deliveries(self, limit: float = 1.0) -> None:
        deadline = time.monotonic() + limit
        with self._changed:
            while self._some_due():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    def _some_due(self) -> bool:
        soon = time.time() + 0.01
        return any(due <= soon for due in self._due)
