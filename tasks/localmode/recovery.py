"""What the local mode repairs at start: the same reconcile as `manage.py
reconcile`, for which everything changed before the start is settled (the
previous run's processes are gone). It runs beside the firer, so that a
large state (reading every scheduled task costs the local endpoint about
2 ms per task) does not hold back the schedules that came due meanwhile;
it lists the schedules before it reads the tasks, and the stand-in deletes
a schedule only after its invocation, so the two do not race."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from tasks.services.reconcile import tasks_reconcile

logger = logging.getLogger("localmode")


def reconcile_in_background(*, settled_before: datetime, say: Callable[[str], None]) -> None:
    """Start the repair; `say` gets a line when it found anything."""

    def run() -> None:
        try:
            result = tasks_reconcile(settled_before=settled_before)
        except Exception:
            logger.exception("reconcile at start failed")
            return
        if result.repaired or result.orphans_deleted or result.stuck or result.errors:
            say(f"Reconciled: {result.summary()}")

    threading.Thread(target=run, name="reconcile", daemon=True).start()
