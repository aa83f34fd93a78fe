"""`python manage.py reconcile`: repair what a fault left (see
tasks/services/reconcile.py)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from tasks.services.reconcile import GRACE_SECONDS, tasks_reconcile


class Command(BaseCommand):
    help = (
        "Give scheduled tasks without a schedule their schedule back, delete orphan "
        "schedules, list tasks stuck running."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            default=GRACE_SECONDS,
            help="leave tasks and schedules changed this recently alone (seconds)",
        )
        parser.add_argument("--dry-run", action="store_true", help="say what it would do")

    def handle(self, *args, grace: float, dry_run: bool, **options) -> None:
        result = tasks_reconcile(grace_seconds=grace, dry_run=dry_run)
        verb = "would " if dry_run else ""
        for task_id in result.repaired:
            when = "at once (overdue)" if task_id in result.overdue else "at its due time"
            self.stdout.write(f"task {task_id}: {verb}schedule again, {when}")
        for name in result.orphans_deleted:
            self.stdout.write(f"schedule {name}: {verb}delete (no task scheduled under it)")
        for task in result.stuck:
            self.stdout.write(f"task {task.id}: stuck running; {task.outcome_message}")
        for error in result.errors:
            self.stderr.write(error)
        self.stdout.write(result.summary())
