from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from tasks.errors import DomainError
from tasks.services import access


class Command(BaseCommand):
    help = "Add a dashboard login."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )

    def handle(self, *args, username: str, password_stdin: bool, **options) -> None:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
        try:
            access.operator_create(username=username, password=password)
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"operator {username} created")
