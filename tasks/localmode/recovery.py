"""What the local mode repairs at start, before anything fires: the same
reconcile as `manage.py reconcile`, with no grace (nothing is in flight yet:
the previous run's processes are gone)."""

from __future__ import annotations

import logging

from tasks.services.reconcile import tasks_reconcile

logger = logging.getLogger("localmode")


def reconcile_at_start() -> str | None:
    """Repair, and return a line to print when something was found."""
    result = tasks_reconcile(grace_seconds=0)
    found = result.repaired or result.orphans_deleted or result.stuck or result.errors
    return f"Reconciled: {result.summary()}" if found else None
