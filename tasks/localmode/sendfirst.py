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
        # Invocations handed to the pool, not yet claimed (or given up), by
        # due time: their claims go before outcomes too. A crowd larger than
        # the stand-in's lead can claim would otherwise queue its late claims
        # behind the outcomes of the ones already sent, at the one-request-
        # at-a-time local endpoint.
        self._unclaimed: list[float] = []
        self._invocation = threading.local()

    def expect(self, dues: list[float]) -> None:
        """The stand-in is about to invoke these (one due time each)."""
        with self._changed:
            self._unclaimed.extend(dues)

    @contextlib.contextmanager
    def invocation(self, due: float) -> Iterator[None]:
        """Around one expected invocation, on its thread."""
        self._invocation.due = due
        try:
            yield
        finally:
            self._claimed()

    def _claimed(self) -> None:
        due = getattr(self._invocation, "due", None)
        if due is None:
            return
        self._invocation.due = None
        with self._changed:
            self._unclaimed.remove(due)
            if not self._some_due():
                self._changed.notify_all()

    @contextlib.contextmanager
    def delivering(self, due: float) -> Iterator[None]:
        self._claimed()
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

    def wait_for_due_deliveries(self, limit: float = 3.0) -> None:
        deadline = time.monotonic() + limit
        with self._changed:
            while self._some_due():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    def _some_due(self) -> bool:
        soon = time.time() + 0.01
        return any(due <= soon for due in self._due) or any(due <= soon for due in self._unclaimed)
