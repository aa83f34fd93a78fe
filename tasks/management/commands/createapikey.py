from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tasks import access


class Command(BaseCommand):
    help = "Create an API key; the key is printed once, as the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who or what the key is for")

    def handle(self, *args, name: str, **options) -> None:
        try:
            key, raw = access.apikey_create(name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"API key {key.key_id} ({key.name}) created; it is shown only once:")
        self.stdout.write(raw)
