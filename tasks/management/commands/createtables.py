from __future__ import annotations

from django.core.management.base import BaseCommand

from tasks.models import MODELS


class Command(BaseCommand):
    help = "Create the DynamoDB tables if they do not exist (safe to run again)."

    def handle(self, *args, **options) -> None:
        for model in MODELS:
            name = model.Meta.table_name
            if model.exists():
                state = "exists"
            else:
                model.create_table(wait=True)
                state = "created"
            if options["verbosity"] > 0:
                self.stdout.write(f"{name}: {state}")
