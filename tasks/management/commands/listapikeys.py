from __future__ import annotations

from django.core.management.base import BaseCommand

from tasks.services import access


class Command(BaseCommand):
    help = "List API keys (never the keys themselves)."

    def handle(self, *args, **options) -> None:
        for key in access.apikey_list():
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            self.stdout.write(f"{key.key_id}  {key.prefix}…  {key.name}  {state}")
