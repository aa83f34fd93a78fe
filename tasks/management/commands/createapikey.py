from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tasks.errors import DomainError
from tasks.services import access


class Command(BaseCommand):
    help = "Create an API key; the key is printed once, as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who or what the key is for")

    def handle(self, *args, name: str, **options) -> None:
        try:
            key, raw = access.apikey_create(name=name)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"API key {key.key_id} ({key.name}) created; it is shown only once:")
        self.stdout.write(raw)
