from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tasks.errors import DomainError
from tasks.services import access


class Command(BaseCommand):
    help = "Revoke an API key by its id, name or prefix."

    def add_arguments(self, parser) -> None:
        parser.add_argument("key", help="key id, name or the prefix shown by listapikeys")

    def handle(self, *args, key: str, **options) -> None:
        try:
            revoked = access.apikey_revoke(key_id=key)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"revoked {revoked.key_id} ({revoked.name})")
